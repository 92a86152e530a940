"""podctl's side of an interactive session (`exec -it`, `debug -it`) over the
bus (protocol: podmodel.node_api, the attach section): open it, forward
stdin, the window size and heartbeats, write the output, and return the
remote exit code. The local terminal is put in raw mode while a tty session
runs and restored however it ends (exit, error, Ctrl-C, a lost node).

`AttachSession` is the protocol on a NATS connection (usable by any Python
client); `run_terminal` connects it to this process's stdin/stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import sys
import termios
import time
import tty as ttymod
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from podmodel import subjects
from podmodel.codec import DecodeError, decode, encode
from podmodel.node_api import (
    ATTACH_HEARTBEAT_S,
    ATTACH_MISSED_HEARTBEATS,
    AttachFrame,
    AttachReply,
    AttachRequest,
)

OPEN_TIMEOUT_S = 10.0
READ_BYTES = 32 * 1024


class AttachUnsupported(Exception):
    """The node cannot run interactive commands (or is too old to know the
    subject): fall back to request-reply exec."""


class AttachError(Exception):
    """The session could not be opened or broke off."""


def check_sequence(expected: int, frame: AttachFrame) -> tuple[int, int]:
    """(next expected seq, frames lost before this one). NATS drops messages
    for a slow consumer; numbered output makes such a loss visible."""
    if frame.seq <= 0:
        return expected, 0
    return frame.seq + 1, max(frame.seq - expected, 0)


class AttachSession:
    """One open session. `output()` yields output frames (stdout/stderr) and
    ends after the exit frame, whose exit code and error it leaves in
    `exit_code` / `error`."""

    def __init__(self, nc: NATS, reply: AttachReply) -> None:
        self.nc = nc
        self.reply = reply
        self.heartbeat_s = reply.heartbeat_s or ATTACH_HEARTBEAT_S
        self.exit_code: int | None = None
        self.error = ""
        self.lost = 0
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._sub: Any = None
        self._beat: asyncio.Task[None] | None = None
        self._sent_at = time.monotonic()

    @classmethod
    async def open(cls, nc: NATS, node: str, request: AttachRequest) -> AttachSession:
        """Open a session and start the command (raises AttachUnsupported,
        AttachError)."""
        subject = subjects.node_attach(node)
        try:
            msg = await nc.request(subject, encode(request), timeout=OPEN_TIMEOUT_S)
        except nats.errors.NoRespondersError as exc:
            raise AttachUnsupported(f"no node-agent answers on {subject}") from exc
        except nats.errors.TimeoutError as exc:
            raise AttachError(f"no reply on {subject} within {OPEN_TIMEOUT_S:g}s") from exc
        if msg.headers and msg.headers.get("Podbus-Error"):
            raise AttachError(f"the node refused the session: {msg.data[:200]!r}")
        try:
            reply = decode(msg.data, AttachReply)
        except DecodeError as exc:
            raise AttachError(f"invalid reply on {subject}: {exc}") from exc
        if reply.unsupported:
            raise AttachUnsupported(reply.error)
        if reply.error:
            raise AttachError(reply.error)
        session = cls(nc, reply)
        await session._begin(request.rows, request.cols)
        return session

    @staticmethod
    async def supported(nc: NATS, node: str) -> bool:
        """Whether the node runs interactive sessions: a request naming no
        command is answered `unsupported` by a runtime without them, with
        an error otherwise (and not at all by an agent that predates them)."""
        probe = AttachRequest(namespace="", pod="", container="", command=[])
        try:
            msg = await nc.request(
                subjects.node_attach(node), encode(probe), timeout=OPEN_TIMEOUT_S
            )
            reply = decode(msg.data, AttachReply)
        except (nats.errors.Error, DecodeError):
            return False
        return not reply.unsupported

    async def _begin(self, rows: int, cols: int) -> None:
        self._sub = await self.nc.subscribe(self.reply.output_subject, cb=self._queue.put)
        await self.nc.flush()  # subscribed before the node runs anything
        await self._send(AttachFrame(kind="start", rows=rows, cols=cols))
        self._beat = asyncio.create_task(self._heartbeat())

    async def _send(self, frame: AttachFrame) -> None:
        self._sent_at = time.monotonic()
        await self.nc.publish(self.reply.input_subject, encode(frame))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s / 2)
            if time.monotonic() - self._sent_at >= self.heartbeat_s:
                with contextlib.suppress(Exception):
                    await self._send(AttachFrame(kind="ping"))

    async def stdin(self, data: bytes) -> None:
        if data:
            await self._send(AttachFrame(kind="stdin", data=data))

    async def eof(self) -> None:
        await self._send(AttachFrame(kind="eof"))

    async def resize(self, rows: int, cols: int) -> None:
        await self._send(AttachFrame(kind="resize", rows=rows, cols=cols))

    async def output(self) -> AsyncIterator[AttachFrame]:
        expected = 1
        silence = self.heartbeat_s * ATTACH_MISSED_HEARTBEATS
        while True:
            try:
                async with asyncio.timeout(silence):
                    msg = await self._queue.get()
            except TimeoutError:
                self.error = f"the node stopped answering (no heartbeat for {silence:g}s)"
                return
            try:
                frame = decode(msg.data, AttachFrame)
            except DecodeError:
                continue
            if frame.kind == "exit":
                self.exit_code = frame.exit_code
                self.error = frame.error
                return
            if frame.kind in ("stdout", "stderr"):
                expected, lost = check_sequence(expected, frame)
                self.lost += lost
                yield frame

    async def close(self) -> None:
        """Stop heartbeats and listening; ends the remote command if it
        still runs (a "close" frame)."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self.exit_code is None:
            with contextlib.suppress(Exception):
                await self._send(AttachFrame(kind="close"))
                await self.nc.flush(timeout=2)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


# ---------------------------------------------------------------- terminal


def _read_blocking(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, READ_BYTES)
        except BlockingIOError:
            time.sleep(0.01)


def window_size(fd: int) -> tuple[int, int]:
    """(rows, cols) of a terminal, (0, 0) when fd is none."""
    try:
        rows, cols, _x, _y = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return 0, 0
    return rows, cols


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The terminal in raw mode (keys go to the remote side as typed,
    Ctrl-C included), restored on the way out whatever happens."""
    saved = termios.tcgetattr(fd)
    try:
        ttymod.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def run_terminal(
    session: AttachSession,
    *,
    stdin_fd: int | None,
    stdout: BinaryIO,
    stderr: BinaryIO,
    raw: bool,
) -> int:
    """Forward stdin (None: none) and window changes, write output until the
    exit frame; returns the remote exit code (1 with `session.error` when
    the session broke off). `raw`: stdin is the user's terminal."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)
    readers: list[asyncio.Task[None]] = []

    def readable() -> None:
        assert stdin_fd is not None
        try:
            data = os.read(stdin_fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or chunks.full():
            loop.remove_reader(stdin_fd)
        if chunks.full() and data:
            readers.append(asyncio.create_task(_resume(data)))
            return
        chunks.put_nowait(data)

    async def _resume(data: bytes) -> None:
        await chunks.put(data)
        assert stdin_fd is not None
        loop.add_reader(stdin_fd, readable)

    async def _read_file(fd: int) -> None:
        while data := await asyncio.to_thread(_read_blocking, fd):
            await chunks.put(data)
        await chunks.put(b"")

    async def forward() -> None:
        while True:
            data = await chunks.get()
            if not data:
                await session.eof()
                return
            await session.stdin(data)

    def winch() -> None:
        if stdin_fd is None:
            return
        rows, cols = window_size(stdin_fd)
        if rows and cols:
            readers.append(asyncio.create_task(session.resize(rows, cols)))

    blocking = None
    watching_stdin = False
    if stdin_fd is not None:
        try:
            blocking = os.get_blocking(stdin_fd)
            os.set_blocking(stdin_fd, False)
            loop.add_reader(stdin_fd, readable)
            watching_stdin = True
        except (OSError, ValueError, PermissionError):
            # Not pollable (a regular file, /dev/null): read it all now.
            readers.append(asyncio.create_task(_read_file(stdin_fd)))
    forwarder = asyncio.create_task(forward()) if stdin_fd is not None else None

    async def show() -> None:
        async for frame in session.output():
            out = stderr if frame.kind == "stderr" else stdout
            out.write(frame.data)
            out.flush()

    shower = asyncio.create_task(show())
    ended_by: list[int] = []

    def ending(signum: int) -> None:
        # SIGTERM / SIGHUP (terminal closed): end the session cleanly, so the
        # terminal is restored and the remote command is closed.
        ended_by.append(signum)
        shower.cancel()

    handled = [signal.SIGTERM, signal.SIGHUP]
    for signum in handled:
        loop.add_signal_handler(signum, ending, signum)
    if raw:
        loop.add_signal_handler(signal.SIGWINCH, winch)
    try:
        with raw_terminal(stdin_fd) if raw and stdin_fd is not None else contextlib.nullcontext():
            try:
                await shower
            except asyncio.CancelledError:
                if not ended_by:
                    raise  # we were cancelled (Ctrl-C without a raw terminal)
    finally:
        shower.cancel()
        for signum in handled:
            loop.remove_signal_handler(signum)
        if raw:
            loop.remove_signal_handler(signal.SIGWINCH)
        if stdin_fd is not None and watching_stdin:
            with contextlib.suppress(Exception):
                loop.remove_reader(stdin_fd)
        if stdin_fd is not None and blocking is not None:
            with contextlib.suppress(OSError):
                os.set_blocking(stdin_fd, blocking)
        for task in [*readers, *([forwarder] if forwarder else [])]:
            task.cancel()
        await asyncio.gather(*readers, *([forwarder] if forwarder else []), return_exceptions=True)
        await session.close()
    if session.lost:
        sys.stderr.write(f"podctl: {session.lost} output message(s) were lost on the way\r\n")
    if ended_by:
        session.error = f"podctl ended by {signal.Signals(ended_by[0]).name}"
        return 128 + ended_by[0]
    if session.exit_code is None or session.exit_code < 0:
        return 1  # the session broke off, or the command could not run (session.error)
    return session.exit_code
