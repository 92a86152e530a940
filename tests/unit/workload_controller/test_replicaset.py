"""The ReplicaSet plan, rule by rule."""

from __future__ import annotations

import random
import time

from services.workload_controller.logic.actions import (
    CreatePod,
    DeletePod,
    PatchMetadata,
    Requeue,
    UpdateStatus,
)
from services.workload_controller.logic.replicaset import (
    ReplicaSetTuning,
    plan_replicaset,
)
from tests.unit.workload_controller.sample_objects import (
    NOW,
    owner_ref,
    pod,
    replica_set,
)

REF = owner_ref("ReplicaSet", "web-abc", "rs-uid")


def creates(actions: list) -> list[CreatePod]:
    return [a for a in actions if isinstance(a, CreatePod)]


def deletes(actions: list) -> list[DeletePod]:
    return [a for a in actions if isinstance(a, DeletePod)]


def status_of(actions: list) -> UpdateStatus | None:
    found = [a for a in actions if isinstance(a, UpdateStatus)]
    return found[0] if found else None


def test_replicaset_creates_missing_pods_with_owner_and_events() -> None:
    rs = replica_set(replicas=3)
    actions = plan_replicaset(rs, [pod("web-abc-x1", owner=REF)], NOW, random.Random(1))
    made = creates(actions)
    assert len(made) == 2
    for action in made:
        p = action.pod
        assert (
            p.metadata.name.startswith("web-abc-") and len(p.metadata.name) == len("web-abc-") + 5
        )
        assert p.metadata.owner_references[0].uid == "rs-uid"
        assert action.event is not None and action.event.reason == "SuccessfulCreate"
        assert action.event.message == f"Created pod: {p.metadata.name}"
    assert len({a.pod.metadata.name for a in made}) == 2


def test_replicaset_is_deterministic_for_a_seeded_rng() -> None:
    rs = replica_set(replicas=5)
    a = [c.pod.metadata.name for c in creates(plan_replicaset(rs, [], NOW, random.Random(3)))]
    b = [c.pod.metadata.name for c in creates(plan_replicaset(rs, [], NOW, random.Random(3)))]
    assert a == b


def test_replicaset_limits_creates_to_burst_and_requeues() -> None:
    rs = replica_set(replicas=30)
    actions = plan_replicaset(rs, [], NOW, random.Random(1), ReplicaSetTuning(burst_replicas=10))
    assert len(creates(actions)) == 10
    assert Requeue(0.0) in actions


def test_replicaset_adopts_matching_orphans() -> None:
    rs = replica_set(replicas=2)
    orphan = pod("stray", owner=None)
    actions = plan_replicaset(rs, [orphan, pod("web-abc-1", owner=REF)], NOW, random.Random(1))
    patches = [a for a in actions if isinstance(a, PatchMetadata)]
    assert len(patches) == 1
    assert patches[0].name == "stray" and patches[0].add_owner_reference is not None
    assert patches[0].add_owner_reference.uid == "rs-uid"
    assert patches[0].add_owner_reference.controller is True
    assert creates(actions) == []  # the adopted orphan counts


def test_replicaset_does_not_adopt_non_matching_or_foreign_pods() -> None:
    rs = replica_set(replicas=1)
    other = pod("other", owner=owner_ref("ReplicaSet", "other", "other-uid"))
    wrong_labels = pod("wrong", labels={"app": "db"})
    actions = plan_replicaset(rs, [other, wrong_labels], NOW, random.Random(1))
    assert not [a for a in actions if isinstance(a, PatchMetadata)]
    assert len(creates(actions)) == 1


def test_replicaset_releases_pods_that_no_longer_match() -> None:
    rs = replica_set(replicas=1)
    relabeled = pod("web-abc-1", owner=REF, labels={"app": "debug"})
    actions = plan_replicaset(rs, [relabeled], NOW, random.Random(1))
    (patch,) = [a for a in actions if isinstance(a, PatchMetadata)]
    assert patch.name == "web-abc-1" and patch.remove_owner_uids == ("rs-uid",)
    assert len(creates(actions)) == 1  # the released pod no longer counts


def test_replicaset_ignores_pods_being_deleted_and_terminal_pods() -> None:
    rs = replica_set(replicas=2)
    pods = [
        pod("a", owner=REF),
        pod("b", owner=REF, deleting=True),
        pod("c", owner=REF, phase="Failed", ready=False),
    ]
    actions = plan_replicaset(rs, pods, NOW, random.Random(1))
    assert len(creates(actions)) == 1
    status = status_of(actions)
    assert status is not None and status.obj.status.replicas == 1  # type: ignore[attr-defined]


def test_replicaset_scale_down_prefers_unscheduled_pending_not_ready_first() -> None:
    rs = replica_set(replicas=1)
    pods = [
        pod("running-ready", owner=REF),
        pod("running-not-ready", owner=REF, ready=False),
        pod("pending", owner=REF, phase="Pending", ready=False),
        pod("unscheduled", owner=REF, phase="Pending", ready=False, node=""),
    ]
    order = [d.name for d in deletes(plan_replicaset(rs, pods, NOW, random.Random(1)))]
    assert order == ["unscheduled", "pending", "running-not-ready"]


def test_replicaset_scale_down_prefers_shorter_ready_more_restarts_and_newer() -> None:
    rs = replica_set(replicas=1)
    ready_briefly = pod("ready-10s", owner=REF, ready_since=-10, node="n1")
    ready_long = pod("ready-1h", owner=REF, ready_since=-3600, node="n2")
    actions = plan_replicaset(rs, [ready_long, ready_briefly], NOW, random.Random(1))
    assert [d.name for d in deletes(actions)] == ["ready-10s"]

    restarted = pod("restarts", owner=REF, restarts=5, node="n1")
    steady = pod("steady", owner=REF, node="n2")
    actions = plan_replicaset(rs, [steady, restarted], NOW, random.Random(1))
    assert [d.name for d in deletes(actions)] == ["restarts"]

    newer = pod("newer", owner=REF, created=-60, node="n1")
    older = pod("older", owner=REF, created=-86400, node="n2")
    actions = plan_replicaset(rs, [older, newer], NOW, random.Random(1))
    assert [d.name for d in deletes(actions)] == ["newer"]


def test_replicaset_scale_down_prefers_pods_doubled_up_on_a_node() -> None:
    rs = replica_set(replicas=2)
    pods = [
        pod("lone", owner=REF, node="n1"),
        pod("pair-a", owner=REF, node="n2"),
        pod("pair-b", owner=REF, node="n2"),
    ]
    (victim,) = deletes(plan_replicaset(rs, pods, NOW, random.Random(1)))
    assert victim.name in ("pair-a", "pair-b")
    assert victim.event is not None and victim.event.reason == "SuccessfulDelete"


def test_replicaset_status_counts_labels_ready_and_available_with_min_ready_seconds() -> None:
    rs = replica_set(replicas=4, min_ready_seconds=30, generation=7)
    pods = [
        pod("old-ready", owner=REF, ready_since=-120),
        pod("fresh-ready", owner=REF, ready_since=-10),
        pod("not-ready", owner=REF, ready=False),
        pod("extra-label-missing", owner=REF, labels={"app": "web"}),
    ]
    rs.spec.template.metadata.labels["tier"] = "front"
    rs.spec.selector.match_labels = {"app": "web"}
    pods[0].metadata.labels["tier"] = "front"
    actions = plan_replicaset(rs, pods, NOW, random.Random(1))
    status = status_of(actions)
    assert status is not None
    s = status.obj.status  # type: ignore[attr-defined]
    assert (s.replicas, s.fully_labeled_replicas, s.ready_replicas, s.available_replicas) == (
        4,
        1,
        3,
        2,
    )
    assert s.observed_generation == 7
    # The pod ready for 10 s becomes available 20 s from now: look again then.
    (requeue,) = [a for a in actions if isinstance(a, Requeue)]
    assert 19.9 < requeue.after_s < 20.1


def test_replicaset_status_not_rewritten_when_unchanged() -> None:
    rs = replica_set(replicas=1)
    first = plan_replicaset(rs, [pod("a", owner=REF)], NOW, random.Random(1))
    status = status_of(first)
    assert status is not None
    again = plan_replicaset(status.obj, [pod("a", owner=REF)], NOW, random.Random(1))  # type: ignore[arg-type]
    assert again == []


def test_replicaset_being_deleted_neither_creates_nor_adopts() -> None:
    rs = replica_set(replicas=3)
    rs.metadata.deletion_timestamp = "2025-01-01T11:00:00Z"
    actions = plan_replicaset(rs, [pod("stray")], NOW, random.Random(1))
    assert not creates(actions) and not [a for a in actions if isinstance(a, PatchMetadata)]


def test_replicaset_plan_does_not_mutate_its_inputs() -> None:
    rs = replica_set(replicas=1)
    pods = [pod("a", owner=REF), pod("b", owner=REF)]
    before = (rs.status, [p.metadata for p in pods])
    import copy

    snapshot = copy.deepcopy(before)
    plan_replicaset(rs, pods, NOW, random.Random(1))
    assert (rs.status, [p.metadata for p in pods]) == snapshot


def test_replicaset_plans_ten_thousand_pods_quickly() -> None:
    rs = replica_set(replicas=10_000)
    start = time.perf_counter()
    actions = plan_replicaset(
        rs, [], NOW, random.Random(1), ReplicaSetTuning(burst_replicas=10_000)
    )
    elapsed = time.perf_counter() - start
    made = creates(actions)
    assert len(made) == 10_000
    assert len({c.pod.metadata.name for c in made}) == 10_000
    # A generous bound for a shared 2-core machine; it takes ~0.2 s.
    assert elapsed < 2.0

    pods = [c.pod for c in made]
    for p in pods:
        p.metadata.uid = p.metadata.name
    start = time.perf_counter()
    steady = plan_replicaset(
        rs, pods, NOW, random.Random(1), ReplicaSetTuning(burst_replicas=10_000)
    )
    assert time.perf_counter() - start < 1.0
    assert not creates(steady) and not deletes(steady)
