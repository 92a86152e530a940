"""NodeName: a pod naming its node fits only there."""

from __future__ import annotations

from services.scheduler.plugins.node_name import NodeName
from tests.unit.scheduler.builders import cycle, node, pod, snapshot


def test_only_the_named_node_fits() -> None:
    snap = snapshot([node("a"), node("b")])
    c = cycle(snap, pod(node_name="b"))
    plugin = NodeName()
    assert plugin.pre_filter(c) is not None
    assert plugin.filter_node(c, snap.node("b")) is None  # type: ignore[arg-type]
    f = plugin.filter_node(c, snap.node("a"))  # type: ignore[arg-type]
    assert f is not None and f.reasons == ("node(s) didn't match the requested node name",)


def test_skipped_when_no_node_is_named() -> None:
    snap = snapshot([node("a")])
    assert NodeName().pre_filter(cycle(snap, pod())) is None
