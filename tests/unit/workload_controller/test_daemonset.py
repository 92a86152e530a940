"""The DaemonSet plan: which nodes get a daemon pod (selectors, affinity,
taints with the daemon tolerations), pinning through matchFields, extra and
misplaced pods, failed pods replaced, the rolling update's budget, and the
status counts."""

from __future__ import annotations

import random
from typing import Any

from podmodel.codec import ErrorReply
from podmodel.meta import ObjectMeta
from podmodel.node import Node, NodeSpec, Taint
from podmodel.pod import Pod
from podmodel.workloads import DaemonSet

from services.workload_controller.api import prepare_object
from services.workload_controller.logic.actions import CreatePod, DeletePod, UpdateStatus
from services.workload_controller.logic.daemonset import (
    REVISION_LABEL,
    node_should_run,
    plan_daemonset,
    target_node,
)
from services.workload_controller.logic.pod_template import compute_hash
from tests.integration.test_wc_daemonset import daemon_set as daemon_set_manifest
from tests.integration.test_wc_harness import prepared
from tests.unit.workload_controller.sample_objects import later, owner_ref, pod

NOW = later(0)


def daemon_set(**spec: Any) -> DaemonSet:
    raw = daemon_set_manifest()
    raw["spec"].update(spec)
    ds = prepared(raw)
    assert isinstance(ds, DaemonSet)
    ds.metadata.uid = "ds-uid"
    ds.metadata.generation = 1
    return ds


def node(
    name: str, labels: dict[str, str] | None = None, taints: list[Taint] | None = None
) -> Node:
    return Node(
        metadata=ObjectMeta(name=name, labels=labels or {}), spec=NodeSpec(taints=taints or [])
    )


def daemon_pod(ds: DaemonSet, name: str, on: str, *, current: bool = True, **kw: Any) -> Pod:
    revision = compute_hash(ds.spec.template, None) if current else "old"
    return pod(
        name,
        owner=owner_ref("DaemonSet", "agent", ds.metadata.uid),
        labels={"app": "agent", REVISION_LABEL: revision},
        node=on,
        **kw,
    )


def creates(actions: list[Any]) -> list[Pod]:
    return [a.pod for a in actions if isinstance(a, CreatePod)]


def deleted(actions: list[Any]) -> list[str]:
    return [a.name for a in actions if isinstance(a, DeletePod)]


def status(actions: list[Any]) -> Any:
    return next(a.obj.status for a in actions if isinstance(a, UpdateStatus))


def test_one_pinned_pod_per_eligible_node() -> None:
    ds = daemon_set()
    ds.spec.template.spec.node_selector = {"disk": "ssd"}
    nodes = [
        node("n1", {"disk": "ssd"}),
        node("n2", {"disk": "ssd"}, [Taint(key="dedicated", value="gpu", effect="NoSchedule")]),
        node("n3", {"disk": "hdd"}),
        node("n4", {"disk": "ssd"}, [Taint(key="node.kubernetes.io/unreachable", effect="NoExecute")]),
    ]  # fmt: skip
    actions = plan_daemonset(ds, nodes, [], NOW, random.Random(1))
    made = creates(actions)
    assert sorted(target_node(p) for p in made) == ["n1", "n4"]
    p = made[0]
    assert p.metadata.labels[REVISION_LABEL] == compute_hash(ds.spec.template, None)
    assert p.metadata.generate_name == "agent-" and not p.spec.node_name
    tol = {(t.key, t.effect, t.toleration_seconds) for t in p.spec.tolerations}
    assert ("node.kubernetes.io/unreachable", "NoExecute", None) in tol
    assert ("node.kubernetes.io/unschedulable", "NoSchedule", None) in tol
    assert not any(t.toleration_seconds for t in p.spec.tolerations)  # the 300 s ones replaced
    st = status(actions)
    assert (st.desired_number_scheduled, st.current_number_scheduled) == (2, 0)


def test_taints_decide_run_and_keep() -> None:
    ds = daemon_set()
    no_schedule = node("a", taints=[Taint(key="x", effect="NoSchedule")])
    no_execute = node("b", taints=[Taint(key="x", effect="NoExecute")])
    prefer = node("c", taints=[Taint(key="x", effect="PreferNoSchedule")])
    assert node_should_run(ds, no_schedule) == (False, True)
    assert node_should_run(ds, no_execute) == (False, False)
    assert node_should_run(ds, prefer) == (True, True)


def test_extras_misplaced_failed_and_stranded_pods_go() -> None:
    ds = daemon_set()
    ds.spec.template.spec.node_selector = {"role": "edge"}
    pods = [
        daemon_pod(ds, "keep", "n1", created=-100),
        daemon_pod(ds, "extra", "n1", created=-10),
        daemon_pod(ds, "misplaced", "n2"),
        daemon_pod(ds, "stranded", "gone-node"),
        daemon_pod(ds, "failed", "n1", phase="Failed"),
    ]
    nodes = [node("n1", {"role": "edge"}), node("n2", {"role": "core"})]
    actions = plan_daemonset(ds, nodes, pods, NOW, random.Random(1))
    assert sorted(deleted(actions)) == ["extra", "failed", "misplaced", "stranded"]
    assert creates(actions) == []
    st = status(actions)
    assert (st.desired_number_scheduled, st.current_number_scheduled) == (1, 1)
    assert (st.number_misscheduled, st.number_ready, st.updated_number_scheduled) == (1, 1, 1)


def test_rolling_update_replaces_unavailable_at_once_and_available_within_budget() -> None:
    ds = daemon_set()
    nodes = [node(f"n{i}") for i in range(4)]
    pods = [
        daemon_pod(ds, "old-ready-0", "n0", current=False),
        daemon_pod(ds, "old-ready-1", "n1", current=False),
        daemon_pod(ds, "old-broken", "n2", current=False, ready=False),
        daemon_pod(ds, "new", "n3"),
    ]
    actions = plan_daemonset(ds, nodes, pods, NOW, random.Random(1))
    # maxUnavailable 1: the broken one already uses the budget
    assert deleted(actions) == ["old-broken"]
    ds.spec.update_strategy.rolling_update.max_unavailable = "50%"  # type: ignore[union-attr]
    actions = plan_daemonset(ds, nodes, pods, NOW, random.Random(1))
    assert deleted(actions) == ["old-ready-0", "old-broken"]
    st = status(actions)
    assert (st.updated_number_scheduled, st.number_available, st.number_unavailable) == (1, 3, 1)
    ds.spec.update_strategy.type = "OnDelete"
    assert deleted(plan_daemonset(ds, nodes, pods, NOW, random.Random(1))) == []


def test_a_daemon_set_being_deleted_creates_nothing() -> None:
    ds = daemon_set()
    ds.metadata.deletion_timestamp = "2026-01-01T00:00:00Z"
    assert creates(plan_daemonset(ds, [node("n1")], [], NOW, random.Random(1))) == []


def surging() -> DaemonSet:
    return daemon_set(
        updateStrategy={"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    )  # fmt: skip


def test_surge_brings_the_new_pod_before_the_old_one_goes() -> None:
    ds = surging()
    nodes = [node("n0"), node("n1"), node("n2")]
    old = [daemon_pod(ds, f"old-{i}", f"n{i}", current=False) for i in range(3)]
    actions = plan_daemonset(ds, nodes, old, NOW, random.Random(1))
    assert deleted(actions) == []  # nothing goes first
    assert [target_node(p) for p in creates(actions)] == ["n0"]  # maxSurge 1
    # n0 has both; the new one not yet available: nothing more (surge used)
    fresh = daemon_pod(ds, "new-0", "n0", ready=False)
    actions = plan_daemonset(ds, nodes, [*old, fresh], NOW, random.Random(1))
    assert deleted(actions) == [] and creates(actions) == []
    # the new one available: its old pod goes, and the next node surges
    fresh = daemon_pod(ds, "new-0", "n0")
    actions = plan_daemonset(ds, nodes, [*old, fresh], NOW, random.Random(1))
    assert deleted(actions) == ["old-0"]
    assert creates(actions) == []  # n0 still counts toward surge until old-0 is gone
    actions = plan_daemonset(ds, nodes, [fresh, *old[1:]], NOW, random.Random(1))
    assert [target_node(p) for p in creates(actions)] == ["n1"]


def test_surge_replaces_an_unavailable_old_pod_at_once_without_surge() -> None:
    ds = surging()
    nodes = [node("n0"), node("n1")]
    pods = [
        daemon_pod(ds, "old-broken", "n0", current=False, ready=False),
        daemon_pod(ds, "old-ok", "n1", current=False),
    ]
    actions = plan_daemonset(ds, nodes, pods, NOW, random.Random(1))
    assert sorted(target_node(p) for p in creates(actions)) == ["n0", "n1"]
    assert deleted(actions) == []


def test_surge_and_unavailable_may_not_both_be_set() -> None:
    raw = daemon_set_manifest()
    raw["spec"]["updateStrategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
    }
    reply = prepare_object(raw)
    assert isinstance(reply, ErrorReply)
    assert [(e.field, e.message) for e in reply.details] == [
        (
            "spec.updateStrategy.rollingUpdate.maxSurge",
            "Invalid value: 1: may not be set when maxUnavailable is non-zero",
        )
    ]
