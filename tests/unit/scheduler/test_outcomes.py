"""What the scheduler writes back: the PodScheduled=False status, events
folded by count, and which watch updates matter."""

from __future__ import annotations

import msgspec
from podmodel.pod import Condition

from services.scheduler.outcomes import (
    EventAggregator,
    accounting_change,
    node_change_matters,
    schedulable_change,
    scheduled_message,
    scheduled_status,
    unschedulable_status,
    wants_scheduling,
    with_nominated_node,
)
from tests.unit.scheduler.builders import node, pod, taint

MSG = (
    "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
)


def test_unschedulable_status_sets_the_condition() -> None:
    p = pod("web-1")
    p.status.conditions = [Condition(type="Ready", status="False")]
    new = unschedulable_status(p, MSG, "2024-01-01T00:00:00Z")
    assert new is not None
    cond = new.status.condition("PodScheduled")
    assert cond is not None
    assert (cond.status, cond.reason, cond.message) == ("False", "Unschedulable", MSG)
    assert cond.last_transition_time == "2024-01-01T00:00:00Z"
    assert new.status.condition("Ready") is not None
    assert p.status.condition("PodScheduled") is None  # the input is not modified


def test_same_status_again_is_no_write_and_transition_time_stays() -> None:
    first = unschedulable_status(pod("web-1"), MSG, "2024-01-01T00:00:00Z")
    assert first is not None
    assert unschedulable_status(first, MSG, "2024-01-01T00:05:00Z") is None
    changed = unschedulable_status(first, "0/3 nodes are available: 3 Insufficient cpu.", "t2")
    assert changed is not None
    cond = changed.status.condition("PodScheduled")
    assert cond is not None and cond.last_transition_time == "2024-01-01T00:00:00Z"


def test_nomination_goes_with_the_status() -> None:
    new = unschedulable_status(pod("high"), MSG, "t", nominated_node_name="node-a")
    assert new is not None and new.status.nominated_node_name == "node-a"
    assert with_nominated_node(new, "node-a") is None
    cleared = with_nominated_node(new, "")
    assert cleared is not None and cleared.status.nominated_node_name == ""


def test_scheduled_message() -> None:
    assert scheduled_message(pod("web-1"), "node-a") == (
        "Successfully assigned default/web-1 to node-a"
    )


def test_status_only_changes_do_not_requeue() -> None:
    old = pod("p")
    status_only = unschedulable_status(old, MSG, "t")
    assert status_only is not None
    assert not schedulable_change(old, status_only)
    relabelled = msgspec.structs.replace(
        old, metadata=msgspec.structs.replace(old.metadata, labels={"a": "b"})
    )
    assert schedulable_change(old, relabelled)
    assert schedulable_change(old, pod("p", node_selector={"disk": "ssd"}))


def test_accounting_ignores_status_updates_of_bound_pods() -> None:
    old = pod("p", node_name="a")
    running = msgspec.structs.replace(
        old, status=msgspec.structs.replace(old.status, phase="Running")
    )
    assert not accounting_change(old, running)
    assert accounting_change(old, pod("p", node_name="a", terminating=True))


def test_node_heartbeats_do_not_matter() -> None:
    old = node("a")
    beat = msgspec.structs.replace(
        old,
        status=msgspec.structs.replace(
            old.status, conditions=[Condition(type="Ready", status="True")]
        ),
    )
    assert not node_change_matters(old, beat)
    assert node_change_matters(old, node("a", taints=[taint("x")]))
    assert node_change_matters(old, node("a", cpu="8"))


def test_wants_scheduling() -> None:
    assert wants_scheduling(pod("p"))
    assert not wants_scheduling(pod("p", node_name="a"))
    assert not wants_scheduling(pod("p", terminating=True))
    other = pod("p")
    other.spec.scheduler_name = "my-scheduler"
    assert not wants_scheduling(other)


def test_failed_scheduling_repeats_fold_into_count() -> None:
    agg = EventAggregator("s1")
    p = pod("web-1")
    first = agg.record(p, "FailedScheduling", MSG, "t1", 1000, "Warning")
    assert first.created and first.event.count == 1
    assert first.event.involved_object.name == "web-1"
    assert first.event.type == "Warning"
    stored = msgspec.structs.replace(
        first.event,
        metadata=msgspec.structs.replace(first.event.metadata, resource_version="5"),
    )
    agg.stored(stored)
    again = agg.record(p, "FailedScheduling", MSG, "t2", 2000, "Warning")
    assert not again.created
    assert again.event.count == 2 and again.event.last_timestamp == "t2"
    assert again.event.metadata.name == first.event.metadata.name
    other = agg.record(p, "FailedScheduling", "another message", "t3", 3000, "Warning")
    assert other.created


def test_scheduled_events_get_unique_names() -> None:
    agg = EventAggregator("s1")
    a = agg.record(pod("web-1"), "Scheduled", "m", "t", 1000)
    b = agg.record(pod("web-1"), "Scheduled", "m", "t", 1000)
    assert a.created and b.created
    assert a.event.metadata.name != b.event.metadata.name
    assert a.event.metadata.name.startswith("web-1.")


def test_the_aggregator_is_bounded() -> None:
    agg = EventAggregator("s1", max_entries=3)
    for i in range(5):
        agg.record(pod(f"p{i}"), "FailedScheduling", MSG, "t", i, "Warning")
    assert len(agg) == 3
    agg.forget_pod("default", "p4")
    assert len(agg) == 2
    again = agg.record(pod("p4"), "FailedScheduling", MSG, "t", 9, "Warning")
    assert again.created


def test_scheduled_status_only_replaces_an_unschedulable_condition() -> None:
    assert scheduled_status(pod("fresh", node_name="a"), "t") is None
    failed = unschedulable_status(pod("p"), MSG, "t0")
    assert failed is not None
    fixed = scheduled_status(failed, "t1")
    assert fixed is not None
    cond = fixed.status.condition("PodScheduled")
    assert cond is not None and (cond.status, cond.reason, cond.message) == ("True", "", "")
    assert scheduled_status(fixed, "t2") is None
