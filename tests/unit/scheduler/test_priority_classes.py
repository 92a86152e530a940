"""Pod priority from spec.priority or the built-in classes."""

from __future__ import annotations

from services.scheduler.priority_classes import (
    BUILTIN_PRIORITY_CLASSES,
    SYSTEM_CLUSTER_CRITICAL,
    SYSTEM_NODE_CRITICAL,
    pod_priority,
)
from tests.unit.scheduler.builders import pod


def test_builtin_classes_have_kubernetes_values() -> None:
    assert BUILTIN_PRIORITY_CLASSES[SYSTEM_CLUSTER_CRITICAL] == 2000000000
    assert BUILTIN_PRIORITY_CLASSES[SYSTEM_NODE_CRITICAL] == 2000001000


def test_spec_priority_wins_over_the_class_name() -> None:
    p = pod(priority=7)
    p.spec.priority_class_name = SYSTEM_CLUSTER_CRITICAL
    assert pod_priority(p) == 7


def test_unknown_class_and_no_priority_is_zero() -> None:
    p = pod()
    p.spec.priority_class_name = "nope"
    assert pod_priority(p) == 0
    assert pod_priority(p, {"nope": 5}) == 5
