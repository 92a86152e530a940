"""Interactive sessions of one node (`podctl exec -it`, `podctl debug -it`):
request-reply on `podbus.node.<node>.attach` opens a session, its frames
then flow on `podbus.node.<node>.attach.<session>.in` / `.out` (protocol:
podmodel.node_api, the attach section).

The runtime runs the command through an optional method
`exec_interactive(pod, container, command, *, tty, rows, cols)` returning an
`InteractiveProcess` (the oci runtime: oci/attach.py); a runtime without it
(simulated) answers `unsupported`, and clients fall back to plain exec.
What a frame means and when a client is gone is decided by
`logic.attach_session`; this module only moves bytes and ends processes.
Every session ends with its process: exit, client "close", client silent
for three heartbeats, or `close()` when the agent stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from podmodel.codec import DecodeError, encode
from podmodel.node_api import AttachFrame, AttachReply, AttachRequest
from podmodel.pod import Pod
from podmodel.subjects import node_attach, node_attach_input, node_attach_output
from servicekit.bus import Bus, decode_payload, wants_json

from services.node_agent.logic.attach_session import Action, Session
from services.node_agent.runtime import Runtime

log = logging.getLogger(__name__)

#: sessions one node runs at once
MAX_SESSIONS = 64
#: after runc ended, how long the rest of the output may take to be read
#: (runc itself waits until the command's output is closed, as kubectl exec)
DRAIN_SECONDS = 1.0
#: input frames queued per session before the subscription back-pressures
INPUT_QUEUE = 256


class InteractiveProcess(Protocol):
    """What `exec_interactive` returns (see oci/attach.py)."""

    async def read(self) -> tuple[str, bytes] | None: ...

    async def write(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    async def wait(self) -> int: ...

    async def kill(self) -> None: ...

    async def close(self) -> None: ...


FindPod = Callable[[str, str], Pod | None]
StartInteractive = Callable[..., Awaitable[InteractiveProcess]]


class AttachServer:
    """Serves one node's attach subject and runs its sessions."""

    def __init__(self, node: str, nc: NATS, runtime: Runtime, find_pod: FindPod) -> None:
        self.node = node
        self.nc = nc
        self.runtime = runtime
        self.find_pod = find_pod
        self.sessions: dict[str, asyncio.Task[None]] = {}
        self._sub: Subscription | None = None

    async def start(self, bus: Bus) -> None:
        self._sub = await bus.serve(node_attach(self.node), self._open, request_type=AttachRequest)

    async def close(self) -> None:
        """Unsubscribe and end every session (their commands are killed)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        tasks = list(self.sessions.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    # ------------------------------------------------------------ open

    async def _open(self, req: AttachRequest, msg: Msg) -> AttachReply:
        start: StartInteractive | None = getattr(self.runtime, "exec_interactive", None)
        if start is None:
            return AttachReply(
                unsupported=True,
                error=f"the runtime of node {self.node} has no interactive exec "
                f"({type(self.runtime).__name__})",
            )
        if not req.command:
            return AttachReply(error="command: must name the command to run")
        pod = self.find_pod(req.namespace, req.pod)
        if pod is None:
            return AttachReply(
                error=f'pod "{req.namespace}/{req.pod}" not found on node {self.node}'
            )
        obs = await self.runtime.observe(pod)
        record = next((r for r in obs.records if r.name == req.container), None)
        if record is None or record.state != "running":
            return AttachReply(
                error=f'container "{req.container}" in pod "{req.namespace}/{req.pod}" is not running'
            )
        if req.container_id and record.container_id != req.container_id:
            return AttachReply(
                error=f'container "{req.container}" is now {record.container_id}, '
                f"not {req.container_id}"
            )
        if len(self.sessions) >= MAX_SESSIONS:
            return AttachReply(error=f"node {self.node} runs {MAX_SESSIONS} sessions already")
        sid = secrets.token_hex(8)
        heartbeat = min(max(req.heartbeat_s, 0.2), 60.0)
        inbox: asyncio.Queue[Msg] = asyncio.Queue(maxsize=INPUT_QUEUE)
        session = Session(
            tty=req.tty,
            stdin=req.stdin,
            heartbeat_s=heartbeat,
            last_heard=time.monotonic(),
            rows=req.rows,
            cols=req.cols,
        )

        async def on_input(msg: Msg) -> None:
            # Heard on arrival: a command slow to read its stdin holds the
            # queue, and must not make a live client look gone.
            session.last_heard = time.monotonic()
            await inbox.put(msg)

        sub = await self.nc.subscribe(node_attach_input(self.node, sid), cb=on_input)
        runner = _SessionRunner(
            self, sid, req, pod, session, sub, inbox, start, json=wants_json(msg)
        )
        task = asyncio.create_task(runner.run(), name=f"attach {sid}")
        self.sessions[sid] = task
        task.add_done_callback(lambda _t: self.sessions.pop(sid, None))
        log.info(
            "attach session %s: %s/%s %s %s",
            sid,
            req.namespace,
            req.pod,
            req.container,
            req.command,
        )
        return AttachReply(
            session=sid,
            input_subject=node_attach_input(self.node, sid),
            output_subject=node_attach_output(self.node, sid),
            heartbeat_s=heartbeat,
        )


class _SessionRunner:
    """One session: input frames -> actions, output -> frames, then exit."""

    def __init__(
        self,
        server: AttachServer,
        sid: str,
        req: AttachRequest,
        pod: Pod,
        session: Session,
        sub: Subscription,
        inbox: asyncio.Queue[Msg],
        start: StartInteractive,
        *,
        json: bool,
    ) -> None:
        self.server = server
        self.sid = sid
        self.req = req
        self.pod = pod
        self.session = session
        self.sub = sub
        self.inbox = inbox
        self.start = start
        self.json = json
        self.out_subject = node_attach_output(server.node, sid)
        self.proc: InteractiveProcess | None = None
        self.output_task: asyncio.Task[None] | None = None
        self.exit_frame: AttachFrame | None = None
        self.done = asyncio.Event()
        self.sent_at = time.monotonic()

    async def _send(self, frame: AttachFrame) -> None:
        self.sent_at = time.monotonic()
        with contextlib.suppress(Exception):
            await self.server.nc.publish(self.out_subject, encode(frame, json=self.json))

    async def run(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        try:
            tasks = [
                asyncio.create_task(self._input()),
                asyncio.create_task(self._heartbeat()),
            ]
            await self.done.wait()
        finally:
            if self.output_task is not None:
                tasks.append(self.output_task)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.proc is not None:
                await self.proc.kill()
                await self.proc.close()
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
            if self.exit_frame is None:
                self.exit_frame = self.session.exit(
                    -1, f"node {self.server.node} ended the session"
                )
            await asyncio.shield(self._send(self.exit_frame))
            log.info("attach session %s ended", self.sid)

    def _end(self, frame: AttachFrame) -> None:
        if self.exit_frame is None:
            self.exit_frame = frame
        self.done.set()

    async def _heartbeat(self) -> None:
        beat = self.session.heartbeat_s
        while True:
            await asyncio.sleep(beat / 2)
            now = time.monotonic()
            if self.session.expired(now):
                log.info("attach session %s: the client went silent", self.sid)
                self._end(self.session.exit(-1, "the client stopped sending heartbeats"))
                return
            if now - self.sent_at >= beat:
                await self._send(AttachFrame(kind="ping"))

    async def _input(self) -> None:
        while True:
            msg = await self.inbox.get()
            try:
                frame = decode_payload(msg.data, msg.headers, AttachFrame)
            except DecodeError as exc:
                log.warning("bad attach frame on %s: %s", msg.subject, exc)
                continue
            action = self.session.on_input(frame, time.monotonic())
            await self._perform(action)

    async def _perform(self, action: Action) -> None:
        if action.kind == "start":
            try:
                self.proc = await self.start(
                    self.pod,
                    self.req.container,
                    list(self.req.command),
                    tty=self.req.tty,
                    rows=action.rows,
                    cols=action.cols,
                )
            except Exception as exc:
                self._end(self.session.exit(-1, f"cannot run {self.req.command}: {exc}"))
                return
            if not self.req.stdin:
                self.proc.close_stdin()
            self.output_task = asyncio.create_task(self._output(self.proc))
            return
        proc = self.proc
        if action.kind == "kill":
            self._end(self.session.exit(137 if proc is not None else -1, "closed by the client"))
        elif proc is None:
            return
        elif action.kind == "write":
            await proc.write(action.data)
        elif action.kind == "close_stdin":
            proc.close_stdin()
        elif action.kind == "resize":
            proc.resize(action.rows, action.cols)

    async def _output(self, proc: InteractiveProcess) -> None:
        """Output frames in order, then the exit frame."""

        async def pump() -> None:
            while (item := await proc.read()) is not None:
                stream, data = item
                for frame in self.session.output(
                    "stderr" if stream == "stderr" else "stdout", data
                ):
                    await self._send(frame)

        reader = asyncio.create_task(pump())
        try:
            code = await proc.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_SECONDS):
                    await asyncio.shield(reader)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._end(self.session.exit(code))
