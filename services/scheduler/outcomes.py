"""What the scheduler writes back after a cycle, decided without I/O: the
PodScheduled=False status of an unschedulable pod, the Scheduled /
FailedScheduling / Preempted events (aggregated by count), and which watch
updates are worth a queue move or a snapshot change.

Owns these rules; servicekit's store does the writing (services/scheduler/
driver.py). Per DESIGN, the scheduler writes a pod's `spec.nodeName` (the
binding) and its `PodScheduled` condition (plus `status.nominatedNodeName`,
as kube-scheduler does); `PodScheduled=True` on a running pod is the
node-agent's. Pure: no I/O, no clock (times are passed in).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
from podmodel.event import Event, EventSource, ObjectReference
from podmodel.meta import ObjectMeta
from podmodel.node import Node
from podmodel.pod import Condition, Pod

from services.scheduler.messages import truncate_message

COMPONENT = "default-scheduler"
POD_SCHEDULED = "PodScheduled"
REASON_UNSCHEDULABLE = "Unschedulable"
REASON_SCHEDULED = "Scheduled"
REASON_FAILED_SCHEDULING = "FailedScheduling"
REASON_PREEMPTED = "Preempted"


def scheduled_message(pod: Pod, node_name: str) -> str:
    """The Scheduled event's message, as kube-scheduler words it."""
    meta = pod.metadata
    return f"Successfully assigned {meta.namespace}/{meta.name} to {node_name}"


def preempted_message(preemptor: Pod, node_name: str) -> str:
    meta = preemptor.metadata
    return f"Preempted by pod {meta.uid} on node {node_name}"


def unschedulable_status(
    pod: Pod, message: str, now: str, nominated_node_name: str | None = None
) -> Pod | None:
    """The pod with PodScheduled=False, reason Unschedulable and `message`
    (and, when given, status.nominatedNodeName), or None when the stored
    status already says exactly that (no write, no resourceVersion churn).
    lastTransitionTime moves only when the condition's status changes."""
    message = truncate_message(message)
    status = pod.status
    old = status.condition(POD_SCHEDULED)
    nominated = status.nominated_node_name if nominated_node_name is None else nominated_node_name
    if (
        old is not None
        and old.status == "False"
        and old.reason == REASON_UNSCHEDULABLE
        and old.message == message
        and nominated == status.nominated_node_name
    ):
        return None
    transition = old.last_transition_time if old is not None and old.status == "False" else now
    cond = Condition(
        type=POD_SCHEDULED,
        status="False",
        reason=REASON_UNSCHEDULABLE,
        message=message,
        last_transition_time=transition,
        last_probe_time=None,
    )
    others = [c for c in status.conditions if c.type != POD_SCHEDULED]
    new_status = msgspec.structs.replace(
        status, conditions=[cond, *others], nominated_node_name=nominated
    )
    return msgspec.structs.replace(pod, status=new_status)


def scheduled_status(pod: Pod, now: str) -> Pod | None:
    """After binding: PodScheduled=True, but only for a pod that carries a
    PodScheduled condition saying otherwise (an earlier Unschedulable), so
    the common path writes nothing; the node-agent sets True on the pods it
    runs anyway. None: nothing to write."""
    old = pod.status.condition(POD_SCHEDULED)
    if old is None or old.status == "True":
        return None
    cond = Condition(type=POD_SCHEDULED, status="True", last_transition_time=now)
    others = [c for c in pod.status.conditions if c.type != POD_SCHEDULED]
    status = msgspec.structs.replace(pod.status, conditions=[cond, *others])
    return msgspec.structs.replace(pod, status=status)


def with_nominated_node(pod: Pod, node_name: str) -> Pod | None:
    """The pod with status.nominatedNodeName set (or cleared with ""), or
    None when it already is."""
    if pod.status.nominated_node_name == node_name:
        return None
    status = msgspec.structs.replace(pod.status, nominated_node_name=node_name)
    return msgspec.structs.replace(pod, status=status)


# ------------------------------------------------------------------ watch updates


def schedulable_change(old: Pod, new: Pod) -> bool:
    """isPodUpdated: did an unbound pod change in a way that may make it
    schedulable (spec, labels, annotations, deletion)? A status-only change,
    such as the scheduler's own PodScheduled write, does not count."""
    a, b = old.metadata, new.metadata
    return (
        a.labels != b.labels
        or a.annotations != b.annotations
        or a.deletion_timestamp != b.deletion_timestamp
        or old.spec != new.spec
    )


def accounting_change(old: Pod, new: Pod) -> bool:
    """Did a bound pod change what the snapshot accounts (labels for
    affinity and spread, termination, requests, node)?"""
    a, b = old.metadata, new.metadata
    return (
        a.labels != b.labels
        or a.deletion_timestamp != b.deletion_timestamp
        or old.spec.node_name != new.spec.node_name
        or old.spec.containers != new.spec.containers
        or old.spec.init_containers != new.spec.init_containers
        or old.spec.affinity != new.spec.affinity
        or old.status.start_time != new.status.start_time
    )


def node_change_matters(old: Node, new: Node) -> bool:
    """Did a node change what scheduling reads (labels, taints,
    unschedulable, allocatable, images)? Heartbeats and conditions do not."""
    return (
        old.metadata.labels != new.metadata.labels
        or old.spec.taints != new.spec.taints
        or old.spec.unschedulable != new.spec.unschedulable
        or old.status.allocatable != new.status.allocatable
        or old.status.capacity != new.status.capacity
        or old.status.images != new.status.images
    )


def wants_scheduling(pod: Pod, scheduler_name: str = COMPONENT) -> bool:
    """Is this an unbound pod for this scheduler, not being deleted?"""
    return (
        not pod.spec.node_name
        and pod.metadata.deletion_timestamp is None
        and (pod.spec.scheduler_name or COMPONENT) == scheduler_name
        and pod.status.phase not in ("Succeeded", "Failed")
    )


# ------------------------------------------------------------------ events


@dataclass
class PendingEvent:
    """An event to write: `created` False means an update of a stored one."""

    event: Event
    created: bool


class EventAggregator:
    """Names events and folds repeats into `count` (the EventCorrelator's
    job in client-go): the same pod, reason and message within the cache
    updates the stored event instead of creating another. Bounded LRU.
    `stored(event)` tells it the written version (for the next update's
    compare-and-set); a failed write just `forget`s."""

    def __init__(self, instance: str, max_entries: int = 10_000) -> None:
        self.instance = instance
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str, str, str], Event] = OrderedDict()
        self._by_pod: dict[tuple[str, str], set[tuple[str, str, str, str]]] = {}
        self._seq = itertools.count()

    def record(
        self,
        pod: Pod,
        reason: str,
        message: str,
        now: str,
        now_ns: int,
        event_type: str = "Normal",
    ) -> PendingEvent:
        meta = pod.metadata
        message = truncate_message(message)
        key = (meta.namespace, meta.name, reason, message)
        old = self._seen.get(key)
        if old is not None and old.metadata.resource_version:
            self._seen.move_to_end(key)
            event = msgspec.structs.replace(old, count=old.count + 1, last_timestamp=now)
            return PendingEvent(event, created=False)
        name = f"{meta.name}.{now_ns + next(self._seq):x}"
        event = Event(
            metadata=ObjectMeta(name=name, namespace=meta.namespace),
            involved_object=ObjectReference(
                kind="Pod",
                namespace=meta.namespace,
                name=meta.name,
                uid=meta.uid,
                api_version="v1",
                resource_version=meta.resource_version,
            ),
            reason=reason,
            message=message,
            type=event_type,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=self.instance,
            action="Scheduling" if reason != REASON_PREEMPTED else "Preempting",
        )
        if reason == REASON_FAILED_SCHEDULING:
            # Only repeats of failures are worth remembering; Scheduled happens once.
            self._remember(key, event)
        return PendingEvent(event, created=True)

    def _remember(self, key: tuple[str, str, str, str], event: Event) -> None:
        self._seen[key] = event
        self._seen.move_to_end(key)
        self._by_pod.setdefault(key[:2], set()).add(key)
        while len(self._seen) > self.max_entries:
            self._drop(next(iter(self._seen)))

    def _drop(self, key: tuple[str, str, str, str]) -> None:
        self._seen.pop(key, None)
        keys = self._by_pod.get(key[:2])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_pod[key[:2]]

    def stored(self, event: Event) -> None:
        """The write succeeded: remember the stored version (if tracked)."""
        ref = event.involved_object
        key = (ref.namespace, ref.name, event.reason, event.message)
        if key in self._seen:
            self._seen[key] = event

    def forget(self, event: Event) -> None:
        ref = event.involved_object
        self._drop((ref.namespace, ref.name, event.reason, event.message))

    def forget_pod(self, namespace: str, name: str) -> None:
        """The pod is gone: its failure events will not repeat."""
        for key in list(self._by_pod.get((namespace, name), ())):
            self._drop(key)

    def __len__(self) -> int:
        return len(self._seen)
