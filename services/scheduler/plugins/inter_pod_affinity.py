"""InterPodAffinity: required pod affinity and anti-affinity of the incoming
pod, and required anti-affinity of the pods already running, must hold in
the node's topology domain (filter); preferred terms of both sides, and
existing pods' required affinity (hardPodAffinityWeight 1), score.

Counts per (topologyKey, value) are built at PreFilter / PreScore from the
snapshot's incremental indexes (pods grouped by labels, existing terms
grouped by signature), so a cycle costs the number of distinct label sets
and nodes involved, not the number of pods. Per-node scope: domains are
read from each node's labels, hostname included. Reasons and codes are
Kubernetes' (interpodaffinity/filtering.go, scoring.go). Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.scheduler.cluster_snapshot import NodeInfo
from services.scheduler.framework import (
    MAX_NODE_SCORE,
    Code,
    CycleState,
    Failure,
    FilterPlugin,
    Scope,
    ScorePlugin,
)
from services.scheduler.pod_info import AffinityTerm, Labelled, PodInfo

NAME = "InterPodAffinity"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
_FAIL_EXISTING = Failure(NAME, Code.UNSCHEDULABLE, ERR_REASON_EXISTING_ANTI_AFFINITY)
_FAIL_AFFINITY = Failure(NAME, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_AFFINITY)
_FAIL_ANTI = Failure(NAME, Code.UNSCHEDULABLE, ERR_REASON_ANTI_AFFINITY)

Pair = tuple[str, str]


def _bump(counts: Counter[Pair], node: NodeInfo, key: str, value: int) -> None:
    tv = node.labels.get(key)
    if tv is not None:
        counts[(key, tv)] += value
        if counts[(key, tv)] == 0:
            del counts[(key, tv)]


def _count_into(counts: Counter[Pair], nodes: Counter[NodeInfo], key: str) -> None:
    """Add each node's (positive) count to its (key, value) domain."""
    for node, count in nodes.items():
        tv = node.labels.get(key)
        if tv is not None:
            counts[(key, tv)] += count


@dataclass
class AffinityState:
    """preFilterState: counts per topology pair of (a) existing pods whose
    required anti-affinity selects the incoming pod, (b) pods matching all
    of the incoming pod's required affinity terms, (c) pods matching each
    of its anti-affinity terms."""

    pod: PodInfo
    existing_anti: Counter[Pair] = field(default_factory=Counter)
    affinity: Counter[Pair] = field(default_factory=Counter)
    anti: Counter[Pair] = field(default_factory=Counter)
    _keys: set[str] | None = None

    def existing_keys(self) -> set[str]:
        """Topology keys of the existing anti-affinity counts (memoised)."""
        if self._keys is None:
            self._keys = {tk for tk, _ in self.existing_anti}
        return self._keys

    def clone(self) -> AffinityState:
        return AffinityState(
            self.pod, Counter(self.existing_anti), Counter(self.affinity), Counter(self.anti)
        )

    def update_with_pod(self, other: PodInfo, node: NodeInfo, sign: int) -> None:
        """preFilterState.updateWithPod."""
        self._keys = None
        for term in other.required_anti_affinity:
            if term.matches(self.pod):
                _bump(self.existing_anti, node, term.topology_key, sign)
        terms = self.pod.required_affinity
        if terms and all(t.matches(other) for t in terms):
            for t in terms:
                _bump(self.affinity, node, t.topology_key, sign)
        for t in self.pod.required_anti_affinity:
            if t.matches(other):
                _bump(self.anti, node, t.topology_key, sign)


def _matches_all(terms: Sequence[AffinityTerm], pod: Labelled) -> bool:
    return all(t.matches(pod) for t in terms)


class InterPodAffinity(FilterPlugin, ScorePlugin):
    NAME = NAME

    # -------------------------------------------------------------- filter

    def pre_filter(self, cycle: CycleState) -> Scope | None:
        pod, snap = cycle.pod, cycle.snapshot
        state = AffinityState(pod)
        # Counts here are all positive, so _count_into adds without the
        # zero clean-up that _bump does for removals (the hot loop of a
        # cluster full of anti-affinity pods).
        for group in snap.anti_affinity_groups.values():
            if group.term.matches(pod):
                _count_into(state.existing_anti, group.nodes, group.term.topology_key)
        if not state.existing_anti and not pod.required_affinity and not pod.required_anti_affinity:
            return None
        if pod.required_affinity or pod.required_anti_affinity:
            for lg in snap.label_groups.values():
                if pod.required_affinity and _matches_all(pod.required_affinity, lg):
                    for t in pod.required_affinity:
                        _count_into(state.affinity, lg.all, t.topology_key)
                for t in pod.required_anti_affinity:
                    if t.matches(lg):
                        _count_into(state.anti, lg.all, t.topology_key)
        cycle.data[NAME] = state
        return Scope.NODE

    def filter_node(self, cycle: CycleState, node: NodeInfo) -> Failure | None:
        state: AffinityState = cycle.data[NAME]
        pod = state.pod
        labels = node.labels
        if pod.required_affinity:
            pods_exist = True
            for t in pod.required_affinity:
                tv = labels.get(t.topology_key)
                if tv is None:
                    return _FAIL_AFFINITY  # every topology label must exist
                if state.affinity.get((t.topology_key, tv), 0) <= 0:
                    pods_exist = False
            # The first pod of a group with affinity to itself may go anywhere
            # that has the topology labels, if no other pod matches yet.
            if not pods_exist and not (
                not state.affinity and _matches_all(pod.required_affinity, pod)
            ):
                return _FAIL_AFFINITY
        if state.anti:
            for t in pod.required_anti_affinity:
                tv = labels.get(t.topology_key)
                if tv is not None and state.anti.get((t.topology_key, tv), 0) > 0:
                    return _FAIL_ANTI
        if state.existing_anti:
            existing = state.existing_anti
            for tk in state.existing_keys():
                tv = labels.get(tk)
                if tv is not None and existing.get((tk, tv), 0) > 0:
                    return _FAIL_EXISTING
        return None

    def add_pod(self, cycle: CycleState, pod: PodInfo, node: NodeInfo) -> None:
        state: AffinityState | None = cycle.data.get(NAME)
        if state is not None:
            state.update_with_pod(pod, node, +1)

    def remove_pod(self, cycle: CycleState, pod: PodInfo, node: NodeInfo) -> None:
        state: AffinityState | None = cycle.data.get(NAME)
        if state is not None:
            state.update_with_pod(pod, node, -1)

    # -------------------------------------------------------------- score

    def pre_score(self, cycle: CycleState, feasible: Sequence[NodeInfo]) -> Scope | None:
        pod, snap = cycle.pod, cycle.snapshot
        has_constraints = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if not has_constraints and not snap.pods_with_affinity:
            return None
        scores: dict[str, Counter[str]] = {}

        def add(term: AffinityTerm, weight: int, nodes: Counter[NodeInfo]) -> None:
            key = term.topology_key
            for node, count in nodes.items():
                if not node.labels:
                    continue
                tv = node.labels.get(key)
                if tv is not None:
                    scores.setdefault(key, Counter())[tv] += weight * count

        if has_constraints:
            for lg in snap.label_groups.values():
                for t in pod.preferred_affinity:
                    if t.matches(lg):
                        add(t, t.weight, lg.all)
                for t in pod.preferred_anti_affinity:
                    if t.matches(lg):
                        add(t, -t.weight, lg.all)
        for group in snap.affinity_score_groups.values():
            if group.term.matches(pod):
                add(group.term, group.weight, group.nodes)
        if not scores:
            return None
        cycle.data[NAME + "/score"] = scores
        return Scope.NODE

    def score_node(self, cycle: CycleState, node: NodeInfo) -> int:
        scores: dict[str, Counter[str]] = cycle.data[NAME + "/score"]
        total = 0
        for key, values in scores.items():
            tv = node.labels.get(key)
            if tv is not None:
                total += values.get(tv, 0)
        return total

    def normalize(
        self, cycle: CycleState, scores: list[int], nodes: Sequence[NodeInfo] | None
    ) -> list[int]:
        """Min-max scaling to 0..100 (all equal: all 0)."""
        if not scores:
            return scores
        low, high = min(scores), max(scores)
        diff = high - low
        if diff <= 0:
            return [0] * len(scores)
        return [int(MAX_NODE_SCORE * ((s - low) / diff)) for s in scores]
