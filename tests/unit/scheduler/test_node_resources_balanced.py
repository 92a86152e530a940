"""BalancedAllocation: prefer equal cpu and memory shares."""

from __future__ import annotations

from services.scheduler.framework import Scope
from services.scheduler.plugins.node_resources_balanced import (
    NodeResourcesBalancedAllocation,
    balanced_score,
)
from tests.unit.scheduler.builders import bound, cycle, node, pod, snapshot


def test_balanced_score_formula() -> None:
    assert balanced_score([0.5, 0.5]) == 100
    assert balanced_score([0.2, 0.6]) == 80
    assert balanced_score([1.5, 0.0]) == 50  # fractions are capped at 1
    assert balanced_score([0.3]) == 100
    assert balanced_score([0.0, 0.5, 1.0]) == 59


def test_score_uses_requested_with_the_pod() -> None:
    snap = snapshot(
        [node("a", cpu="1", memory="1000")], [bound(pod("x", cpu="200m", memory="100"), "a")]
    )
    c = cycle(snap, pod(cpu="200m", memory="500"))
    plugin = NodeResourcesBalancedAllocation()
    assert plugin.pre_score(c, snap.nodes) is Scope.RESOURCES
    # cpu 400/1000, memory 600/1000 -> std 0.1 -> 90
    assert plugin.score_resources(c, snap.nodes[0].res) == 90


def test_best_effort_pods_skip_balanced_allocation() -> None:
    snap = snapshot([node("a")])
    assert (
        NodeResourcesBalancedAllocation().pre_score(
            cycle(snap, pod(cpu=None, memory=None)), snap.nodes
        )
        is None
    )
