"""The default plugin set and its order, as kube-scheduler's default
profile (v1 KubeSchedulerConfiguration) enables them.

Filters run in this order and stop at the first failure; scores are
weighted: TaintToleration 3, NodeAffinity 2, NodeResourcesFit 1,
PodTopologySpread 2, InterPodAffinity 2, NodeResourcesBalancedAllocation 1,
ImageLocality 1. Pure: no I/O.
"""

from __future__ import annotations

from services.scheduler.framework import Profile
from services.scheduler.plugins.image_locality import ImageLocality
from services.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from services.scheduler.plugins.node_affinity import NodeAffinity
from services.scheduler.plugins.node_name import NodeName
from services.scheduler.plugins.node_ports import NodePorts
from services.scheduler.plugins.node_resources_balanced import NodeResourcesBalancedAllocation
from services.scheduler.plugins.node_resources_fit import NodeResourcesFit
from services.scheduler.plugins.node_unschedulable import NodeUnschedulable
from services.scheduler.plugins.pod_topology_spread import PodTopologySpread
from services.scheduler.plugins.taint_toleration import TaintToleration


def default_profile(percentage_of_nodes_to_score: int = 0) -> Profile:
    """A fresh default profile (plugins keep small per-instance caches)."""
    taint = TaintToleration()
    affinity = NodeAffinity()
    fit = NodeResourcesFit()
    spread = PodTopologySpread()
    inter = InterPodAffinity()
    return Profile(
        filters=(
            NodeUnschedulable(),
            NodeName(),
            taint,
            affinity,
            NodePorts(),
            fit,
            spread,
            inter,
        ),
        scores=(
            (taint, 3),
            (affinity, 2),
            (fit, 1),
            (spread, 2),
            (inter, 2),
            (NodeResourcesBalancedAllocation(), 1),
            (ImageLocality(), 1),
        ),
        percentage_of_nodes_to_score=percentage_of_nodes_to_score,
    )


__all__ = ["default_profile"]
