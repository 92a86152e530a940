"""What changed for a pod between two looks at it, as facts the pod
worker turns into events and trace spans (kubelet records Started when a
container begins running, and the tracing spans of DESIGN.md mark the same
moments): a container attempt began running, an attempt exited, the pod
turned Ready.

Pure: compares the previous `Seen` map with the current records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from podmodel.pod import ContainerKind, Pod

from services.node_agent.logic.records import ContainerRecord, RunState

Seen = Mapping[str, tuple[str, RunState]]
"""container name -> (container id, state) at the previous look."""

FactKind = Literal["started", "exited"]


@dataclass(frozen=True, slots=True)
class ContainerFact:
    """`record` began running (`started`) or exited (`exited`)."""

    fact: FactKind
    kind: ContainerKind
    record: ContainerRecord


def container_kind(pod: Pod, name: str) -> ContainerKind:
    if any(c.name == name for c in pod.spec.init_containers):
        return "init"
    if any(e.name == name for e in pod.spec.ephemeral_containers):
        return "ephemeral"
    return "app"


def seen_of(records: Sequence[ContainerRecord]) -> dict[str, tuple[str, RunState]]:
    return {r.name: (r.container_id, r.state) for r in records}


def container_facts(
    pod: Pod, before: Seen, records: Sequence[ContainerRecord]
) -> list[ContainerFact]:
    """Attempts that began running or exited since `before`. An attempt seen
    for the first time already exited yields both facts (it ran between two
    looks); one adopted as exited (no start time) yields only `exited`."""
    out: list[ContainerFact] = []
    for record in records:
        old = before.get(record.name)
        same = old is not None and old[0] == record.container_id
        old_state = old[1] if same and old is not None else None
        kind = container_kind(pod, record.name)
        if record.state == "running" and old_state != "running":
            out.append(ContainerFact("started", kind, record))
        elif record.state == "exited" and old_state != "exited":
            if old_state in (None, "created") and record.started_at is not None:
                out.append(ContainerFact("started", kind, record))
            out.append(ContainerFact("exited", kind, record))
    return out


def pod_ready(conditions: Sequence[object]) -> bool:
    return any(
        getattr(c, "type", "") == "Ready" and getattr(c, "status", "") == "True" for c in conditions
    )
