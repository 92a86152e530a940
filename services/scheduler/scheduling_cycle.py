"""One scheduling cycle: PreFilter, Filter over a round-robin window of
nodes, PostFilter (preemption) when nothing fits, PreScore, Score,
NormalizeScore, and the choice of the highest total with random ties.

Owns `schedule_one` and its result. Semantics are kube-scheduler's
(schedule_one.go):

- a nominated node (status.nominatedNodeName) is tried alone first;
- filters visit nodes from `snapshot.next_start_index` onwards and stop
  once `num_feasible_nodes_to_find` nodes fit (all nodes under 100; else
  max(5, 50 - nodes/125) percent, at least 100); the next cycle starts
  where this one stopped;
- nodes nominated for pods of equal or higher priority are filtered as if
  those pods were already there (and again without them);
- one feasible node is taken without scoring.

Speed: filters and scores whose plugin declares Scope.STATIC or
Scope.RESOURCES run once per node class (see cluster_snapshot); when no
plugin needs the node itself, the whole window is evaluated with C-level
`map` over dict caches, so a cycle over 5,000 nodes costs tens of
microseconds plus one evaluation per distinct class. Pure: no I/O, no clock;
randomness only from the injected `rng`.
"""

from __future__ import annotations

import operator
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import TYPE_CHECKING, TypeVar

from services.scheduler.cluster_snapshot import (
    STATIC_BITS,
    STATIC_MASK,
    ClusterSnapshot,
    NodeInfo,
    NodeResources,
    NodeStatic,
)
from services.scheduler.framework import (
    Code,
    CycleState,
    Failure,
    FilterPlugin,
    Profile,
    Scope,
    ScorePlugin,
)
from services.scheduler.messages import NO_NODES_REGISTERED, fit_error_message, reason_counts
from services.scheduler.pod_info import PodInfo

if TYPE_CHECKING:
    from services.scheduler.preemption import PreemptionResult

T = TypeVar("T")

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


def num_feasible_nodes_to_find(num_all_nodes: int, percentage: int = 0) -> int:
    """numFeasibleNodesToFind (adaptive when `percentage` is 0)."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage == 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    num = num_all_nodes * percentage // 100
    return max(num, MIN_FEASIBLE_NODES_TO_FIND)


# ------------------------------------------------------------------ results


class Diagnosis:
    """Why nodes were rejected: per node name the first failing plugin's
    Failure; `absent` applies to nodes never filtered (PreFilter rejection).

    Built from the filter walk's chunks (node names, per-node outcome); the
    per-name dict is made only when asked for (preemption, tests): the
    message and the queue's plugin set need only the counts per Failure,
    and Failures are shared constants, so counting is cheap."""

    def __init__(
        self,
        num_all_nodes: int,
        node_to_status: dict[str, Failure] | None = None,
        absent: Failure | None = None,
        pre_filter_msg: str = "",
        post_filter_msg: str = "",
        chunks: list[tuple[list[str], list[Failure | None]]] | None = None,
    ) -> None:
        self.num_all_nodes = num_all_nodes
        self.absent = absent
        self.pre_filter_msg = pre_filter_msg
        self.post_filter_msg = post_filter_msg
        self._chunks = chunks or []
        self._node_to_status = (
            node_to_status if node_to_status is not None else (None if chunks else {})
        )
        self._counts: Counter[Failure] | None = None

    @property
    def node_to_status(self) -> dict[str, Failure]:
        if self._node_to_status is None:
            out: dict[str, Failure] = {}
            for names, statuses in self._chunks:
                for name, st in zip(names, statuses, strict=True):
                    if st is not None:
                        out[name] = st
            self._node_to_status = out
        return self._node_to_status

    def failure_counts(self) -> Counter[Failure]:
        """How many nodes each Failure rejected (not counting `absent`)."""
        if self._counts is None:
            counts: Counter[Failure] = Counter()
            if self._node_to_status is not None:
                counts.update(self._node_to_status.values())
            else:
                with_passed: Counter[Failure | None] = Counter()
                for _, statuses in self._chunks:
                    with_passed.update(statuses)
                counts.update({f: n for f, n in with_passed.items() if f is not None})
            self._counts = counts
        return self._counts

    @property
    def num_failed(self) -> int:
        """Nodes with a recorded failure."""
        return sum(self.failure_counts().values())

    @property
    def unschedulable_plugins(self) -> frozenset[str]:
        """Plugins that rejected some node: the queue retries the pod on
        cluster events that matter to them."""
        plugins = {f.plugin for f in self.failure_counts()}
        if self.absent is not None:
            plugins.add(self.absent.plugin)
        return frozenset(p for p in plugins if p)

    def reason_counts(self) -> Counter[str]:
        counts = reason_counts(self.failure_counts())
        missing = self.num_all_nodes - self.num_failed
        if self.absent is not None and missing > 0:
            for reason in self.absent.reasons:
                counts[reason] += missing
        return counts

    def message(self) -> str:
        """The FailedScheduling message (FitError.Error())."""
        return fit_error_message(
            self.num_all_nodes, self.reason_counts(), self.pre_filter_msg, self.post_filter_msg
        )


@dataclass
class ScheduleResult:
    """What one cycle decided. `node_name` None: unschedulable (see
    `message`, `diagnosis`, `preemption`)."""

    node_name: str | None
    evaluated_nodes: int = 0
    feasible_nodes: int = 0
    total_score: int = 0
    scores: dict[str, int] = field(default_factory=dict)
    message: str = ""
    preemption: PreemptionResult | None = None
    filter_plugins: tuple[str, ...] = ()
    _chunks: list[tuple[list[str], list[Failure | None]]] = field(default_factory=list, repr=False)
    _diagnosis: Diagnosis | None = field(default=None, repr=False)

    @property
    def diagnosis(self) -> Diagnosis:
        """Per-node failure reasons of this cycle (built on first use)."""
        if self._diagnosis is None:
            self._diagnosis = Diagnosis(self.evaluated_nodes, chunks=self._chunks)
        return self._diagnosis

    def passed_per_plugin(self) -> dict[str, int]:
        """How many evaluated nodes passed each active filter plugin (for the
        trace span): a node that failed plugin P passed those before P."""
        failed_at: Counter[str] = Counter()
        for _, statuses in self._chunks:
            for failure, n in Counter(statuses).items():
                if failure is not None:
                    failed_at[failure.plugin] += n
        if self._diagnosis is not None and not self._chunks:
            for failure in self._diagnosis.node_to_status.values():
                failed_at[failure.plugin] += 1
        out: dict[str, int] = {}
        remaining = self.evaluated_nodes
        for name in self.filter_plugins:
            remaining -= failed_at.get(name, 0)
            out[name] = remaining
        return out


# ------------------------------------------------------------------ filter runner


class _ClassCache(dict[int, "Failure | None"]):
    """Filter outcome per static id or per resource id, computed on demand."""

    def __init__(self, compute: Callable[[int], Failure | None]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, key: int) -> Failure | None:
        value = self[key] = self._compute(key)
        return value


class FilterRunner:
    """The active filter plugins of one cycle, in profile order, with their
    scopes, and the class caches that answer for static and resource
    classes. `outcome(node)` is the first failure (or None) exactly as
    running every plugin in order on that node would give."""

    def __init__(self, cycle: CycleState, steps: list[tuple[Scope, FilterPlugin]]) -> None:
        self.cycle = cycle
        self.steps = steps
        self.order = {p.NAME: i for i, (_, p) in enumerate(steps)}
        self.static_plugins = [p for s, p in steps if s is Scope.STATIC]
        self.res_plugins = [p for s, p in steps if s is Scope.RESOURCES]
        self.node_steps = [(i, p) for i, (s, p) in enumerate(steps) if s is Scope.NODE]
        snap = cycle.snapshot
        self.static_cache = _ClassCache(lambda sid: self._static(snap.statics_by_id[sid]))
        self.res_cache = _ClassCache(lambda rid: self._res(snap.resources_by_id[rid]))
        self.class_cache = _ClassCache(self._class)

    def _static(self, static: NodeStatic) -> Failure | None:
        cycle = self.cycle
        for p in self.static_plugins:
            f = p.filter_static(cycle, static)
            if f is not None:
                return f
        return None

    def _res(self, res: NodeResources) -> Failure | None:
        cycle = self.cycle
        for p in self.res_plugins:
            f = p.filter_resources(cycle, res)
            if f is not None:
                return f
        return None

    def _class(self, key: int) -> Failure | None:
        fs = self.static_cache[key & STATIC_MASK]
        fr = self.res_cache[key >> STATIC_BITS]
        if fs is None:
            return fr
        if fr is None:
            return fs
        return fs if self.order[fs.plugin] < self.order[fr.plugin] else fr

    def outcome(self, node: NodeInfo, key: int) -> Failure | None:
        """Cached class outcome, then the node-scope plugins that run before
        the first class failure."""
        cs = self.class_cache[key]
        if not self.node_steps:
            return cs
        limit = self.order[cs.plugin] if cs is not None else len(self.steps)
        cycle = self.cycle
        for idx, p in self.node_steps:
            if idx > limit:
                break
            f = p.filter_node(cycle, node)
            if f is not None:
                return f
        return cs

    def run_direct(self, cycle: CycleState, node: NodeInfo) -> Failure | None:
        """Every plugin in order on `node` with no caching (clones, what-ifs)."""
        for scope, p in self.steps:
            if scope is Scope.STATIC:
                f = p.filter_static(cycle, node.static)
            elif scope is Scope.RESOURCES:
                f = p.filter_resources(cycle, node.res)
            else:
                f = p.filter_node(cycle, node)
            if f is not None:
                return f
        return None

    def nominated_for(self, node: NodeInfo) -> list[PodInfo]:
        """Pods nominated to `node` that this pod must leave room for."""
        pods = self.cycle.snapshot.nominated.get(node.name)
        if not pods:
            return []
        me = self.cycle.pod
        return [p for p in pods.values() if p.priority >= me.priority and p.key != me.key]

    def run_with_nominated(
        self, cycle: CycleState, node: NodeInfo, nominated: Sequence[PodInfo]
    ) -> Failure | None:
        """RunFilterPluginsWithNominatedPods: with the nominated pods added
        first; if that passes, once more without them."""
        if nominated:
            state = cycle.clone()
            clone = node.clone()
            for p in nominated:
                clone.add_pod(p)
                for _, plugin in self.steps:
                    plugin.add_pod(state, p, clone)
            clone.refresh_resources()
            f = self.run_direct(state, clone)
            if f is not None:
                return f
        return self.run_direct(cycle, node)


# ------------------------------------------------------------------ the cycle


def _rotated(seq: list[T], start: int, offset: int, count: int) -> list[T]:
    """seq[(start + offset) % n : ... + count] with wrap-around."""
    n = len(seq)
    a = start + offset
    if a >= n:
        a -= n
    b = a + count
    if b <= n:
        return seq[a:b]
    return seq[a:] + seq[: b - n]


def _rotated_range(n: int, start: int, offset: int, count: int) -> Sequence[int]:
    a = start + offset
    if a >= n:
        a -= n
    b = a + count
    if b <= n:
        return range(a, b)
    return [*range(a, n), *range(0, b - n)]


def _pre_filter(
    cycle: CycleState, profile: Profile
) -> tuple[list[tuple[Scope, FilterPlugin]], Failure | None]:
    steps: list[tuple[Scope, FilterPlugin]] = []
    for plugin in profile.filters:
        r = plugin.pre_filter(cycle)
        if r is None:
            continue
        if isinstance(r, Failure):
            return steps, r
        steps.append((r, plugin))
    return steps, None


def schedule_one(
    snapshot: ClusterSnapshot,
    pod: PodInfo,
    rng: random.Random,
    profile: Profile | None = None,
    *,
    preemption: bool = True,
) -> ScheduleResult:
    """Pick a node for `pod` (or explain why none fits and, when allowed,
    which pods to preempt). Only `snapshot.next_start_index` changes; the
    caller assumes the pod on the chosen node (`snapshot.assume_pod`)."""
    if profile is None:
        profile = _default_profile()
    n = snapshot.num_nodes
    if n == 0:
        return ScheduleResult(None, message=NO_NODES_REGISTERED)
    cycle = CycleState(pod, snapshot)
    steps, rejected = _pre_filter(cycle, profile)
    runner = FilterRunner(cycle, steps)
    names = tuple(p.NAME for _, p in steps)
    if rejected is not None:
        diag = Diagnosis(n, absent=rejected, pre_filter_msg=", ".join(rejected.reasons))
        result = ScheduleResult(None, filter_plugins=names, _diagnosis=diag)
        return _unschedulable(result, cycle, runner, rng, preemption)

    if pod.nominated_node_name:
        node = snapshot.node(pod.nominated_node_name)
        if (
            node is not None
            and runner.run_with_nominated(cycle, node, runner.nominated_for(node)) is None
        ):
            return ScheduleResult(node.name, 1, 1, filter_plugins=names)

    if cycle.node_names is not None:
        narrowed = _schedule_among(snapshot, cycle, runner, profile, rng, names)
        if narrowed is not None:
            return narrowed
        # none of them fits: the whole walk below says why, node by node

    to_find = num_feasible_nodes_to_find(n, profile.percentage_of_nodes_to_score)
    start = snapshot.next_start_index % n
    nominated_idx = _nominated_indices(snapshot, runner)
    if runner.node_steps or nominated_idx:
        feasible, chunks, processed = _filter_per_node(
            snapshot, runner, start, to_find, nominated_idx
        )
        feasible_keys = list(map(snapshot.class_keys.__getitem__, feasible))
    else:
        feasible, feasible_keys, chunks, processed = _filter_by_class(
            snapshot, runner, start, to_find
        )
    snapshot.next_start_index = (start + processed) % n

    result = ScheduleResult(
        None,
        evaluated_nodes=processed,
        feasible_nodes=len(feasible),
        filter_plugins=names,
        _chunks=chunks,
    )
    if not feasible:
        result._diagnosis = None
        result.evaluated_nodes = n
        return _unschedulable(result, cycle, runner, rng, preemption)
    if len(feasible) == 1:
        result.node_name = snapshot.names[feasible[0]]
        return result
    _score(result, cycle, profile, feasible, feasible_keys, rng)
    return result


def _schedule_among(
    snapshot: ClusterSnapshot,
    cycle: CycleState,
    runner: FilterRunner,
    profile: Profile,
    rng: random.Random,
    names: tuple[str, ...],
) -> ScheduleResult | None:
    """The cycle over the nodes a pre-filter narrowed it to (a DaemonSet
    pod: one node instead of every node); None when none of them fits."""
    assert cycle.node_names is not None
    candidates = [
        node for name in sorted(cycle.node_names) if (node := snapshot.node(name)) is not None
    ]
    feasible: list[int] = []
    for node in candidates:
        noms = runner.nominated_for(node) if snapshot.nominated else None
        f = (
            runner.run_with_nominated(cycle, node, noms)
            if noms
            else runner.outcome(node, snapshot.class_keys[node.index])
        )
        if f is None:
            feasible.append(node.index)
    if not feasible:
        return None
    result = ScheduleResult(
        None,
        evaluated_nodes=len(candidates),
        feasible_nodes=len(feasible),
        filter_plugins=names,
    )
    if len(feasible) == 1:
        result.node_name = snapshot.names[feasible[0]]
        return result
    keys = [snapshot.class_keys[i] for i in feasible]
    _score(result, cycle, profile, feasible, keys, rng)
    return result


def _nominated_indices(snapshot: ClusterSnapshot, runner: FilterRunner) -> dict[int, list[PodInfo]]:
    if not snapshot.nominated:
        return {}
    out: dict[int, list[PodInfo]] = {}
    for name in snapshot.nominated:
        node = snapshot.node(name)
        if node is not None:
            pods = runner.nominated_for(node)
            if pods:
                out[node.index] = pods
    return out


def _filter_by_class(
    snapshot: ClusterSnapshot, runner: FilterRunner, start: int, to_find: int
) -> tuple[list[int], list[int], list[tuple[list[str], list[Failure | None]]], int]:
    """The window walk when every active filter is class-scoped: C-level
    map over the class cache, chunk by chunk until enough nodes fit."""
    n = snapshot.num_nodes
    keys = snapshot.class_keys
    lookup = runner.class_cache.__getitem__
    feasible: list[int] = []
    feasible_keys: list[int] = []
    chunks: list[tuple[list[str], list[Failure | None]]] = []
    processed = 0
    while processed < n and len(feasible) < to_find:
        take = min(to_find - len(feasible), n - processed)
        chunk_keys = _rotated(keys, start, processed, take)
        statuses = list(map(lookup, chunk_keys))
        idx = _rotated_range(n, start, processed, take)
        if statuses.count(None) == take:
            feasible.extend(idx)
            feasible_keys.extend(chunk_keys)
        else:
            passed = list(map(operator.is_, statuses, repeat(None)))
            feasible.extend(compress(idx, passed))
            feasible_keys.extend(compress(chunk_keys, passed))
            chunks.append((_rotated(snapshot.names, start, processed, take), statuses))
        processed += take
    return feasible, feasible_keys, chunks, processed


def _filter_per_node(
    snapshot: ClusterSnapshot,
    runner: FilterRunner,
    start: int,
    to_find: int,
    nominated: dict[int, list[PodInfo]],
) -> tuple[list[int], list[tuple[list[str], list[Failure | None]]], int]:
    """The window walk when some filter needs each node (or some node has
    nominated pods to make room for)."""
    n = snapshot.num_nodes
    nodes, keys = snapshot.nodes, snapshot.class_keys
    outcome = runner.outcome
    cycle = runner.cycle
    feasible: list[int] = []
    fail_names: list[str] = []
    fails: list[Failure | None] = []
    processed = 0
    i = start
    while processed < n and len(feasible) < to_find:
        node = nodes[i]
        noms = nominated.get(i) if nominated else None
        f = runner.run_with_nominated(cycle, node, noms) if noms else outcome(node, keys[i])
        if f is None:
            feasible.append(i)
        else:
            fail_names.append(node.name)
            fails.append(f)
        processed += 1
        i += 1
        if i == n:
            i = 0
    chunks = [(fail_names, fails)] if fails else []
    return feasible, chunks, processed


def _unschedulable(
    result: ScheduleResult,
    cycle: CycleState,
    runner: FilterRunner,
    rng: random.Random,
    preemption: bool,
) -> ScheduleResult:
    diag = result.diagnosis
    diag.num_all_nodes = cycle.snapshot.num_nodes
    failed = diag.num_failed
    if diag.absent is None and failed < diag.num_all_nodes:
        diag.absent = Failure("", Code.UNSCHEDULABLE_AND_UNRESOLVABLE)
    result.evaluated_nodes = failed
    if preemption:
        from services.scheduler.preemption import preempt

        result.preemption = preempt(cycle, runner, diag, rng)
        diag.post_filter_msg = result.preemption.message
    result.message = diag.message()
    return result


def _score(
    result: ScheduleResult,
    cycle: CycleState,
    profile: Profile,
    feasible: list[int],
    keys: list[int],
    rng: random.Random,
) -> None:
    snap = cycle.snapshot
    feasible_nodes = _NodeList(snap.nodes, feasible)
    static_plugins: list[tuple[ScorePlugin, int]] = []
    res_plugins: list[tuple[ScorePlugin, int]] = []
    node_plugins: list[tuple[ScorePlugin, int]] = []
    for plugin, weight in profile.scores:
        scope = plugin.pre_score(cycle, feasible_nodes)
        if scope is Scope.STATIC:
            static_plugins.append((plugin, weight))
        elif scope is Scope.RESOURCES:
            res_plugins.append((plugin, weight))
        elif scope is Scope.NODE:
            node_plugins.append((plugin, weight))

    distinct = set(keys)
    class_total = dict.fromkeys(distinct, 0)
    per_plugin: dict[str, dict[int, int]] = {}
    for plugin, weight in static_plugins:
        sids = list({k & STATIC_MASK for k in distinct})
        raw = [plugin.score_static(cycle, snap.statics_by_id[i]) for i in sids]
        by_sid = _weighted(plugin, cycle, raw, sids, weight)
        per_plugin[plugin.NAME] = contribution = {k: by_sid[k & STATIC_MASK] for k in distinct}
        for k, v in contribution.items():
            class_total[k] += v
    for plugin, weight in res_plugins:
        rids = list({k >> STATIC_BITS for k in distinct})
        raw = [plugin.score_resources(cycle, snap.resources_by_id[i]) for i in rids]
        by_rid = _weighted(plugin, cycle, raw, rids, weight)
        per_plugin[plugin.NAME] = contribution = {k: by_rid[k >> STATIC_BITS] for k in distinct}
        for k, v in contribution.items():
            class_total[k] += v

    if node_plugins:
        totals = list(map(class_total.__getitem__, keys))
        node_scores: dict[str, list[int]] = {}
        for plugin, weight in node_plugins:
            raw = [plugin.score_node(cycle, node) for node in feasible_nodes]
            norm = plugin.normalize(cycle, raw, feasible_nodes) or raw
            weighted = [s * weight for s in norm]
            node_scores[plugin.NAME] = weighted
            totals = list(map(operator.add, totals, weighted))
        best = max(totals)
        candidates: Sequence[int] = [j for j, t in enumerate(totals) if t == best]
    else:
        node_scores = {}
        best = max(class_total.values())
        best_keys = {k for k, t in class_total.items() if t == best}
        candidates = _best_positions(keys, best_keys, len(best_keys) == len(class_total), rng)
    j = candidates[rng.randrange(len(candidates))] if len(candidates) > 1 else candidates[0]
    win_key = keys[j]
    result.node_name = snap.names[feasible[j]]
    result.total_score = best
    scores = {name: by_key[win_key] for name, by_key in per_plugin.items()}
    for name, values in node_scores.items():
        scores[name] = values[j]
    result.scores = scores


_SAMPLING_TRIES = 16


def _best_positions(
    keys: list[int], best_keys: set[int], all_best: bool, rng: random.Random
) -> Sequence[int]:
    """Positions to draw the winner from, uniformly: every position when all
    classes tie; else one position found by rejection sampling (uniform
    over the best positions, and cheap when they are not rare), falling back
    to listing them all."""
    n = len(keys)
    if all_best:
        return range(n)
    for _ in range(_SAMPLING_TRIES):
        j = rng.randrange(n)
        if keys[j] in best_keys:
            return (j,)
    return list(compress(range(n), map(best_keys.__contains__, keys)))


class _NodeList(Sequence[NodeInfo]):
    """The feasible nodes, materialised only if a plugin reads them."""

    def __init__(self, nodes: list[NodeInfo], indices: list[int]) -> None:
        self._nodes = nodes
        self._indices = indices
        self._list: list[NodeInfo] | None = None

    def _all(self) -> list[NodeInfo]:
        if self._list is None:
            self._list = list(map(self._nodes.__getitem__, self._indices))
        return self._list

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self._all()[i]

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self._all())


def _weighted(
    plugin: ScorePlugin, cycle: CycleState, raw: list[int], ids: list[int], weight: int
) -> dict[int, int]:
    """Normalise one plugin's raw class scores and apply its weight."""
    norm = plugin.normalize(cycle, raw, None) or raw
    return {i: s * weight for i, s in zip(ids, norm, strict=True)}


_DEFAULT: list[Profile] = []


def _default_profile() -> Profile:
    if not _DEFAULT:
        from services.scheduler.plugins import default_profile

        _DEFAULT.append(default_profile())
    return _DEFAULT[0]


__all__ = [
    "Diagnosis",
    "FilterRunner",
    "ScheduleResult",
    "num_feasible_nodes_to_find",
    "schedule_one",
]
