"""NodeUnschedulable: cordoned nodes take only pods tolerating the
unschedulable taint."""

from __future__ import annotations

from podmodel.pod import Toleration

from services.scheduler.framework import Code
from services.scheduler.plugins.node_unschedulable import NodeUnschedulable
from tests.unit.scheduler.builders import cycle, node, pod, schedule, snapshot


def test_cordoned_node_rejects_with_kubernetes_reason() -> None:
    snap = snapshot([node("a", unschedulable=True)])
    c = cycle(snap, pod())
    plugin = NodeUnschedulable()
    assert plugin.pre_filter(c) is not None
    f = plugin.filter_static(c, snap.nodes[0].static)
    assert f is not None
    assert f.reasons == ("node(s) were unschedulable",)
    assert f.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_schedulable_node_passes() -> None:
    snap = snapshot([node("a")])
    c = cycle(snap, pod())
    assert NodeUnschedulable().filter_static(c, snap.nodes[0].static) is None


def test_pod_tolerating_the_unschedulable_taint_skips_the_check() -> None:
    tol = Toleration(key="node.kubernetes.io/unschedulable", operator="Exists", effect="NoSchedule")
    snap = snapshot([node("a", unschedulable=True)])
    assert schedule(snap, pod(tolerations=[tol])).node_name == "a"


def test_cycle_avoids_cordoned_nodes() -> None:
    snap = snapshot([node("a", unschedulable=True), node("b")])
    assert schedule(snap, pod()).node_name == "b"
    snap2 = snapshot([node("a", unschedulable=True)])
    assert (
        schedule(snap2, pod()).message
        == "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
