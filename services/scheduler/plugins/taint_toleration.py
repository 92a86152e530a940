"""TaintToleration: a node's NoSchedule/NoExecute taints must be tolerated
(filter); fewer untolerated PreferNoSchedule taints score higher.

Owns toleration matching (v1.Toleration.ToleratesTaint), used by
NodeUnschedulable too. Both answers depend only on the node's taints, so
they are evaluated once per static node class. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from podmodel.node import Taint
from podmodel.pod import Toleration

from services.scheduler.cluster_snapshot import NodeInfo, NodeStatic
from services.scheduler.framework import (
    Code,
    CycleState,
    Failure,
    FilterPlugin,
    Scope,
    ScorePlugin,
    default_normalize,
)

NAME = "TaintToleration"


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """ToleratesTaint: empty effect or key match any; operator Exists
    matches any value, Equal (or empty) needs the same value."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator in ("", "Equal"):
        return toleration.value == taint.value
    return toleration.operator == "Exists"


def tolerations_tolerate(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    """TolerationsTolerateTaint: any toleration tolerates the taint."""
    return any(tolerates(t, taint) for t in tolerations)


def find_untolerated(taints: Iterable[Taint], tolerations: Sequence[Toleration]) -> Taint | None:
    """The first taint (in node order) no toleration tolerates."""
    for taint in taints:
        if not tolerations_tolerate(tolerations, taint):
            return taint
    return None


class TaintToleration(FilterPlugin, ScorePlugin):
    NAME = NAME

    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], Failure] = {}

    def pre_filter(self, cycle: CycleState) -> Scope | None:
        # No node has a taint: nothing can be untolerated.
        return Scope.STATIC if cycle.snapshot.has_taints else None

    def filter_static(self, cycle: CycleState, static: NodeStatic) -> Failure | None:
        taint = find_untolerated(static.filter_taints, cycle.pod.tolerations)
        if taint is None:
            return None
        key = (taint.key, taint.value)
        failure = self._failures.get(key)
        if failure is None:
            failure = Failure(
                NAME,
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}",
            )
            self._failures[key] = failure
        return failure

    def pre_score(self, cycle: CycleState, feasible: Sequence[NodeInfo]) -> Scope | None:
        cycle.data[NAME] = tuple(
            t for t in cycle.pod.tolerations if t.effect in ("", "PreferNoSchedule")
        )
        return Scope.STATIC

    def score_static(self, cycle: CycleState, static: NodeStatic) -> int:
        tolerations = cycle.data[NAME]
        return sum(1 for t in static.prefer_taints if not tolerations_tolerate(tolerations, t))

    def normalize(
        self, cycle: CycleState, scores: list[int], nodes: Sequence[NodeInfo] | None
    ) -> list[int]:
        return default_normalize(scores, reverse=True)
