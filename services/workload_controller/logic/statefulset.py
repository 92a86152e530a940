"""The StatefulSet plan: ordinal pods with stable names, hostnames and
per-ordinal volumes, created and removed in order (OrderedReady) or all at
once (Parallel), updated highest ordinal first with a partition
(RollingUpdate) or only when deleted (OnDelete). Follows
pkg/controller/statefulset/stateful_set_control.go and stateful_set_utils.go.

Owns `plan_statefulset`, the pod identity (`<sts>-<i>`, hostname, subdomain,
labels) and the revision bookkeeping. Pure: pods, saved revisions, claim
locations and `now` in, actions out.

Never two pods of one ordinal:
- pod names are the ordinals, so the store refuses a second create of the
  same name, also after a controller crash and restart;
- a pod being deleted (deletionTimestamp) still holds its ordinal: its
  replacement is created only once the old object is gone. A failed or
  succeeded pod is deleted first and recreated in a later sync (Kubernetes
  deletes and recreates in one pass, relying on the API server to refuse
  the create while the old object exists; podbus waits explicitly).

Revisions: Kubernetes keeps each template in a ControllerRevision object;
podbus has no such kind, so the driver keeps them for the plan:
`revisions` maps a revision name to a `StoredRevision`, and the plan emits
`SaveRevision` / `DeleteRevision` to maintain the history (revisionHistoryLimit
applies to revisions no pod uses). A revision name is `<sts>-<hash>`, the
hash being pod_template.compute_hash of the template and collisionCount;
pods carry it in the `controller-revision-hash` label.

Volumes: each volumeClaimTemplate gives ordinal i the claim
`<template>-<sts>-<i>`, referenced from the pod's volume of the template's
name (persistentVolumeClaim.claimName), kept across restarts and scale-down
(retention Retain). Claims are node-local volumes (as k3s's local-path
provisioner makes them): the node-agent creates one where the pod first
runs, and the plan records that node (`RecordClaimNode`) once it sees the
pod bound. Every later pod of that ordinal is pinned there with a required
node affinity term `matchFields: metadata.name In [<node>]` (added to each
existing required term, as Kubernetes pins DaemonSet pods), so the
scheduler can only place it beside its data. `claim_nodes` gives the
recorded locations back to the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from podmodel.pod import (
    Affinity,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PersistentVolumeClaimVolumeSource,
    Pod,
    PodSpec,
    PodTemplateSpec,
    Volume,
)
from podmodel.selector import selector_matches
from podmodel.workloads import StatefulSet, StatefulSetStatus

from services.workload_controller.logic.actions import (
    Action,
    CreatePod,
    DeletePod,
    DeleteRevision,
    PatchMetadata,
    RecordClaimNode,
    Requeue,
    SaveRevision,
    UpdateStatus,
    event,
    merge_requeues,
    reference_to,
)
from services.workload_controller.logic.ownership import claim
from services.workload_controller.logic.pod_state import (
    is_available,
    is_running_and_ready,
    is_terminal,
    seconds_until_available,
)
from services.workload_controller.logic.pod_template import PodFactory, compute_hash
from services.workload_controller.logic.snapshots import clone

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"


@dataclass(frozen=True)
class StoredRevision:
    """A saved template of a StatefulSet (a ControllerRevision's content)."""

    name: str
    revision: int
    template: PodTemplateSpec


def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    """The ordinal of `<sts>-<i>`, or None when the name is not of that form."""
    prefix = sts_name + "-"
    if not pod_name.startswith(prefix):
        return None
    digits = pod_name[len(prefix) :]
    if not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
        return None
    return int(digits)


def claim_name(template_name: str, sts_name: str, ordinal: int) -> str:
    """The per-ordinal claim of a volumeClaimTemplate."""
    return f"{template_name}-{sts_name}-{ordinal}"


def claim_names(sts: StatefulSet, ordinal: int) -> list[str]:
    """Every claim ordinal `ordinal` owns, in template order."""
    return [
        claim_name(t.metadata.name, sts.metadata.name, ordinal)
        for t in sts.spec.volume_claim_templates
    ]


def pin_to_node(spec: PodSpec, node_name: str) -> None:
    """Require `node_name` through node affinity matchFields metadata.name,
    ANDed into every existing required term (or as the only term)."""
    requirement = NodeSelectorRequirement(key="metadata.name", operator="In", values=[node_name])
    if spec.affinity is None:
        spec.affinity = Affinity()
    if spec.affinity.node_affinity is None:
        spec.affinity.node_affinity = NodeAffinity()
    node_affinity = spec.affinity.node_affinity
    required = node_affinity.required_during_scheduling_ignored_during_execution
    if required is None or not required.node_selector_terms:
        node_affinity.required_during_scheduling_ignored_during_execution = NodeSelector(
            node_selector_terms=[NodeSelectorTerm(match_fields=[requirement])]
        )
        return
    for term in required.node_selector_terms:
        term.match_fields = [f for f in term.match_fields if f.key != "metadata.name"]
        term.match_fields.append(clone(requirement))


def plan_statefulset(
    sts: StatefulSet,
    pods: Iterable[Pod],
    revisions: Mapping[str, StoredRevision],
    claim_nodes: Mapping[str, str],
    now: datetime,
) -> list[Action]:
    """Actions for one StatefulSet sync, then its status.

    `pods`: pods indexed under the StatefulSet's uid plus the namespace's
    orphans. `revisions`: its saved revisions by name. `claim_nodes`: claim
    name -> node holding that claim's volume (claims of this namespace)."""
    return _StatefulSetSync(sts, revisions, claim_nodes, now).run(pods)


class _StatefulSetSync:
    def __init__(
        self,
        sts: StatefulSet,
        revisions: Mapping[str, StoredRevision],
        claim_nodes: Mapping[str, str],
        now: datetime,
    ) -> None:
        self.sts = sts
        self.revisions = revisions
        self.claim_nodes = claim_nodes
        self.now = now
        self.actions: list[Action] = []
        self.deleted: set[str] = set()
        self.created: set[int] = set()
        self.monotonic = sts.spec.pod_management_policy != "Parallel"
        self.start = sts.spec.ordinals.start if sts.spec.ordinals is not None else 0
        self.collision = sts.status.collision_count or 0

    # ---------------------------------------------------------------- revisions

    def _sync_revisions(self) -> tuple[StoredRevision, StoredRevision]:
        """getStatefulSetRevisions: (current, update), saving the update
        revision when its template is new (or renumbering it when a rollback
        brings an old template back)."""
        sts = self.sts
        template = sts.spec.template
        history = sorted(self.revisions.values(), key=lambda r: r.revision)
        next_number = (history[-1].revision + 1) if history else 1
        equal = [r for r in history if r.template == template]
        if equal:
            update = equal[-1]
            if update.revision != history[-1].revision:
                update = StoredRevision(update.name, next_number, update.template)
                self._save(update)
        else:
            while True:
                name = f"{sts.metadata.name}-{compute_hash(template, self.collision)}"
                clash = self.revisions.get(name)
                if clash is None or clash.template == template:
                    break
                self.collision += 1
            update = StoredRevision(name, next_number, clone(template))
            self._save(update)
        current = self.revisions.get(sts.status.current_revision, update)
        return current, update

    def _save(self, rev: StoredRevision) -> None:
        self.actions.append(
            SaveRevision(
                owner=reference_to(self.sts),
                name=rev.name,
                revision=rev.revision,
                template=rev.template,
            )
        )

    def _truncate_history(self, live: set[str], update: StoredRevision) -> None:
        """truncateHistory: drop the oldest revisions no pod uses beyond
        revisionHistoryLimit."""
        history = {**self.revisions, update.name: update}
        dead = sorted(
            (r for name, r in history.items() if name not in live), key=lambda r: r.revision
        )
        excess = len(dead) - self.sts.spec.revision_history_limit
        for rev in dead[: max(0, excess)]:
            self.actions.append(
                DeleteRevision(namespace=self.sts.metadata.namespace, name=rev.name)
            )

    # ---------------------------------------------------------------- pods

    def _new_pod(self, ordinal: int, current: StoredRevision, update: StoredRevision) -> Pod:
        """newVersionedStatefulSetPod: ordinals below the partition keep the
        current revision, the rest get the update revision."""
        sts = self.sts
        strategy = sts.spec.update_strategy
        use_current = False
        if strategy.type == "RollingUpdate":
            if strategy.rolling_update is None:
                use_current = ordinal < self.start + sts.status.current_replicas
            else:
                use_current = ordinal < self.start + strategy.rolling_update.partition
        rev = current if use_current else update
        name = f"{sts.metadata.name}-{ordinal}"
        pod = PodFactory(
            rev.template,
            sts,
            extra_labels={
                POD_NAME_LABEL: name,
                POD_INDEX_LABEL: str(ordinal),
                REVISION_LABEL: rev.name,
            },
        ).make(name)
        pod.spec.hostname = name
        pod.spec.subdomain = sts.spec.service_name
        self._attach_claims(pod.spec, ordinal)
        return pod

    def _attach_claims(self, spec: PodSpec, ordinal: int) -> None:
        """updateStorage: a volume per claim template naming the ordinal's
        claim, and the pin to the node holding any already-placed claim."""
        sts = self.sts
        node = None
        for template in sts.spec.volume_claim_templates:
            vol_name = template.metadata.name
            pvc = claim_name(vol_name, sts.metadata.name, ordinal)
            spec.volumes = [v for v in spec.volumes if v.name != vol_name]
            spec.volumes.append(
                Volume(
                    name=vol_name,
                    persistent_volume_claim=PersistentVolumeClaimVolumeSource(claim_name=pvc),
                )
            )
            if node is None:
                node = self.claim_nodes.get(pvc)
        if node is not None:
            pin_to_node(spec, node)

    def _create(self, index: int, current: StoredRevision, update: StoredRevision) -> None:
        ordinal = self.start + index
        pod = self._new_pod(ordinal, current, update)
        self.created.add(index)
        self.actions.append(
            CreatePod(
                pod,
                event=event(
                    self.sts,
                    "SuccessfulCreate",
                    f"create Pod {pod.metadata.name} in StatefulSet {self.sts.metadata.name} "
                    "successful",
                ),
            )
        )

    def _delete(self, pod: Pod, reason: str) -> None:
        self.deleted.add(pod.metadata.uid)
        self.actions.append(
            DeletePod(
                namespace=pod.metadata.namespace,
                name=pod.metadata.name,
                uid=pod.metadata.uid,
                reason=reason,
                event=event(
                    self.sts,
                    "SuccessfulDelete",
                    f"delete Pod {pod.metadata.name} in StatefulSet {self.sts.metadata.name} "
                    "successful",
                ),
            )
        )

    def _deleting(self, pod: Pod) -> bool:
        return pod.metadata.deletion_timestamp is not None or pod.metadata.uid in self.deleted

    def _healthy(self, pod: Pod) -> bool:
        return is_running_and_ready(pod) and not self._deleting(pod)

    def _available(self, pod: Pod) -> bool:
        return is_running_and_ready(pod) and is_available(
            pod, self.sts.spec.min_ready_seconds, self.now
        )

    def _fix_identity(self, pod: Pod, ordinal: int) -> None:
        """identityMatches: restore the identity labels if someone removed them."""
        want = {POD_NAME_LABEL: pod.metadata.name, POD_INDEX_LABEL: str(ordinal)}
        missing = {k: v for k, v in want.items() if pod.metadata.labels.get(k) != v}
        if missing:
            self.actions.append(
                PatchMetadata(
                    kind="Pod",
                    namespace=pod.metadata.namespace,
                    name=pod.metadata.name,
                    uid=pod.metadata.uid,
                    set_labels=missing,
                    reason="statefulset identity",
                )
            )

    def _record_claim_nodes(self, owned: list[Pod]) -> None:
        """Remember where each ordinal's volumes live once its pod is bound."""
        sts = self.sts
        if not sts.spec.volume_claim_templates:
            return
        for pod in owned:
            node = pod.spec.node_name
            ordinal = ordinal_of(sts.metadata.name, pod.metadata.name)
            if not node or ordinal is None:
                continue
            for pvc in claim_names(sts, ordinal):
                if pvc not in self.claim_nodes:
                    self.actions.append(
                        RecordClaimNode(
                            namespace=sts.metadata.namespace, claim_name=pvc, node_name=node
                        )
                    )

    # ---------------------------------------------------------------- the pass

    def run(self, pods: Iterable[Pod]) -> list[Action]:
        sts = self.sts
        name = sts.metadata.name
        selector = sts.spec.selector
        claimed = claim(
            sts,
            pods,
            lambda p: (
                ordinal_of(name, p.metadata.name) is not None
                and selector_matches(selector, p.metadata.labels)
            ),
        )
        self.actions.extend(claimed.actions)
        owned = claimed.owned
        current, update = self._sync_revisions()
        self._record_claim_nodes(owned)

        replicas = max(0, sts.spec.replicas)
        slots: dict[int, Pod] = {}
        condemned: list[Pod] = []
        for pod in owned:
            ordinal = ordinal_of(name, pod.metadata.name)
            assert ordinal is not None  # claimed pods have ordinal names
            index = ordinal - self.start
            if 0 <= index < replicas:
                slots[index] = pod
            elif ordinal >= 0:
                condemned.append(pod)
        condemned.sort(key=lambda p: ordinal_of(name, p.metadata.name) or 0, reverse=True)

        if sts.metadata.deletion_timestamp is None:
            self._reconcile(slots, condemned, replicas, current, update)

        status = self._status(slots, condemned, current, update)
        live = {current.name, update.name}
        live.update(
            p.metadata.labels[REVISION_LABEL] for p in owned if REVISION_LABEL in p.metadata.labels
        )
        self._truncate_history(live, update)
        if status != sts.status:
            updated = clone(sts)
            updated.status = status
            self.actions.append(UpdateStatus(updated))
        min_ready = sts.spec.min_ready_seconds
        if min_ready > 0:
            waits = [
                w
                for p in owned
                if (w := seconds_until_available(p, min_ready, self.now)) is not None
            ]
            if waits:
                self.actions.append(Requeue(min(waits) + 0.001))
        return merge_requeues(self.actions)

    def _reconcile(
        self,
        slots: dict[int, Pod],
        condemned: list[Pod],
        replicas: int,
        current: StoredRevision,
        update: StoredRevision,
    ) -> None:
        sts = self.sts
        first_unhealthy: Pod | None = None
        first_unhealthy_missing = False
        for index in range(replicas):
            pod = slots.get(index)
            if pod is None or not self._healthy(pod):
                if pod is None:
                    first_unhealthy_missing = True
                else:
                    first_unhealthy = pod
                break
        if first_unhealthy is None and not first_unhealthy_missing:
            for pod in reversed(condemned):
                if not self._healthy(pod):
                    first_unhealthy = pod
                    break

        # Replicas in ordinal order: in OrderedReady each waits for its
        # predecessors to be Running, Ready and available.
        for index in range(replicas):
            pod = slots.get(index)
            if pod is not None and is_terminal(pod):
                if pod.metadata.deletion_timestamp is None:
                    failed = pod.status.phase == "Failed"
                    self.actions.append(
                        event(
                            sts,
                            "RecreatingFailedPod" if failed else "RecreatingTerminatedPod",
                            f"StatefulSet {sts.metadata.namespace}/{sts.metadata.name} is "
                            f"recreating {'failed' if failed else 'terminated'} Pod "
                            f"{pod.metadata.name}",
                            "Warning" if failed else "Normal",
                        )
                    )
                    self._delete(pod, "recreate finished pod")
                # Its ordinal stays taken until the object is gone.
                if self.monotonic:
                    return
                continue
            if pod is None:
                self._create(index, current, update)
                if self.monotonic:
                    return
                continue
            if self._deleting(pod):
                if self.monotonic:
                    return
                continue
            self._fix_identity(pod, self.start + index)
            if self.monotonic and not (is_running_and_ready(pod) and self._available(pod)):
                return

        # Condemned pods, highest ordinal first; in OrderedReady one at a
        # time, each after its successors are gone and only when the others
        # are healthy (the first unhealthy pod may go regardless).
        for pod in condemned:
            if self._deleting(pod):
                if self.monotonic:
                    return
                continue
            if self.monotonic and pod is not first_unhealthy and not self._available(pod):
                return
            self._delete(pod, "scale down")
            if self.monotonic:
                return

        strategy = sts.spec.update_strategy
        if strategy.type == "OnDelete":
            return
        partition = strategy.rolling_update.partition if strategy.rolling_update else 0
        for index in range(replicas - 1, max(partition, 0) - 1, -1):
            pod = slots.get(index)
            if pod is None or index in self.created:
                return
            if pod.metadata.labels.get(REVISION_LABEL) != update.name and not self._deleting(pod):
                self._delete(pod, "rolling update")
                return
            if not self._healthy(pod):
                return

    def _status(
        self,
        slots: dict[int, Pod],
        condemned: list[Pod],
        current: StoredRevision,
        update: StoredRevision,
    ) -> StatefulSetStatus:
        sts = self.sts
        status = StatefulSetStatus(
            observed_generation=sts.metadata.generation,
            current_revision=current.name,
            update_revision=update.name,
            collision_count=self.collision,
            conditions=list(sts.status.conditions),
        )
        for pod in (*slots.values(), *condemned):
            status.replicas += 1
            if is_running_and_ready(pod):
                status.ready_replicas += 1
                if self._available(pod):
                    status.available_replicas += 1
            if not self._deleting(pod):
                revision = pod.metadata.labels.get(REVISION_LABEL)
                if revision == current.name:
                    status.current_replicas += 1
                if revision == update.name:
                    status.updated_replicas += 1
        if (
            sts.spec.update_strategy.type == "RollingUpdate"
            and status.updated_replicas == status.replicas
            and status.ready_replicas == status.replicas
        ):
            status.current_replicas = status.updated_replicas
            status.current_revision = status.update_revision
        return status
