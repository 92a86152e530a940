"""Event correlation: turning EmitEvent actions into Kubernetes-style Event
records, deduplicated with a count and first/last timestamps, similar
events aggregated, and expired after an hour. Follows client-go's
tools/record (EventCorrelator: EventAggregator + eventLogger).

Owns `EventCorrelator`, an in-memory, I/O-free state machine the driver
keeps for the life of its process: it hands each EmitEvent (with `now`) to
`record` and writes the returned Event (create or update). Restarting the
driver starts a fresh correlator, as a restarted Kubernetes component does.

- Identical events (same involved object, type, reason, message and
  source) update one record: count + 1, lastTimestamp = now.
- Once 10 events with the same object, type and reason but different
  messages arrive within 10 minutes, later ones are merged into one record
  with the message "(combined from similar events): <latest message>"; so a
  10,000-pod scale-up writes a dozen Event records, not 10,000.
- Names are `<involved name>.<hex of the first timestamp in ns>`.
- `expire(now)` forgets records not updated for `ttl_s` (3600 s, the API
  server's event TTL) and returns them for the driver to delete (the store
  may also expire them by itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from podmodel.event import Event, EventSource, ObjectReference
from podmodel.meta import ObjectMeta

from services.workload_controller.logic.actions import EmitEvent
from services.workload_controller.logic.snapshots import clone
from services.workload_controller.logic.timestamps import format_time, parse_time

COMBINED_PREFIX = "(combined from similar events): "

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_RefKey = tuple[str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class EventWrite:
    """An Event to store: `created` for a new record, else an update."""

    event: Event
    created: bool


@dataclass
class _Similar:
    messages: set[str] = field(default_factory=set)
    last_seen: datetime = _EPOCH


def _ref_key(ref: ObjectReference) -> _RefKey:
    return (ref.kind, ref.namespace, ref.name, ref.uid, ref.api_version, ref.field_path)


class EventCorrelator:
    """Deduplicates and aggregates events for one reporting component."""

    def __init__(
        self,
        component: str,
        host: str = "",
        *,
        ttl_s: float = 3600.0,
        aggregate_window_s: float = 600.0,
        aggregate_after: int = 10,
    ) -> None:
        self.source = EventSource(component=component, host=host)
        self.ttl_s = ttl_s
        self.aggregate_window_s = aggregate_window_s
        self.aggregate_after = aggregate_after
        self._records: dict[tuple[object, ...], Event] = {}
        self._similar: dict[tuple[object, ...], _Similar] = {}
        self._names: set[str] = set()

    def __len__(self) -> int:
        return len(self._records)

    def _new_name(self, involved_name: str, now: datetime) -> str:
        nanos = int((now - _EPOCH).total_seconds() * 1_000_000) * 1000
        while True:
            name = f"{involved_name}.{nanos:x}"
            if name not in self._names:
                self._names.add(name)
                return name
            nanos += 1

    def record(self, emit: EmitEvent, now: datetime) -> EventWrite:
        """The Event to write for `emit` at `now`."""
        ref = emit.involved
        base = (_ref_key(ref), emit.type, emit.reason, self.source.component, self.source.host)
        similar = self._similar.get(base)
        if similar is None or (now - similar.last_seen).total_seconds() > self.aggregate_window_s:
            similar = _Similar()
            self._similar[base] = similar
        similar.messages.add(emit.message)
        similar.last_seen = now

        message = emit.message
        key: tuple[object, ...] = (*base, message)
        if len(similar.messages) >= self.aggregate_after:
            # Do not let the set grow past the threshold (EventAggregator).
            similar.messages.discard(message)
            message = COMBINED_PREFIX + emit.message
            key = (*base, COMBINED_PREFIX)

        stamp = format_time(now)
        existing = self._records.get(key)
        if existing is not None:
            updated = clone(existing)
            updated.count += 1
            updated.last_timestamp = stamp
            updated.message = message
            self._records[key] = updated
            return EventWrite(updated, created=False)
        created = Event(
            metadata=ObjectMeta(
                name=self._new_name(ref.name, now),
                namespace=ref.namespace or "default",
            ),
            involved_object=ref,
            reason=emit.reason,
            message=message,
            type=emit.type,
            count=1,
            first_timestamp=stamp,
            last_timestamp=stamp,
            source=self.source,
            reporting_component=self.source.component,
            reporting_instance=self.source.host,
        )
        self._records[key] = created
        return EventWrite(created, created=True)

    def record_all(self, emits: Iterable[EmitEvent], now: datetime) -> list[EventWrite]:
        """`record` for each, coalesced so each Event name is written once
        (its latest state; `created` if it did not exist before the batch)."""
        latest: dict[str, EventWrite] = {}
        for emit in emits:
            write = self.record(emit, now)
            name = write.event.metadata.name
            earlier = latest.get(name)
            created = write.created or (earlier is not None and earlier.created)
            latest[name] = EventWrite(write.event, created)
        return list(latest.values())

    def expire(self, now: datetime) -> list[Event]:
        """Forget and return the records last updated more than ttl_s ago."""
        gone: list[Event] = []
        for key, ev in list(self._records.items()):
            last = parse_time(ev.last_timestamp)
            if last is None or (now - last).total_seconds() >= self.ttl_s:
                del self._records[key]
                self._names.discard(ev.metadata.name)
                gone.append(ev)
        for base, similar in list(self._similar.items()):
            if (now - similar.last_seen).total_seconds() > self.aggregate_window_s:
                del self._similar[base]
        return gone
