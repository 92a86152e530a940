"""`podbus up` starts its own servers and leaves nothing behind on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from servicekit.embedded import free_port


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
