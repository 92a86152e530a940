"""The garbage-collection plan: Background, Orphan and Foreground."""

from __future__ import annotations

from podmodel.meta import KubeObject

from services.workload_controller.logic.actions import DeleteObject, PatchMetadata
from services.workload_controller.logic.gc import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    plan_garbage_collection,
)
from tests.unit.workload_controller.sample_objects import (
    deployment,
    owner_ref,
    pod,
    replica_set,
    ts,
)


def rs_owned_by_deployment(blocking: bool = True) -> KubeObject:
    rs = replica_set("web-abc", uid="rs-uid")
    ref = owner_ref("Deployment", "web", "dep-uid")
    ref.block_owner_deletion = blocking
    rs.metadata.owner_references = [ref]
    return rs


def test_dependents_of_a_deleted_owner_are_deleted_in_background() -> None:
    rs = rs_owned_by_deployment()
    (delete,) = plan_garbage_collection([rs])
    assert isinstance(delete, DeleteObject)
    assert (delete.kind, delete.name, delete.uid) == ("ReplicaSet", "web-abc", "rs-uid")
    assert delete.propagation_policy == "Background"
    assert [r.uid for r in delete.verify_absent] == ["dep-uid"]


def test_dependents_of_a_live_owner_are_kept() -> None:
    assert plan_garbage_collection([deployment(uid="dep-uid"), rs_owned_by_deployment()]) == []


def test_a_chain_collapses_level_by_level() -> None:
    rs = rs_owned_by_deployment()
    p = pod("web-abc-1", owner=owner_ref("ReplicaSet", "web-abc", "rs-uid"))
    # Deployment gone: only the ReplicaSet goes now; its pod follows once it is gone.
    actions = plan_garbage_collection([rs, p])
    assert [a.name for a in actions if isinstance(a, DeleteObject)] == ["web-abc"]
    actions = plan_garbage_collection([p])
    assert [a.name for a in actions if isinstance(a, DeleteObject)] == ["web-abc-1"]


def test_orphan_removes_owner_references_then_the_finalizer() -> None:
    d = deployment(uid="dep-uid")
    d.metadata.deletion_timestamp = ts()
    d.metadata.finalizers = [ORPHAN_FINALIZER]
    rs = rs_owned_by_deployment()
    actions = plan_garbage_collection([d, rs])
    assert len(actions) == 2
    release, finalize = actions
    assert isinstance(release, PatchMetadata) and release.name == "web-abc"
    assert release.remove_owner_uids == ("dep-uid",)
    assert isinstance(finalize, PatchMetadata) and finalize.name == "web"
    assert finalize.remove_finalizers == (ORPHAN_FINALIZER,)
    assert not [a for a in actions if isinstance(a, DeleteObject)]


def test_foreground_owner_waits_for_blocking_dependents() -> None:
    d = deployment(uid="dep-uid")
    d.metadata.deletion_timestamp = ts()
    d.metadata.finalizers = [FOREGROUND_FINALIZER]
    rs = rs_owned_by_deployment()
    p = pod("web-abc-1", owner=owner_ref("ReplicaSet", "web-abc", "rs-uid"))
    actions = plan_garbage_collection([d, rs, p])
    # The finalizer stays; the ReplicaSet (which has dependents) goes Foreground.
    assert not [a for a in actions if isinstance(a, PatchMetadata)]
    (delete,) = [a for a in actions if isinstance(a, DeleteObject)]
    assert delete.name == "web-abc" and delete.propagation_policy == "Foreground"
    assert delete.verify_absent == ()

    # Blocking dependents gone: the finalizer is removed and the owner can go.
    (finalize,) = plan_garbage_collection([d])
    assert isinstance(finalize, PatchMetadata)
    assert finalize.remove_finalizers == (FOREGROUND_FINALIZER,)


def test_foreground_owner_does_not_wait_for_non_blocking_dependents() -> None:
    d = deployment(uid="dep-uid")
    d.metadata.deletion_timestamp = ts()
    d.metadata.finalizers = [FOREGROUND_FINALIZER]
    rs = rs_owned_by_deployment(blocking=False)
    actions = plan_garbage_collection([d, rs])
    assert any(isinstance(a, PatchMetadata) and a.remove_finalizers for a in actions)
    assert any(isinstance(a, DeleteObject) and a.name == "web-abc" for a in actions)


def test_dependent_with_another_live_owner_only_drops_the_dead_reference() -> None:
    rs = rs_owned_by_deployment()
    other = deployment("other", uid="other-uid")
    second = owner_ref("Deployment", "other", "other-uid")
    second.controller = False
    rs.metadata.owner_references.append(second)
    (patch,) = plan_garbage_collection([rs, other])
    assert isinstance(patch, PatchMetadata) and patch.remove_owner_uids == ("dep-uid",)


def test_objects_already_being_deleted_are_left_alone() -> None:
    rs = rs_owned_by_deployment()
    rs.metadata.deletion_timestamp = ts()
    assert plan_garbage_collection([rs]) == []
