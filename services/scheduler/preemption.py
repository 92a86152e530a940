"""DefaultPreemption (PostFilter): when no node fits, find a node where
evicting strictly lower-priority pods makes room, and which pods to evict.

Kubernetes' rules (framework/preemption, plugins/defaultpreemption):

- not eligible: preemptionPolicy Never; or the pod already has a nominated
  node on which a lower-priority pod is still terminating;
- candidates: only nodes whose filter failure was Unschedulable (not
  UnschedulableAndUnresolvable), visited from a random offset, stopping
  after max(10% of them, 100) candidates;
- on a node: remove every lower-priority pod; if the pod still does not
  fit, the node is no candidate; else reprieve the victims back one by one,
  most important first (priority, then earlier start), keeping each that
  still leaves room;
- choice: fewest PDB violations (podbus has no PDBs: always 0), lowest
  highest-victim priority, lowest sum of priorities, fewest victims, latest
  start time of the highest-priority victims, then the first.

The result names the node to nominate, the victims to delete gracefully,
and lower-priority pods nominated to that node whose nomination must be
cleared. Pure: no I/O.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.scheduler.cluster_snapshot import NodeInfo
from services.scheduler.framework import Code, CycleState, Failure
from services.scheduler.messages import (
    NO_VICTIMS,
    NOT_ELIGIBLE_NEVER,
    NOT_ELIGIBLE_TERMINATING,
    PREEMPTION_NOT_HELPFUL,
    fit_error_message,
    preemption_message,
    reason_counts,
)
from services.scheduler.pod_info import PodInfo, more_important

if TYPE_CHECKING:
    from services.scheduler.scheduling_cycle import Diagnosis, FilterRunner

NAME = "DefaultPreemption"
MIN_CANDIDATE_NODES_PERCENTAGE = 10
MIN_CANDIDATE_NODES_ABSOLUTE = 100
_NO_VICTIMS = Failure(NAME, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, NO_VICTIMS)
_NOT_HELPFUL = Failure(NAME, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, PREEMPTION_NOT_HELPFUL)
_NOT_STARTED = "~"  # sorts after every RFC 3339 time: a pod not started yet counts as "now"


@dataclass
class Candidate:
    node: NodeInfo
    victims: list[PodInfo]
    pdb_violations: int = 0


@dataclass
class PreemptionResult:
    """`node_name` None: preemption cannot help (see `message`, already
    prefixed "preemption: " as kubectl shows it)."""

    node_name: str | None
    victims: list[PodInfo] = field(default_factory=list)
    message: str = ""
    clear_nominations: list[PodInfo] = field(default_factory=list)


def calculate_num_candidates(num_nodes: int) -> int:
    """calculateNumCandidates."""
    n = num_nodes * MIN_CANDIDATE_NODES_PERCENTAGE // 100
    return min(max(n, MIN_CANDIDATE_NODES_ABSOLUTE), num_nodes)


def eligible(cycle: CycleState, diagnosis: Diagnosis) -> str:
    """PodEligibleToPreemptOthers: "" when eligible, else why not."""
    pod = cycle.pod
    if pod.preemption_policy == "Never":
        return NOT_ELIGIBLE_NEVER
    nominated = pod.nominated_node_name
    if nominated:
        status = diagnosis.node_to_status.get(nominated)
        if status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            return ""
        node = cycle.snapshot.node(nominated)
        if node is not None:
            for p in node.pods.values():
                if p.priority < pod.priority and p.terminating:
                    return NOT_ELIGIBLE_TERMINATING
    return ""


def _importance(a: PodInfo, b: PodInfo) -> int:
    if more_important(a, b):
        return -1
    if more_important(b, a):
        return 1
    return 0


def select_victims_on_node(
    cycle: CycleState, runner: FilterRunner, node: NodeInfo
) -> tuple[list[PodInfo], Failure | None]:
    """SelectVictimsOnNode: the fewest, least important pods to evict so the
    pod fits, or the reason it cannot fit even with all of them gone."""
    pod = cycle.pod
    # Checked before cloning: on a cluster full of equal-priority pods every
    # node is visited, and most have nothing to evict.
    potential = [p for p in node.pods.values() if p.priority < pod.priority]
    if not potential:
        return [], _NO_VICTIMS
    state = cycle.clone()
    clone = node.clone()
    plugins = [p for _, p in runner.steps]
    for p in potential:
        clone.remove_pod(p)
        for plugin in plugins:
            plugin.remove_pod(state, p, clone)
    clone.refresh_resources()
    nominated = runner.nominated_for(node)
    failure = runner.run_with_nominated(state, clone, nominated)
    if failure is not None:
        return [], failure
    potential.sort(key=functools.cmp_to_key(_importance))
    victims: list[PodInfo] = []
    for p in potential:
        clone.add_pod(p)
        for plugin in plugins:
            plugin.add_pod(state, p, clone)
        clone.refresh_resources()
        if runner.run_with_nominated(state, clone, nominated) is not None:
            clone.remove_pod(p)
            for plugin in plugins:
                plugin.remove_pod(state, p, clone)
            clone.refresh_resources()
            victims.append(p)
    return victims, None


def _earliest_start_of_top(victims: Sequence[PodInfo]) -> str:
    """GetEarliestPodStartTime over the highest-priority victims."""
    top = max(v.priority for v in victims)
    return min((v.start_time or _NOT_STARTED) for v in victims if v.priority == top)


def pick_one_node(candidates: Sequence[Candidate]) -> Candidate:
    """pickOneNodeForPreemption: each rule keeps the best-scoring candidates
    and the next rule breaks their tie; then the first remaining."""
    rules: list[Callable[[Candidate], object]] = [
        lambda c: -c.pdb_violations,
        lambda c: -c.victims[0].priority,
        lambda c: -sum(v.priority + 2**31 for v in c.victims),
        lambda c: -len(c.victims),
        lambda c: _earliest_start_of_top(c.victims),
    ]
    remaining = list(candidates)
    for rule in rules:
        scored = [(rule(c), c) for c in remaining]
        best = max(s for s, _ in scored)  # type: ignore[type-var]
        remaining = [c for s, c in scored if s == best]
        if len(remaining) == 1:
            break
    return remaining[0]


def preempt(
    cycle: CycleState, runner: FilterRunner, diagnosis: Diagnosis, rng: random.Random
) -> PreemptionResult:
    """Evaluator.Preempt for the pod of `cycle` after its filters failed."""
    why_not = eligible(cycle, diagnosis)
    if why_not:
        return PreemptionResult(None, message=preemption_message(why_not))
    snap = cycle.snapshot
    n = snap.num_nodes
    absent = diagnosis.absent
    # nodesWherePreemptionMightHelp, short-cut: the failures are a handful of
    # shared constants, so when none is resolvable no node needs visiting.
    resolvable = any(f.code == Code.UNSCHEDULABLE for f in diagnosis.failure_counts())
    if not resolvable and not (
        absent is not None and absent.code == Code.UNSCHEDULABLE and diagnosis.num_failed < n
    ):
        msg = fit_error_message(n, {PREEMPTION_NOT_HELPFUL: n})
        return PreemptionResult(None, message=preemption_message(msg))
    statuses = diagnosis.node_to_status
    potential = [
        ni
        for ni in snap.nodes
        if (st := statuses.get(ni.name, absent)) is not None and st.code == Code.UNSCHEDULABLE
    ]
    if not potential:
        msg = fit_error_message(n, {PREEMPTION_NOT_HELPFUL: n})
        return PreemptionResult(None, message=preemption_message(msg))
    offset = rng.randrange(len(potential))
    wanted = calculate_num_candidates(len(potential))
    candidates: list[Candidate] = []
    failed: dict[str, Failure] = {}
    for i in range(len(potential)):
        node = potential[(offset + i) % len(potential)]
        victims, failure = select_victims_on_node(cycle, runner, node)
        if failure is None and victims:
            candidates.append(Candidate(node, victims))
            if len(candidates) >= wanted:
                break
        elif failure is not None:
            failed[node.name] = failure
    if not candidates:
        counts = reason_counts([(f, 1) for f in failed.values()])
        if n > len(failed):
            counts[_NOT_HELPFUL.reasons[0]] += n - len(failed)
        return PreemptionResult(None, message=preemption_message(fit_error_message(n, counts)))
    best = pick_one_node(candidates)
    pod = cycle.pod
    lower = [
        p
        for p in snap.nominated.get(best.node.name, {}).values()
        if p.priority < pod.priority and p.key != pod.key
    ]
    return PreemptionResult(best.node.name, best.victims, "", lower)
