"""The scheduling queue: priority order, back-off 1 s doubling to 10 s, and
the unschedulable set moved back by relevant cluster events only."""

from __future__ import annotations

from services.scheduler.queue import ClusterEvent, SchedulingQueue
from tests.unit.scheduler.builders import info, pod


def test_higher_priority_first_then_first_in_first_out() -> None:
    q = SchedulingQueue()
    q.add(info(pod("low", priority=1)), now=0.0)
    q.add(info(pod("high-a", priority=10)), now=1.0)
    q.add(info(pod("high-b", priority=10)), now=2.0)
    q.add(info(pod("mid", priority=5)), now=3.0)
    order = []
    while (item := q.pop(10.0)) is not None:
        order.append(item.pod_info.name)
        q.done(item.key)
    assert order == ["high-a", "high-b", "mid", "low"]


def test_backoff_starts_at_one_second_and_doubles_to_ten() -> None:
    q = SchedulingQueue()
    assert [q.backoff_duration(n) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]


def test_a_backed_off_pod_returns_only_after_its_backoff() -> None:
    q = SchedulingQueue()
    q.add(info(pod("p")), now=0.0)
    item = q.pop(0.0)
    assert item is not None and item.attempts == 1
    q.add_backoff(item, now=5.0)
    assert q.where("default/p") == "backoff"
    assert q.next_wakeup() == 6.0
    assert q.pop(5.9) is None
    again = q.pop(6.0)
    assert again is not None and again.attempts == 2
    q.add_backoff(again, now=10.0)
    assert q.next_wakeup() == 12.0  # second attempt: 2 s


def test_unschedulable_pod_waits_for_a_relevant_event() -> None:
    q = SchedulingQueue()
    q.add(info(pod("big")), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.add_unschedulable(item, ["NodeResourcesFit"], now=0.0)
    assert q.where("default/big") == "unschedulable"
    assert q.on_event(ClusterEvent.ASSIGNED_POD_ADD, now=1.0) == 0
    assert q.on_event(ClusterEvent.NODE_LABEL, now=1.0) == 0
    assert q.where("default/big") == "unschedulable"
    assert q.on_event(ClusterEvent.NODE_ADD, now=5.0) == 1
    assert q.pop(5.0) is not None  # back-off (1 s from 0.0) already over: active at once


def test_event_moves_into_backoff_while_the_backoff_runs() -> None:
    q = SchedulingQueue()
    q.add(info(pod("big")), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.add_unschedulable(item, ["NodeResourcesFit"], now=0.0)
    q.on_event(ClusterEvent.ASSIGNED_POD_DELETE, now=0.5)
    assert q.where("default/big") == "backoff"
    assert q.pop(0.9) is None
    assert q.pop(1.0) is not None


def test_taint_rejections_move_on_node_taint_changes() -> None:
    q = SchedulingQueue()
    q.add(info(pod("t")), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.add_unschedulable(item, ["TaintToleration"], now=0.0)
    assert q.on_event(ClusterEvent.NODE_ALLOCATABLE, now=2.0) == 0
    assert q.on_event(ClusterEvent.NODE_TAINT, now=2.0) == 1


def test_an_event_during_the_cycle_sends_the_pod_to_backoff_not_parked() -> None:
    q = SchedulingQueue()
    q.add(info(pod("p")), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.on_event(ClusterEvent.NODE_ADD, now=0.1)  # arrives while the cycle runs
    q.add_unschedulable(item, ["NodeResourcesFit"], now=0.2)
    assert q.where("default/p") == "backoff"


def test_parked_pods_return_after_five_minutes() -> None:
    q = SchedulingQueue()
    q.add(info(pod("p")), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.add_unschedulable(item, ["NodeAffinity"], now=0.0)
    q.flush(299.0)  # the driver flushes every second
    assert q.pop(299.0) is None
    assert q.pop(301.0) is None  # pop alone does not scan parked pods
    q.flush(301.0)
    assert q.pop(301.0) is not None


def test_deleted_while_in_flight_is_not_requeued() -> None:
    q = SchedulingQueue()
    q.add(info(pod("p")), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.delete(item.key)
    q.add_backoff(item, now=1.0)
    assert q.where("default/p") is None
    assert len(q) == 0


def test_update_while_in_flight_keeps_the_newest_version() -> None:
    q = SchedulingQueue()
    q.add(info(pod("p", priority=1)), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.update(info(pod("p", priority=7)), now=0.5)
    assert item.pod_info.priority == 7
    assert q.where("default/p") == "in-flight"


def test_update_of_a_parked_pod_gives_it_another_chance() -> None:
    q = SchedulingQueue()
    q.add(info(pod("p")), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.add_unschedulable(item, ["NodeAffinity"], now=0.0)
    q.update(info(pod("p", node_selector={"x": "y"})), now=3.0)
    assert q.where("default/p") == "active"


def test_events_that_help_no_parked_pod_move_nothing_and_keep_counts() -> None:
    q = SchedulingQueue()
    for i in range(50):
        q.add(info(pod(f"p{i}")), now=0.0)
    items = [q.pop(0.0) for _ in range(50)]
    for i, item in enumerate(items):
        assert item is not None
        plugins = ["NodeResourcesFit"] if i % 2 else ["InterPodAffinity"]
        q.add_unschedulable(item, plugins, now=0.0)
    assert q.on_event(ClusterEvent.NODE_TAINT, now=5.0) == 0
    assert q.on_event(ClusterEvent.ASSIGNED_POD_ADD, now=5.0) == 25  # the affinity ones
    q.delete("default/p1")
    assert q.on_event(ClusterEvent.ASSIGNED_POD_ADD, now=5.0) == 0
    assert q.on_event(ClusterEvent.NODE_ADD, now=5.0) == 24
    assert q.unschedulable_count == 0
    assert not q._unschedulable_sets


def test_an_unrelated_event_during_the_cycle_does_not_prevent_parking() -> None:
    q = SchedulingQueue()
    q.add(info(pod("p")), now=0.0)
    item = q.pop(0.0)
    assert item is not None
    q.on_event(ClusterEvent.ASSIGNED_POD_ADD, now=0.1)  # another pod was bound
    q.add_unschedulable(item, ["NodeAffinity"], now=0.2)
    assert q.where("default/p") == "unschedulable"


def test_an_event_before_the_cycle_does_not_count_as_during() -> None:
    q = SchedulingQueue()
    q.add(info(pod("p")), now=0.0)
    q.on_event(ClusterEvent.NODE_ADD, now=0.0)  # seen by the coming cycle
    item = q.pop(0.1)
    assert item is not None
    q.add_unschedulable(item, ["NodeResourcesFit"], now=0.2)
    assert q.where("default/p") == "unschedulable"
