"""NodePorts: a pod's hostPorts must be free on the node (same protocol and
port on the same host IP, where 0.0.0.0 overlaps every IP). Skipped for
pods without hostPorts; per node otherwise. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.scheduler.cluster_snapshot import NodeInfo
from services.scheduler.framework import Code, CycleState, Failure, FilterPlugin, Scope
from services.scheduler.pod_info import HostPort

NAME = "NodePorts"
ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
_FAILURE = Failure(NAME, Code.UNSCHEDULABLE, ERR_REASON)
ANY_IP = "0.0.0.0"


def port_conflicts(used: Mapping[HostPort, int], wanted: HostPort) -> bool:
    """HostPortInfo.CheckConflict."""
    ip, protocol, port = wanted
    if ip == ANY_IP:
        return any(p == port and proto == protocol for (_, proto, p) in used)
    return (ip, protocol, port) in used or (ANY_IP, protocol, port) in used


class NodePorts(FilterPlugin):
    NAME = NAME

    def pre_filter(self, cycle: CycleState) -> Scope | None:
        return Scope.NODE if cycle.pod.host_ports else None

    def filter_node(self, cycle: CycleState, node: NodeInfo) -> Failure | None:
        used = node.used_ports
        if not used:
            return None
        for wanted in cycle.pod.host_ports:
            if port_conflicts(used, wanted):
                return _FAILURE
        return None
