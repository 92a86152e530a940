"""The Deployment plan: ReplicaSets per template, rollouts, scaling, pause,
restart, rollback, clean-up and status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec
import pytest
from podmodel.pod import Pod
from podmodel.workloads import Deployment, ReplicaSet

from services.workload_controller.logic.actions import (
    Action,
    CreateObject,
    DeleteObject,
    EmitEvent,
    PatchMetadata,
    Requeue,
    UpdateObject,
    UpdateStatus,
)
from services.workload_controller.logic.deployment import (
    RESTARTED_AT_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    RollbackError,
    max_surge,
    max_unavailable,
    plan_deployment,
    plan_rollback,
    restart_template,
)
from services.workload_controller.logic.pod_template import POD_TEMPLATE_HASH_LABEL
from tests.unit.workload_controller.sample_objects import NOW, deployment, owner_ref, pod


@dataclass
class Cluster:
    """A Deployment, its ReplicaSets, and a crude ReplicaSet controller:
    pods appear one step after a scale-up and are available one step later
    (or never, with `stuck`)."""

    d: Deployment
    rss: dict[str, ReplicaSet] = field(default_factory=dict)
    now: datetime = NOW
    stuck: bool = False
    serial: int = 0
    events: list[EmitEvent] = field(default_factory=list)

    def plan(self, pods: list[Pod] | None = None) -> list[Action]:
        return plan_deployment(self.d, list(self.rss.values()), pods or [], self.now)

    def apply(self, actions: Sequence[Action]) -> None:
        for a in actions:
            if isinstance(a, CreateObject):
                rs = msgspec.structs.replace(a.obj)
                assert isinstance(rs, ReplicaSet)
                self.serial += 1
                rs.metadata.uid = f"rs-{self.serial}"
                rs.metadata.creation_timestamp = (
                    self.now + timedelta(seconds=self.serial)
                ).strftime("%Y-%m-%dT%H:%M:%SZ")
                rs.metadata.generation = 1
                assert rs.metadata.name not in self.rss
                self.rss[rs.metadata.name] = rs
            elif isinstance(a, UpdateObject) and isinstance(a.obj, ReplicaSet):
                self.rss[a.obj.metadata.name] = a.obj
            elif isinstance(a, UpdateObject) and isinstance(a.obj, Deployment):
                self.d = a.obj
            elif isinstance(a, DeleteObject):
                del self.rss[a.name]
            elif isinstance(a, UpdateStatus):
                assert isinstance(a.obj, Deployment)
                self.d = a.obj
            elif isinstance(a, PatchMetadata) and a.kind == "Deployment":
                self.d.metadata.annotations.update(a.set_annotations)
            elif isinstance(a, EmitEvent):
                self.events.append(a)

    def settle_replica_sets(self) -> None:
        for rs in self.rss.values():
            want = rs.spec.replicas
            previous = rs.status.replicas
            rs.status.replicas = want
            rs.status.observed_generation = rs.metadata.generation
            if self.stuck:
                rs.status.available_replicas = min(rs.status.available_replicas, want)
            else:
                rs.status.available_replicas = min(
                    want, max(previous, rs.status.available_replicas)
                )
            rs.status.ready_replicas = rs.status.available_replicas

    def step(self) -> list[Action]:
        actions = self.plan()
        self.apply(actions)
        self.settle_replica_sets()
        self.now += timedelta(seconds=1)
        return actions

    def run(self, steps: int = 60) -> None:
        for _ in range(steps):
            self.step()

    def new_rs(self) -> ReplicaSet:
        matching = [
            rs
            for rs in self.rss.values()
            if rs.spec.template.spec == self.d.spec.template.spec
            and {k: v for k, v in rs.spec.template.metadata.annotations.items()}
            == self.d.spec.template.metadata.annotations
        ]
        assert len(matching) == 1
        return matching[0]


def condition(d: Deployment, type_: str) -> tuple[str, str]:
    for c in d.status.conditions:
        if c.type == type_:
            return c.status, c.reason
    raise AssertionError(f"no {type_} condition")


def test_max_surge_rounds_up_and_max_unavailable_rounds_down() -> None:
    d = deployment(replicas=10)
    assert (max_surge(d), max_unavailable(d)) == (3, 2)
    d = deployment(replicas=3, max_surge=0, max_unavailable="10%")
    assert (max_surge(d), max_unavailable(d)) == (0, 1)  # both 0 -> unavailable 1
    assert max_surge(deployment(strategy="Recreate")) == 0


def test_deployment_creates_one_replicaset_named_by_template_hash() -> None:
    cluster = Cluster(deployment(replicas=4))
    actions = cluster.step()
    (create,) = [a for a in actions if isinstance(a, CreateObject)]
    rs = create.obj
    assert isinstance(rs, ReplicaSet)
    pod_hash = rs.spec.template.metadata.labels[POD_TEMPLATE_HASH_LABEL]
    assert rs.metadata.name == f"web-{pod_hash}"
    assert rs.spec.selector.match_labels == {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash}
    assert rs.metadata.labels[POD_TEMPLATE_HASH_LABEL] == pod_hash
    assert rs.metadata.annotations[REVISION_ANNOTATION] == "1"
    assert rs.metadata.owner_references[0].uid == "dep-uid"
    assert rs.spec.replicas == 4
    assert cluster.d.metadata.annotations[REVISION_ANNOTATION] == "1"
    assert any(
        e.reason == "ScalingReplicaSet"
        and e.message == f"Scaled up replica set {rs.metadata.name} from 0 to 4"
        for e in cluster.events
    )
    assert condition(cluster.d, "Progressing") == ("True", "NewReplicaSetCreated")
    cluster.run(5)
    assert len(cluster.rss) == 1
    assert condition(cluster.d, "Available") == ("True", "MinimumReplicasAvailable")
    assert condition(cluster.d, "Progressing") == ("True", "NewReplicaSetAvailable")
    status = cluster.d.status
    assert (status.replicas, status.updated_replicas, status.available_replicas) == (4, 4, 4)
    assert status.unavailable_replicas == 0 and status.observed_generation == 1


def test_rolling_update_respects_max_surge_and_max_unavailable() -> None:
    cluster = Cluster(deployment(replicas=10))
    cluster.run(10)
    cluster.d.spec.template.spec.containers[0].image = "nginx:1.26"
    cluster.d.metadata.generation = 2
    surge, unavailable = max_surge(cluster.d), max_unavailable(cluster.d)
    seen_two = False
    for _ in range(60):
        cluster.step()
        total = sum(rs.spec.replicas for rs in cluster.rss.values())
        available = sum(
            min(rs.status.available_replicas, rs.spec.replicas) for rs in cluster.rss.values()
        )
        assert total <= 10 + surge
        assert available >= 10 - unavailable
        seen_two = seen_two or len([r for r in cluster.rss.values() if r.spec.replicas]) == 2
    assert seen_two  # old and new ran side by side
    new = cluster.new_rs()
    assert new.spec.replicas == 10
    assert all(rs.spec.replicas == 0 for rs in cluster.rss.values() if rs is not new)
    assert new.metadata.annotations[REVISION_ANNOTATION] == "2"
    assert cluster.d.metadata.annotations[REVISION_ANNOTATION] == "2"
    assert condition(cluster.d, "Progressing") == ("True", "NewReplicaSetAvailable")
    scaled = [e.message for e in cluster.events if e.reason == "ScalingReplicaSet"]
    assert any(m.startswith("Scaled down replica set") for m in scaled)


def test_rolling_update_with_zero_surge_scales_down_first() -> None:
    cluster = Cluster(deployment(replicas=4, max_surge=0, max_unavailable=1))
    cluster.run(6)
    cluster.d.spec.template.spec.containers[0].image = "nginx:1.26"
    for _ in range(40):
        cluster.step()
        assert sum(rs.spec.replicas for rs in cluster.rss.values()) <= 4
    assert cluster.new_rs().spec.replicas == 4


def test_recreate_waits_until_old_pods_are_gone() -> None:
    cluster = Cluster(deployment(replicas=3, strategy="Recreate"))
    cluster.run(5)
    (old,) = cluster.rss.values()
    cluster.d.spec.template.spec.containers[0].image = "nginx:1.26"

    first = cluster.plan()
    assert not [a for a in first if isinstance(a, CreateObject)]
    (scale_down,) = [a for a in first if isinstance(a, UpdateObject)]
    assert isinstance(scale_down.obj, ReplicaSet) and scale_down.obj.spec.replicas == 0
    cluster.apply(first)
    cluster.settle_replica_sets()

    # Old pods still terminating: no new ReplicaSet yet.
    ref = owner_ref("ReplicaSet", old.metadata.name, old.metadata.uid)
    lingering = [pod("old-1", owner=ref, deleting=True)]
    waiting = cluster.plan(lingering)
    assert not [a for a in waiting if isinstance(a, CreateObject)]

    # Gone (or terminal): now the new ReplicaSet appears at full size.
    finished = [pod("old-1", owner=ref, phase="Succeeded", ready=False)]
    actions = cluster.plan(finished)
    (create,) = [a for a in actions if isinstance(a, CreateObject)]
    assert isinstance(create.obj, ReplicaSet) and create.obj.spec.replicas == 3


def test_scaling_during_a_rollout_is_proportional() -> None:
    cluster = Cluster(deployment(replicas=10), stuck=False)
    cluster.run(10)
    cluster.d.spec.template.spec.containers[0].image = "nginx:1.26"
    cluster.stuck = True  # the new pods never become available: rollout stalls
    cluster.run(5)
    sizes_before = {n: rs.spec.replicas for n, rs in cluster.rss.items()}
    assert all(v > 0 for v in sizes_before.values()) and sum(sizes_before.values()) == 13
    cluster.d.spec.replicas = 20
    cluster.step()
    sizes = {n: rs.spec.replicas for n, rs in cluster.rss.items()}
    assert sum(sizes.values()) == 20 + max_surge(cluster.d)  # 25
    for name, before in sizes_before.items():
        assert sizes[name] > before  # both grew
    # Roughly in proportion (old had 8 of 13, new 5 of 13).
    old_name = max(sizes_before, key=lambda n: sizes_before[n])
    assert abs(sizes[old_name] - round(8 * 25 / 13)) <= 1


def test_paused_deployment_does_not_roll_but_scales() -> None:
    cluster = Cluster(deployment(replicas=3))
    cluster.run(5)
    cluster.d.spec.paused = True
    cluster.d.spec.template.spec.containers[0].image = "nginx:1.26"
    cluster.run(5)
    assert len(cluster.rss) == 1
    assert condition(cluster.d, "Progressing") == ("Unknown", "DeploymentPaused")
    cluster.d.spec.replicas = 5
    cluster.run(2)
    (only,) = cluster.rss.values()
    assert only.spec.replicas == 5

    cluster.d.spec.paused = False
    cluster.step()
    assert len(cluster.rss) == 2
    cluster.run(30)
    assert cluster.new_rs().spec.replicas == 5
    assert condition(cluster.d, "Progressing") == ("True", "NewReplicaSetAvailable")


def test_restart_annotation_rolls_out_a_new_replicaset() -> None:
    cluster = Cluster(deployment(replicas=2))
    cluster.run(5)
    cluster.d.spec.template = restart_template(cluster.d, NOW)
    assert RESTARTED_AT_ANNOTATION in cluster.d.spec.template.metadata.annotations
    cluster.run(20)
    assert len(cluster.rss) == 2
    assert cluster.new_rs().spec.replicas == 2


def test_rollback_copies_old_template_as_a_new_revision() -> None:
    cluster = Cluster(deployment(replicas=2))
    cluster.run(5)
    cluster.d.spec.template.spec.containers[0].image = "nginx:1.26"
    cluster.run(20)
    rollback = plan_rollback(cluster.d, list(cluster.rss.values()))
    assert rollback.message == "rolled back"
    (update,) = rollback.actions
    assert isinstance(update, UpdateObject) and isinstance(update.obj, Deployment)
    assert update.obj.spec.template.spec.containers[0].image == "nginx:1.25"
    assert POD_TEMPLATE_HASH_LABEL not in update.obj.spec.template.metadata.labels
    cluster.apply(rollback.actions)
    cluster.run(20)
    assert len(cluster.rss) == 2  # the revision-1 ReplicaSet is reused
    back = cluster.new_rs()
    assert back.spec.template.spec.containers[0].image == "nginx:1.25"
    assert back.metadata.annotations[REVISION_ANNOTATION] == "3"
    assert back.metadata.annotations[REVISION_HISTORY_ANNOTATION] == "1"
    assert back.spec.replicas == 2


def test_rollback_errors_and_skips_like_kubectl() -> None:
    cluster = Cluster(deployment(replicas=1))
    cluster.run(3)
    rss = list(cluster.rss.values())
    with pytest.raises(RollbackError, match="no revision found"):
        plan_rollback(cluster.d, rss)
    with pytest.raises(RollbackError, match="unable to find specified revision 7"):
        plan_rollback(cluster.d, rss, 7)
    assert plan_rollback(cluster.d, rss, 1).actions == []
    cluster.d.spec.paused = True
    with pytest.raises(RollbackError, match="paused"):
        plan_rollback(cluster.d, rss, 1)


def test_revision_history_limit_deletes_oldest_empty_replicasets() -> None:
    cluster = Cluster(deployment(replicas=1, revision_history_limit=2))
    for version in range(5):
        cluster.d.spec.template.spec.containers[0].image = f"nginx:1.{version}"
        cluster.run(15)
    revisions = sorted(
        int(rs.metadata.annotations[REVISION_ANNOTATION]) for rs in cluster.rss.values()
    )
    assert revisions == [3, 4, 5]


def test_progress_deadline_exceeded_when_the_rollout_stalls() -> None:
    cluster = Cluster(deployment(replicas=2, progress_deadline_seconds=30))
    cluster.run(5)
    cluster.d.spec.template.spec.containers[0].image = "nginx:1.26"
    cluster.stuck = True
    cluster.run(3)
    assert condition(cluster.d, "Progressing")[0] == "True"
    actions = cluster.plan()
    requeues = [a for a in actions if isinstance(a, Requeue)]
    assert requeues and requeues[0].after_s <= 31
    cluster.now += timedelta(seconds=40)
    cluster.step()
    assert condition(cluster.d, "Progressing") == ("False", "ProgressDeadlineExceeded")
    msg = next(c.message for c in cluster.d.status.conditions if c.type == "Progressing")
    assert msg.endswith("has timed out progressing.")


def test_available_condition_false_below_minimum_availability() -> None:
    cluster = Cluster(deployment(replicas=4), stuck=True)
    cluster.run(3)
    assert condition(cluster.d, "Available") == ("False", "MinimumReplicasUnavailable")
    assert cluster.d.status.unavailable_replicas == 4


def test_deployment_adopts_orphaned_replicaset_with_matching_labels() -> None:
    cluster = Cluster(deployment(replicas=2))
    cluster.run(3)
    (rs,) = cluster.rss.values()
    rs.metadata.owner_references = []
    actions = cluster.plan()
    patches = [a for a in actions if isinstance(a, PatchMetadata) and a.kind == "ReplicaSet"]
    assert patches and patches[0].add_owner_reference is not None
    assert not [a for a in actions if isinstance(a, CreateObject)]


def test_deployment_plan_is_idempotent_when_settled() -> None:
    cluster = Cluster(deployment(replicas=3))
    cluster.run(10)
    assert cluster.plan() == []


def test_hash_collision_bumps_collision_count_and_retries() -> None:
    cluster = Cluster(deployment(replicas=1))
    cluster.run(3)
    (rs,) = cluster.rss.values()
    # Someone else's ReplicaSet holds the name the new template hashes to.
    cluster.d.spec.template.spec.containers[0].image = "nginx:1.26"
    first = cluster.plan()
    (create,) = [a for a in first if isinstance(a, CreateObject)]
    squatter = msgspec.structs.replace(rs)
    squatter.metadata = msgspec.structs.replace(rs.metadata, name=create.obj.metadata.name)
    squatter.metadata.uid = "squatter"
    cluster.rss[squatter.metadata.name] = squatter
    actions = cluster.plan()
    assert not [a for a in actions if isinstance(a, CreateObject)]
    (status,) = [a for a in actions if isinstance(a, UpdateStatus)]
    assert isinstance(status.obj, Deployment) and status.obj.status.collision_count == 1
    assert Requeue(0.0) in actions
    cluster.apply(actions)
    (retry,) = [a for a in cluster.plan() if isinstance(a, CreateObject)]
    assert retry.obj.metadata.name != squatter.metadata.name


def test_deployment_being_deleted_only_updates_status() -> None:
    cluster = Cluster(deployment(replicas=2))
    cluster.run(3)
    cluster.d.metadata.deletion_timestamp = "2025-01-01T12:00:00Z"
    cluster.d.spec.replicas = 5
    cluster.d.metadata.generation = 2
    actions = cluster.plan()
    assert {type(a) for a in actions} <= {UpdateStatus}


def test_min_ready_seconds_is_passed_to_the_new_replicaset() -> None:
    cluster = Cluster(deployment(replicas=1))
    cluster.run(3)
    cluster.d.spec.min_ready_seconds = 15
    actions = cluster.plan()
    (update,) = [a for a in actions if isinstance(a, UpdateObject)]
    assert isinstance(update.obj, ReplicaSet) and update.obj.spec.min_ready_seconds == 15
