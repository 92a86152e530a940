"""Pod priority: the built-in PriorityClasses and how a pod's priority is read.

Owns the rule the scheduler uses to order and preempt pods. Kubernetes'
priority admission copies the class value into `spec.priority`; podbus'
`apply_defaults` does the same for the two built-in classes, so a defaulted
pod already carries its number. A pod that skipped defaulting still names its
class, and this module resolves it the same way. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from podmodel.defaults import SYSTEM_PRIORITY_CLASSES
from podmodel.pod import Pod

SYSTEM_CLUSTER_CRITICAL = "system-cluster-critical"
SYSTEM_NODE_CRITICAL = "system-node-critical"
BUILTIN_PRIORITY_CLASSES: Mapping[str, int] = SYSTEM_PRIORITY_CLASSES
"""system-cluster-critical = 2000000000, system-node-critical = 2000001000."""

HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
"""scheduling.HighestUserDefinablePriority: user classes may not exceed it."""


def pod_priority(pod: Pod, classes: Mapping[str, int] = BUILTIN_PRIORITY_CLASSES) -> int:
    """corev1helpers.PodPriority: spec.priority when set (non-zero), else the
    value of the named class, else 0."""
    if pod.spec.priority:
        return pod.spec.priority
    return classes.get(pod.spec.priority_class_name, 0)
