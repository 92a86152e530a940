"""The messages between a node-agent and the prober of its node.

Protocol (subjects in podmodel.subjects):
- node-agent -> prober on `probe_assign(node)`: a `ProbeAssignmentSet`, the
  FULL set of probes of the node with a generation number. The prober keeps
  the state of probes that did not change and starts/stops the others.
- prober -> node-agent on `probe_sync(node)`: a `ProbeSyncRequest` when the
  prober starts (it keeps nothing the node-agent cannot give it again).
- prober -> node-agent on `probe_result(node)`: a `ProbeReport`; with
  `heartbeat=False` it carries only results that changed (transitions), with
  `heartbeat=True` the current state of every probe (a slow resync).
Exec probes go through the node-agent's exec service (podmodel.node_api).
"""

from __future__ import annotations

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
    traceparent: str = ""
    """The pod's trace (its podbus.io/traceparent annotation), so the prober
    adds its transition spans to the pod's trace."""

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
