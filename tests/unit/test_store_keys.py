"""The store's pure parts: key names, which subjects a change is published
on, the generation rule, and splitting an object into stored parts and back."""

from __future__ import annotations

import msgspec
import pytest
from podmodel.event import Event, ObjectReference
from podmodel.meta import ObjectMeta, OwnerReference
from podmodel.node import Node, NodeSpec, Taint
from podmodel.pod import Container, ContainerStatus, Pod, PodSpec, PodStatus, Toleration
from podmodel.workloads import Deployment
from servicekit.informer import watch_subject
from servicekit.store import (
    AlreadyExists,
    Conflict,
    Invalid,
    NotFound,
    assemble,
    encode_identity_meta,
    encode_rest,
    encode_spec_part,
    encode_status_part,
    encode_user_meta,
    error_from_reply,
    event_subjects,
    generated_name,
    kind_index_key,
    layout_of,
    lua_payload,
    namespace_index_key,
    node_index_key,
    object_key,
    pod_flags,
    rfc3339,
    spec_changed,
)

ENC = msgspec.msgpack.Encoder()


def test_keys_are_namespaced_by_kind_in_lower_case() -> None:
    assert object_key("Pod", "default", "web-1") == "podbus:obj:pod:default:web-1"
    assert object_key("deploy", "prod", "api") == "podbus:obj:deployment:prod:api"
    assert kind_index_key("ReplicaSet") == "podbus:idx:replicaset"
    assert namespace_index_key("Pod", "default") == "podbus:idx:pod:ns:default"


def test_cluster_scoped_objects_have_no_namespace_index() -> None:
    assert object_key("Node", "", "n1") == "podbus:obj:node::n1"
    assert namespace_index_key("Node", "") == ""


def test_unbound_pods_are_indexed_under_underscore() -> None:
    assert node_index_key("") == "podbus:idx:pod:node:_"
    assert node_index_key(None) == "podbus:idx:pod:node:_"
    assert node_index_key("_") == "podbus:idx:pod:node:_"
    assert node_index_key("worker-1") == "podbus:idx:pod:node:worker-1"


def test_a_change_is_published_on_the_objects_watch_subject() -> None:
    assert event_subjects("Deployment", "prod", "api") == ["podbus.watch.deployment.prod.api"]
    assert event_subjects("Pod", "default", "web", "n1", "n1") == [
        "podbus.watch.pod.n1.default.web"
    ]
    assert event_subjects("Pod", "default", "web", "_", None) == ["podbus.watch.pod._.default.web"]


def test_a_pod_that_is_bound_is_published_on_both_unbound_and_node_subjects() -> None:
    assert event_subjects("Pod", "default", "web", "n1", "_") == [
        "podbus.watch.pod._.default.web",
        "podbus.watch.pod.n1.default.web",
    ]


def test_dotted_names_are_escaped_in_subjects() -> None:
    assert event_subjects("Node", "", "node.example.com") == [
        "podbus.watch.node._.node%2Eexample%2Ecom"
    ]


def test_informer_subjects_match_what_the_store_publishes() -> None:
    assert watch_subject("Pod") == "podbus.watch.pod.*.*.*"
    assert watch_subject("Pod", node="") == "podbus.watch.pod._.*.*"
    assert watch_subject("Pod", "default", "n1") == "podbus.watch.pod.n1.default.*"
    assert watch_subject("Deployment", "prod") == "podbus.watch.deployment.prod.*"


def _pod(**spec_kw: object) -> Pod:
    return Pod(
        metadata=ObjectMeta(name="web", namespace="default", labels={"app": "web"}),
        spec=PodSpec(containers=[Container(name="c", image="nginx")], **spec_kw),  # type: ignore[arg-type]
    )


def test_generation_moves_on_spec_changes_only() -> None:
    old = _pod()
    relabelled = msgspec.structs.replace(
        old, metadata=msgspec.structs.replace(old.metadata, labels={"app": "other"})
    )
    assert not spec_changed(old, relabelled)
    assert not spec_changed(old, msgspec.structs.replace(old, status=PodStatus(phase="Running")))
    assert spec_changed(old, _pod(tolerations=[Toleration(key="k", operator="Exists")]))


def test_binding_a_pod_is_not_a_spec_change() -> None:
    assert not spec_changed(_pod(), _pod(node_name="n1"))


def test_spec_bytes_do_not_depend_on_map_insertion_order() -> None:
    a = _pod(node_selector={"zone": "a", "disk": "ssd"})
    b = _pod(node_selector={"disk": "ssd", "zone": "a"})
    assert encode_spec_part(a) == encode_spec_part(b)


def _stored_parts(obj: object, rv: int, generation: int, deletion: bytes = b"") -> list[bytes]:
    """The parts exactly as the create script stores them."""
    assert isinstance(obj, Pod | Node | Event | Deployment)
    layout = layout_of(type(obj))
    n, _z, _e = pod_flags(obj)
    return [
        str(rv).encode(),
        str(generation).encode(),
        encode_rest(obj, layout),
        encode_user_meta(obj.metadata),
        encode_identity_meta("uid-1", ENC.encode("2024-05-01T10:00:00Z")),
        deletion,
        encode_spec_part(obj),
        encode_status_part(obj),
        n.encode(),
    ]


def _expected(obj: Pod | Node | Event | Deployment, rv: int, generation: int) -> object:
    meta = msgspec.structs.replace(
        obj.metadata,
        uid="uid-1",
        creation_timestamp="2024-05-01T10:00:00Z",
        resource_version=str(rv),
        generation=generation,
    )
    return msgspec.structs.replace(obj, metadata=meta)


@pytest.mark.parametrize(
    "obj",
    [
        _pod(),
        _pod(node_name="worker-1", priority=5, hostname="h", subdomain="s"),
        Pod(
            metadata=ObjectMeta(
                name="full",
                namespace="ns",
                annotations={"a": "b"},
                finalizers=["x/y"],
                owner_references=[
                    OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="r", uid="u")
                ],
            ),
            spec=PodSpec(containers=[Container(name="c", image="i")], node_name="n"),
            status=PodStatus(
                phase="Running", container_statuses=[ContainerStatus(name="c", ready=True)]
            ),
        ),
        Node(
            metadata=ObjectMeta(name="n1"),
            spec=NodeSpec(taints=[Taint(key="k", effect="NoSchedule")]),
        ),
        Event(
            metadata=ObjectMeta(name="e1", namespace="default"),
            involved_object=ObjectReference(kind="Pod", name="web"),
            reason="Scheduled",
            message="assigned",
            count=3,
        ),
        Deployment(metadata=ObjectMeta(name="api", namespace="prod")),
    ],
    ids=["pod", "bound-pod", "full-pod", "node", "event", "deployment"],
)
def test_stored_parts_assemble_into_the_object(obj: Pod | Node | Event | Deployment) -> None:
    body = assemble(_stored_parts(obj, 42, 3))
    decoded = layout_of(type(obj)).decode(body)
    assert decoded == _expected(obj, 42, 3)


def test_deletion_part_joins_the_metadata() -> None:
    # What the delete script builds: a map of the two deletion fields.
    deletion = b"\x82" + b"".join(
        ENC.encode(x)
        for x in ("deletionTimestamp", "2024-05-01T10:00:30Z", "deletionGracePeriodSeconds", 30)
    )
    pod = _pod(node_name="n1")
    decoded = layout_of(Pod).decode(assemble(_stored_parts(pod, 7, 1, deletion)))
    assert decoded.metadata.deletion_timestamp == "2024-05-01T10:00:30Z"
    assert decoded.metadata.deletion_grace_period_seconds == 30
    assert decoded.metadata.uid == "uid-1"


def test_user_metadata_never_carries_what_the_store_owns() -> None:
    meta = ObjectMeta(
        name="x",
        uid="forged",
        resource_version="9",
        generation=7,
        creation_timestamp="1999-01-01T00:00:00Z",
        deletion_timestamp="1999-01-01T00:00:00Z",
        deletion_grace_period_seconds=3,
        labels={"a": "b"},
    )
    assert msgspec.msgpack.decode(encode_user_meta(meta)) == {"name": "x", "labels": {"a": "b"}}


def test_pod_flags_describe_node_phase_and_grace() -> None:
    pod = _pod(node_name="n1", termination_grace_period_seconds=5)
    assert pod_flags(pod) == ("n1", "0", "5")
    pod.status.phase = "Succeeded"
    assert pod_flags(pod) == ("n1", "1", "5")
    assert pod_flags(_pod()) == ("_", "0", "30")
    assert pod_flags(Deployment()) == ("", "", "")


def _read_str_array(data: bytes) -> list[bytes]:
    """A minimal reader of a msgpack array of str, keeping raw bytes (what
    Lua's cmsgpack hands the scripts)."""
    head = data[0]
    if head & 0xF0 == 0x90:
        count, pos = head & 0x0F, 1
    elif head == 0xDC:
        count, pos = int.from_bytes(data[1:3], "big"), 3
    else:
        assert head == 0xDD
        count, pos = int.from_bytes(data[1:5], "big"), 5
    out = []
    for _ in range(count):
        h = data[pos]
        if h & 0xE0 == 0xA0:
            n, pos = h & 0x1F, pos + 1
        elif h == 0xD9:
            n, pos = data[pos + 1], pos + 2
        elif h == 0xDA:
            n, pos = int.from_bytes(data[pos + 1 : pos + 3], "big"), pos + 3
        else:
            assert h == 0xDB, f"not a str header: {h:#x}"
            n, pos = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
        out.append(data[pos : pos + n])
        pos += n
    assert pos == len(data)
    return out


def test_lua_payload_is_a_msgpack_array_of_strings_even_for_bytes() -> None:
    items: list[str | bytes] = ["key", b"\x00\xff" * 200, "", "x" * 40, b"y" * 70000, "é"]
    expected = [i.encode() if isinstance(i, str) else i for i in items]
    assert _read_str_array(lua_payload(items)) == expected
    assert _read_str_array(lua_payload(items * 4)) == expected * 4
    assert lua_payload(["ab"]) == b"\x91\xa2ab"


def test_script_errors_map_to_exceptions_naming_the_object() -> None:
    err = error_from_reply(b"NotFound", "Pod", "default", "web")
    assert isinstance(err, NotFound) and 'pods "default/web" not found' in str(err)
    assert isinstance(error_from_reply(b"AlreadyExists", "Node", "", "n1"), AlreadyExists)
    conflict = error_from_reply(b"Conflict:the object has been modified", "Pod", "d", "w")
    assert isinstance(conflict, Conflict) and conflict.code == 409 and conflict.name == "w"
    assert isinstance(error_from_reply(b"Invalid:spec.nodeName", "Pod", "d", "w"), Invalid)


def test_timestamps_and_generated_names_look_like_kubernetes() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1714557630.7) == "2024-05-01T10:00:30Z"
    name = generated_name("web-")
    assert name.startswith("web-") and len(name) == 9
    assert set(name[4:]) <= set("bcdfghjklmnpqrstvwxz2456789")
