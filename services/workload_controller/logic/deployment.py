"""The Deployment plan: one ReplicaSet per pod template, rolled by the
RollingUpdate or Recreate strategy, scaled proportionally, paused, resumed,
restarted, rolled back and cleaned up, with Kubernetes' status and
conditions. Follows pkg/controller/deployment (sync.go, rolling.go,
recreate.go, progress.go, rollback.go, util/deployment_util.go).

Owns `plan_deployment`, `plan_rollback`, `collision_status` and the rollout
arithmetic (`max_surge`, `max_unavailable`, `new_rs_replicas`...). Pure:
observed Deployment, ReplicaSets and pods in, actions out.

- A ReplicaSet is named `<deployment>-<pod-template-hash>`; the hash label
  is added to its selector, template and (through the template) its pods.
  Only `spec.template` changes roll: the new ReplicaSet is the oldest one
  whose template equals the Deployment's apart from the hash label.
- Revisions: the new ReplicaSet gets `deployment.kubernetes.io/revision` =
  max old revision + 1; a ReplicaSet brought back by a rollback keeps its
  former numbers in `deployment.kubernetes.io/revision-history`. The
  Deployment carries its current revision in the same annotation (written
  with a metadata patch, never touching the user's spec).
- Restart: `kubectl rollout restart` sets the template annotation
  `kubectl.kubernetes.io/restartedAt`; that changes the hash, so it rolls
  like any template change.
- Rollback (`plan_rollback`, kubectl's DeploymentRollbacker): copies an old
  ReplicaSet's template back into the Deployment; the next sync makes it the
  new revision.
- One sync does what Kubernetes' syncDeployment does in one pass; every
  ReplicaSet change is a single UpdateObject (or the CreateObject of the new
  one), emitted in the order Kubernetes would write them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from podmodel.meta import ObjectMeta, controller_of
from podmodel.pod import Condition, IntOrString, Pod, PodTemplateSpec
from podmodel.selector import selector_matches
from podmodel.workloads import (
    Deployment,
    DeploymentStatus,
    ReplicaSet,
    ReplicaSetSpec,
    RollingUpdateDeployment,
)

from services.workload_controller.logic.actions import (
    Action,
    CreateObject,
    DeleteObject,
    EmitEvent,
    PatchMetadata,
    Requeue,
    UpdateObject,
    UpdateStatus,
    event,
    merge_requeues,
)
from services.workload_controller.logic.ownership import claim
from services.workload_controller.logic.pod_template import (
    POD_TEMPLATE_HASH_LABEL,
    compute_hash,
    controller_reference,
    equal_ignore_hash,
    template_without_hash,
)
from services.workload_controller.logic.snapshots import clone
from services.workload_controller.logic.timestamps import EPOCH_MIN, format_time, parse_time

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"

#: Deployment annotations never copied onto its ReplicaSets.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        ROLLBACK_TO_ANNOTATION,
    }
)
#: maxRevHistoryLengthInChars in Kubernetes.
MAX_REVISION_HISTORY_CHARS = 2000
#: progressDeadlineSeconds of MaxInt32 means "no deadline".
NO_PROGRESS_DEADLINE = 2147483647

# Condition reasons (deploymentutil).
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"


# ------------------------------------------------------------------ arithmetic


def scaled_value(value: IntOrString, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of total
    rounded up or down. A bare numeric string counts as an int."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.endswith("%"):
        percent = int(text[:-1])
        return -(-percent * total // 100) if round_up else percent * total // 100
    return int(text)


def resolve_fenceposts(d: Deployment) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as absolute numbers; both resolving to 0
    makes maxUnavailable 1, as Kubernetes does."""
    ru = d.spec.strategy.rolling_update or RollingUpdateDeployment()
    desired = d.spec.replicas
    surge = scaled_value(ru.max_surge, desired, round_up=True)
    unavailable = scaled_value(ru.max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling_update(d: Deployment) -> bool:
    return d.spec.strategy.type != "Recreate"


def max_surge(d: Deployment) -> int:
    """How many pods above `replicas` a rollout may run (0 for Recreate)."""
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(d)[0]


def max_unavailable(d: Deployment) -> int:
    """How many of `replicas` may be unavailable during a rollout."""
    if not is_rolling_update(d) or d.spec.replicas == 0:
        return 0
    return min(resolve_fenceposts(d)[1], d.spec.replicas)


def has_progress_deadline(d: Deployment) -> bool:
    return d.spec.progress_deadline_seconds != NO_PROGRESS_DEADLINE


def revision_of(obj_meta: ObjectMeta) -> int:
    """The revision annotation as a number (0 when missing or not a number)."""
    try:
        return int(obj_meta.annotations.get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def _created(rs: ReplicaSet) -> tuple[datetime, str]:
    return (parse_time(rs.metadata.creation_timestamp) or EPOCH_MIN, rs.metadata.name)


def by_creation(rss: Iterable[ReplicaSet]) -> list[ReplicaSet]:
    """ReplicaSetsByCreationTimestamp: oldest first, then by name."""
    return sorted(rss, key=_created)


def total_replicas(rss: Iterable[ReplicaSet | None]) -> int:
    """GetReplicaCountForReplicaSets: the sum of spec.replicas."""
    return sum(rs.spec.replicas for rs in rss if rs is not None)


def actual_replicas(rss: Iterable[ReplicaSet | None]) -> int:
    """GetActualReplicaCountForReplicaSets: the sum of status.replicas."""
    return sum(rs.status.replicas for rs in rss if rs is not None)


def available_replicas(rss: Iterable[ReplicaSet | None]) -> int:
    return sum(rs.status.available_replicas for rs in rss if rs is not None)


def ready_replicas(rss: Iterable[ReplicaSet | None]) -> int:
    return sum(rs.status.ready_replicas for rs in rss if rs is not None)


def new_rs_replicas(d: Deployment, all_rss: list[ReplicaSet], new_rs: ReplicaSet) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may grow now. Rolling:
    up to replicas + maxSurge pods in total, never past `replicas`."""
    if not is_rolling_update(d):
        return d.spec.replicas
    max_total = d.spec.replicas + max_surge(d)
    current = total_replicas(all_rss)
    if current >= max_total:
        return new_rs.spec.replicas
    scale_up = min(max_total - current, d.spec.replicas - new_rs.spec.replicas)
    return new_rs.spec.replicas + scale_up


def deployment_complete(d: Deployment, status: DeploymentStatus) -> bool:
    """Every replica updated and available, and the spec observed."""
    want = d.spec.replicas
    return (
        status.updated_replicas == want
        and status.replicas == want
        and status.available_replicas == want
        and status.observed_generation >= d.metadata.generation
    )


def deployment_progressing(d: Deployment, new: DeploymentStatus) -> bool:
    """Any progress since the last observed status (util.DeploymentProgressing)."""
    old = d.status
    return (
        new.updated_replicas > old.updated_replicas
        or (new.replicas - new.updated_replicas) < (old.replicas - old.updated_replicas)
        or new.ready_replicas > old.ready_replicas
        or new.available_replicas > old.available_replicas
    )


def get_condition(status: DeploymentStatus, type_: str) -> Condition | None:
    for cond in status.conditions:
        if cond.type == type_:
            return cond
    return None


def set_condition(status: DeploymentStatus, cond: Condition) -> None:
    """SetDeploymentCondition: no change when status and reason are equal;
    keep lastTransitionTime when only the reason changes."""
    current = get_condition(status, cond.type)
    if current is not None and current.status == cond.status and current.reason == cond.reason:
        return
    if current is not None and current.status == cond.status:
        cond.last_transition_time = current.last_transition_time
    status.conditions = [c for c in status.conditions if c.type != cond.type] + [cond]


def remove_condition(status: DeploymentStatus, type_: str) -> None:
    status.conditions = [c for c in status.conditions if c.type != type_]


def new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Condition:
    stamp = format_time(now)
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_update_time=stamp,
        last_transition_time=stamp,
    )


def deployment_timed_out(d: Deployment, status: DeploymentStatus, now: datetime) -> bool:
    """No progress for progressDeadlineSeconds since the Progressing
    condition was last updated."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.reason == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.reason == TIMED_OUT_REASON:
        return True
    since = parse_time(cond.last_update_time)
    if since is None:
        return False
    return (now - since).total_seconds() > d.spec.progress_deadline_seconds


# ------------------------------------------------------------------ the plan


def plan_deployment(
    d: Deployment,
    replica_sets: Iterable[ReplicaSet],
    pods: Iterable[Pod],
    now: datetime,
) -> list[Action]:
    """Actions that move `d` one step along its rollout, then its status.

    `replica_sets`: the ReplicaSets indexed under the Deployment's uid plus
    the namespace's orphans. `pods`: pods of those ReplicaSets (only the
    Recreate strategy looks at them, to wait until old pods are gone)."""
    return _DeploymentSync(d, now).run(list(replica_sets), pods)


class _DeploymentSync:
    """One syncDeployment pass. Keeps working copies of the Deployment and
    its ReplicaSets, changed in place the way Kubernetes changes its copies,
    and turns the changes into actions at the end."""

    def __init__(self, d: Deployment, now: datetime) -> None:
        self.orig = d
        self.d = clone(d)
        self.now = now
        self.head: list[Action] = []
        self.created: ReplicaSet | None = None
        self.dirty: dict[str, ReplicaSet] = {}
        self.deletes: list[Action] = []
        self.events: list[EmitEvent] = []
        self.requeues: list[Action] = []

    # ---------------------------------------------------------------- entry

    def run(self, replica_sets: list[ReplicaSet], pods: Iterable[Pod]) -> list[Action]:
        d = self.d
        if not d.spec.selector.match_labels and not d.spec.selector.match_expressions:
            self.events.append(
                event(
                    d,
                    "SelectorOverride",
                    "This deployment is selecting all pods. A non-empty selector is required.",
                    "Warning",
                )
            )
            if d.status.observed_generation < d.metadata.generation:
                d.status.observed_generation = d.metadata.generation
            return self._finish()

        selector = d.spec.selector
        claimed = claim(d, replica_sets, lambda rs: selector_matches(selector, rs.metadata.labels))
        self.head.extend(claimed.actions)
        rss = [clone(rs) for rs in claimed.owned]

        if d.metadata.deletion_timestamp is not None:
            new_rs, old_rss = self._sync_revision(rss, create=False)
            self._sync_status(old_rss, new_rs)
            return self._finish()

        self._check_paused_conditions()
        if d.spec.paused or self._is_scaling_event(rss):
            self._sync(rss)
        elif d.spec.strategy.type == "Recreate":
            self._rollout_recreate(rss, pods)
        else:
            self._rollout_rolling(rss)
        return self._finish()

    # ---------------------------------------------------------------- output

    def _finish(self) -> list[Action]:
        out: list[Action] = list(self.head)
        if self.created is not None:
            out.append(CreateObject(self.created))
        out.extend(UpdateObject(rs) for rs in self.dirty.values())
        out.extend(self.deletes)
        orig, d = self.orig, self.d
        changed_annotations = {
            k: v for k, v in d.metadata.annotations.items() if orig.metadata.annotations.get(k) != v
        }
        if changed_annotations:
            out.append(
                PatchMetadata(
                    kind="Deployment",
                    namespace=d.metadata.namespace,
                    name=d.metadata.name,
                    uid=d.metadata.uid,
                    set_annotations=changed_annotations,
                    reason="revision",
                )
            )
        if d.status != orig.status:
            out.append(UpdateStatus(d))
        out.extend(self.events)
        out.extend(self.requeues)
        return merge_requeues(out)

    # ---------------------------------------------------------------- replica sets

    def _write(self, rs: ReplicaSet) -> None:
        """Mark `rs` (a working copy) as changed."""
        if rs is self.created:
            return
        self.dirty[rs.metadata.name] = rs

    def _set_replicas_annotations(self, rs: ReplicaSet) -> bool:
        """SetReplicasAnnotations: desired and max replicas of the Deployment."""
        desired = str(self.d.spec.replicas)
        max_replicas = str(self.d.spec.replicas + max_surge(self.d))
        ann = rs.metadata.annotations
        changed = False
        if ann.get(DESIRED_REPLICAS_ANNOTATION) != desired:
            ann[DESIRED_REPLICAS_ANNOTATION] = desired
            changed = True
        if ann.get(MAX_REPLICAS_ANNOTATION) != max_replicas:
            ann[MAX_REPLICAS_ANNOTATION] = max_replicas
            changed = True
        return changed

    def _scale(self, rs: ReplicaSet, new_scale: int, *, only_if_different: bool = True) -> bool:
        """scaleReplicaSet(AndRecordEvent): set replicas and the replicas
        annotations; a size change records ScalingReplicaSet. Returns whether
        the size changed."""
        if only_if_different and rs.spec.replicas == new_scale:
            return False
        size_changed = rs.spec.replicas != new_scale
        annotations_changed = self._set_replicas_annotations(rs)
        if not size_changed and not annotations_changed:
            return False
        old_scale = rs.spec.replicas
        rs.spec.replicas = new_scale
        self._write(rs)
        if size_changed:
            verb = "up" if old_scale < new_scale else "down"
            self.events.append(
                event(
                    self.d,
                    "ScalingReplicaSet",
                    f"Scaled {verb} replica set {rs.metadata.name} from {old_scale} to {new_scale}",
                )
            )
        return size_changed

    def _set_new_rs_annotations(self, rs: ReplicaSet, new_revision: int, exists: bool) -> bool:
        """SetNewReplicaSetAnnotations: copy the Deployment's annotations,
        raise the revision (keeping the old one in revision-history), and
        for a ReplicaSet about to be created the replicas annotations."""
        d = self.d
        ann = rs.metadata.annotations
        changed = False
        for key, value in d.metadata.annotations.items():
            if key in ANNOTATIONS_TO_SKIP or ann.get(key) == value:
                continue
            ann[key] = value
            changed = True
        old_text = ann.get(REVISION_ANNOTATION)
        try:
            old_revision = int(old_text) if old_text else 0
        except ValueError:
            return changed
        if old_revision < new_revision:
            ann[REVISION_ANNOTATION] = str(new_revision)
            changed = True
            if old_text:
                history = ann.get(REVISION_HISTORY_ANNOTATION, "")
                parts = history.split(",") if history else []
                total = len(history) + len(old_text) + 1
                start = 0
                while total > MAX_REVISION_HISTORY_CHARS and start < len(parts):
                    total -= len(parts[start]) + 1
                    start += 1
                if total <= MAX_REVISION_HISTORY_CHARS:
                    ann[REVISION_HISTORY_ANNOTATION] = ",".join([*parts[start:], old_text])
        if not exists and self._set_replicas_annotations(rs):
            changed = True
        return changed

    def _find_new(self, rss: list[ReplicaSet]) -> ReplicaSet | None:
        """FindNewReplicaSet: the oldest ReplicaSet with the Deployment's template."""
        template = self.d.spec.template
        for rs in by_creation(rss):
            if equal_ignore_hash(rs.spec.template, template):
                return rs
        return None

    def _sync_revision(
        self, rss: list[ReplicaSet], create: bool
    ) -> tuple[ReplicaSet | None, list[ReplicaSet]]:
        """getAllReplicaSetsAndSyncRevision: the new ReplicaSet (created when
        `create` and missing) and all old ones, with revisions in step."""
        d = self.d
        existing = self._find_new(rss)
        old_rss = [rs for rs in rss if rs is not existing]
        new_revision = max((revision_of(rs.metadata) for rs in old_rss), default=0) + 1

        if existing is not None:
            changed = self._set_new_rs_annotations(existing, new_revision, exists=True)
            if changed or existing.spec.min_ready_seconds != d.spec.min_ready_seconds:
                existing.spec.min_ready_seconds = d.spec.min_ready_seconds
                self._write(existing)
                # Kubernetes returns here and syncs the Deployment's revision
                # on the next pass, once the ReplicaSet update is observed.
                return existing, old_rss
            revision = existing.metadata.annotations.get(REVISION_ANNOTATION, "")
            if d.metadata.annotations.get(REVISION_ANNOTATION) != revision:
                d.metadata.annotations[REVISION_ANNOTATION] = revision
            if has_progress_deadline(d) and get_condition(d.status, "Progressing") is None:
                set_condition(
                    d.status,
                    new_condition(
                        "Progressing",
                        "True",
                        FOUND_NEW_RS_REASON,
                        f'Found new replica set "{existing.metadata.name}"',
                        self.now,
                    ),
                )
            return existing, old_rss

        if not create:
            return None, old_rss

        collision = d.status.collision_count
        template = clone(d.spec.template)
        pod_hash = compute_hash(template, collision)
        template.metadata.labels[POD_TEMPLATE_HASH_LABEL] = pod_hash
        selector = clone(d.spec.selector)
        selector.match_labels[POD_TEMPLATE_HASH_LABEL] = pod_hash
        name = f"{d.metadata.name}-{pod_hash}"
        if any(rs.metadata.name == name for rs in rss):
            # Same name, different template: a hash collision. Bump the
            # collision count and try again with a new hash.
            d.status.collision_count = (collision or 0) + 1
            self.requeues.append(Requeue(0.0))
            return None, old_rss
        new_rs = ReplicaSet(
            metadata=ObjectMeta(
                name=name,
                namespace=d.metadata.namespace,
                owner_references=[controller_reference(d)],
                labels=dict(template.metadata.labels),
            ),
            spec=ReplicaSetSpec(
                replicas=0,
                min_ready_seconds=d.spec.min_ready_seconds,
                selector=selector,
                template=template,
            ),
        )
        new_rs.spec.replicas = new_rs_replicas(d, [*old_rss, new_rs], new_rs)
        self._set_new_rs_annotations(new_rs, new_revision, exists=False)
        self.created = new_rs
        if new_rs.spec.replicas > 0:
            self.events.append(
                event(
                    d,
                    "ScalingReplicaSet",
                    f"Scaled up replica set {name} from 0 to {new_rs.spec.replicas}",
                )
            )
        if d.metadata.annotations.get(REVISION_ANNOTATION) != str(new_revision):
            d.metadata.annotations[REVISION_ANNOTATION] = str(new_revision)
        if has_progress_deadline(d):
            set_condition(
                d.status,
                new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_REASON,
                    f'Created new replica set "{name}"',
                    self.now,
                ),
            )
        return new_rs, old_rss

    # ---------------------------------------------------------------- paused, scaling

    def _check_paused_conditions(self) -> None:
        d = self.d
        if not has_progress_deadline(d):
            return
        cond = get_condition(d.status, "Progressing")
        if cond is not None and cond.reason == TIMED_OUT_REASON:
            return
        paused_cond = cond is not None and cond.reason == PAUSED_REASON
        if d.spec.paused and not paused_cond:
            set_condition(
                d.status,
                new_condition(
                    "Progressing", "Unknown", PAUSED_REASON, "Deployment is paused", self.now
                ),
            )
        elif not d.spec.paused and paused_cond:
            set_condition(
                d.status,
                new_condition(
                    "Progressing", "Unknown", RESUMED_REASON, "Deployment is resumed", self.now
                ),
            )

    def _is_scaling_event(self, rss: list[ReplicaSet]) -> bool:
        """Some active ReplicaSet was sized for a different `replicas`."""
        for rs in rss:
            if rs.spec.replicas <= 0:
                continue
            desired = rs.metadata.annotations.get(DESIRED_REPLICAS_ANNOTATION)
            if desired is None:
                continue
            try:
                if int(desired) != self.d.spec.replicas:
                    return True
            except ValueError:
                continue
        return False

    def _sync(self, rss: list[ReplicaSet]) -> None:
        """sync: scale (and clean up while paused), then status."""
        new_rs, old_rss = self._sync_revision(rss, create=False)
        self._scale_all(new_rs, old_rss)
        if self.d.spec.paused:
            self._cleanup(old_rss)
        self._sync_status(old_rss, new_rs)

    def _scale_all(self, new_rs: ReplicaSet | None, old_rss: list[ReplicaSet]) -> None:
        """scale: one active ReplicaSet takes all replicas; a saturated new
        ReplicaSet empties the old ones; otherwise, rolling, spread the
        difference over the active ReplicaSets in proportion to their size."""
        d = self.d
        active_or_latest = self._find_active_or_latest(new_rs, old_rss)
        if active_or_latest is not None:
            if active_or_latest.spec.replicas != d.spec.replicas:
                self._scale(active_or_latest, d.spec.replicas)
            return
        if self._is_saturated(new_rs):
            for old in old_rss:
                if old.spec.replicas > 0:
                    self._scale(old, 0)
            return
        if not is_rolling_update(d):
            return
        active = [rs for rs in [*old_rss, new_rs] if rs is not None and rs.spec.replicas > 0]
        allowed = d.spec.replicas + max_surge(d) if d.spec.replicas > 0 else 0
        to_add = allowed - total_replicas(active)
        if to_add > 0:
            # Larger first; among equals newer first (scale newer up first).
            active.sort(key=_created, reverse=True)
            active.sort(key=lambda rs: rs.spec.replicas, reverse=True)
        elif to_add < 0:
            # Larger first; among equals older first (scale older down first).
            active.sort(key=_created)
            active.sort(key=lambda rs: rs.spec.replicas, reverse=True)
        added = 0
        sizes: dict[str, int] = {}
        for rs in active:
            if to_add != 0:
                share = self._proportion(rs, to_add, added)
                sizes[rs.metadata.name] = rs.spec.replicas + share
                added += share
            else:
                sizes[rs.metadata.name] = rs.spec.replicas
        for i, rs in enumerate(active):
            if i == 0 and to_add != 0:
                sizes[rs.metadata.name] = max(0, sizes[rs.metadata.name] + to_add - added)
            self._scale(rs, sizes[rs.metadata.name], only_if_different=False)

    def _proportion(self, rs: ReplicaSet, to_add: int, added: int) -> int:
        """GetProportion: this ReplicaSet's share of `to_add`, capped by what
        is left to distribute."""
        if rs.spec.replicas == 0 or to_add == 0 or to_add == added:
            return 0
        fraction = self._fraction(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    def _fraction(self, rs: ReplicaSet) -> int:
        """getReplicaSetFraction: rs.replicas scaled by new max / old max."""
        d = self.d
        if d.spec.replicas == 0:
            return -rs.spec.replicas
        new_max = d.spec.replicas + max_surge(d)
        try:
            old_max = int(rs.metadata.annotations.get(MAX_REPLICAS_ANNOTATION, ""))
        except ValueError:
            old_max = 0
        if old_max == 0:
            old_max = d.status.replicas
        if old_max == 0:
            return 0
        exact = rs.spec.replicas * new_max / old_max
        rounded = int(exact + 0.5) if exact >= 0 else -int(-exact + 0.5)
        return rounded - rs.spec.replicas

    @staticmethod
    def _find_active_or_latest(
        new_rs: ReplicaSet | None, old_rss: list[ReplicaSet]
    ) -> ReplicaSet | None:
        if new_rs is None and not old_rss:
            return None
        newest_first = sorted(old_rss, key=_created, reverse=True)
        active = [rs for rs in [*newest_first, new_rs] if rs is not None and rs.spec.replicas > 0]
        if not active:
            return new_rs if new_rs is not None else newest_first[0]
        if len(active) == 1:
            return active[0]
        return None

    def _is_saturated(self, rs: ReplicaSet | None) -> bool:
        if rs is None:
            return False
        want = self.d.spec.replicas
        try:
            desired = int(rs.metadata.annotations.get(DESIRED_REPLICAS_ANNOTATION, ""))
        except ValueError:
            return False
        return rs.spec.replicas == want and desired == want and rs.status.available_replicas == want

    # ---------------------------------------------------------------- rolling

    def _rollout_rolling(self, rss: list[ReplicaSet]) -> None:
        new_rs, old_rss = self._sync_revision(rss, create=True)
        if new_rs is None:  # a hash collision: the status update and requeue retry it
            self._sync_status(old_rss, None)
            return
        all_rss = [*old_rss, new_rs]
        if self._reconcile_new(all_rss, new_rs):
            self._sync_rollout_status(all_rss, new_rs)
            return
        if self._reconcile_old(all_rss, [rs for rs in old_rss if rs.spec.replicas > 0], new_rs):
            self._sync_rollout_status(all_rss, new_rs)
            return
        if deployment_complete(self.d, self.d.status):
            self._cleanup(old_rss)
        self._sync_rollout_status(all_rss, new_rs)

    def _reconcile_new(self, all_rss: list[ReplicaSet], new_rs: ReplicaSet) -> bool:
        want = self.d.spec.replicas
        if new_rs.spec.replicas == want:
            return False
        if new_rs.spec.replicas > want:
            return self._scale(new_rs, want)
        return self._scale(new_rs, new_rs_replicas(self.d, all_rss, new_rs))

    def _reconcile_old(
        self, all_rss: list[ReplicaSet], old_rss: list[ReplicaSet], new_rs: ReplicaSet
    ) -> bool:
        """Scale old ReplicaSets down as far as maxUnavailable allows,
        unhealthy replicas first (they would block the rollout otherwise)."""
        if total_replicas(old_rss) == 0:
            return False
        d = self.d
        min_available = d.spec.replicas - max_unavailable(d)
        new_unavailable = new_rs.spec.replicas - new_rs.status.available_replicas
        max_scaled_down = total_replicas(all_rss) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = self._cleanup_unhealthy(old_rss, max_scaled_down)
        scaled = self._scale_down_old([*old_rss, new_rs], old_rss, min_available)
        return cleaned + scaled > 0

    def _cleanup_unhealthy(self, old_rss: list[ReplicaSet], max_cleanup: int) -> int:
        total = 0
        for rs in by_creation(old_rss):
            if total >= max_cleanup:
                break
            if rs.spec.replicas == 0 or rs.spec.replicas == rs.status.available_replicas:
                continue
            down = min(max_cleanup - total, rs.spec.replicas - rs.status.available_replicas)
            self._scale(rs, rs.spec.replicas - down)
            total += down
        return total

    def _scale_down_old(
        self, all_rss: list[ReplicaSet], old_rss: list[ReplicaSet], min_available: int
    ) -> int:
        available = available_replicas(all_rss)
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in by_creation(old_rss):
            if total >= budget:
                break
            if rs.spec.replicas == 0:
                continue
            down = min(rs.spec.replicas, budget - total)
            self._scale(rs, rs.spec.replicas - down)
            total += down
        return total

    # ---------------------------------------------------------------- recreate

    def _rollout_recreate(self, rss: list[ReplicaSet], pods: Iterable[Pod]) -> None:
        new_rs, old_rss = self._sync_revision(rss, create=False)
        scaled_down = False
        for rs in old_rss:
            if rs.spec.replicas > 0 and self._scale(rs, 0):
                scaled_down = True
        if scaled_down:
            self._sync_rollout_status([*old_rss, new_rs], new_rs)
            return
        if self._old_pods_running(new_rs, old_rss, pods):
            self._sync_rollout_status([*old_rss, new_rs], new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = self._sync_revision(rss, create=True)
            if new_rs is None:
                self._sync_status(old_rss, None)
                return
        self._scale(new_rs, self.d.spec.replicas)
        if deployment_complete(self.d, self.d.status):
            self._cleanup(old_rss)
        self._sync_rollout_status([*old_rss, new_rs], new_rs)

    @staticmethod
    def _old_pods_running(
        new_rs: ReplicaSet | None, old_rss: list[ReplicaSet], pods: Iterable[Pod]
    ) -> bool:
        """Any old pod not yet terminal (pods being deleted still run)."""
        if actual_replicas(old_rss) > 0:
            return True
        old_uids = {rs.metadata.uid for rs in old_rss}
        new_uid = new_rs.metadata.uid if new_rs is not None else None
        for pod in pods:
            ref = controller_of(pod.metadata)
            if ref is None or ref.uid == new_uid or ref.uid not in old_uids:
                continue
            if pod.status.phase not in ("Succeeded", "Failed"):
                return True
        return False

    # ---------------------------------------------------------------- clean-up

    def _cleanup(self, old_rss: list[ReplicaSet]) -> None:
        """cleanupDeployment: delete the oldest revisions beyond
        revisionHistoryLimit, but only empty, settled ReplicaSets."""
        limit = self.d.spec.revision_history_limit
        alive = [rs for rs in old_rss if rs.metadata.deletion_timestamp is None]
        diff = len(alive) - limit
        if diff <= 0:
            return
        alive.sort(key=lambda rs: (revision_of(rs.metadata), _created(rs)))
        for rs in alive[:diff]:
            if (
                rs.status.replicas != 0
                or rs.spec.replicas != 0
                or rs.metadata.generation > rs.status.observed_generation
            ):
                continue
            self.deletes.append(
                DeleteObject(
                    kind="ReplicaSet",
                    namespace=rs.metadata.namespace,
                    name=rs.metadata.name,
                    uid=rs.metadata.uid,
                    reason="revisionHistoryLimit",
                )
            )

    # ---------------------------------------------------------------- status

    def _calculate_status(
        self, all_rss: Sequence[ReplicaSet | None], new_rs: ReplicaSet | None
    ) -> DeploymentStatus:
        d = self.d
        available = available_replicas(all_rss)
        unavailable = max(0, total_replicas(all_rss) - available)
        status = DeploymentStatus(
            observed_generation=d.metadata.generation,
            replicas=actual_replicas(all_rss),
            updated_replicas=actual_replicas([new_rs]),
            ready_replicas=ready_replicas(all_rss),
            available_replicas=available,
            unavailable_replicas=unavailable,
            conditions=[clone(c) for c in d.status.conditions],
            collision_count=d.status.collision_count,
        )
        if available >= d.spec.replicas - max_unavailable(d):
            set_condition(
                status,
                new_condition(
                    "Available",
                    "True",
                    MIN_AVAILABLE_REASON,
                    "Deployment has minimum availability.",
                    self.now,
                ),
            )
        else:
            set_condition(
                status,
                new_condition(
                    "Available",
                    "False",
                    MIN_UNAVAILABLE_REASON,
                    "Deployment does not have minimum availability.",
                    self.now,
                ),
            )
        return status

    def _sync_status(self, old_rss: list[ReplicaSet], new_rs: ReplicaSet | None) -> None:
        """syncDeploymentStatus: counters and Available, no progress check."""
        self.d.status = self._calculate_status([*old_rss, new_rs], new_rs)

    def _sync_rollout_status(
        self, all_rss: Sequence[ReplicaSet | None], new_rs: ReplicaSet | None
    ) -> None:
        """syncRolloutStatus: counters, Available, and Progressing with the
        progress deadline; requeue to check the deadline when stuck."""
        d = self.d
        status = self._calculate_status(all_rss, new_rs)
        if not has_progress_deadline(d):
            remove_condition(status, "Progressing")
        current = get_condition(d.status, "Progressing")
        complete_before = (
            status.replicas == status.updated_replicas
            and current is not None
            and current.reason == NEW_RS_AVAILABLE_REASON
        )
        name = new_rs.metadata.name if new_rs is not None else None
        if has_progress_deadline(d) and not complete_before:
            if deployment_complete(d, status):
                msg = (
                    f'ReplicaSet "{name}" has successfully progressed.'
                    if name
                    else f'Deployment "{d.metadata.name}" has successfully progressed.'
                )
                set_condition(
                    status,
                    new_condition("Progressing", "True", NEW_RS_AVAILABLE_REASON, msg, self.now),
                )
            elif deployment_progressing(d, status):
                msg = (
                    f'ReplicaSet "{name}" is progressing.'
                    if name
                    else f'Deployment "{d.metadata.name}" is progressing.'
                )
                cond = new_condition("Progressing", "True", RS_UPDATED_REASON, msg, self.now)
                if current is not None:
                    if current.status == "True":
                        cond.last_transition_time = current.last_transition_time
                    remove_condition(status, "Progressing")
                set_condition(status, cond)
            elif deployment_timed_out(d, status, self.now):
                msg = (
                    f'ReplicaSet "{name}" has timed out progressing.'
                    if name
                    else f'Deployment "{d.metadata.name}" has timed out progressing.'
                )
                set_condition(
                    status, new_condition("Progressing", "False", TIMED_OUT_REASON, msg, self.now)
                )
        failure = self._replica_failure(all_rss, new_rs)
        if failure is not None:
            set_condition(status, failure)
        else:
            remove_condition(status, "ReplicaFailure")
        if status == d.status:
            self._requeue_stuck(status)
        d.status = status

    def _replica_failure(
        self, all_rss: Sequence[ReplicaSet | None], new_rs: ReplicaSet | None
    ) -> Condition | None:
        """A ReplicaFailure condition of the new (else any) ReplicaSet."""
        ordered = [new_rs, *[rs for rs in all_rss if rs is not new_rs]]
        for rs in ordered:
            if rs is None:
                continue
            for cond in rs.status.conditions:
                if cond.type == "ReplicaFailure" and cond.status == "True":
                    return Condition(
                        type="ReplicaFailure",
                        status=cond.status,
                        reason=cond.reason,
                        message=cond.message,
                        last_transition_time=cond.last_transition_time,
                        last_update_time=cond.last_transition_time,
                    )
        return None

    def _requeue_stuck(self, status: DeploymentStatus) -> None:
        """requeueStuckDeployment: look again when the deadline would pass."""
        d = self.d
        current = get_condition(d.status, "Progressing")
        if not has_progress_deadline(d) or current is None:
            return
        if deployment_complete(d, status) or current.reason == TIMED_OUT_REASON:
            return
        since = parse_time(current.last_update_time)
        if since is None:
            return
        left = d.spec.progress_deadline_seconds - (self.now - since).total_seconds()
        self.requeues.append(Requeue(max(0.0, left) + 0.001))


# ------------------------------------------------------------------ collisions


def collision_status(d: Deployment) -> UpdateStatus:
    """For the driver when creating the new ReplicaSet failed with
    AlreadyExists for an object the plan could not see: count the collision,
    so the next sync computes a different hash (Kubernetes does the same)."""
    updated = clone(d)
    updated.status.collision_count = (d.status.collision_count or 0) + 1
    return UpdateStatus(updated)


# ------------------------------------------------------------------ rollback


class RollbackError(ValueError):
    """A rollback that cannot be done; the message is kubectl's."""


@dataclass(frozen=True)
class Rollback:
    """The outcome of a rollback request: actions (an UpdateObject of the
    Deployment, or none when skipped) and kubectl's message."""

    actions: list[Action]
    message: str


def plan_rollback(
    d: Deployment, replica_sets: Iterable[ReplicaSet], to_revision: int = 0
) -> Rollback:
    """`kubectl rollout undo [--to-revision=N]`: copy the template of the
    ReplicaSet with that revision (0: the previous one) into the Deployment,
    minus the hash label, with that ReplicaSet's annotations. The next sync
    makes it a new revision."""
    if d.spec.paused:
        raise RollbackError(
            "you cannot rollback a paused deployment; resume it first with "
            "'kubectl rollout resume' and try again"
        )
    owned = [
        rs
        for rs in replica_sets
        if (ref := controller_of(rs.metadata)) is not None and ref.uid == d.metadata.uid
    ]
    by_revision: dict[int, ReplicaSet] = {}
    for rs in owned:
        rev = revision_of(rs.metadata)
        if rev > 0:
            by_revision[rev] = rs
    if to_revision == 0:
        if not by_revision:
            raise RollbackError(f'no rollout history found for deployment "{d.metadata.name}"')
        revisions = sorted(by_revision)
        if len(revisions) < 2:
            raise RollbackError(f'no revision found for deployment "{d.metadata.name}"')
        to_revision = revisions[-2]
    target = by_revision.get(to_revision)
    if target is None:
        raise RollbackError(f"unable to find specified revision {to_revision} in history")
    if equal_ignore_hash(target.spec.template, d.spec.template):
        return Rollback(
            [],
            f"skipped rollback (current template already matches revision {to_revision})",
        )
    updated = clone(d)
    updated.spec.template = clone(template_without_hash(target.spec.template))
    annotations = {k: v for k, v in d.metadata.annotations.items() if k in ANNOTATIONS_TO_SKIP}
    annotations.update(
        {k: v for k, v in target.metadata.annotations.items() if k not in ANNOTATIONS_TO_SKIP}
    )
    updated.metadata.annotations = annotations
    return Rollback([UpdateObject(updated)], "rolled back")


def restart_template(d: Deployment, now: datetime) -> PodTemplateSpec:
    """The template `kubectl rollout restart` writes: restartedAt = now."""
    template = clone(d.spec.template)
    template.metadata.annotations[RESTARTED_AT_ANNOTATION] = format_time(now)
    return template


__all__ = [
    "RESTARTED_AT_ANNOTATION",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "Rollback",
    "RollbackError",
    "collision_status",
    "deployment_complete",
    "max_surge",
    "max_unavailable",
    "new_rs_replicas",
    "plan_deployment",
    "plan_rollback",
    "restart_template",
    "scaled_value",
]
