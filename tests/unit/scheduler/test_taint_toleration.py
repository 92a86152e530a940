"""TaintToleration: untolerated NoSchedule/NoExecute taints filter;
PreferNoSchedule taints lower the score."""

from __future__ import annotations

from podmodel.pod import Toleration

from services.scheduler.plugins.taint_toleration import TaintToleration, tolerates
from tests.unit.scheduler.builders import cycle, node, pod, schedule, snapshot, taint


def test_toleration_matching_rules() -> None:
    t = taint("dedicated", "gpu", "NoSchedule")
    assert tolerates(Toleration(key="dedicated", operator="Equal", value="gpu"), t)
    assert tolerates(Toleration(key="dedicated", value="gpu", effect="NoSchedule"), t)
    assert not tolerates(Toleration(key="dedicated", value="cpu"), t)
    assert tolerates(Toleration(key="dedicated", operator="Exists"), t)
    assert tolerates(Toleration(operator="Exists"), t)  # empty key + Exists: everything
    assert not tolerates(Toleration(key="dedicated", operator="Exists", effect="NoExecute"), t)


def test_untolerated_taint_is_named_in_the_reason() -> None:
    snap = snapshot([node("a", taints=[taint("dedicated", "gpu")])])
    c = cycle(snap, pod())
    plugin = TaintToleration()
    assert plugin.pre_filter(c) is not None
    f = plugin.filter_static(c, snap.nodes[0].static)
    assert f is not None
    assert f.reasons == ("node(s) had untolerated taint {dedicated: gpu}",)
    assert not f.resolvable


def test_prefer_no_schedule_does_not_filter_but_scores_lower() -> None:
    snap = snapshot([node("tainted", taints=[taint("x", "y", "PreferNoSchedule")]), node("clean")])
    for seed in range(10):
        r = schedule(snap, pod(f"p{seed}"), seed=seed)
        assert r.node_name == "clean"
        assert r.scores["TaintToleration"] == 300  # normalised 100, weight 3


def test_tolerated_prefer_no_schedule_scores_equal() -> None:
    tol = Toleration(key="x", operator="Exists", effect="PreferNoSchedule")
    snap = snapshot([node("tainted", taints=[taint("x", "y", "PreferNoSchedule")])])
    c = cycle(snap, pod(tolerations=[tol]))
    plugin = TaintToleration()
    plugin.pre_score(c, snap.nodes)
    assert plugin.score_static(c, snap.nodes[0].static) == 0


def test_no_taints_anywhere_skips_the_filter() -> None:
    snap = snapshot([node("a")])
    assert TaintToleration().pre_filter(cycle(snap, pod())) is None


def test_normalize_reverses_counts() -> None:
    c = cycle(snapshot([node("a")]), pod())
    assert TaintToleration().normalize(c, [0, 1, 2], None) == [100, 50, 0]
    assert TaintToleration().normalize(c, [0, 0], None) == [100, 100]
