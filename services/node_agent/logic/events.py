"""The kubelet's events about pods (Pulled, Created, Started, Killing,
BackOff, Unhealthy, ...) as podmodel Event records, deduplicated.

`PodEventBook.record(...)` returns the Event to write: a new record, or the
existing one with count + 1 and a new lastTimestamp when the same event
(same pod, container fieldPath, type, reason and message) happened before
— client-go's event logger. Records not updated for `ttl_s` (1 h, the API
server's event TTL) are forgotten and handed back by `expire` for the
driver to delete; a full book evicts its oldest tenth the same way. The
driver (`services.node_agent.events`) batches the writes.

Reasons and messages follow the kubelet (pkg/kubelet/events, kuberuntime):
`Container image "busybox" already present on machine`, `Created container
app`, `Started container app`, `Stopping container app`, `Container app
failed liveness probe, will be restarted`, `Back-off restarting failed
container app in pod web_default(uid)`, `Liveness probe failed: ...`.

Pure: times are passed in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from podmodel.event import Event, EventSource, ObjectReference
from podmodel.meta import ObjectMeta
from podmodel.pod import ContainerKind, Pod

from services.node_agent.logic.timefmt import rfc3339

COMPONENT = "kubelet"

# Reasons (kubelet's pkg/kubelet/events).
PULLED = "Pulled"
CREATED = "Created"
STARTED = "Started"
KILLING = "Killing"
BACK_OFF = "BackOff"
EVICTED = "Evicted"
UNHEALTHY = "Unhealthy"
FAILED = "Failed"
PROBE_WARNING = "ProbeWarning"
FAILED_POST_START_HOOK = "FailedPostStartHook"

NORMAL = "Normal"
WARNING = "Warning"

EventKey = tuple[str, str, str, str, str]


def field_path(kind: ContainerKind, name: str) -> str:
    """`spec.containers{app}`, `spec.initContainers{init}`,
    `spec.ephemeralContainers{debug}`."""
    group = {"app": "containers", "init": "initContainers", "ephemeral": "ephemeralContainers"}
    return f"spec.{group[kind]}{{{name}}}"


def pod_reference(pod: Pod, path: str = "") -> ObjectReference:
    meta = pod.metadata
    return ObjectReference(
        kind="Pod",
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        api_version="v1",
        field_path=path,
    )


def pulled_message(image: str) -> str:
    return f'Container image "{image}" already present on machine'


@dataclass(frozen=True, slots=True)
class EventWrite:
    event: Event
    created: bool


class PodEventBook:
    """Deduplicates one node's pod events."""

    def __init__(self, node: str, *, ttl_s: float = 3600.0, max_records: int = 100_000) -> None:
        self.source = EventSource(component=COMPONENT, host=node)
        self.ttl_s = ttl_s
        self.max_records = max_records
        self._records: dict[EventKey, tuple[Event, float]] = {}
        self._serial = 0
        self.evicted: list[Event] = []

    def __len__(self) -> int:
        return len(self._records)

    def record(
        self,
        involved: ObjectReference,
        type_: str,
        reason: str,
        message: str,
        now: float,
    ) -> EventWrite:
        key: EventKey = (involved.uid, involved.field_path, type_, reason, message)
        stamp = rfc3339(now)
        found = self._records.get(key)
        if found is not None:
            old = found[0]
            event = Event(
                metadata=old.metadata,
                involved_object=old.involved_object,
                reason=old.reason,
                message=old.message,
                type=old.type,
                count=old.count + 1,
                first_timestamp=old.first_timestamp,
                last_timestamp=stamp,
                source=old.source,
                reporting_component=old.reporting_component,
                reporting_instance=old.reporting_instance,
            )
            self._records[key] = (event, now)
            return EventWrite(event, created=False)
        if len(self._records) >= self.max_records:
            self._evict_oldest()
        self._serial += 1
        nanos = int(now * 1e9) + self._serial
        event = Event(
            metadata=ObjectMeta(
                name=f"{involved.name}.{nanos:x}", namespace=involved.namespace or "default"
            ),
            involved_object=involved,
            reason=reason,
            message=message,
            type=type_,
            count=1,
            first_timestamp=stamp,
            last_timestamp=stamp,
            source=self.source,
            reporting_component=COMPONENT,
            reporting_instance=self.source.host,
        )
        self._records[key] = (event, now)
        return EventWrite(event, created=True)

    def expire(self, now: float) -> list[Event]:
        """Forget the records not updated for ttl_s; returns them (the
        driver deletes them from the store, as the API server's TTL does),
        together with any evicted because the book was full."""
        drop = [k for k, (_e, t) in self._records.items() if now - t >= self.ttl_s]
        gone = [self._records.pop(k)[0] for k in drop]
        gone.extend(self.evicted)
        self.evicted = []
        return gone

    def _evict_oldest(self) -> None:
        """The book is full: drop the oldest tenth (first created; dicts keep
        insertion order), so eviction costs O(1) per event on average."""
        count = max(len(self._records) // 10, 1)
        for key in list(itertools.islice(self._records, count)):
            self.evicted.append(self._records.pop(key)[0])

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._records if k[0] == uid]:
            del self._records[key]
