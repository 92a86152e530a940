"""ImageLocality: prefer nodes holding the pod's images."""

from __future__ import annotations

from services.scheduler.plugins.image_locality import (
    MB,
    ImageLocality,
    calculate_priority,
)
from tests.unit.scheduler.builders import cycle, node, pod, schedule, snapshot


def test_priority_is_clamped_between_thresholds() -> None:
    assert calculate_priority(0, 1) == 0
    assert calculate_priority(2000 * MB, 1) == 100
    assert calculate_priority(23 * MB + (977 * MB) // 2, 1) == 50


def test_node_with_the_image_wins_and_spread_discounts_it() -> None:
    snap = snapshot([node("has", images={"app:1": 800 * MB}), node("empty"), node("empty2")])
    c = cycle(snap, pod(image="app:1"))
    plugin = ImageLocality()
    assert plugin.pre_score(c, snap.nodes) is not None
    # 800 MB * 1/3 of nodes = 266 MB -> (266-23)/(1000-23)*100 = 24
    assert plugin.score_static(c, snap.node("has").static) == 24  # type: ignore[union-attr]
    assert plugin.score_static(c, snap.node("empty").static) == 0  # type: ignore[union-attr]
    for seed in range(5):
        assert schedule(snap, pod(f"p{seed}", image="app:1"), seed).node_name == "has"


def test_skipped_when_no_node_has_the_image() -> None:
    snap = snapshot([node("a", images={"other:1": 500 * MB})])
    assert ImageLocality().pre_score(cycle(snap, pod(image="app:1")), snap.nodes) is None
