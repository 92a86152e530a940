"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods
that tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.
Depends on the node's static class only. Pure: no I/O.
"""

from __future__ import annotations

from podmodel.node import Taint

from services.scheduler.cluster_snapshot import NodeStatic
from services.scheduler.framework import Code, CycleState, Failure, FilterPlugin, Scope
from services.scheduler.plugins.taint_toleration import tolerations_tolerate

NAME = "NodeUnschedulable"
UNSCHEDULABLE_TAINT = Taint(key="node.kubernetes.io/unschedulable", effect="NoSchedule")
ERR_REASON_UNSCHEDULABLE = "node(s) were unschedulable"
_FAILURE = Failure(NAME, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_UNSCHEDULABLE)


class NodeUnschedulable(FilterPlugin):
    NAME = NAME

    def pre_filter(self, cycle: CycleState) -> Scope | None:
        if tolerations_tolerate(cycle.pod.tolerations, UNSCHEDULABLE_TAINT):
            return None  # tolerates every cordoned node
        return Scope.STATIC

    def filter_static(self, cycle: CycleState, static: NodeStatic) -> Failure | None:
        return _FAILURE if static.unschedulable else None
