"""The state of one interactive session (podmodel.node_api, attach), as pure
decisions: what an input frame asks the node-agent to do, when a silent
client counts as gone, and how output becomes numbered frames. The driver
(services/node_agent/attach.py) performs the actions; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from podmodel.node_api import (
    ATTACH_CHUNK_BYTES,
    ATTACH_MISSED_HEARTBEATS,
    AttachFrame,
)

SessionState = Literal["opened", "running", "ended"]
ActionKind = Literal["start", "write", "close_stdin", "resize", "kill", "none"]

EOT = b"\x04"
"""What end-of-input is on a terminal: ^D typed at the line discipline."""


@dataclass(frozen=True, slots=True)
class Action:
    """What the driver does for one input frame."""

    kind: ActionKind
    data: bytes = b""
    rows: int = 0
    cols: int = 0


NOTHING = Action("none")


@dataclass(slots=True)
class Session:
    """One session's state. `heard(now)` on every input frame; the session
    is gone when `expired(now)`: nothing heard for the missed heartbeats."""

    tty: bool
    stdin: bool
    heartbeat_s: float
    last_heard: float
    state: SessionState = "opened"
    stdin_open: bool = True
    rows: int = 0
    cols: int = 0
    _seq: int = field(default=0)

    def on_input(self, frame: AttachFrame, now: float) -> Action:
        """The action one client frame asks for (out-of-place frames do nothing)."""
        self.last_heard = now
        if self.state == "ended":
            return NOTHING
        kind = frame.kind
        if kind == "start":
            if self.state != "opened":
                return NOTHING
            self.state = "running"
            if frame.rows > 0 and frame.cols > 0:
                self.rows, self.cols = frame.rows, frame.cols
            return Action("start", rows=self.rows, cols=self.cols)
        if kind == "close":
            self.state = "ended"
            return Action("kill")
        if kind == "resize":
            if frame.rows <= 0 or frame.cols <= 0:
                return NOTHING
            self.rows, self.cols = frame.rows, frame.cols
            return Action("resize", rows=frame.rows, cols=frame.cols) if self.tty else NOTHING
        if self.state != "running" or not self.stdin or not self.stdin_open:
            return NOTHING
        if kind == "stdin":
            return Action("write", data=frame.data) if frame.data else NOTHING
        if kind == "eof":
            if self.tty:
                # The terminal stays open (the shell owns it): EOF is typed.
                return Action("write", data=EOT)
            self.stdin_open = False
            return Action("close_stdin")
        return NOTHING  # ping, or an output kind sent the wrong way

    def expired(self, now: float) -> bool:
        """The client has been silent for too many heartbeats."""
        return now - self.last_heard > self.heartbeat_s * ATTACH_MISSED_HEARTBEATS

    def output(self, stream: Literal["stdout", "stderr"], data: bytes) -> list[AttachFrame]:
        """Numbered output frames for `data`, at most ATTACH_CHUNK_BYTES each."""
        frames = []
        for start in range(0, len(data), ATTACH_CHUNK_BYTES):
            self._seq += 1
            frames.append(
                AttachFrame(
                    kind=stream, data=data[start : start + ATTACH_CHUNK_BYTES], seq=self._seq
                )
            )
        return frames

    def exit(self, exit_code: int, error: str = "") -> AttachFrame:
        """The last frame of the session."""
        self.state = "ended"
        return AttachFrame(kind="exit", exit_code=exit_code, error=error)
