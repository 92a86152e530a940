"""NodeResourcesFit: requests must fit; LeastAllocated scoring."""

from __future__ import annotations

from services.scheduler.framework import Code, Scope
from services.scheduler.plugins.node_resources_fit import (
    NodeResourcesFit,
    least_requested_score,
)
from tests.unit.scheduler.builders import bound, cycle, node, pod, schedule, snapshot


def _fit(snap, p):  # type: ignore[no-untyped-def]
    c = cycle(snap, p)
    plugin = NodeResourcesFit()
    assert plugin.pre_filter(c) is Scope.RESOURCES
    return plugin.filter_resources(c, snap.nodes[0].res)


def test_fits_when_requests_are_below_what_is_left() -> None:
    snap = snapshot([node("a", cpu="1")], [bound(pod("x", cpu="600m"), "a")])
    assert _fit(snap, pod(cpu="400m")) is None


def test_insufficient_cpu_and_memory_are_both_reported() -> None:
    snap = snapshot(
        [node("a", cpu="1", memory="1Gi")], [bound(pod("x", cpu="600m", memory="1Gi"), "a")]
    )
    f = _fit(snap, pod(cpu="500m", memory="1Mi"))
    assert f is not None
    assert f.reasons == ("Insufficient cpu", "Insufficient memory")
    assert f.code == Code.UNSCHEDULABLE


def test_request_above_allocatable_is_unresolvable() -> None:
    snap = snapshot([node("a", cpu="1")])
    f = _fit(snap, pod(cpu="2"))
    assert f is not None and f.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_too_many_pods() -> None:
    snap = snapshot([node("a", pods="1")], [bound(pod("x"), "a")])
    f = _fit(snap, pod(cpu=None, memory=None))
    assert f is not None and f.reasons == ("Too many pods",)


def test_extended_resources() -> None:
    snap = snapshot([node("a", extra={"example.com/gpu": "1"})])
    assert _fit(snap, pod(extra={"example.com/gpu": "1"})) is None
    f = _fit(snap, pod(extra={"example.com/gpu": "2"}))
    assert f is not None and f.reasons == ("Insufficient example.com/gpu",)
    f = _fit(snapshot([node("b")]), pod(extra={"example.com/gpu": "1"}))
    assert f is not None and f.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_zero_request_pod_fits_an_overcommitted_node() -> None:
    snap = snapshot([node("a", cpu="1")], [bound(pod("x", cpu="2"), "a")])
    assert _fit(snap, pod(cpu=None, memory=None)) is None


def test_least_requested_score() -> None:
    assert least_requested_score(0, 1000) == 100
    assert least_requested_score(250, 1000) == 75
    assert least_requested_score(1001, 1000) == 0
    assert least_requested_score(5, 0) == 0


def test_least_allocated_averages_cpu_and_memory_on_nonzero_requests() -> None:
    snap = snapshot([node("a", cpu="1", memory="1000")])
    c = cycle(snap, pod(cpu=None, memory="500"))
    plugin = NodeResourcesFit()
    plugin.pre_score(c, snap.nodes)
    # cpu: default 100m of 1000m -> 90; memory: 500 of 1000 -> 50
    assert plugin.score_resources(c, snap.nodes[0].res) == 70


def test_the_emptier_node_wins() -> None:
    snap = snapshot([node("a"), node("b")], [bound(pod("x", cpu="2", memory="8Gi"), "a")])
    for seed in range(8):
        assert schedule(snap, pod(f"p{seed}"), seed).node_name == "b"
