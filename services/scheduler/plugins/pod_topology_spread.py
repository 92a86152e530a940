"""PodTopologySpread: DoNotSchedule constraints filter (placing the pod must
keep `matching pods in the node's domain + self - global minimum <= maxSkew`);
ScheduleAnyway constraints score (fewer matching pods in the domain score
higher, weighted by log(number of domains + 2)).

Eligible nodes are Kubernetes': they carry every constraint's topology key
and pass the node inclusion policies (nodeAffinityPolicy Honor, nodeTaints
Policy Ignore by default). Counts come from the snapshot's label groups
(non-terminating pods, the pod's namespace). Pods without constraints get
the system defaults (hostname maxSkew 3, zone maxSkew 5, ScheduleAnyway)
when a registered ReplicaSet/StatefulSet selector selects them. Per-node
scope. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from podmodel.pod import TopologySpreadConstraint
from podmodel.selector import LabelSelector, LabelSelectorRequirement, selector_matches

from services.scheduler.cluster_snapshot import (
    HOSTNAME_LABEL,
    ZONE_LABEL,
    ClusterSnapshot,
    LabelGroup,
    NodeInfo,
)
from services.scheduler.framework import (
    MAX_NODE_SCORE,
    Code,
    CycleState,
    Failure,
    FilterPlugin,
    Scope,
    ScorePlugin,
)
from services.scheduler.plugins.node_affinity import RequiredNodeAffinity
from services.scheduler.plugins.taint_toleration import find_untolerated
from services.scheduler.pod_info import PodInfo

NAME = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
_FAIL_SKEW = Failure(NAME, Code.UNSCHEDULABLE, ERR_REASON_CONSTRAINTS_NOT_MATCH)
_FAIL_LABEL = Failure(NAME, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_NODE_LABEL_NOT_MATCH)

DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
SYSTEM_DEFAULT_CONSTRAINTS = ((HOSTNAME_LABEL, 3), (ZONE_LABEL, 5))
"""The system defaulting of PodTopologySpreadArgs: (topologyKey, maxSkew)."""


@dataclass(frozen=True)
class Constraint:
    """A constraint with matchLabelKeys merged and policies defaulted."""

    max_skew: int
    topology_key: str
    selector: LabelSelector | None
    min_domains: int = 1
    honor_node_affinity: bool = True
    honor_taints: bool = False


def constraints_of(pod: PodInfo, action: str) -> list[Constraint]:
    """filterTopologySpreadConstraints for one whenUnsatisfiable action."""
    out: list[Constraint] = []
    for c in pod.pod.spec.topology_spread_constraints:
        if c.when_unsatisfiable != action:
            continue
        out.append(_constraint(c, pod))
    return out


def _constraint(c: TopologySpreadConstraint, pod: PodInfo) -> Constraint:
    selector = c.label_selector
    if selector is not None and c.match_label_keys:
        extra = [
            LabelSelectorRequirement(key=k, operator="In", values=[pod.labels[k]])
            for k in c.match_label_keys
            if k in pod.labels
        ]
        selector = LabelSelector(
            match_labels=dict(selector.match_labels),
            match_expressions=[*selector.match_expressions, *extra],
        )
    return Constraint(
        max_skew=c.max_skew,
        topology_key=c.topology_key,
        selector=selector,
        min_domains=c.min_domains if c.min_domains is not None else 1,
        honor_node_affinity=(c.node_affinity_policy or "Honor") == "Honor",
        honor_taints=(c.node_taints_policy or "Ignore") == "Honor",
    )


def default_constraints(pod: PodInfo, snapshot: ClusterSnapshot) -> list[Constraint]:
    """System default constraints, for a pod that a registered workload
    selects (helper.DefaultSelector); none when nothing selects it."""
    requirements: list[LabelSelectorRequirement] = []
    labels: dict[str, str] = {}
    for _, sel in snapshot.workload_selectors.get(pod.namespace, ()):
        if selector_matches(sel, pod.labels) and (sel.match_labels or sel.match_expressions):
            labels.update(sel.match_labels)
            requirements.extend(sel.match_expressions)
    if not labels and not requirements:
        return []
    selector = LabelSelector(match_labels=labels, match_expressions=requirements)
    return [Constraint(skew, key, selector) for key, skew in SYSTEM_DEFAULT_CONSTRAINTS]


def _matching_groups(snapshot: ClusterSnapshot, pod: PodInfo, c: Constraint) -> list[LabelGroup]:
    """Label groups of the pod's namespace that the constraint selects."""
    return [
        g
        for g in snapshot.label_groups.values()
        if g.namespace == pod.namespace and g.live and selector_matches(c.selector, g.labels)
    ]


def _has_all_keys(node: NodeInfo, constraints: Sequence[Constraint]) -> bool:
    labels = node.labels
    return all(c.topology_key in labels for c in constraints)


class _Eligibility:
    """Which nodes count for a constraint (keys present, inclusion policies)."""

    def __init__(self, pod: PodInfo, constraints: Sequence[Constraint], require_all: bool) -> None:
        self.pod = pod
        self.constraints = constraints
        self.require_all = require_all
        self.affinity = RequiredNodeAffinity.of(pod.pod)

    def node_ok(self, node: NodeInfo, c: Constraint) -> bool:
        if self.require_all and not _has_all_keys(node, self.constraints):
            return False
        if c.topology_key not in node.labels:
            return False
        if (
            c.honor_node_affinity
            and not self.affinity.empty
            and not self.affinity.matches(node.labels, node.name)
        ):
            return False
        return not (
            c.honor_taints and find_untolerated(node.static.filter_taints, self.pod.tolerations)
        )

    def everything_eligible(self, snapshot: ClusterSnapshot) -> bool:
        """Fast path: no policy excludes any node and every node has every key."""
        n = snapshot.num_nodes
        for c in self.constraints:
            if c.honor_node_affinity and not self.affinity.empty:
                return False
            if c.honor_taints and snapshot.has_taints:
                return False
            if snapshot.nodes_with_label(c.topology_key) != n:
                return False
        return True


@dataclass
class SpreadState:
    """preFilterState: per DoNotSchedule constraint, matching pods per domain
    value (sparse: absent = 0), the number of eligible domains, and the
    global minimum."""

    constraints: list[Constraint]
    counts: list[Counter[str]]
    domains: list[int]
    minimum: list[int]
    eligible: list[set[str] | None]
    self_match: list[bool] = field(default_factory=list)

    def clone(self) -> SpreadState:
        return SpreadState(
            self.constraints,
            [Counter(c) for c in self.counts],
            list(self.domains),
            list(self.minimum),
            self.eligible,
            self.self_match,
        )

    def recompute_minimum(self, i: int) -> None:
        counts = self.counts[i]
        if len(counts) < self.domains[i] or not counts:
            self.minimum[i] = 0
        else:
            self.minimum[i] = min(counts.values())

    def update_with_pod(self, pod: PodInfo, other: PodInfo, node: NodeInfo, sign: int) -> None:
        """preFilterState.updateWithPod (preemption's what-if runs)."""
        if other.terminating or other.namespace != pod.namespace:
            return
        for i, c in enumerate(self.constraints):
            tv = node.labels.get(c.topology_key)
            if tv is None or not selector_matches(c.selector, other.labels):
                continue
            eligible = self.eligible[i]
            if eligible is not None and tv not in eligible:
                continue
            self.counts[i][tv] += sign
            if self.counts[i][tv] <= 0:
                del self.counts[i][tv]
            self.recompute_minimum(i)


@dataclass
class SpreadScoreState:
    constraints: list[Constraint]
    groups: list[list[LabelGroup]]
    counts: list[Counter[str]]
    weights: list[float]
    ignored: set[str]


def _round_half_away(x: float) -> int:
    """Go's math.Round for the non-negative scores here."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


class PodTopologySpread(FilterPlugin, ScorePlugin):
    NAME = NAME

    # -------------------------------------------------------------- filter

    def pre_filter(self, cycle: CycleState) -> Scope | None:
        pod, snap = cycle.pod, cycle.snapshot
        if not pod.pod.spec.topology_spread_constraints:
            return None
        constraints = constraints_of(pod, DO_NOT_SCHEDULE)
        if not constraints:
            return None
        elig = _Eligibility(pod, constraints, require_all=True)
        fast = elig.everything_eligible(snap)
        counts: list[Counter[str]] = []
        domains: list[int] = []
        eligible_sets: list[set[str] | None] = []
        for c in constraints:
            key = c.topology_key
            cnt: Counter[str] = Counter()
            if fast:
                values = snap.label_nodes.get(key, Counter())
                domains.append(len(values))
                eligible_sets.append(None)
                for g in _matching_groups(snap, pod, c):
                    for node, n in g.live.items():
                        cnt[node.labels[key]] += n
            else:
                ok_nodes = {id(ni) for ni in snap.nodes if elig.node_ok(ni, c)}
                values_set = {ni.labels[key] for ni in snap.nodes if id(ni) in ok_nodes}
                domains.append(len(values_set))
                eligible_sets.append(values_set)
                for g in _matching_groups(snap, pod, c):
                    for node, n in g.live.items():
                        if id(node) in ok_nodes:
                            cnt[node.labels[key]] += n
            counts.append(cnt)
        state = SpreadState(
            constraints,
            counts,
            domains,
            [0] * len(constraints),
            eligible_sets,
            [selector_matches(c.selector, pod.labels) for c in constraints],
        )
        for i in range(len(constraints)):
            state.recompute_minimum(i)
        cycle.data[NAME] = state
        return Scope.NODE

    def filter_node(self, cycle: CycleState, node: NodeInfo) -> Failure | None:
        state: SpreadState = cycle.data[NAME]
        labels = node.labels
        for i, c in enumerate(state.constraints):
            tv = labels.get(c.topology_key)
            if tv is None:
                return _FAIL_LABEL
            minimum = 0 if state.domains[i] < c.min_domains else state.minimum[i]
            skew = state.counts[i].get(tv, 0) + state.self_match[i] - minimum
            if skew > c.max_skew:
                return _FAIL_SKEW
        return None

    def add_pod(self, cycle: CycleState, pod: PodInfo, node: NodeInfo) -> None:
        state: SpreadState | None = cycle.data.get(NAME)
        if state is not None:
            state.update_with_pod(cycle.pod, pod, node, +1)

    def remove_pod(self, cycle: CycleState, pod: PodInfo, node: NodeInfo) -> None:
        state: SpreadState | None = cycle.data.get(NAME)
        if state is not None:
            state.update_with_pod(cycle.pod, pod, node, -1)

    # -------------------------------------------------------------- score

    def pre_score(self, cycle: CycleState, feasible: Sequence[NodeInfo]) -> Scope | None:
        pod, snap = cycle.pod, cycle.snapshot
        if pod.pod.spec.topology_spread_constraints:
            constraints = constraints_of(pod, SCHEDULE_ANYWAY)
            require_all = True
        else:
            if not snap.workload_selectors:
                return None
            constraints = default_constraints(pod, snap)
            require_all = False
        if not constraints or not feasible:
            return None
        ignored: set[str] = set()
        domains: list[set[str]] = [set() for _ in constraints]
        for node in feasible:
            if require_all and not _has_all_keys(node, constraints):
                ignored.add(node.name)
                continue
            for i, c in enumerate(constraints):
                if c.topology_key != HOSTNAME_LABEL and c.topology_key in node.labels:
                    domains[i].add(node.labels[c.topology_key])
        weights = []
        for i, c in enumerate(constraints):
            size = (
                len(feasible) - len(ignored)
                if c.topology_key == HOSTNAME_LABEL
                else len(domains[i])
            )
            weights.append(math.log(size + 2))
        elig = _Eligibility(pod, constraints, require_all)
        groups = [_matching_groups(snap, pod, c) for c in constraints]
        counts: list[Counter[str]] = []
        for i, c in enumerate(constraints):
            cnt: Counter[str] = Counter()
            if c.topology_key != HOSTNAME_LABEL:
                for g in groups[i]:
                    for node, n in g.live.items():
                        tv = node.labels.get(c.topology_key)
                        if tv in domains[i] and elig.node_ok(node, c):
                            cnt[tv] += n
            counts.append(cnt)
        cycle.data[NAME + "/score"] = SpreadScoreState(
            constraints, groups, counts, weights, ignored
        )
        return Scope.NODE

    def score_node(self, cycle: CycleState, node: NodeInfo) -> int:
        state: SpreadScoreState = cycle.data[NAME + "/score"]
        score = 0.0
        for i, c in enumerate(state.constraints):
            tv = node.labels.get(c.topology_key)
            if tv is None:
                continue
            if c.topology_key == HOSTNAME_LABEL:
                cnt = sum(g.live.get(node, 0) for g in state.groups[i])
            else:
                cnt = state.counts[i].get(tv, 0)
            score += cnt * state.weights[i] + (c.max_skew - 1)
        return _round_half_away(score)

    def normalize(
        self, cycle: CycleState, scores: list[int], nodes: Sequence[NodeInfo] | None
    ) -> list[int]:
        state: SpreadScoreState = cycle.data[NAME + "/score"]
        ignored = (
            [n.name in state.ignored for n in nodes] if nodes is not None else [False] * len(scores)
        )
        valid = [s for s, skip in zip(scores, ignored, strict=True) if not skip]
        if not valid:
            return [0] * len(scores)
        low, high = min(valid), max(valid)
        out = []
        for s, skip in zip(scores, ignored, strict=True):
            if skip:
                out.append(0)
            elif high == 0:
                out.append(MAX_NODE_SCORE)
            else:
                out.append(MAX_NODE_SCORE * (high + low - s) // high)
        return out
