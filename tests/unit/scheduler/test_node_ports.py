"""NodePorts: host ports must be free on the node."""

from __future__ import annotations

from services.scheduler.plugins.node_ports import NodePorts, port_conflicts
from tests.unit.scheduler.builders import bound, cycle, node, pod, schedule, snapshot


def test_conflict_rules_for_host_ips() -> None:
    used = {("0.0.0.0", "TCP", 80): 1, ("10.0.0.1", "UDP", 53): 1}
    assert port_conflicts(used, ("10.0.0.2", "TCP", 80))  # 0.0.0.0 overlaps every IP
    assert port_conflicts(used, ("0.0.0.0", "UDP", 53))  # every IP overlaps 10.0.0.1
    assert not port_conflicts(used, ("0.0.0.0", "TCP", 53))  # other protocol
    assert not port_conflicts(used, ("10.0.0.2", "UDP", 53))


def test_node_with_the_port_taken_is_rejected() -> None:
    snap = snapshot([node("a"), node("b")], [bound(pod("web", host_ports=[80]), "a")])
    c = cycle(snap, pod("new", host_ports=[80]))
    plugin = NodePorts()
    assert plugin.pre_filter(c) is not None
    f = plugin.filter_node(c, snap.node("a"))  # type: ignore[arg-type]
    assert f is not None
    assert f.reasons == ("node(s) didn't have free ports for the requested pod ports",)
    assert f.resolvable
    assert plugin.filter_node(c, snap.node("b")) is None  # type: ignore[arg-type]
    assert schedule(snap, pod("new", host_ports=[80])).node_name == "b"


def test_pods_without_host_ports_skip_the_plugin() -> None:
    snap = snapshot([node("a")])
    assert NodePorts().pre_filter(cycle(snap, pod())) is None


def test_port_is_free_again_after_the_pod_goes() -> None:
    snap = snapshot([node("a")], [bound(pod("web", host_ports=[80]), "a")])
    assert schedule(snap, pod("new", host_ports=[80]), preemption=False).node_name is None
    snap.remove_pod("default/web")
    assert schedule(snap, pod("new", host_ports=[80])).node_name == "a"
