"""Event correlation: dedup with counts, aggregation, names, expiry."""

from __future__ import annotations

from services.workload_controller.logic.actions import event
from services.workload_controller.logic.events import COMBINED_PREFIX, EventCorrelator
from tests.unit.workload_controller.sample_objects import NOW, later, replica_set


def test_identical_events_share_one_record_with_count_and_timestamps() -> None:
    rs = replica_set()
    correlator = EventCorrelator("workload-controller")
    first = correlator.record(event(rs, "SuccessfulCreate", "Created pod: a"), NOW)
    second = correlator.record(event(rs, "SuccessfulCreate", "Created pod: a"), later(30))
    assert first.created and not second.created
    assert second.event.metadata.name == first.event.metadata.name
    assert second.event.count == 2
    assert second.event.first_timestamp == "2025-01-01T12:00:00Z"
    assert second.event.last_timestamp == "2025-01-01T12:00:30Z"
    assert first.event.count == 1  # earlier writes are not mutated
    assert second.event.source.component == "workload-controller"
    assert second.event.involved_object.kind == "ReplicaSet"


def test_event_names_are_object_name_dot_hex_nanoseconds() -> None:
    rs = replica_set("web-abc")
    write = EventCorrelator("c").record(event(rs, "X", "y"), NOW)
    name = write.event.metadata.name
    prefix, _, suffix = name.partition(".")
    assert prefix == "web-abc"
    assert int(suffix, 16) == int(NOW.timestamp()) * 10**9
    assert write.event.metadata.namespace == "default"


def test_different_messages_or_reasons_are_different_records() -> None:
    rs = replica_set()
    correlator = EventCorrelator("c")
    a = correlator.record(event(rs, "SuccessfulCreate", "Created pod: a"), NOW)
    b = correlator.record(event(rs, "SuccessfulCreate", "Created pod: b"), NOW)
    c = correlator.record(event(rs, "SuccessfulDelete", "Created pod: a"), NOW)
    assert len({a.event.metadata.name, b.event.metadata.name, c.event.metadata.name}) == 3


def test_many_similar_events_are_combined() -> None:
    rs = replica_set()
    correlator = EventCorrelator("c")
    writes = correlator.record_all(
        (event(rs, "SuccessfulCreate", f"Created pod: p{i}") for i in range(10_000)), NOW
    )
    assert len(writes) == 10  # 9 individual records and one combined
    combined = [w.event for w in writes if w.event.message.startswith(COMBINED_PREFIX)]
    assert len(combined) == 1
    assert combined[0].count == 10_000 - 9
    assert combined[0].message == COMBINED_PREFIX + "Created pod: p9999"


def test_events_expire_after_an_hour() -> None:
    rs = replica_set()
    correlator = EventCorrelator("c")
    correlator.record(event(rs, "A", "a"), NOW)
    correlator.record(event(rs, "B", "b"), later(1800))
    assert correlator.expire(later(3599)) == []
    gone = correlator.expire(later(3600))
    assert [e.reason for e in gone] == ["A"]
    assert len(correlator) == 1
    # An expired record starts over as a new one.
    again = correlator.record(event(rs, "A", "a"), later(3601))
    assert again.created and again.event.count == 1
