"""The node-lifecycle plan: from the node-agents' leases decide which nodes
are unreachable, taint them, mark their pods not ready and evict pods whose
toleration ran out. Follows pkg/controller/nodelifecycle
(monitorNodeHealth, doNoScheduleTaintingPass, doNoExecuteTaintingPass) and
pkg/controller/tainteviction.

Owns `plan_node_lifecycle`. Pure: nodes, lease renew times, pods and `now`
in, actions out. The driver runs it periodically (Kubernetes checks every
5 s) and whenever a lease or node changes; the returned Requeue says when
the next deadline falls.

- A node whose lease was last renewed more than the grace period ago
  (default 40 s) gets Ready, MemoryPressure, DiskPressure and PIDPressure
  Unknown (NodeStatusUnknown, "Kubelet stopped posting node status."; a node
  that never renewed: NodeStatusNeverUpdated, "Kubelet never posted node
  status."), a NodeNotReady event, and its pods Ready=False.
- Taints follow the Ready condition: Unknown -> node.kubernetes.io/unreachable,
  False -> node.kubernetes.io/not-ready, each as NoSchedule and NoExecute
  (with timeAdded); True -> both removed (the node is back).
- A pod on a node with a NoExecute taint it does not tolerate is evicted at
  once; one that tolerates it for N seconds (default 300, added to every pod
  by DefaultTolerationSeconds) is evicted N seconds after the taint was
  added (TaintManagerEviction). `toleration_cap_s` shortens every such
  toleration, for tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from podmodel.node import Node, Taint
from podmodel.pod import Condition, Pod, Toleration

from services.workload_controller.logic.actions import (
    Action,
    DeletePod,
    Requeue,
    UpdateObject,
    UpdateStatus,
    event,
    merge_requeues,
)
from services.workload_controller.logic.pod_state import is_ready, is_terminal
from services.workload_controller.logic.snapshots import clone
from services.workload_controller.logic.timestamps import format_time, parse_time

TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
NODE_CONDITION_TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


@dataclass(frozen=True)
class NodeLifecycleTuning:
    """grace_period_s: lease age after which a node is unreachable
    (nodeMonitorGracePeriod, 40 s). toleration_cap_s: if set, no pod
    tolerates the unreachable / not-ready taints longer than this."""

    grace_period_s: float = 40.0
    toleration_cap_s: float | None = None


DEFAULT_TUNING = NodeLifecycleTuning()


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """ToleratesTaint: effect empty or equal; key empty with Exists matches
    every taint; otherwise the key must match and, for Equal, the value."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.operator == "Exists":
        return not toleration.key or toleration.key == taint.key
    if toleration.key != taint.key:
        return False
    return toleration.value == taint.value


def _toleration_seconds(pod: Pod, taints: list[Taint], cap: float | None) -> float | None:
    """How long `pod` may stay with these NoExecute taints: 0 if one is not
    tolerated, None if tolerated forever, else the shortest matching
    tolerationSeconds (getMinTolerationTime)."""
    shortest: float | None = None
    for taint in taints:
        matching = [t for t in pod.spec.tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        for t in matching:
            if t.toleration_seconds is None:
                continue  # tolerates forever; only bounded tolerations limit the stay
            seconds = max(0.0, float(t.toleration_seconds))
            if cap is not None and taint.key in (TAINT_UNREACHABLE, TAINT_NOT_READY):
                seconds = min(seconds, cap)
            shortest = seconds if shortest is None else min(shortest, seconds)
    return shortest


def _set_unknown(node: Node, never: bool, now: datetime) -> bool:
    """Every node condition Unknown; returns whether Ready changed from True."""
    stamp = format_time(now)
    was_ready = False
    conditions = node.status.conditions
    for type_ in NODE_CONDITION_TYPES:
        current = next((c for c in conditions if c.type == type_), None)
        if current is None:
            conditions.append(
                Condition(
                    type=type_,
                    status="Unknown",
                    reason="NodeStatusNeverUpdated",
                    message="Kubelet never posted node status.",
                    last_transition_time=stamp,
                    last_probe_time=stamp,
                )
            )
        elif current.status != "Unknown":
            if type_ == "Ready" and current.status == "True":
                was_ready = True
            current.status = "Unknown"
            current.reason = "NodeStatusNeverUpdated" if never else "NodeStatusUnknown"
            current.message = (
                "Kubelet never posted node status."
                if never
                else "Kubelet stopped posting node status."
            )
            current.last_transition_time = stamp
    return was_ready


def _want_taints(node: Node, ready: str, now: datetime) -> list[Taint]:
    """The node's taints with the unreachable / not-ready ones set for `ready`
    (keeping timeAdded of taints already there)."""
    keep = [t for t in node.spec.taints if t.key not in (TAINT_UNREACHABLE, TAINT_NOT_READY)]
    key = {"Unknown": TAINT_UNREACHABLE, "False": TAINT_NOT_READY}.get(ready)
    if key is None:
        return keep
    existing = {(t.key, t.effect): t for t in node.spec.taints}
    stamp = format_time(now)
    for effect in ("NoSchedule", "NoExecute"):
        old = existing.get((key, effect))
        if old is not None:
            keep.append(old)
        else:
            keep.append(
                Taint(key=key, effect=effect, time_added=stamp if effect == "NoExecute" else None)
            )
    return keep


def plan_node_lifecycle(
    nodes: Iterable[Node],
    leases: Mapping[str, str | datetime],
    pods: Iterable[Pod],
    now: datetime,
    tuning: NodeLifecycleTuning = DEFAULT_TUNING,
) -> list[Action]:
    """Actions for every node (see the module docstring).

    `leases`: node name -> last lease renew time (RFC 3339 or datetime).
    `pods`: pods bound to these nodes (spec.nodeName set)."""
    by_node: dict[str, list[Pod]] = {}
    for pod in pods:
        if pod.spec.node_name:
            by_node.setdefault(pod.spec.node_name, []).append(pod)

    actions: list[Action] = []
    for node in nodes:
        actions.extend(_plan_node(node, leases, by_node.get(node.metadata.name, []), now, tuning))
    return merge_requeues(actions)


def _plan_node(
    node: Node,
    leases: Mapping[str, str | datetime],
    pods: list[Pod],
    now: datetime,
    tuning: NodeLifecycleTuning,
) -> list[Action]:
    name = node.metadata.name
    out: list[Action] = []
    raw = leases.get(name)
    renewed = raw if isinstance(raw, datetime) else parse_time(raw)
    base = renewed or parse_time(node.metadata.creation_timestamp)
    stale = base is None or (now - base).total_seconds() > tuning.grace_period_s

    working = clone(node)
    became_unready = False
    if stale:
        became_unready = _set_unknown(working, never=renewed is None, now=now)
        if working.status != node.status:
            out.append(UpdateStatus(working))
        if became_unready:
            out.append(event(node, "NodeNotReady", f"Node {name} status is now: NodeNotReady"))
    elif base is not None:
        left = tuning.grace_period_s - (now - base).total_seconds()
        out.append(Requeue(left + 0.001))

    ready_cond = working.status.condition("Ready")
    ready = ready_cond.status if ready_cond is not None else "Unknown"
    taints = _want_taints(working, ready, now)
    if taints != node.spec.taints:
        tainted = clone(node)
        tainted.spec.taints = taints
        out.append(UpdateObject(tainted))

    if ready == "True":
        return out

    stamp = format_time(now)
    no_execute = [t for t in taints if t.effect == "NoExecute"]
    for pod in pods:
        if is_terminal(pod):
            continue
        if is_ready(pod):
            marked = clone(pod)
            for cond in marked.status.conditions:
                if cond.type == "Ready":
                    cond.status = "False"
                    cond.last_transition_time = stamp
            out.append(UpdateStatus(marked))
            out.append(event(pod, "NodeNotReady", "Node is not ready", "Warning"))
        if pod.metadata.deletion_timestamp is not None or not no_execute:
            continue
        seconds = _toleration_seconds(pod, no_execute, tuning.toleration_cap_s)
        if seconds is None:
            continue
        added = [parse_time(t.time_added) for t in no_execute]
        since = min((a for a in added if a is not None), default=now)
        left = seconds - (now - since).total_seconds()
        if left > 0:
            out.append(Requeue(left + 0.001))
            continue
        out.append(
            DeletePod(
                namespace=pod.metadata.namespace,
                name=pod.metadata.name,
                uid=pod.metadata.uid,
                reason="TaintManagerEviction",
                event=event(
                    pod,
                    "TaintManagerEviction",
                    f"Marking for deletion Pod {pod.metadata.namespace}/{pod.metadata.name}",
                ),
            )
        )
    return out
