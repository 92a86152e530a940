"""The node-lifecycle plan: leases, Unknown, taints, not-ready pods, eviction."""

from __future__ import annotations

from podmodel.defaults import apply_defaults
from podmodel.meta import ObjectMeta
from podmodel.node import Node, Taint
from podmodel.pod import Condition, Pod, Toleration

from services.workload_controller.logic.actions import (
    Action,
    DeletePod,
    EmitEvent,
    Requeue,
    UpdateObject,
    UpdateStatus,
)
from services.workload_controller.logic.node_lifecycle import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    NodeLifecycleTuning,
    plan_node_lifecycle,
    tolerates,
)
from tests.unit.workload_controller.sample_objects import NOW, later, pod, ts


def ready_node(name: str = "node-1") -> Node:
    node = Node(metadata=ObjectMeta(name=name, uid=f"uid-{name}", creation_timestamp=ts(-7200)))
    node.status.conditions = [
        Condition(
            type="Ready", status="True", reason="KubeletReady", last_transition_time=ts(-3600)
        )
    ]
    return node


def defaulted_pod(name: str, **kwargs: object) -> Pod:
    p = pod(name, **kwargs)  # type: ignore[arg-type]
    apply_defaults(p)
    return p


def node_status(actions: list[Action]) -> Node | None:
    for a in actions:
        if isinstance(a, UpdateStatus) and isinstance(a.obj, Node):
            return a.obj
    return None


def node_taints(actions: list[Action]) -> list[Taint] | None:
    for a in actions:
        if isinstance(a, UpdateObject) and isinstance(a.obj, Node):
            return a.obj.spec.taints
    return None


def test_fresh_lease_keeps_the_node_and_requeues_before_the_grace_period() -> None:
    actions = plan_node_lifecycle([ready_node()], {"node-1": ts(-10)}, [], NOW)
    assert actions == [Requeue(30.001)]


def test_stale_lease_makes_the_node_unknown_tainted_and_pods_not_ready() -> None:
    p = defaulted_pod("web-1", node="node-1")
    actions = plan_node_lifecycle([ready_node()], {"node-1": ts(-41)}, [p], NOW)
    node = node_status(actions)
    assert node is not None
    ready = node.status.condition("Ready")
    assert ready is not None and ready.status == "Unknown"
    assert ready.reason == "NodeStatusUnknown"
    assert ready.message == "Kubelet stopped posting node status."
    taints = node_taints(actions)
    assert taints is not None
    assert {(t.key, t.effect) for t in taints} == {
        (TAINT_UNREACHABLE, "NoSchedule"),
        (TAINT_UNREACHABLE, "NoExecute"),
    }
    pods = [a.obj for a in actions if isinstance(a, UpdateStatus) and isinstance(a.obj, Pod)]
    assert len(pods) == 1 and pods[0].status.condition("Ready").status == "False"  # type: ignore[union-attr]
    reasons = {a.reason for a in actions if isinstance(a, EmitEvent)}
    assert reasons == {"NodeNotReady"}
    assert not [a for a in actions if isinstance(a, DeletePod)]  # 300 s toleration


def test_grace_period_is_configurable() -> None:
    tuning = NodeLifecycleTuning(grace_period_s=5)
    actions = plan_node_lifecycle([ready_node()], {"node-1": ts(-6)}, [], NOW, tuning)
    assert node_status(actions) is not None


def test_never_renewed_node_reports_never_updated() -> None:
    node = ready_node()
    node.status.conditions = []
    actions = plan_node_lifecycle([node], {}, [], NOW)
    status = node_status(actions)
    assert status is not None
    ready = status.status.condition("Ready")
    assert ready is not None and ready.reason == "NodeStatusNeverUpdated"
    assert {c.type for c in status.status.conditions} >= {"Ready", "MemoryPressure"}


def tainted_node(added_ago: float, key: str = TAINT_UNREACHABLE, status: str = "Unknown") -> Node:
    node = ready_node()
    node.status.conditions[0].status = status
    node.spec.taints = [
        Taint(key=key, effect="NoSchedule"),
        Taint(key=key, effect="NoExecute", time_added=ts(-added_ago)),
    ]
    return node


def test_pod_is_evicted_after_its_toleration_seconds() -> None:
    p = defaulted_pod("web-1", node="node-1", ready=False)
    node = tainted_node(added_ago=100)
    actions = plan_node_lifecycle([node], {"node-1": ts(-200)}, [p], NOW)
    assert not [a for a in actions if isinstance(a, DeletePod)]
    (requeue,) = [a for a in actions if isinstance(a, Requeue)]
    assert 199 < requeue.after_s < 201

    actions = plan_node_lifecycle([node], {"node-1": ts(-200)}, [p], later(200))
    (evict,) = [a for a in actions if isinstance(a, DeletePod)]
    assert evict.name == "web-1" and evict.reason == "TaintManagerEviction"
    assert evict.event is not None and evict.event.reason == "TaintManagerEviction"
    assert evict.event.message == "Marking for deletion Pod default/web-1"


def test_pod_without_toleration_is_evicted_at_once_and_forever_tolerations_stay() -> None:
    node = tainted_node(added_ago=1)
    bare = pod("bare", node="node-1", ready=False)  # no default tolerations
    forever = pod("forever", node="node-1", ready=False)
    forever.spec.tolerations = [Toleration(operator="Exists", effect="NoExecute")]
    actions = plan_node_lifecycle([node], {"node-1": ts(-200)}, [bare, forever], NOW)
    assert [a.name for a in actions if isinstance(a, DeletePod)] == ["bare"]


def test_toleration_cap_shortens_eviction_for_tests() -> None:
    p = defaulted_pod("web-1", node="node-1", ready=False)
    node = tainted_node(added_ago=6)
    tuning = NodeLifecycleTuning(toleration_cap_s=5)
    actions = plan_node_lifecycle([node], {"node-1": ts(-200)}, [p], NOW, tuning)
    assert [a.name for a in actions if isinstance(a, DeletePod)] == ["web-1"]


def test_not_ready_node_gets_the_not_ready_taint() -> None:
    node = ready_node()
    node.status.conditions[0].status = "False"
    actions = plan_node_lifecycle([node], {"node-1": ts(-1)}, [], NOW)
    taints = node_taints(actions)
    assert taints is not None and {t.key for t in taints} == {TAINT_NOT_READY}


def test_returning_node_loses_its_taints() -> None:
    node = tainted_node(added_ago=50)
    node.status.conditions[0].status = "True"
    node.spec.taints.append(Taint(key="dedicated", value="gpu", effect="NoSchedule"))
    actions = plan_node_lifecycle([node], {"node-1": ts(-1)}, [], NOW)
    taints = node_taints(actions)
    assert taints == [Taint(key="dedicated", value="gpu", effect="NoSchedule")]


def test_taint_time_added_is_kept_across_syncs() -> None:
    node = tainted_node(added_ago=50)
    actions = plan_node_lifecycle([node], {"node-1": ts(-200)}, [], NOW)
    assert node_taints(actions) is None  # unchanged


def test_toleration_matching_rules() -> None:
    taint = Taint(key="k", value="v", effect="NoExecute")
    assert tolerates(Toleration(operator="Exists"), taint)
    assert tolerates(Toleration(key="k", operator="Exists", effect="NoExecute"), taint)
    assert tolerates(Toleration(key="k", value="v"), taint)
    assert not tolerates(Toleration(key="k", value="w"), taint)
    assert not tolerates(Toleration(key="k", operator="Exists", effect="NoSchedule"), taint)
