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
