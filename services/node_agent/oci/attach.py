"""Interactive commands in a running oci container: `runc exec` with stdin
forwarded, for the node-agent's attach sessions (services/node_agent/attach.py).

With a tty, runc is given the slave side of a pty created here as its
stdin/stdout/stderr: runc (foreground, `-t`) makes the container's own
terminal, puts ours in raw mode and copies between the two, and on SIGWINCH
copies our window size to the container's. So a resize sets the size of our
pty and signals runc. Without a tty, the command inherits three pipes from
runc. Output is read in order into one queue; `None` ends it.

Must not: decide anything about sessions (heartbeats, frames) - that is the
driver's and `logic.attach_session`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import termios
import tty as ttymod
from pathlib import Path
from typing import Literal

Stream = Literal["stdout", "stderr"]
Output = tuple[Stream, bytes] | None

READ_BYTES = 32 * 1024
#: output merged into one piece at most (podmodel's ATTACH_CHUNK_BYTES)
MERGE_BYTES = 64 * 1024
DEFAULT_ROWS = 24
DEFAULT_COLS = 80


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on a terminal fd."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class OciInteractive:
    """One `runc exec` with stdin forwarded. Create with `start()`; read
        output with `read()` until None, `wait()` for the exit code; `kill()`
        ends it early. `close()` releases the fds (always call it). Output held
    open by a background process after runc ended is the driver's to give up on."""

    def __init__(
        self, proc: asyncio.subprocess.Process, pid_file: Path, master: int | None
    ) -> None:
        self.proc = proc
        self.pid_file = pid_file
        self.tty = master is not None
        self._master = master
        self._queue: asyncio.Queue[Output] = asyncio.Queue(maxsize=256)
        self._readers: set[asyncio.Task[None]] = set()
        self._open_streams = 0
        self._closed = False
        self._held: Output = None
        self._holding = False
        loop = asyncio.get_running_loop()
        if master is not None:
            os.set_blocking(master, False)
            self._open_streams = 1
            loop.add_reader(master, self._on_master_readable)
        else:
            for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                if stream is not None:
                    self._open_streams += 1
                    task = asyncio.create_task(self._pump(name, stream))  # type: ignore[arg-type]
                    self._readers.add(task)
                    task.add_done_callback(self._readers.discard)

    @classmethod
    async def start(
        cls,
        runc: list[str],
        container_id: str,
        command: list[str],
        *,
        tty: bool,
        rows: int = 0,
        cols: int = 0,
        pid_file: Path,
    ) -> OciInteractive:
        """Run `command` in the container (runc = runc and its global flags)."""
        argv = [*runc, "exec", "--pid-file", str(pid_file)]
        if not tty:
            proc = await asyncio.create_subprocess_exec(
                *argv, container_id, *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )  # fmt: skip
            return cls(proc, pid_file, None)
        master, slave = os.openpty()
        try:
            # Raw from the start: bytes typed before runc sets it are neither
            # echoed nor held for a line here (the container's tty does that).
            ttymod.setraw(slave)
            set_window_size(slave, rows or DEFAULT_ROWS, cols or DEFAULT_COLS)
            proc = await asyncio.create_subprocess_exec(
                *argv, "-t", "--env", "TERM=xterm", container_id, *command,
                stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(proc, pid_file, master)

    # ------------------------------------------------------------ output

    def _on_master_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:  # EIO: every slave fd closed (runc ended)
            data = b""
        if not data:
            self._stop_master_reader()
            self._stream_ended()
            return
        if self._queue.full():
            # The session publishes slower than the command writes: stop
            # reading so the command blocks on its terminal (back-pressure).
            asyncio.get_running_loop().remove_reader(self._master)
            task = asyncio.create_task(self._put_then_resume(data))
            self._readers.add(task)
            task.add_done_callback(self._readers.discard)
            return
        self._queue.put_nowait(("stdout", data))

    async def _put_then_resume(self, data: bytes) -> None:
        await self._queue.put(("stdout", data))
        if self._master is not None and not self._closed:
            asyncio.get_running_loop().add_reader(self._master, self._on_master_readable)

    def _stop_master_reader(self) -> None:
        if self._master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)

    async def _pump(self, name: Stream, stream: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await stream.read(READ_BYTES)
                if not data:
                    break
                await self._queue.put((name, data))
        finally:
            self._stream_ended()

    def _stream_ended(self) -> None:
        self._open_streams -= 1
        if self._open_streams == 0:
            try:
                self._queue.put_nowait(None)
            except asyncio.QueueFull:
                task = asyncio.create_task(self._queue.put(None))
                self._readers.add(task)
                task.add_done_callback(self._readers.discard)

    async def read(self) -> Output:
        """The next piece of output in order; None when output has ended.
        Pieces of one stream waiting in the queue come merged (a terminal
        hands over a line or so per read: one message each would be slow)."""
        if self._holding:
            self._holding = False
            return self._held
        item = await self._queue.get()
        if item is None:
            return None
        stream, data = item
        parts, size = [data], len(data)
        while size < MERGE_BYTES and not self._queue.empty():
            nxt = self._queue.get_nowait()
            if nxt is None or nxt[0] != stream:
                self._held, self._holding = nxt, True
                break
            parts.append(nxt[1])
            size += len(nxt[1])
        return stream, b"".join(parts)

    # ------------------------------------------------------------ input

    async def write(self, data: bytes) -> None:
        if self._master is not None:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._master, view)
                except BlockingIOError:
                    await asyncio.sleep(0.01)  # the terminal's buffer is full
                    continue
                except OSError:
                    return  # runc has gone
                view = view[n:]
            return
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, OSError):
            stdin.write(data)
            await stdin.drain()

    def close_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    def resize(self, rows: int, cols: int) -> None:
        if self._master is None or rows <= 0 or cols <= 0:
            return
        with contextlib.suppress(OSError):
            set_window_size(self._master, rows, cols)
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGWINCH)

    # ------------------------------------------------------------ end

    async def wait(self) -> int:
        """runc's exit code: the command's (128+n when a signal n ended it)."""
        return await self.proc.wait()

    async def kill(self) -> None:
        """End the command (SIGKILL to it inside the container, then runc)."""
        if self.proc.returncode is not None:
            return  # runc waited for the command: nothing left (and its pid may be reused)
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self.pid_file.read_text()), signal.SIGKILL)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.proc.wait()

    async def close(self) -> None:
        """Release fds and reader tasks (the process must have ended or been killed)."""
        if self._closed:
            return
        self._closed = True
        self._stop_master_reader()
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None
        self.close_stdin()
        for task in list(self._readers):
            task.cancel()
        # Our ends of the pipes, even if a process left in the container
        # still holds the other ends (asyncio has no public close for them).
        transport = getattr(self.proc, "_transport", None)
        if transport is not None:
            transport.close()
        self.pid_file.unlink(missing_ok=True)
