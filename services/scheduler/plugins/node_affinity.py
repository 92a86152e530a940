"""NodeAffinity: spec.nodeSelector and required node affinity must match the
node (filter); matching preferred terms add their weights (score).

Labels other than `kubernetes.io/hostname` live in the node's static class,
so a pod whose selectors never mention the hostname nor `matchFields` is
evaluated once per static class; otherwise per node. Matching itself is
podmodel.selector's (Kubernetes' nodeaffinity semantics). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from podmodel.pod import NodeSelectorTerm, Pod, PreferredSchedulingTerm
from podmodel.selector import node_selector_term_matches, node_selector_terms_match

from services.scheduler.cluster_snapshot import HOSTNAME_LABEL, NodeInfo, NodeStatic
from services.scheduler.framework import (
    Code,
    CycleState,
    Failure,
    FilterPlugin,
    Scope,
    ScorePlugin,
    default_normalize,
)

NAME = "NodeAffinity"
ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
_FAILURE = Failure(NAME, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_POD)


@dataclass(frozen=True)
class RequiredNodeAffinity:
    """nodeaffinity.GetRequiredNodeAffinity: nodeSelector AND required terms."""

    node_selector: Mapping[str, str]
    terms: Sequence[NodeSelectorTerm] | None

    @classmethod
    def of(cls, pod: Pod) -> RequiredNodeAffinity:
        aff = pod.spec.affinity
        na = aff.node_affinity if aff is not None else None
        required = na.required_during_scheduling_ignored_during_execution if na else None
        return cls(pod.spec.node_selector, required.node_selector_terms if required else None)

    @property
    def empty(self) -> bool:
        return not self.node_selector and self.terms is None

    def matches(self, labels: Mapping[str, str], node_name: str = "") -> bool:
        for k, v in self.node_selector.items():
            if labels.get(k) != v:
                return False
        if self.terms is None:
            return True
        return node_selector_terms_match(self.terms, labels, node_name)

    @property
    def needs_node(self) -> bool:
        """Whether matching reads the hostname label or the node's name."""
        return HOSTNAME_LABEL in self.node_selector or any(
            _term_needs_node(t) for t in self.terms or ()
        )


def node_names(terms: Sequence[NodeSelectorTerm] | None) -> frozenset[str] | None:
    """The only nodes the required terms can select when every term names
    them with `matchFields metadata.name In` (getPreFilterResult); None when
    some term does not."""
    if not terms:
        return None
    union: set[str] = set()
    for term in terms:
        named = [
            set(r.values)
            for r in term.match_fields
            if r.key == "metadata.name" and r.operator == "In"
        ]
        if not named:
            return None
        union |= set.intersection(*named)
    return frozenset(union)


def _term_needs_node(term: NodeSelectorTerm) -> bool:
    return bool(term.match_fields) or any(r.key == HOSTNAME_LABEL for r in term.match_expressions)


def _preferred(pod: Pod) -> list[PreferredSchedulingTerm]:
    aff = pod.spec.affinity
    na = aff.node_affinity if aff is not None else None
    if na is None:
        return []
    return [t for t in na.preferred_during_scheduling_ignored_during_execution if t.weight != 0]


class NodeAffinity(FilterPlugin, ScorePlugin):
    NAME = NAME

    def pre_filter(self, cycle: CycleState) -> Scope | None:
        required = RequiredNodeAffinity.of(cycle.pod.pod)
        if required.empty:
            return None
        cycle.data[NAME] = required
        names = node_names(required.terms)
        if names is not None:
            cycle.restrict_nodes(names)
        return Scope.NODE if required.needs_node else Scope.STATIC

    def filter_static(self, cycle: CycleState, static: NodeStatic) -> Failure | None:
        return None if cycle.data[NAME].matches(static.labels) else _FAILURE

    def filter_node(self, cycle: CycleState, node: NodeInfo) -> Failure | None:
        return None if cycle.data[NAME].matches(node.labels, node.name) else _FAILURE

    def pre_score(self, cycle: CycleState, feasible: Sequence[NodeInfo]) -> Scope | None:
        terms = _preferred(cycle.pod.pod)
        if not terms:
            return None
        cycle.data[NAME + "/score"] = terms
        if any(_term_needs_node(t.preference) for t in terms):
            return Scope.NODE
        return Scope.STATIC

    def _score(self, cycle: CycleState, labels: Mapping[str, str], name: str) -> int:
        return sum(
            t.weight
            for t in cycle.data[NAME + "/score"]
            if node_selector_term_matches(t.preference, labels, name)
        )

    def score_static(self, cycle: CycleState, static: NodeStatic) -> int:
        return self._score(cycle, static.labels, "")

    def score_node(self, cycle: CycleState, node: NodeInfo) -> int:
        return self._score(cycle, node.labels, node.name)

    def normalize(
        self, cycle: CycleState, scores: list[int], nodes: Sequence[NodeInfo] | None
    ) -> list[int]:
        return default_normalize(scores, reverse=False)
