"""The DaemonSet plan: one pod on every node that should run it, none on the
others, rolled to a new template node by node, and the status. Follows
pkg/controller/daemon (daemon_controller.go, update.go, util).

Owns `plan_daemonset`. Pure: the DaemonSet, the nodes, its candidate pods,
`now` and the random source come in; actions come out.

- Which nodes (nodeShouldRunDaemonPod): the template's nodeSelector and
  required node affinity match the node, and the pod, with the tolerations
  every daemon pod gets (not-ready / unreachable NoExecute without a time
  limit, the pressure and unschedulable NoSchedule taints), tolerates the
  node's NoSchedule and NoExecute taints. A pod already running stays on a
  node whose new NoSchedule taint it does not tolerate; not on a NoExecute one.
- A daemon pod is pinned to its node as Kubernetes pins it: the scheduler
  gets a required node affinity `matchFields metadata.name In [node]`
  (ReplaceDaemonSetPodNodeNameNodeAffinity) and binds it there. Pods are
  grouped by that target node before they are bound.
- Extra pods on a node (the oldest stays), pods on nodes that should not run
  one, and failed daemon pods are deleted; a failed pod is replaced at the
  next sync, as the controller does.
- RollingUpdate: pods carry `controller-revision-hash` (the template's hash).
  With maxUnavailable (maxSurge 0) an old pod that is not available is
  replaced at once, an available one only while fewer than maxUnavailable
  (of the desired count, rounded up) nodes are unavailable; the old pod goes
  before the new one comes. With maxSurge (maxUnavailable 0) the new pod
  comes first, beside the old one, on up to maxSurge nodes at a time (at
  once where the old pod is unavailable), and the old pod goes when the new
  one is available. OnDelete: only deleted pods are replaced.
- Status: desired / current / misscheduled / ready / available /
  unavailable / updated numbers and observedGeneration.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from datetime import datetime

from podmodel.node import Node
from podmodel.pod import (
    Affinity,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PodSpec,
    Toleration,
)
from podmodel.selector import node_selector_terms_match
from podmodel.workloads import DaemonSet, DaemonSetStatus

from services.workload_controller.logic.actions import (
    Action,
    CreatePod,
    DeletePod,
    Requeue,
    UpdateStatus,
    event,
)
from services.workload_controller.logic.node_lifecycle import tolerates
from services.workload_controller.logic.ownership import claim_active_pods
from services.workload_controller.logic.pod_state import (
    is_available,
    is_ready,
    seconds_until_available,
)
from services.workload_controller.logic.pod_template import PodFactory, compute_hash
from services.workload_controller.logic.snapshots import clone

REVISION_LABEL = "controller-revision-hash"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"

#: util.AddOrUpdateDaemonPodTolerations (network-unavailable for hostNetwork)
DAEMON_TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def daemon_tolerations(spec: PodSpec) -> list[Toleration]:
    """The template's tolerations with the daemon ones added or replacing
    those of the same key and effect (AddOrUpdateTolerationInPodSpec)."""
    wanted = list(DAEMON_TOLERATIONS)
    if spec.host_network:
        wanted.append(NETWORK_UNAVAILABLE)
    out = [t for t in spec.tolerations if (t.key, t.effect) not in wanted]
    out.extend(Toleration(key=k, operator="Exists", effect=e) for k, e in wanted)
    return out


def node_should_run(ds: DaemonSet, node: Node) -> tuple[bool, bool]:
    """(should run a daemon pod, may keep one it has) on this node."""
    spec = ds.spec.template.spec
    labels = node.metadata.labels
    name = node.metadata.name
    if any(labels.get(k) != v for k, v in spec.node_selector.items()):
        return False, False
    na = spec.affinity.node_affinity if spec.affinity is not None else None
    required = na.required_during_scheduling_ignored_during_execution if na else None
    if required is not None and not node_selector_terms_match(
        required.node_selector_terms, labels, name
    ):
        return False, False
    tolerations = daemon_tolerations(spec)
    run = keep = True
    for taint in node.spec.taints:
        if taint.effect not in ("NoSchedule", "NoExecute"):
            continue
        if any(tolerates(t, taint) for t in tolerations):
            continue
        run = False
        if taint.effect == "NoExecute":
            keep = False
    return run, keep


def target_node(pod: Pod) -> str:
    """The node a daemon pod is for: its nodeName once bound, else the
    matchFields node affinity the controller gave it (GetTargetNodeName)."""
    if pod.spec.node_name:
        return pod.spec.node_name
    affinity = pod.spec.affinity
    na = affinity.node_affinity if affinity is not None else None
    required = na.required_during_scheduling_ignored_during_execution if na else None
    for term in required.node_selector_terms if required is not None else ():
        for req in term.match_fields:
            if req.key == "metadata.name" and req.operator == "In" and len(req.values) == 1:
                return req.values[0]
    return ""


def _pin_to(pod: Pod, node: str) -> None:
    term = NodeSelectorTerm(
        match_fields=[NodeSelectorRequirement(key="metadata.name", operator="In", values=[node])]
    )
    affinity = pod.spec.affinity or Affinity()
    na = affinity.node_affinity or NodeAffinity()
    na.required_during_scheduling_ignored_during_execution = NodeSelector(
        node_selector_terms=[term]
    )
    affinity.node_affinity = na
    pod.spec.affinity = affinity
    pod.spec.tolerations = daemon_tolerations(pod.spec)


def _scaled(value: int | str, total: int) -> int:
    """An absolute number, or a percentage of `total` rounded up."""
    if isinstance(value, int):
        return value
    return math.ceil(int(value.rstrip("%")) * total / 100)


def _oldest_first(pods: Iterable[Pod]) -> list[Pod]:
    return sorted(pods, key=lambda p: (p.metadata.creation_timestamp or "", p.metadata.name))


def plan_daemonset(
    ds: DaemonSet,
    nodes: Sequence[Node],
    pods: Iterable[Pod],
    now: datetime,
    rng: random.Random,
) -> list[Action]:
    """Actions that put one pod of `ds` on every node that should run it,
    roll them to the current template, then its status.

    `pods`: the pods indexed under the DaemonSet's uid plus the namespace's
    orphans."""
    candidates = list(pods)
    claimed = claim_active_pods(ds, ds.spec.selector, candidates)
    actions: list[Action] = list(claimed.actions)
    revision = compute_hash(ds.spec.template, ds.status.collision_count)
    min_ready = ds.spec.min_ready_seconds
    by_node: dict[str, list[Pod]] = {}
    for pod in claimed.owned:
        by_node.setdefault(target_node(pod), []).append(pod)
    deleting = ds.metadata.deletion_timestamp is not None

    def delete(pod: Pod, reason: str) -> None:
        actions.append(
            DeletePod(
                namespace=pod.metadata.namespace,
                name=pod.metadata.name,
                uid=pod.metadata.uid,
                reason=reason,
                event=event(ds, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}"),
            )
        )

    if not deleting:
        for pod in candidates:  # failed daemon pods are replaced
            ref = pod.metadata.owner_references
            if (
                pod.status.phase == "Failed"
                and pod.metadata.deletion_timestamp is None
                and any(r.uid == ds.metadata.uid and r.controller for r in ref)
            ):
                delete(pod, "failed daemon pod")

    factory: PodFactory | None = None
    taken = {p.metadata.name for p in candidates}

    def create_on(node_name: str) -> None:
        nonlocal factory
        if factory is None:
            factory = PodFactory(
                ds.spec.template,
                ds,
                extra_labels={
                    REVISION_LABEL: revision,
                    TEMPLATE_GENERATION_LABEL: str(ds.metadata.generation),
                },
            )
        pod = factory.make_generated(rng, taken)
        taken.add(pod.metadata.name)
        _pin_to(pod, node_name)
        actions.append(
            CreatePod(pod, event=event(ds, "SuccessfulCreate", f"Created pod: {pod.metadata.name}"))
        )

    should = {n.metadata.name: node_should_run(ds, n) for n in nodes}
    desired = sum(1 for run, _keep in should.values() if run)
    strategy = ds.spec.update_strategy
    ru = strategy.rolling_update if strategy.type == "RollingUpdate" else None
    surge = _scaled(ru.max_surge, desired) if ru is not None else 0
    current = misscheduled = ready = available = updated = 0
    unavailable_nodes = 0
    old_pods: list[tuple[Pod, bool]] = []  # (pod, available), no surge
    surging: list[tuple[str, Pod, bool, Pod | None, bool]] = []  # node, old, avail, new, avail
    waits: list[float] = []
    for node in nodes:
        name = node.metadata.name
        run, keep = should[name]
        here = _oldest_first(by_node.get(name, []))
        if here and run:
            current += 1
        elif here:
            misscheduled += 1
        if deleting:
            continue
        if run and not here:
            create_on(name)
            unavailable_nodes += 1
            continue
        if here and not keep:
            for pod in here:
                delete(pod, f"node {name} should not run this daemon pod")
            continue
        if not here:
            continue
        new = [p for p in here if p.metadata.labels.get(REVISION_LABEL) == revision]
        old = [p for p in here if p.metadata.labels.get(REVISION_LABEL) != revision]
        kept = [*new[:1], *old[:1]] if surge else here[:1]
        for extra in here:
            if extra not in kept:
                delete(extra, f"more than one daemon pod on node {name}")
        new = [p for p in new if p in kept]
        old = [p for p in old if p in kept]
        if not run:
            continue  # kept (a NoSchedule taint came), counted as misscheduled
        avail = {id(p): is_available(p, min_ready, now) for p in kept}
        ready += any(is_ready(p) for p in kept)
        if any(avail.values()):
            available += 1
        else:
            unavailable_nodes += 1
        for p in kept:
            if not avail[id(p)] and (w := seconds_until_available(p, min_ready, now)) is not None:
                waits.append(w)
        newest = new[0] if new else None
        if newest is not None:
            updated += 1
        if old and (newest is None or surge):
            if surge:
                new_avail = avail[id(newest)] if newest is not None else False
                surging.append((name, old[0], avail[id(old[0])], newest, new_avail))
            else:
                old_pods.append((old[0], avail[id(old[0])]))
    if not deleting:
        for name, stranded in by_node.items():
            if name and name not in should:
                for pod in stranded:
                    delete(pod, f"node {name} is gone")

    if not deleting and old_pods:  # maxUnavailable: old goes, then new comes
        budget = _scaled(ru.max_unavailable, desired) if ru is not None else 0
        for pod, is_avail in old_pods:
            if ru is None:
                break  # OnDelete
            if not is_avail:
                delete(pod, "rolling update: replace an unavailable old pod")
            elif unavailable_nodes < budget:
                unavailable_nodes += 1
                delete(pod, "rolling update")
    if not deleting and surging:  # maxSurge: new comes, then old goes
        candidates_new: list[str] = []
        in_surge = 0
        for name, old_pod, old_avail, new_pod, new_avail in surging:
            if new_pod is None:
                if old_avail:
                    candidates_new.append(name)
                else:
                    create_on(name)  # replacing an unavailable pod costs no surge
            else:
                in_surge += 1
                if new_avail:
                    delete(old_pod, "rolling update: its replacement is available")
        for name in candidates_new[: max(surge - in_surge, 0)]:
            create_on(name)

    status = DaemonSetStatus(
        current_number_scheduled=current,
        number_misscheduled=misscheduled,
        desired_number_scheduled=desired,
        number_ready=ready,
        observed_generation=ds.metadata.generation,
        updated_number_scheduled=updated,
        number_available=available,
        number_unavailable=max(desired - available, 0),
        collision_count=ds.status.collision_count,
        conditions=list(ds.status.conditions),
    )
    if status != ds.status:
        changed = clone(ds)
        changed.status = status
        actions.append(UpdateStatus(changed))
    if waits:
        actions.append(Requeue(min(waits) + 0.001))
    return actions
