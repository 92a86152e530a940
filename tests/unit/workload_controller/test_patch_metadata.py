"""The driver's metadata merge patch (PatchMetadata on the freshest object)."""

from __future__ import annotations

from podmodel.meta import ObjectMeta, OwnerReference
from podmodel.pod import Pod

from services.workload_controller.actuator import patch_metadata
from services.workload_controller.logic.actions import PatchMetadata

OWNER = OwnerReference(
    api_version="apps/v1", kind="ReplicaSet", name="rs", uid="u1", controller=True
)


def pod(**meta: object) -> Pod:
    return Pod(metadata=ObjectMeta(name="p", namespace="default", uid="pu", **meta))  # type: ignore[arg-type]


def patch(**changes: object) -> PatchMetadata:
    return PatchMetadata(kind="Pod", namespace="default", name="p", uid="pu", **changes)  # type: ignore[arg-type]


def test_adoption_adds_controller_reference_unless_one_exists() -> None:
    adopted = patch_metadata(pod(), patch(add_owner_reference=OWNER))
    assert adopted is not None and adopted.metadata.owner_references == [OWNER]
    other = OwnerReference(api_version="batch/v1", kind="Job", name="j", uid="u2", controller=True)
    assert patch_metadata(pod(owner_references=[other]), patch(add_owner_reference=OWNER)) is None


def test_release_labels_annotations_and_finalizers() -> None:
    p = pod(
        labels={"a": "1", "b": "2"},
        annotations={"x": "1"},
        owner_references=[OWNER],
        finalizers=["orphan", "keep"],
    )
    out = patch_metadata(
        p,
        patch(
            set_labels={"c": "3"},
            remove_labels=("a",),
            set_annotations={"y": "2"},
            remove_annotations=("x",),
            remove_owner_uids=("u1",),
            remove_finalizers=("orphan",),
        ),
    )
    assert out is not None
    assert out.metadata.labels == {"b": "2", "c": "3"}
    assert out.metadata.annotations == {"y": "2"}
    assert out.metadata.owner_references == []
    assert out.metadata.finalizers == ["keep"]
    assert p.metadata.labels == {"a": "1", "b": "2"}  # the cached object is untouched


def test_a_patch_that_changes_nothing_is_skipped() -> None:
    assert patch_metadata(pod(labels={"a": "1"}), patch(set_labels={"a": "1"})) is None
