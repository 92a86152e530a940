"""InterPodAffinity: required affinity / anti-affinity of the incoming pod,
existing pods' anti-affinity, hostname and zone topologies, preferred scoring."""

from __future__ import annotations

from services.scheduler.cluster_snapshot import ZONE_LABEL
from services.scheduler.framework import Code
from services.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from tests.unit.scheduler.builders import (
    affinity,
    anti_affinity,
    bound,
    cycle,
    node,
    pod,
    preferred_affinity,
    schedule,
    snapshot,
)


def test_anti_affinity_on_hostname_avoids_the_node_with_a_matching_pod() -> None:
    snap = snapshot([node("a"), node("b")], [bound(pod("web-0", labels={"app": "web"}), "a")])
    for seed in range(8):
        p = pod(f"web-{seed + 1}", labels={"app": "web"}, affinity=anti_affinity({"app": "web"}))
        assert schedule(snap, p, seed=seed).node_name == "b"


def test_anti_affinity_failure_reason_and_it_is_resolvable() -> None:
    snap = snapshot([node("a")], [bound(pod("web-0", labels={"app": "web"}), "a")])
    p = pod("web-1", labels={"app": "web"}, affinity=anti_affinity({"app": "web"}))
    r = schedule(snap, p, preemption=False)
    assert r.node_name is None
    assert r.message == "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."
    assert r.diagnosis.node_to_status["a"].code == Code.UNSCHEDULABLE


def test_anti_affinity_on_zone_excludes_the_whole_zone() -> None:
    nodes = [node("a", zone="z1"), node("b", zone="z1"), node("c", zone="z2")]
    snap = snapshot(nodes, [bound(pod("db-0", labels={"app": "db"}), "a")])
    p = pod("db-1", labels={"app": "db"}, affinity=anti_affinity({"app": "db"}, ZONE_LABEL))
    for seed in range(8):
        assert schedule(snap, p, seed=seed).node_name == "c"


def test_required_affinity_follows_the_matching_pod() -> None:
    snap = snapshot(
        [node("a"), node("b"), node("c")], [bound(pod("db", labels={"app": "db"}), "b")]
    )
    p = pod("cache", affinity=affinity({"app": "db"}))
    for seed in range(8):
        assert schedule(snap, p, seed=seed).node_name == "b"


def test_required_affinity_in_a_zone_allows_any_node_of_that_zone() -> None:
    nodes = [node("a", zone="z1"), node("b", zone="z1"), node("c", zone="z2")]
    snap = snapshot(nodes, [bound(pod("db", labels={"app": "db"}), "a")])
    p = pod("cache", affinity=affinity({"app": "db"}, ZONE_LABEL))
    r = schedule(snap, p)
    assert r.feasible_nodes == 2  # a and b pass the filter; scoring prefers the emptier b
    assert r.node_name == "b"


def test_required_affinity_without_matching_pods_is_unresolvable() -> None:
    snap = snapshot([node("a")])
    r = schedule(snap, pod("cache", affinity=affinity({"app": "db"})), preemption=False)
    assert r.node_name is None
    assert r.message == "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."
    assert r.diagnosis.node_to_status["a"].code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_first_pod_with_affinity_to_its_own_group_may_go_anywhere() -> None:
    snap = snapshot([node("a"), node("b")])
    p = pod("web-0", labels={"app": "web"}, affinity=affinity({"app": "web"}))
    assert schedule(snap, p).node_name in {"a", "b"}


def test_existing_pods_anti_affinity_keeps_the_incoming_pod_away() -> None:
    guard = pod("guard", labels={"app": "guard"}, affinity=anti_affinity({"app": "web"}))
    snap = snapshot([node("a"), node("b")], [bound(guard, "a")])
    for seed in range(8):
        assert schedule(snap, pod(f"w{seed}", labels={"app": "web"}), seed=seed).node_name == "b"
    only_a = snapshot([node("a")], [bound(guard, "a")])
    r = schedule(only_a, pod("w", labels={"app": "web"}), preemption=False)
    assert r.message == (
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
    )


def test_plugin_skips_pods_without_terms_when_no_existing_anti_affinity() -> None:
    snap = snapshot([node("a")], [bound(pod("x", labels={"app": "x"}), "a")])
    assert InterPodAffinity().pre_filter(cycle(snap, pod("y"))) is None


def test_anti_affinity_in_another_namespace_does_not_count() -> None:
    snap = snapshot(
        [node("a")], [bound(pod("web-0", namespace="other", labels={"app": "web"}), "a")]
    )
    p = pod("web-1", labels={"app": "web"}, affinity=anti_affinity({"app": "web"}))
    assert schedule(snap, p).node_name == "a"


def test_preferred_affinity_scores_the_node_with_the_matching_pod() -> None:
    snap = snapshot(
        [node("a"), node("b"), node("c")], [bound(pod("db", labels={"app": "db"}), "c")]
    )
    p = pod("cache", affinity=preferred_affinity(100, {"app": "db"}))
    for seed in range(8):
        r = schedule(snap, p, seed=seed)
        assert r.node_name == "c"
        assert r.scores["InterPodAffinity"] == 200  # normalised 100, weight 2


def test_preferred_anti_affinity_scores_away_from_the_matching_pod() -> None:
    snap = snapshot([node("a"), node("b")], [bound(pod("web-0", labels={"app": "web"}), "a")])
    p = pod(
        "web-1", labels={"app": "web"}, affinity=preferred_affinity(50, {"app": "web"}, anti=True)
    )
    for seed in range(8):
        assert schedule(snap, p, seed=seed).node_name == "b"


def test_assumed_pods_count_for_anti_affinity_of_the_next_pod() -> None:
    snap = snapshot([node("a"), node("b")])
    first = pod("web-0", labels={"app": "web"}, affinity=anti_affinity({"app": "web"}))
    r1 = schedule(snap, first)
    assert r1.node_name is not None
    snap.assume_pod(bound(first, r1.node_name), r1.node_name)
    second = pod("web-1", labels={"app": "web"}, affinity=anti_affinity({"app": "web"}))
    r2 = schedule(snap, second)
    assert r2.node_name is not None and r2.node_name != r1.node_name
