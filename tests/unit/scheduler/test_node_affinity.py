"""NodeAffinity: nodeSelector and required terms filter; preferred terms score."""

from __future__ import annotations

from podmodel.pod import Affinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod
from podmodel.pod import NodeAffinity as K8sNodeAffinity

from services.scheduler.cluster_snapshot import HOSTNAME_LABEL
from services.scheduler.framework import Code, Scope
from services.scheduler.plugins.node_affinity import NodeAffinity, node_names
from tests.unit.scheduler.builders import (
    cycle,
    node,
    pod,
    preferred_node_affinity,
    required_node_affinity,
    schedule,
    snapshot,
)


def test_node_selector_must_match_labels() -> None:
    snap = snapshot([node("a", labels={"disk": "ssd"}), node("b")])
    c = cycle(snap, pod(node_selector={"disk": "ssd"}))
    plugin = NodeAffinity()
    assert plugin.pre_filter(c) is Scope.STATIC
    assert plugin.filter_static(c, snap.node("a").static) is None  # type: ignore[union-attr]
    f = plugin.filter_static(c, snap.node("b").static)  # type: ignore[union-attr]
    assert f is not None
    assert f.reasons == ("node(s) didn't match Pod's node affinity/selector",)
    assert f.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_required_terms_with_operators() -> None:
    snap = snapshot([node("a", labels={"gen": "3"}), node("b", labels={"gen": "5"})])
    assert schedule(snap, pod(affinity=required_node_affinity("gen", "Gt", ["4"]))).node_name == "b"
    assert (
        schedule(snap, pod(affinity=required_node_affinity("gen", "NotIn", ["5"]))).node_name == "a"
    )


def test_hostname_selector_is_evaluated_per_node() -> None:
    snap = snapshot([node("a"), node("b")])
    p = pod(affinity=required_node_affinity(HOSTNAME_LABEL, "In", ["b"]))
    assert NodeAffinity().pre_filter(cycle(snap, p)) is Scope.NODE
    assert schedule(snap, p).node_name == "b"


def test_match_fields_on_metadata_name() -> None:
    snap = snapshot([node("a"), node("b")])
    p = pod()
    p.spec.affinity = required_node_affinity("x", "Exists", [])
    term = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms[
        0
    ]  # type: ignore[union-attr]
    term.match_expressions = []
    term.match_fields = [NodeSelectorRequirement(key="metadata.name", operator="In", values=["a"])]
    assert schedule(snap, p).node_name == "a"


def test_no_selector_skips_the_plugin() -> None:
    snap = snapshot([node("a")])
    assert NodeAffinity().pre_filter(cycle(snap, pod())) is None


def test_preferred_terms_pick_the_matching_node() -> None:
    snap = snapshot([node("a", labels={"zone": "x"}), node("b", labels={"zone": "y"})])
    for seed in range(8):
        r = schedule(snap, pod(affinity=preferred_node_affinity(10, "zone", "In", ["y"])), seed)
        assert r.node_name == "b"
        assert r.scores["NodeAffinity"] == 200  # normalised 100 * weight 2


def test_preferred_score_is_the_sum_of_matching_weights_normalised() -> None:
    snap = snapshot([node("a", labels={"zone": "x"})])
    p = pod(affinity=preferred_node_affinity(10, "zone", "In", ["x"]))
    p.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution.append(  # type: ignore[union-attr]
        preferred_node_affinity(
            30, "zone", "Exists", []
        ).node_affinity.preferred_during_scheduling_ignored_during_execution[0]  # type: ignore[union-attr]
    )
    c = cycle(snap, p)
    plugin = NodeAffinity()
    assert plugin.pre_score(c, snap.nodes) is Scope.STATIC
    assert plugin.score_static(c, snap.nodes[0].static) == 40
    assert plugin.normalize(c, [40, 10, 0], None) == [100, 25, 0]


def test_empty_term_matches_nothing() -> None:
    snap = snapshot([node("a")])
    p = pod(affinity=required_node_affinity("x", "Exists", []))
    p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms = [
        NodeSelectorTerm()
    ]  # type: ignore[union-attr]
    assert schedule(snap, p, preemption=False).node_name is None


def _match_fields(operator: str, names: list[str]) -> Pod:
    p = pod("data-0")
    p.spec.affinity = Affinity(
        node_affinity=K8sNodeAffinity(
            required_during_scheduling_ignored_during_execution=NodeSelector(
                node_selector_terms=[
                    NodeSelectorTerm(
                        match_fields=[
                            NodeSelectorRequirement(
                                key="metadata.name", operator=operator, values=names
                            )
                        ]
                    )
                ]
            )
        )
    )
    return p


def test_match_fields_metadata_name_pins_the_pod_to_its_volume_node() -> None:
    # StatefulSet pods with local volumes are pinned this way; the node's name,
    # not a label, decides, so nodes with identical labels must be told apart.
    snap = snapshot([node(f"n{i}", labels={"disk": "ssd"}) for i in range(5)])
    p = _match_fields("In", ["n3"])
    c = cycle(snap, p)
    assert NodeAffinity().pre_filter(c) is Scope.NODE
    for seed in range(10):
        assert schedule(snap, p, seed=seed).node_name == "n3"


def test_match_fields_not_in_excludes_the_node() -> None:
    snap = snapshot([node("a"), node("b")])
    for seed in range(10):
        assert schedule(snap, _match_fields("NotIn", ["a"]), seed=seed).node_name == "b"


def test_match_fields_for_a_missing_node_is_unschedulable() -> None:
    snap = snapshot([node("a"), node("b")])
    r = schedule(snap, _match_fields("In", ["gone"]), preemption=False)
    assert r.node_name is None
    assert (
        r.message == "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    )


def test_node_names_only_when_every_term_names_them() -> None:
    by_name = NodeSelectorTerm(
        match_fields=[
            NodeSelectorRequirement(key="metadata.name", operator="In", values=["a", "b"])
        ]
    )
    narrower = NodeSelectorTerm(
        match_fields=[
            NodeSelectorRequirement(key="metadata.name", operator="In", values=["a", "b"]),
            NodeSelectorRequirement(key="metadata.name", operator="In", values=["b", "c"]),
        ]
    )
    by_label = NodeSelectorTerm(
        match_expressions=[NodeSelectorRequirement(key="zone", operator="In", values=["z1"])]
    )
    assert node_names([by_name]) == {"a", "b"}
    assert node_names([narrower]) == {"b"}
    assert node_names(
        [
            by_name,
            NodeSelectorTerm(
                match_fields=[
                    NodeSelectorRequirement(key="metadata.name", operator="In", values=["x"])
                ]
            ),
        ]
    ) == {"a", "b", "x"}
    assert node_names([by_name, by_label]) is None
    assert node_names(None) is None
