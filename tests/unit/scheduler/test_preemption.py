"""DefaultPreemption: who is eligible, which victims on a node (fewest,
least important, reprieved most important first) and which node."""

from __future__ import annotations

from services.scheduler.preemption import Candidate, calculate_num_candidates, pick_one_node
from tests.unit.scheduler.builders import bound, info, node, pod, schedule, snapshot


def test_lower_priority_pods_are_evicted_to_make_room() -> None:
    snap = snapshot([node("a", cpu="2")], [bound(pod("low", cpu="2", priority=1), "a")])
    r = schedule(snap, pod("high", cpu="1", priority=100))
    assert r.node_name is None
    assert r.preemption is not None
    assert r.preemption.node_name == "a"
    assert [v.name for v in r.preemption.victims] == ["low"]
    assert "Insufficient cpu" in r.message


def test_equal_or_higher_priority_pods_are_never_victims() -> None:
    snap = snapshot(
        [node("a", cpu="2")],
        [
            bound(pod("same", cpu="1", priority=5), "a"),
            bound(pod("higher", cpu="1", priority=9), "a"),
        ],
    )
    r = schedule(snap, pod("p", cpu="1", priority=5))
    assert r.preemption is not None and r.preemption.node_name is None
    assert r.message.endswith(
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )


def test_only_as_many_victims_as_needed_least_important_first() -> None:
    snap = snapshot(
        [node("a", cpu="3")],
        [
            bound(pod("v1", cpu="1", priority=1), "a"),
            bound(pod("v5", cpu="1", priority=5), "a"),
            bound(pod("v3", cpu="1", priority=3), "a"),
        ],
    )
    r = schedule(snap, pod("p", cpu="1", priority=10))
    assert r.preemption is not None
    assert [v.name for v in r.preemption.victims] == ["v1"]
    r2 = schedule(snap, pod("q", cpu="2", priority=10))
    assert r2.preemption is not None
    assert sorted(v.name for v in r2.preemption.victims) == ["v1", "v3"]


def test_node_with_the_lowest_highest_victim_priority_is_chosen() -> None:
    snap = snapshot(
        [node("a", cpu="1"), node("b", cpu="1"), node("c", cpu="1")],
        [
            bound(pod("pa", cpu="1", priority=50), "a"),
            bound(pod("pb", cpu="1", priority=10), "b"),
            bound(pod("pc", cpu="1", priority=30), "c"),
        ],
    )
    for seed in range(6):
        r = schedule(snap, pod("p", cpu="1", priority=100), seed=seed)
        assert r.preemption is not None and r.preemption.node_name == "b"


def test_fewer_victims_win_when_priorities_tie() -> None:
    snap = snapshot(
        [node("two", cpu="2"), node("one", cpu="2")],
        [
            bound(pod("t1", cpu="1", priority=1), "two"),
            bound(pod("t2", cpu="1", priority=1), "two"),
            bound(pod("o1", cpu="2", priority=1), "one"),
        ],
    )
    for seed in range(6):
        r = schedule(snap, pod("p", cpu="2", priority=100), seed=seed)
        assert r.preemption is not None and r.preemption.node_name == "one"


def test_pick_one_node_rules_in_order() -> None:
    a, b = snapshot([node("a"), node("b")]).nodes
    lo = bound(pod("lo", priority=1, start_time="2024-01-01T00:00:00Z"), "a")
    lo_late = bound(pod("lo-late", priority=1, start_time="2024-06-01T00:00:00Z"), "b")
    hi = bound(pod("hi", priority=2), "a")
    # lowest sum of priorities beats fewer victims
    assert pick_one_node([Candidate(a, [hi]), Candidate(b, [lo, lo_late])]).node is b
    # everything equal: the latest start of the top victims wins
    assert pick_one_node([Candidate(a, [lo]), Candidate(b, [lo_late])]).node is b


def test_preemption_policy_never_opts_out() -> None:
    snap = snapshot([node("a", cpu="1")], [bound(pod("low", cpu="1", priority=1), "a")])
    r = schedule(snap, pod("p", cpu="1", priority=100, preemption_policy="Never"))
    assert r.preemption is not None and r.preemption.node_name is None
    assert r.message.endswith("preemption: not eligible due to preemptionPolicy=Never.")


def test_unresolvable_nodes_are_not_candidates() -> None:
    snap = snapshot(
        [node("a", cpu="1", labels={"disk": "hdd"})], [bound(pod("low", cpu="1", priority=1), "a")]
    )
    r = schedule(snap, pod("p", cpu="1", priority=100, node_selector={"disk": "ssd"}))
    assert r.preemption is not None and r.preemption.node_name is None
    assert "Preemption is not helpful for scheduling" in r.message


def test_priority_class_name_resolves_builtin_classes() -> None:
    p = pod("crit", cpu="1")
    p.spec.priority_class_name = "system-cluster-critical"
    snap = snapshot([node("a", cpu="1")], [bound(pod("low", cpu="1", priority=1000), "a")])
    r = schedule(snap, p)
    assert r.preemption is not None and r.preemption.node_name == "a"


def test_nominated_pods_of_lower_priority_lose_their_nomination() -> None:
    snap = snapshot([node("a", cpu="1")], [bound(pod("low", cpu="1", priority=1), "a")])
    snap.nominate(info(pod("waiting", cpu="1", priority=2)), "a")
    r = schedule(snap, pod("p", cpu="1", priority=100))
    assert r.preemption is not None and r.preemption.node_name == "a"
    assert [p.name for p in r.preemption.clear_nominations] == ["waiting"]


def test_nominated_pod_reserves_room_against_lower_priority_pods() -> None:
    snap = snapshot([node("a", cpu="1")])
    snap.nominate(info(pod("preemptor", cpu="1", priority=100)), "a")
    r = schedule(snap, pod("low", cpu="1", priority=1), preemption=False)
    assert r.node_name is None


def test_num_candidates() -> None:
    assert calculate_num_candidates(50) == 50
    assert calculate_num_candidates(500) == 100
    assert calculate_num_candidates(5000) == 500
