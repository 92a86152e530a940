"""NodeName: a pod that names its node (spec.nodeName) fits only there.
Skipped for every pod that names none, which is every pod the scheduler
normally sees. Pure: no I/O.
"""

from __future__ import annotations

from services.scheduler.cluster_snapshot import NodeInfo
from services.scheduler.framework import Code, CycleState, Failure, FilterPlugin, Scope

NAME = "NodeName"
ERR_REASON = "node(s) didn't match the requested node name"
_FAILURE = Failure(NAME, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)


class NodeName(FilterPlugin):
    NAME = NAME

    def pre_filter(self, cycle: CycleState) -> Scope | None:
        return Scope.NODE if cycle.pod.pod.spec.node_name else None

    def filter_node(self, cycle: CycleState, node: NodeInfo) -> Failure | None:
        return None if node.name == cycle.pod.pod.spec.node_name else _FAILURE
