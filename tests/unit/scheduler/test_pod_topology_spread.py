"""PodTopologySpread: DoNotSchedule keeps the skew within maxSkew;
ScheduleAnyway scores the emptier domains higher."""

from __future__ import annotations

from services.scheduler.cluster_snapshot import HOSTNAME_LABEL, ZONE_LABEL
from services.scheduler.framework import Code
from tests.unit.scheduler.builders import bound, node, pod, schedule, snapshot, spread

WEB = {"app": "web"}


def _zones() -> list:  # type: ignore[type-arg]
    return [node("a1", zone="z1"), node("a2", zone="z1"), node("b1", zone="z2")]


def test_do_not_schedule_goes_to_the_emptier_zone() -> None:
    existing = [bound(pod("w0", labels=WEB), "a1"), bound(pod("w1", labels=WEB), "a2")]
    snap = snapshot(_zones(), existing)
    for seed in range(8):
        p = pod(f"w{seed + 2}", labels=WEB, spread=[spread(WEB)])
        assert schedule(snap, p, seed=seed).node_name == "b1"


def test_do_not_schedule_failure_when_every_node_breaks_the_skew() -> None:
    nodes = [node("a1", zone="z1"), node("b1", zone="z2", cpu="0")]
    existing = [bound(pod("w0", labels=WEB), "a1")]
    snap = snapshot(nodes, existing)
    r = schedule(snap, pod("w1", labels=WEB, spread=[spread(WEB)]), preemption=False)
    assert r.node_name is None
    assert r.message == (
        "0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) didn't match pod topology spread constraints."
    )
    assert r.diagnosis.node_to_status["a1"].code == Code.UNSCHEDULABLE


def test_nodes_without_the_topology_key_are_rejected_unresolvably() -> None:
    snap = snapshot([node("nozone"), node("b1", zone="z2")])
    for seed in range(4):
        r = schedule(snap, pod(f"w{seed}", labels=WEB, spread=[spread(WEB)]), seed=seed)
        assert r.node_name == "b1"
    only = snapshot([node("nozone")])
    r = schedule(only, pod("w", labels=WEB, spread=[spread(WEB)]), preemption=False)
    assert r.message == (
        "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints "
        "(missing required label)."
    )
    assert r.diagnosis.node_to_status["nozone"].code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_max_skew_two_allows_one_more_in_the_fuller_zone() -> None:
    snap = snapshot(
        [node("a1", zone="z1"), node("b1", zone="z2", cpu="0")],
        [bound(pod("w0", labels=WEB), "a1")],
    )
    p = pod("w1", labels=WEB, spread=[spread(WEB, max_skew=2)])
    assert schedule(snap, p).node_name == "a1"


def test_terminating_pods_are_not_counted() -> None:
    existing = [
        bound(pod("w0", labels=WEB, terminating=True), "a1"),
        bound(pod("w1", labels=WEB, terminating=True), "a2"),
    ]
    snap = snapshot(_zones(), existing)
    r = schedule(snap, pod("n", labels=WEB, spread=[spread(WEB)]))
    assert r.feasible_nodes == 3  # the terminating pods do not make z1 fuller


def test_pods_of_other_selectors_do_not_count() -> None:
    existing = [bound(pod("o0", labels={"app": "other"}), "b1")]
    snap = snapshot([node("a1", zone="z1"), node("b1", zone="z2")], existing)
    r = schedule(snap, pod("n", labels=WEB, spread=[spread(WEB)]))
    assert r.feasible_nodes == 2


def test_hostname_spread_places_one_per_node_in_turn() -> None:
    snap = snapshot([node("a"), node("b"), node("c")])
    placed = []
    for i in range(6):
        p = pod(f"w{i}", labels=WEB, spread=[spread(WEB, HOSTNAME_LABEL)])
        r = schedule(snap, p, seed=i)
        assert r.node_name is not None
        snap.assume_pod(bound(p, r.node_name), r.node_name)
        placed.append(r.node_name)
    assert sorted(placed) == ["a", "a", "b", "b", "c", "c"]
    assert len(set(placed[:3])) == 3


def test_schedule_anyway_prefers_the_emptier_zone() -> None:
    existing = [bound(pod("w0", labels=WEB), "a1")]
    nodes = [node("a1", zone="z1"), node("b1", zone="z2")]
    snap = snapshot(nodes, existing)
    for seed in range(8):
        p = pod(f"w{seed + 1}", labels=WEB, spread=[spread(WEB, when="ScheduleAnyway")])
        r = schedule(snap, p, seed=seed)
        assert r.node_name == "b1"
        assert r.scores["PodTopologySpread"] == 200


def test_schedule_anyway_never_filters() -> None:
    snap = snapshot(
        [node("a1", zone="z1")], [bound(pod(f"w{i}", labels=WEB), "a1") for i in range(5)]
    )
    p = pod("w9", labels=WEB, spread=[spread(WEB, when="ScheduleAnyway")])
    assert schedule(snap, p).node_name == "a1"


def test_zone_label_constant() -> None:
    assert ZONE_LABEL == "topology.kubernetes.io/zone"
