"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would
be used in equal shares after placing the pod (score = (1 - std) * 100 over
the requested/allocatable fractions). Skipped for pods that request neither
cpu nor memory, as Kubernetes does since 1.32. Depends on the node's
resource state only. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.scheduler.cluster_snapshot import NodeInfo, NodeResources
from services.scheduler.framework import MAX_NODE_SCORE, CycleState, Scope, ScorePlugin

NAME = "NodeResourcesBalancedAllocation"


def balanced_score(fractions: Sequence[float]) -> int:
    """balancedResourceScorer over the fractions of the resources offered."""
    capped = [min(f, 1.0) for f in fractions]
    if len(capped) == 2:
        std = abs(capped[0] - capped[1]) / 2
    elif len(capped) > 2:
        mean = sum(capped) / len(capped)
        std = (sum((f - mean) ** 2 for f in capped) / len(capped)) ** 0.5
    else:
        std = 0.0
    return int((1 - std) * MAX_NODE_SCORE)


class NodeResourcesBalancedAllocation(ScorePlugin):
    NAME = NAME

    def pre_score(self, cycle: CycleState, feasible: Sequence[NodeInfo]) -> Scope | None:
        pod = cycle.pod
        return Scope.RESOURCES if (pod.cpu or pod.memory) else None

    def score_resources(self, cycle: CycleState, res: NodeResources) -> int:
        pod = cycle.pod
        fractions = []
        if res.alloc_cpu:
            fractions.append((res.req_cpu + pod.cpu) / res.alloc_cpu)
        if res.alloc_memory:
            fractions.append((res.req_memory + pod.memory) / res.alloc_memory)
        return balanced_score(fractions)
