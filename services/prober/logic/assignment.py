"""The messages between a node-agent and its prober, and the diff of a new
probe assignment against the probes already running.

Protocol (subjects in podmodel.subjects):
- node-agent -> prober on `probe_assign(node)`: a `ProbeAssignmentSet`, the
  FULL set of probes of the node with a generation number. The prober keeps
  the state of probes that did not change and starts/stops the others.
- prober -> node-agent on `probe_sync(node)`: a `ProbeSyncRequest` when the
  prober starts (it keeps nothing the node-agent cannot give it again).
- prober -> node-agent on `probe_result(node)`: a `ProbeReport`; with
  `heartbeat=False` it carries only results that changed (transitions), with
  `heartbeat=True` the current state of every probe (a slow resync).
- prober -> node-agent on `node_exec(node)`: `ExecRequest` / `ExecResponse`,
  the node-agent's exec service that runs exec probes inside containers.

These types are shared with the node-agent and belong in podmodel; they live
here until podmodel takes them (services may not import each other).
Pure: msgspec types and functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import msgspec
from podmodel.meta import Model
from podmodel.pod import ContainerPort, Probe

ProbeType = Literal["liveness", "readiness", "startup"]
"""Which of a container's probes."""

ProbeResultValue = Literal["success", "failure", "unknown"]
"""`unknown`: the probe could not be run (a prober error such as an unknown
named port); kubelet discards such runs: they count neither way."""

ProbeKey = tuple[str, str, ProbeType]
"""(pod uid, container name, probe type): one probe worker, as the kubelet's
prober manager keys them. It survives container restarts."""


class ProbeAssignment(Model):
    """One probe of one container, with what is needed to run it."""

    pod_uid: str
    namespace: str
    pod_name: str
    container_name: str
    probe_type: ProbeType
    probe: Probe
    pod_ip: str = msgspec.field(default="", name="podIP")
    container_id: str = msgspec.field(default="", name="containerID")
    ports: list[ContainerPort] = []
    """The container's ports, to resolve named ports (`port: http`)."""
    started_at: str | None = None
    """RFC 3339 time the current container started running; None while it
    is not running (nothing is probed then)."""
    started: bool = False
    """The container's status.started as the node-agent knows it (its
    startup probe has passed). Lets a restarted prober ungate liveness and
    readiness without running the startup probe again."""

    @property
    def key(self) -> ProbeKey:
        return (self.pod_uid, self.container_name, self.probe_type)


class ProbeAssignmentSet(Model):
    """Every probe the prober of `node` must run; replaces the previous set."""

    node: str
    generation: int = 0
    probes: list[ProbeAssignment] = []


class ProbeSyncRequest(Model):
    """Asks the node-agent to publish its full assignment again."""

    node: str
    reason: str = "prober started"


class ProbeResult(Model):
    """A probe's result for one container attempt (`container_id`).

    `message` is in the kubelet's words, without the "Liveness probe failed: "
    prefix the node-agent adds for the event: `HTTP probe failed with
    statuscode: 500`, `dial tcp 10.88.0.5:8080: connect: connection refused`.
    With `result == "unknown"` it says why the probe could not be run (kubelet:
    "<Type> probe errored and resulted in unknown state: <message>").
    `warning` marks a success that the kubelet reports with a ProbeWarning
    event (`Probe terminated redirects, Response body: ...`).
    """

    pod_uid: str
    namespace: str
    pod_name: str
    container_name: str
    container_id: str = msgspec.field(name="containerID")
    probe_type: ProbeType
    result: ProbeResultValue
    message: str = ""
    warning: bool = False
    consecutive: int = 0
    """How many runs in a row gave this result (for the event's count)."""


class ProbeReport(Model):
    """What the prober publishes on `probe_result(node)`."""

    node: str
    generation: int = 0
    """The assignment generation the prober was running."""
    heartbeat: bool = False
    results: list[ProbeResult] = []


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


@dataclass(frozen=True, slots=True)
class AssignmentDiff:
    """What to do with the running probes for a new assignment set.

    `added`: start these; `removed`: stop these (their keys); `kept`: same key
    and same probe spec, keep their state and schedule but take the new
    container facts (id, IP, start time, ports); `replaced`: same key, spec
    changed: restart from scratch (stop + start).
    """

    added: list[ProbeAssignment] = field(default_factory=list)
    removed: list[ProbeKey] = field(default_factory=list)
    kept: list[ProbeAssignment] = field(default_factory=list)
    replaced: list[ProbeAssignment] = field(default_factory=list)


def diff_assignment(
    running: Mapping[ProbeKey, ProbeAssignment], desired: ProbeAssignmentSet
) -> AssignmentDiff:
    """Compare the probes running now with a new full set. A key listed twice
    in `desired` keeps its last entry."""
    wanted: dict[ProbeKey, ProbeAssignment] = {a.key: a for a in desired.probes}
    diff = AssignmentDiff()
    for key, assignment in wanted.items():
        current = running.get(key)
        if current is None:
            diff.added.append(assignment)
        elif current.probe == assignment.probe:
            diff.kept.append(assignment)
        else:
            diff.replaced.append(assignment)
    diff.removed.extend(key for key in running if key not in wanted)
    return diff


def epoch_seconds(rfc3339: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time (`Z` or an offset); None stays None,
    and so does text that is not a time (the container counts as not
    running rather than breaking the prober)."""
    if not rfc3339:
        return None
    text = rfc3339.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
