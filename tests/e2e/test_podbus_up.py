"""`podbus up` starts its own servers and leaves nothing behind on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servicekit.embedded import free_port

from services.node_agent.oci import nat


def _children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_podbus_up_stops_everything_on_sigint(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "REDIS_URL")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clients.podctl.podbus_cli",
            "up",
            "--data-dir",
            str(tmp_path),
            "--nats-port",
            str(free_port()),
            "--redis-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    assert any("nats-server (JetStream) listening" in ln for ln in lines), lines
    assert any("redis-server (AOF) listening" in ln for ln in lines), lines
    children = _children_of(proc.pid)
    assert len(children) >= 2, f"expected nats-server and redis-server children, got {children}"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "nothing left running" in out
    leftover = [pid for pid in children if _alive(pid)]
    assert not leftover, f"processes left running: {leftover}"
    assert (tmp_path / "endpoints.env").read_text().startswith("NATS_URL=nats://")


def _read_lines_until(
    proc: subprocess.Popen[str], lines: list[str], needle: str, timeout: float
) -> bool:
    """Collect proc's output lines (a reader thread, so a silent process
    cannot block the test) until one contains `needle` or time runs out."""
    import queue
    import threading

    assert proc.stdout is not None
    q: queue.Queue[str | None] = getattr(proc, "_line_queue", None) or queue.Queue()
    if not hasattr(proc, "_line_queue"):
        proc._line_queue = q  # type: ignore[attr-defined]
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                q.put(line)
            q.put(None)

        threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            return False
        if line is None:
            return False
        lines.append(line)
        if needle in line:
            return True
    return False


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in _children_of(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_podbus_up_demo_runs_the_examples_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    import importlib.util

    needed = ["workload_controller", "scheduler", "node_agent"]
    missing = [s for s in needed if importlib.util.find_spec(f"services.{s}.__main__") is None]
    if missing:
        pytest.skip(f"services not built yet: {', '.join(missing)}")
    env = {
        k: v for k, v in os.environ.items() if k not in ("NATS_URL", "REDIS_URL", "XDG_STATE_HOME")
    }
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clients.podctl.podbus_cli",
            "up",
            "--demo",
            "--runtime",
            "simulated",
            "--nodes",
            "1",
            "--data-dir",
            str(tmp_path / "data"),
            "--nats-port",
            str(free_port()),
            "--redis-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines: list[str] = []
    try:
        up = _read_lines_until(proc, lines, "demo: all examples are up", timeout=45)
        assert up, "".join(lines)
        text = "".join(lines)
        assert "runtime simulated (asked for)" in text
        for name in (
            "deployment.apps/web",
            "statefulset.apps/db",
            "pod/init-demo",
            "job.batch/countdown",
        ):
            assert f"demo: {name} created" in text
        assert "pod default/init-demo: Running 2/2" in text
        assert "node hollow-0: Ready" in text
        everything = _descendants(proc.pid)
        assert len(everything) >= 6, f"expected servers and services, got {everything}"
    finally:
        proc.send_signal(signal.SIGINT)
        assert _read_lines_until(proc, lines, "nothing left running", timeout=40), "".join(lines)
        proc.wait(10)
    assert proc.returncode == 0, "".join(lines)
    leftover = [pid for pid in everything if _alive(pid)]
    assert not leftover, f"processes left running: {leftover}"


def _mentions(cmdline: Path, path: Path) -> bool:
    try:
        return str(path).encode() in cmdline.read_bytes()
    except OSError:  # the process ended meanwhile
        return False


def _oci_possible() -> str | None:
    import importlib.util
    import shutil

    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("runc") is None:
        return "needs runc"
    if importlib.util.find_spec("services.node_agent.oci") is None:
        return "the oci runtime is not built yet"
    return None


@pytest.mark.root
def test_podbus_up_oci_demo_runs_real_containers_and_leaves_no_trace(tmp_path: Path) -> None:
    why = _oci_possible()
    if why:
        pytest.skip(why)
    bridge = f"pbe2e{os.getpid() % 100000}"
    env = {
        k: v for k, v in os.environ.items() if k not in ("NATS_URL", "REDIS_URL", "XDG_STATE_HOME")
    }
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clients.podctl.podbus_cli",
            "up",
            "--demo",
            "--plain",
            "--bridge",
            bridge,
            "--pod-cidr",
            "10.231.0.0/16",
            "--data-dir",
            str(tmp_path / "data"),
            "--nats-port",
            str(free_port()),
            "--redis-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines: list[str] = []
    try:
        up = _read_lines_until(proc, lines, "demo: all examples are up", timeout=60)
        assert up, "".join(lines)
        assert "runtime oci: real containers" in "".join(lines)
        assert Path(f"/sys/class/net/{bridge}").exists()
        assert "masquerade" in nat.listing(bridge), "pod traffic is not masqueraded"
    finally:
        proc.send_signal(signal.SIGINT)
        assert _read_lines_until(proc, lines, "nothing left running", timeout=60), "".join(lines)
        proc.wait(10)
    assert proc.returncode == 0, "".join(lines)
    assert not Path(f"/sys/class/net/{bridge}").exists(), "bridge left behind"
    assert not nat.table_exists(bridge), "nftables table left behind"
    netns_after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert netns_after <= netns_before, f"network namespaces left: {netns_after - netns_before}"
    mounts = Path("/proc/mounts").read_text()
    assert str(tmp_path) not in mounts, "mounts left behind"
    shims = [p.parent.name for p in Path("/proc").glob("[0-9]*/cmdline") if _mentions(p, tmp_path)]
    assert not shims, f"processes left: {shims}"
