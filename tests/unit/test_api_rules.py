"""Pod update and ephemeral-container rules of the workload-controller API."""

from __future__ import annotations

import msgspec
from podmodel.codec import ErrorReply
from podmodel.pod import Container, EphemeralContainer, Pod, PodSpec, Probe, Toleration

from services.workload_controller.api import (
    prepare_object,
    validate_ephemeral_update,
    validate_pod_update,
)


def _spec(**kw: object) -> PodSpec:
    return PodSpec(containers=[Container(name="app", image="nginx:1")], **kw)  # type: ignore[arg-type]


def test_pod_update_allows_image_change() -> None:
    old = _spec()
    new = msgspec.structs.replace(old, containers=[Container(name="app", image="nginx:2")])
    assert validate_pod_update(new, old) == []


def test_pod_update_allows_toleration_addition_but_not_removal() -> None:
    tol = Toleration(key="a", operator="Exists")
    old = _spec(tolerations=[tol])
    added = msgspec.structs.replace(old, tolerations=[tol, Toleration(key="b", operator="Exists")])
    assert validate_pod_update(added, old) == []
    removed = msgspec.structs.replace(old, tolerations=[])
    assert [e.field for e in validate_pod_update(removed, old)] == ["spec.tolerations[0]"]


def test_pod_update_forbids_other_spec_changes() -> None:
    old = _spec()
    new = msgspec.structs.replace(
        old, containers=[Container(name="app", image="nginx:1", command=["sh"])]
    )
    errs = validate_pod_update(new, old)
    assert len(errs) == 1 and "pod updates may not change fields" in errs[0].message


def test_pod_update_active_deadline_may_only_shrink() -> None:
    old = _spec(active_deadline_seconds=100)
    assert validate_pod_update(msgspec.structs.replace(old, active_deadline_seconds=50), old) == []
    grown = msgspec.structs.replace(old, active_deadline_seconds=200)
    assert [e.field for e in validate_pod_update(grown, old)] == ["spec.activeDeadlineSeconds"]


def test_ephemeral_container_with_forbidden_fields_is_rejected_with_paths() -> None:
    pod = Pod(spec=_spec())
    debug = EphemeralContainer(
        name="dbg", image="busybox", liveness_probe=Probe(), restart_policy="Always"
    )
    fields = {e.field for e in validate_ephemeral_update(pod, [debug])}
    assert fields == {
        "spec.ephemeralContainers[0].livenessProbe",
        "spec.ephemeralContainers[0].restartPolicy",
    }


def test_existing_ephemeral_container_cannot_change() -> None:
    first = EphemeralContainer(name="dbg", image="busybox")
    pod = Pod(spec=_spec(ephemeral_containers=[first]))
    assert (
        validate_ephemeral_update(pod, [first, EphemeralContainer(name="dbg2", image="busybox")])
        == []
    )
    changed = EphemeralContainer(name="dbg", image="alpine")
    assert [e.field for e in validate_ephemeral_update(pod, [changed])] == [
        "spec.ephemeralContainers[0]"
    ]


def test_prepare_object_lists_every_invalid_field() -> None:
    raw = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "Bad_Name"},
        "spec": {"containers": [{"name": "app"}]},
    }
    reply = prepare_object(raw)
    assert isinstance(reply, ErrorReply)
    assert reply.code == 422 and reply.reason == "Invalid"
    fields = {d.field for d in reply.details}
    assert "metadata.name" in fields and "spec.containers[0].image" in fields


def test_prepare_object_warns_on_unknown_fields_and_drops_status() -> None:
    raw = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "nginx", "bogus": 1}]},
        "status": {"phase": "Running"},
    }
    result = prepare_object(raw)
    assert not isinstance(result, ErrorReply)
    obj, warnings = result
    assert isinstance(obj, Pod) and obj.status.phase != "Running"
    assert any("bogus" in w for w in warnings)


def test_prepare_object_names_an_unknown_kind() -> None:
    reply = prepare_object({"kind": "Gizmo", "metadata": {"name": "x"}})
    assert isinstance(reply, ErrorReply) and "Gizmo" in reply.error
