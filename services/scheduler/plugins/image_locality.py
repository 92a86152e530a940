"""ImageLocality: prefer nodes that already hold the pod's images, weighted
by image size and by how widely the image is spread over the cluster (an
image on every node is no reason to pick one). Kubernetes' thresholds:
23 MiB minimum, 1000 MiB per container maximum. Skipped when no node holds
any of the pod's images (every score would be 0). Static class only.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.scheduler.cluster_snapshot import NodeInfo, NodeStatic
from services.scheduler.framework import MAX_NODE_SCORE, CycleState, Scope, ScorePlugin

NAME = "ImageLocality"
MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    """calculatePriority: clamp the summed image score and scale to 0..100."""
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    sum_scores = max(MIN_THRESHOLD, min(sum_scores, max_threshold))
    if max_threshold == MIN_THRESHOLD:
        return 0
    return MAX_NODE_SCORE * (sum_scores - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)


class ImageLocality(ScorePlugin):
    NAME = NAME

    def pre_score(self, cycle: CycleState, feasible: Sequence[NodeInfo]) -> Scope | None:
        held = cycle.snapshot.image_nodes
        if not any(image in held for image in cycle.pod.images):
            return None
        return Scope.STATIC

    def score_static(self, cycle: CycleState, static: NodeStatic) -> int:
        snap = cycle.snapshot
        total_nodes = snap.num_nodes
        total = 0
        for image in cycle.pod.images:
            size = static.images.get(image)
            if size is not None:
                total += int(size * (snap.image_nodes[image] / total_nodes))
        spec = cycle.pod.pod.spec
        return calculate_priority(total, len(spec.init_containers) + len(spec.containers))
