"""Requests a node-agent serves for its node: exec in a container (used by
`podctl exec` and by the prober's exec probes) and container logs. Subjects:
podmodel.subjects.node_exec / node_logs.
"""

from __future__ import annotations

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
