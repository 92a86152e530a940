"""The actions a plan returns and the driver performs: what to create, delete,
update or patch, which events to record, and when to look again.

Owns the vocabulary between the pure plans and the I/O driver, and the
contract the driver must keep. Nothing here performs anything.

Driver contract:
- Actions come in dependency order. Consecutive actions of one type may be
  performed concurrently (in batches); when one fails, the driver skips the
  rest of the list and syncs the object again (rate-limited). Plans only
  ever rely on what they observed, so a partial run is always safe to redo.
- `UpdateObject` and `UpdateStatus` carry the object as observed plus the
  change; the driver writes with compare-and-set on its resourceVersion and
  re-syncs on a conflict. `UpdateObject` writes metadata and spec,
  `UpdateStatus` writes status only (the status subresource).
- `PatchMetadata` is a merge patch applied to the freshest version of the
  object (guarded by uid), so it never clobbers concurrent writers.
- `CreatePod` / `DeletePod` carry the event to record once they succeed
  (as Kubernetes' PodControl does); other events are separate `EmitEvent`s.
- `CreatePod` runs of a plan may be sent in slow-start batches
  (`slow_start_batches`), stopping at the first batch with a failure.
- `Requeue(after_s)`: sync this object again after that many seconds even
  if nothing changes (a deadline, a back-off, minReadySeconds).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from podmodel.event import ObjectReference
from podmodel.meta import KubeObject, OwnerReference
from podmodel.pod import Pod, PodTemplateSpec

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EmitEvent:
    """Record a Kubernetes-style Event about `involved` (see events.py for
    how the driver correlates and stores it). type is Normal or Warning."""

    involved: ObjectReference
    type: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class CreatePod:
    """Create this pod (its name is already chosen). `event` is recorded
    once the create succeeds."""

    pod: Pod
    event: EmitEvent | None = None


@dataclass(frozen=True, slots=True)
class DeletePod:
    """Delete a pod gracefully (deletionTimestamp + its grace period; an
    unbound pod goes at once). `uid` guards against deleting a newer pod of
    the same name. `event` is recorded once the delete succeeds."""

    namespace: str
    name: str
    reason: str
    uid: str = ""
    event: EmitEvent | None = None


@dataclass(frozen=True, slots=True)
class CreateObject:
    """Create a non-pod object (a ReplicaSet made by a Deployment)."""

    obj: KubeObject


@dataclass(frozen=True, slots=True)
class UpdateObject:
    """Write metadata and spec of `obj` (compare-and-set on its
    resourceVersion)."""

    obj: KubeObject


@dataclass(frozen=True, slots=True)
class UpdateStatus:
    """Write the status of `obj` (compare-and-set on its resourceVersion)."""

    obj: KubeObject


@dataclass(frozen=True, slots=True)
class DeleteObject:
    """Delete an object with a propagation policy (Background, Foreground,
    Orphan). `verify_absent` lists owners the plan believes gone: the driver
    must confirm each is absent from the store (by uid) before deleting, as
    Kubernetes' garbage collector confirms with a live read, so that a lagging
    cache never deletes a live owner's dependents."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    propagation_policy: str = "Background"
    reason: str = ""
    verify_absent: tuple[OwnerReference, ...] = ()


@dataclass(frozen=True, slots=True)
class PatchMetadata:
    """A metadata merge patch on the freshest version of an object (skipped
    when its uid no longer matches): set/remove labels and annotations, add a
    controller reference (skipped by the driver if the object already has a
    controller), remove owner references by owner uid, remove finalizers."""

    kind: str
    namespace: str
    name: str
    uid: str
    set_labels: Mapping[str, str] = field(default_factory=dict)
    remove_labels: tuple[str, ...] = ()
    set_annotations: Mapping[str, str] = field(default_factory=dict)
    remove_annotations: tuple[str, ...] = ()
    add_owner_reference: OwnerReference | None = None
    remove_owner_uids: tuple[str, ...] = ()
    remove_finalizers: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SaveRevision:
    """Keep a StatefulSet's template under a revision name and number
    (Kubernetes keeps these as ControllerRevision objects). Saving an existing
    name replaces its number (a rollback to an old template renumbers it)."""

    owner: ObjectReference
    name: str
    revision: int
    template: PodTemplateSpec


@dataclass(frozen=True, slots=True)
class DeleteRevision:
    """Forget a saved StatefulSet revision (history beyond the limit)."""

    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class RecordClaimNode:
    """Remember that the node-local volume of this per-ordinal claim lives on
    `node_name` (its first pod ran there); later pods of that ordinal are
    pinned to the node."""

    namespace: str
    claim_name: str
    node_name: str


@dataclass(frozen=True, slots=True)
class Requeue:
    """Sync this object again after `after_s` seconds."""

    after_s: float


Action = (
    EmitEvent
    | CreatePod
    | DeletePod
    | CreateObject
    | UpdateObject
    | UpdateStatus
    | DeleteObject
    | PatchMetadata
    | SaveRevision
    | DeleteRevision
    | RecordClaimNode
    | Requeue
)


def reference_to(obj: KubeObject) -> ObjectReference:
    """The ObjectReference an event or a revision uses for `obj`."""
    meta = obj.metadata
    return ObjectReference(
        kind=obj.kind or obj.KIND,
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        api_version=obj.api_version or obj.API_VERSION,
        resource_version=meta.resource_version,
    )


def event(obj: KubeObject, reason: str, message: str, type_: str = "Normal") -> EmitEvent:
    """An event about `obj`."""
    return EmitEvent(involved=reference_to(obj), type=type_, reason=reason, message=message)


def earliest_requeue(actions: Sequence[Action]) -> Requeue | None:
    """The soonest Requeue among `actions`, if any."""
    found = [a for a in actions if isinstance(a, Requeue)]
    return min(found, key=lambda r: r.after_s) if found else None


def merge_requeues(actions: list[Action]) -> list[Action]:
    """`actions` with every Requeue replaced by the soonest one, at the end."""
    soonest = earliest_requeue(actions)
    rest: list[Action] = [a for a in actions if not isinstance(a, Requeue)]
    if soonest is not None:
        rest.append(Requeue(max(0.0, soonest.after_s)))
    return rest


def slow_start_batches(items: Sequence[T], initial: int = 1) -> Iterator[Sequence[T]]:
    """Batches of 1, 2, 4, ... (starting at `initial`) over `items`, as
    Kubernetes' slowStartBatch sends pod creates: the driver performs one
    batch at a time and stops iterating after a batch with any failure, so a
    quota or admission error costs one failed call instead of thousands.

    Why keep it at all for speed: a healthy 10,000-pod scale-up takes
    log2(10,000 / initial) + 1 batches, i.e. 14 rounds from 1, or 7 from
    `initial` = 100, each round one pipelined store write; the storm guard
    costs a few round trips, not throughput."""
    size = max(1, initial)
    start = 0
    while start < len(items):
        yield items[start : start + size]
        start += size
        size *= 2
