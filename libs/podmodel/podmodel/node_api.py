"""Requests a node-agent serves for its node: exec in a container (used by
`podctl exec` and by the prober's exec probes), interactive sessions (attach)
and container logs. Subjects:
podmodel.subjects.node_exec / node_logs / node_attach (+ node_attach_input /
node_attach_output per session).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from podmodel.meta import Model


class ExecRequest(Model):
    """Run `command` in a container and wait at most `timeout_s` seconds."""

    namespace: str
    pod: str
    container: str
    command: list[str]
    timeout_s: float = 1.0
    container_id: str = msgspec.field(default="", name="containerID")
    """If set, the node-agent refuses to run in another attempt."""


class ExecResponse(Model):
    """The outcome of an `ExecRequest`. `timed_out` when the command did not
    finish within the timeout; `error` when it could not be run at all
    (container not running, runtime error)."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    error: str = ""


LOGS_END_HEADER = "Podbus-Stream-End"
"""Header on the last message of a followed log stream (its payload is
empty): the stream is over (container exited, pod gone, time limit)."""


class LogsRequest(Model):
    """Read a container's output (`podctl logs`). Without `follow` the reply
    is one `LogsReply`. With `follow` the node-agent sends `LogsReply`
    chunks to the request's reply inbox as output appears, and ends the
    stream with an empty message carrying the header LOGS_END_HEADER (an
    error ends it with one LogsReply whose `error` is set, then the end
    message). `tail_lines` < 0: everything; `previous`: the attempt before
    the current one; `timestamps`: each line prefixed with its RFC 3339
    time and a space; `follow_timeout_s` bounds a followed stream."""

    namespace: str
    pod: str
    container: str = ""
    """Empty: the pod's only (first) app container."""
    follow: bool = False
    tail_lines: int = -1
    previous: bool = False
    timestamps: bool = False
    follow_timeout_s: float = 300.0


class LogsReply(Model):
    """One chunk of output (the whole output without follow); `error` when
    the logs cannot be read (no such pod or container)."""

    data: str = ""
    error: str = ""


# ---------------------------------------------------------------- attach
#
# An interactive session (`podctl exec -it`, `podctl debug -it`) over the bus:
#
# 1. The client asks `podbus.node.<node>.attach` with an `AttachRequest`; the
#    node-agent checks the container and answers an `AttachReply` naming the
#    session and its two subjects (`subjects.node_attach_input/output`).
#    `unsupported` in the reply (or no responder at all) means the node's
#    runtime has no interactive exec: clients fall back to request-reply exec.
# 2. The client subscribes to the output subject, then publishes an
#    `AttachFrame(kind="start")` on the input subject: only then does the
#    node-agent run the command, so no output is published before anyone
#    listens.
# 3. Client -> node (input): "stdin" (data), "eof" (close stdin; with a tty a
#    ^D is typed), "resize" (rows, cols), "ping" (heartbeat), "close" (kill
#    the command and end). Node -> client (output): "stdout" / "stderr"
#    (data, `seq` counting output frames from 1 so a lost frame shows),
#    "ping", then exactly one "exit" (exit_code, or error when the command
#    could not run) as the last frame.
# 4. Both sides send "ping" every `heartbeat_s` while otherwise quiet; a side
#    that hears nothing from the other for ATTACH_MISSED_HEARTBEATS beats
#    ends the session (the node-agent kills the command).

ATTACH_HEARTBEAT_S = 5.0
ATTACH_MISSED_HEARTBEATS = 3
ATTACH_CHUNK_BYTES = 64 * 1024
"""Largest data in one output frame."""

AttachFrameKind = Literal[
    "start", "stdin", "eof", "resize", "ping", "close", "stdout", "stderr", "exit"
]


class AttachRequest(Model):
    """Open an interactive session: run `command` in a running container
    with its stdin forwarded from the client (`stdin`) and, with `tty`, a
    terminal of `rows` x `cols` (0: the runtime's default)."""

    namespace: str
    pod: str
    container: str
    command: list[str]
    tty: bool = False
    stdin: bool = True
    rows: int = 0
    cols: int = 0
    heartbeat_s: float = ATTACH_HEARTBEAT_S
    container_id: str = msgspec.field(default="", name="containerID")
    """If set, the node-agent refuses another attempt of the container."""


class AttachReply(Model):
    """A session opened (`session`, `input_subject`, `output_subject`), or
    `error`; `unsupported` when the runtime cannot run interactive
    commands (the client may fall back to `ExecRequest`)."""

    session: str = ""
    input_subject: str = ""
    output_subject: str = ""
    heartbeat_s: float = 0.0
    """The session's heartbeat (always set on an opened session)."""
    error: str = ""
    unsupported: bool = False


class AttachFrame(Model):
    """One message of a session, either way (see the section comment)."""

    kind: AttachFrameKind
    data: bytes = b""
    seq: int = 0
    rows: int = 0
    cols: int = 0
    exit_code: int = 0
    error: str = ""
