"""NodeResourcesFit: the pod's requests must fit what the node has left
(cpu, memory, ephemeral-storage, extended resources, and one more pod);
LeastAllocated scores the share of cpu and memory left after placing it.

Both depend only on the node's interned resource state, so they run once
per distinct state per cycle. Reasons, codes and integer arithmetic are
Kubernetes' (fit.go, least_allocated.go): a request larger than the node's
whole allocatable is unresolvable (preemption cannot help). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.scheduler.cluster_snapshot import NodeInfo, NodeResources
from services.scheduler.framework import (
    MAX_NODE_SCORE,
    Code,
    CycleState,
    Failure,
    FilterPlugin,
    Scope,
    ScorePlugin,
)
from services.scheduler.pod_info import PodInfo

NAME = "NodeResourcesFit"


def insufficient(pod: PodInfo, res: NodeResources) -> tuple[tuple[str, ...], bool]:
    """fitsRequest: the reasons the pod does not fit, and whether any is
    unresolvable (the request exceeds the node's allocatable)."""
    reasons: list[str] = []
    unresolvable = False
    if res.pod_count + 1 > res.alloc_pods:
        reasons.append("Too many pods")
    if pod.requests_nothing:
        return tuple(reasons), unresolvable
    if pod.cpu > 0 and pod.cpu > res.alloc_cpu - res.req_cpu:
        reasons.append("Insufficient cpu")
        unresolvable |= pod.cpu > res.alloc_cpu
    if pod.memory > 0 and pod.memory > res.alloc_memory - res.req_memory:
        reasons.append("Insufficient memory")
        unresolvable |= pod.memory > res.alloc_memory
    if (
        pod.ephemeral_storage > 0
        and pod.ephemeral_storage > res.alloc_ephemeral - res.req_ephemeral
    ):
        reasons.append("Insufficient ephemeral-storage")
        unresolvable |= pod.ephemeral_storage > res.alloc_ephemeral
    for name, value in pod.scalars:
        alloc = res.alloc_scalars.get(name, 0)
        if value > alloc - res.req_scalars.get(name, 0):
            reasons.append(f"Insufficient {name}")
            unresolvable |= value > alloc
    return tuple(reasons), unresolvable


def least_requested_score(requested: int, capacity: int) -> int:
    """leastRequestedScore: the share left free, 0..100."""
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class NodeResourcesFit(FilterPlugin, ScorePlugin):
    NAME = NAME

    def __init__(self) -> None:
        self._failures: dict[tuple[tuple[str, ...], bool], Failure] = {}

    def pre_filter(self, cycle: CycleState) -> Scope:
        return Scope.RESOURCES

    def filter_resources(self, cycle: CycleState, res: NodeResources) -> Failure | None:
        pod = cycle.pod
        # The common case first: room for one more pod and everything requested.
        if (
            res.pod_count < res.alloc_pods
            and pod.cpu <= res.alloc_cpu - res.req_cpu
            and pod.memory <= res.alloc_memory - res.req_memory
            and pod.ephemeral_storage <= res.alloc_ephemeral - res.req_ephemeral
            and not pod.scalars
        ):
            return None
        reasons, unresolvable = insufficient(pod, res)
        if not reasons:
            return None
        key = (reasons, unresolvable)
        failure = self._failures.get(key)
        if failure is None:
            code = Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE
            failure = self._failures[key] = Failure(NAME, code, *reasons)
        return failure

    def pre_score(self, cycle: CycleState, feasible: Sequence[NodeInfo]) -> Scope:
        return Scope.RESOURCES

    def score_resources(self, cycle: CycleState, res: NodeResources) -> int:
        """LeastAllocated over cpu and memory (weight 1 each), on non-zero
        requests; a resource the node does not offer is left out."""
        pod = cycle.pod
        total = weights = 0
        if res.alloc_cpu:
            total += least_requested_score(res.nonzero_cpu + pod.nonzero_cpu, res.alloc_cpu)
            weights += 1
        if res.alloc_memory:
            total += least_requested_score(
                res.nonzero_memory + pod.nonzero_memory, res.alloc_memory
            )
            weights += 1
        return total // weights if weights else 0
