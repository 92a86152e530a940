"""`podctl exec -it` and `podctl debug -it` as a user types them: podctl is a
subprocess on a pseudo-terminal (python's pty) against a real oci node
(runc, as root), the workload-controller as a process, real NATS and
Redis. A real shell answers, the exit code comes back, the user's terminal
is restored, and no process or session is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from services.node_agent.oci.runtime import OciConfig, OciRuntime
from tests.conftest import wait_for
from tests.integration.oci.conftest import (
    NODE,
    OciHarness,
    _skip_reason,
    assert_nothing_left,
    oci,  # noqa: F401 (fixture)
)
from tests.integration.oci.test_oci_runtime import delete_and_wait, make_pod, phase

ROOT = Path(__file__).resolve().parents[2]
T = 30.0

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def oci_config() -> Iterator[OciConfig]:
    """Like tests/integration/oci's, under names of its own (both may run in
    one pytest session)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tag = f"pe{os.getpid() % 100000}"
    base = Path(tempfile.mkdtemp(prefix=f"podbus-attach-{tag}-"))
    n = os.getpid()
    config = OciConfig(
        state_dir=str(base / "state"),
        run_dir=str(base / "run"),
        image_root=str(base / "images"),
        bridge=tag,
        pod_cidr=f"10.{150 + n % 50}.{n % 250}.0/24",
        netns_prefix=tag,
        id_prefix=tag,
        cgroup_parent=f"/podbus-test-{tag}",
        node_name=NODE,
    )
    yield config
    asyncio.run(OciRuntime(config).cleanup())
    leftovers = assert_nothing_left(config)
    shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, leftovers


@pytest_asyncio.fixture
async def api(nats_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The workload-controller (podctl's get and ephemeral subresource) and
    the environment podctl runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PODBUS_"))}
    env.update(NATS_URL=nats_url, REDIS_URL=redis_url, PODBUS_LOG_LEVEL="WARNING")
    log = (tmp_path / "wc.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.workload_controller",
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    client_env = {k: v for k, v in env.items() if k not in ("NATS_URL", "REDIS_URL")}
    client_env["PODBUS_NATS_URL"] = nats_url
    try:

        async def answers() -> bool:
            r = await podctl(client_env, "get", "pods")
            return r[0] == 0

        await wait_for(answers, T, interval=0.3, message="workload-controller answering")
        yield client_env
    finally:
        proc.terminate()
        async with asyncio.timeout(15):
            await proc.wait()
        log.close()


async def podctl(env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.podctl.cli", *args,
        env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(T):
        out, err = await proc.communicate(stdin)
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


class Terminal:
    """podctl on a pty: what it printed so far, typing, its exit code."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int, slave: int) -> None:
        self.proc = proc
        self.master = master
        self.slave = slave
        self.seen = b""
        self._more = asyncio.Event()
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.seen += data
        self._more.set()

    async def expect(self, needle: bytes, timeout: float = T) -> None:
        try:
            async with asyncio.timeout(timeout):
                while needle not in self.seen:
                    self._more.clear()
                    await self._more.wait()
        except TimeoutError:
            raise AssertionError(
                f"{needle!r} not shown; the terminal shows {self.seen!r}"
            ) from None

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    async def exit_code(self) -> int:
        async with asyncio.timeout(T):
            code = await self.proc.wait()
        await asyncio.sleep(0)
        return code

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.master)
        if self.proc.returncode is None:
            self.proc.kill()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@contextlib.asynccontextmanager
async def terminal(env: dict[str, str], *args: str) -> AsyncIterator[Terminal]:
    master, slave = os.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.podctl.cli", *args,
        env=env, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    term = Terminal(proc, master, slave)
    try:
        yield term
    finally:
        term.close()


def runc_execs(h: OciHarness) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if h.config.runc_root.encode() in cmd and b"exec" in cmd:
                    found.append(pid)
    return found


def processes(cmdline: bytes) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                    found.append(pid)
    return found


async def nothing_left(h: OciHarness) -> None:
    attach = h.agent.attach
    assert attach is not None
    await wait_for(lambda: not attach.sessions, T, message="sessions ended")
    await wait_for(lambda: not runc_execs(h), T, message="no runc exec left")


async def test_exec_it_gives_a_real_shell_and_its_exit_code(
    oci: OciHarness,  # noqa: F811
    api: dict[str, str],
) -> None:
    await oci.store.create(make_pod("shell", [{"name": "app", "command": ["sleep", "3600"]}]))
    await phase(oci, "shell", "Running")
    before = termios.tcgetattr(0) if os.isatty(0) else None
    async with terminal(api, "exec", "-it", "shell", "--", "sh") as term:
        cooked = termios.tcgetattr(term.slave)
        await term.expect(b"# ")  # the shell's prompt: it runs on a terminal
        # Ctrl-C goes to the remote terminal: it stops the remote sleep, not podctl
        term.type(b"sleep 301\r")
        await wait_for(lambda: processes(b"sleep\x00301\x00"), T, message="remote sleep running")
        term.type(b"\x03")
        await term.expect(b"^C")
        term.type(b"echo after''int\r")
        await term.expect(b"afterint\r\n")
        assert not processes(b"sleep\x00301\x00")
        term.type(b"tty; stty size; echo hel''lo; exit 3\r")
        await term.expect(b"hello\r\n")
        assert await term.exit_code() == 3
        await term.expect(b"command terminated with exit code 3")
        assert b"/dev/pts/" in term.seen  # the container's own terminal
        # podctl put the user's terminal back as it found it
        assert termios.tcgetattr(term.slave) == cooked
    assert before is None or termios.tcgetattr(0) == before
    await nothing_left(oci)

    # Killed (SIGTERM) or its terminal hung up: the terminal is restored and
    # the remote shell ends.
    async with terminal(api, "exec", "-it", "shell", "--", "sh") as term:
        cooked = termios.tcgetattr(term.slave)
        await term.expect(b"# ")
        assert termios.tcgetattr(term.slave) != cooked  # raw while the shell runs
        term.proc.send_signal(signal.SIGTERM)
        assert await term.exit_code() == 128 + signal.SIGTERM
        assert termios.tcgetattr(term.slave) == cooked
    await nothing_left(oci)

    # -i without a terminal: stdin is forwarded until EOF, no tty
    code, out, err = await podctl(
        api, "exec", "-i", "shell", "--", "sh", stdin=b"echo piped; tty; exit 4\n"
    )
    assert (code, out) == (4, "piped\nnot a tty\n"), err
    await nothing_left(oci)
    await delete_and_wait(oci, "shell")


async def test_debug_it_targets_the_app_and_sees_its_processes(
    oci: OciHarness,  # noqa: F811
    api: dict[str, str],
) -> None:
    await oci.store.create(make_pod("dbg", [{"name": "app", "command": ["sleep", "3600"]}]))
    await phase(oci, "dbg", "Running")
    async with terminal(
        api, "debug", "dbg", "-it", "--image=busybox", "--target=app", "-c", "debugger", "--", "sh"
    ) as term:
        await term.expect(b"# ", timeout=T)
        term.type(b"ps -o pid,args\r")
        await term.expect(b"sleep 3600")
        term.type(b"exit\r")
        assert await term.exit_code() == 0, term.seen

    async def debugger_ended() -> bool:
        pod = await oci.pod("dbg")
        statuses = pod.status.ephemeral_container_statuses if pod else []
        return bool(statuses) and statuses[0].state.terminated is not None

    # The idle debug container ends with the session, as Kubernetes' does.
    await wait_for(debugger_ended, T, interval=0.2, message="debug container terminated")
    await nothing_left(oci)
    await delete_and_wait(oci, "dbg")
