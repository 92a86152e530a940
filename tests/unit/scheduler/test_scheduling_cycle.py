"""The scheduling cycle: adaptive percentageOfNodesToScore with a
round-robin window, kubectl's FailedScheduling message, the assume cache,
random tie-break and the per-plugin counts for the trace."""

from __future__ import annotations

from podmodel.pod import (
    Affinity,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
)

from services.scheduler.scheduling_cycle import num_feasible_nodes_to_find
from tests.unit.scheduler.builders import bound, info, node, pod, schedule, snapshot, taint


def test_adaptive_percentage_of_nodes_to_score() -> None:
    assert num_feasible_nodes_to_find(50) == 50  # under 100: all
    assert num_feasible_nodes_to_find(100) == 100  # 49% of 100 < 100: at least 100
    assert num_feasible_nodes_to_find(1000) == 420  # 50 - 1000/125 = 42%
    assert num_feasible_nodes_to_find(5000) == 500  # 10%
    assert num_feasible_nodes_to_find(6000) == 300  # floor of 5%
    assert num_feasible_nodes_to_find(1000, percentage=100) == 1000


def test_window_stops_early_and_the_next_cycle_continues_round_robin() -> None:
    snap = snapshot([node(f"n{i:04d}") for i in range(1000)])
    r = schedule(snap, pod("p0"))
    assert r.evaluated_nodes == 420
    assert r.feasible_nodes == 420
    assert snap.next_start_index == 420
    schedule(snap, pod("p1"))
    assert snap.next_start_index == 840
    schedule(snap, pod("p2"))
    assert snap.next_start_index == (840 + 420) % 1000


def test_small_clusters_are_filtered_completely() -> None:
    snap = snapshot([node(f"n{i}") for i in range(30)])
    r = schedule(snap, pod())
    assert r.evaluated_nodes == 30 and r.feasible_nodes == 30


def test_kubectl_message_counts_reasons_per_node() -> None:
    snap = snapshot(
        [
            node("a", cpu="1"),
            node("b", cpu="1"),
            node("gpu", cpu="8", taints=[taint("dedicated", "gpu")]),
        ]
    )
    r = schedule(snap, pod("web-1", cpu="2"), preemption=False)
    assert r.node_name is None
    # kube-scheduler sorts the "<count> <reason>" strings (sortReasonsHistogram).
    assert r.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
        "2 Insufficient cpu."
    )
    assert r.diagnosis.unschedulable_plugins == {"TaintToleration", "NodeResourcesFit"}


def test_message_with_preemption_suffix() -> None:
    snap = snapshot(
        [node("a", cpu="3"), node("gpu", taints=[taint("dedicated", "gpu")])],
        [bound(pod("same-priority", cpu="2"), "a")],
    )
    r = schedule(snap, pod("web-1", cpu="2"))
    assert r.message == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
        "{dedicated: gpu}. preemption: 0/2 nodes are available: "
        "1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling."
    )


def test_no_nodes() -> None:
    r = schedule(snapshot([]), pod())
    assert r.node_name is None
    assert r.message == "no nodes available to schedule pods"


def test_assumed_pod_reserves_resources_for_the_next_cycle() -> None:
    snap = snapshot([node("a", cpu="1"), node("b", cpu="1")])
    first = pod("p0", cpu="800m")
    r1 = schedule(snap, first)
    assert r1.node_name is not None
    snap.assume_pod(info(first), r1.node_name)
    r2 = schedule(snap, pod("p1", cpu="800m"))
    assert r2.node_name is not None and r2.node_name != r1.node_name
    snap.assume_pod(info(pod("p1", cpu="800m")), r2.node_name)
    r3 = schedule(snap, pod("p2", cpu="800m"), preemption=False)
    assert r3.node_name is None
    assert r3.message == "0/2 nodes are available: 2 Insufficient cpu."


def test_forgetting_an_assumed_pod_releases_its_reservation() -> None:
    snap = snapshot([node("a", cpu="1")])
    p = pod("p0", cpu="800m")
    snap.assume_pod(info(p), "a")
    assert schedule(snap, pod("p1", cpu="800m"), preemption=False).node_name is None
    snap.forget_pod("default/p0")
    assert schedule(snap, pod("p1", cpu="800m")).node_name == "a"


def test_observed_binding_confirms_the_assumed_pod() -> None:
    snap = snapshot([node("a", cpu="1")])
    p = pod("p0", cpu="800m")
    snap.assume_pod(info(p), "a")
    snap.add_pod(bound(p, "a"))
    assert not snap.is_assumed("default/p0")
    snap.forget_pod("default/p0")  # a late failure report must not release a real pod
    assert schedule(snap, pod("p1", cpu="800m"), preemption=False).node_name is None


def test_ties_are_broken_at_random() -> None:
    snap = snapshot([node("a"), node("b"), node("c")])
    chosen = {schedule(snap, pod(f"p{s}"), seed=s).node_name for s in range(40)}
    assert chosen == {"a", "b", "c"}


def test_least_allocated_wins_and_the_winner_score_is_reported() -> None:
    snap = snapshot([node("busy"), node("idle")], [bound(pod("x", cpu="3", memory="24Gi"), "busy")])
    r = schedule(snap, pod("p"))
    assert r.node_name == "idle"
    assert r.total_score == sum(r.scores.values())
    assert r.scores["NodeResourcesFit"] > 0


def test_passed_per_plugin_counts_nodes_passing_each_filter() -> None:
    snap = snapshot(
        [
            node("a", cpu="1"),
            node("b", cpu="8"),
            node("gpu", cpu="8", taints=[taint("dedicated", "gpu")]),
            node("off", unschedulable=True),
        ]
    )
    r = schedule(snap, pod("p", cpu="2"))
    assert r.node_name == "b"
    passed = r.passed_per_plugin()
    assert passed["NodeUnschedulable"] == 3
    assert passed["TaintToleration"] == 2
    assert passed["NodeResourcesFit"] == 1


def test_node_name_pins_the_pod() -> None:
    snap = snapshot([node("a"), node("b")])
    assert schedule(snap, pod("p", node_name="")).node_name in {"a", "b"}


def test_nominated_node_is_tried_first() -> None:
    snap = snapshot([node("a"), node("b"), node("c")])
    for seed in range(10):
        assert schedule(snap, pod(f"p{seed}", nominated="c"), seed=seed).node_name == "c"


def _pinned(*node_names: str) -> Affinity:
    """A DaemonSet pod's affinity: matchFields metadata.name In [...]."""
    pin = NodeSelectorRequirement(key="metadata.name", operator="In", values=list(node_names))
    return Affinity(
        node_affinity=NodeAffinity(
            required_during_scheduling_ignored_during_execution=NodeSelector(
                node_selector_terms=[NodeSelectorTerm(match_fields=[pin])]
            )
        )
    )


def test_a_pod_pinned_by_match_fields_is_filtered_on_its_node_only() -> None:
    snap = snapshot([node(f"n{i:04d}") for i in range(1000)])
    r = schedule(snap, pod("ds-1", affinity=_pinned("n0777")))
    assert r.node_name == "n0777" and r.evaluated_nodes == 1
    assert snap.next_start_index == 0  # the round-robin window did not move
    r = schedule(snap, pod("ds-2", affinity=_pinned("n0001", "n0002", "absent")))
    assert r.node_name in ("n0001", "n0002") and r.evaluated_nodes == 2


def test_a_pinned_pod_that_does_not_fit_gets_the_whole_message() -> None:
    snap = snapshot([node("a", cpu="1"), node("b"), node("c")])
    r = schedule(snap, pod("ds-a", cpu="2", affinity=_pinned("a")), preemption=False)
    assert r.node_name is None
    assert r.message == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )
