"""ConfigMap and Secret: the API server's defaulting (stringData folded
into data), validation with Kubernetes' messages, the update rules of
immutable objects, and how podctl shows them."""

from __future__ import annotations

from typing import Any

import pytest
from podmodel.codec import object_from_raw
from podmodel.config import MAX_DATA_BYTES, ConfigMap, Secret, decode_base64, encode_base64
from podmodel.defaults import apply_defaults
from podmodel.validation import CONFIG_KEY_MSG, config_key_problem, validate

from clients.podctl.describe_text import describe_generic, describe_pod
from clients.podctl.kinds import resource
from clients.podctl.tables import headers_for, rows_for
from services.workload_controller.api import IMMUTABLE_SET, validate_config_update


def _load(raw: dict[str, Any]) -> Any:
    obj = object_from_raw({"apiVersion": "v1", "metadata": {"name": "x"}, **raw})
    apply_defaults(obj)
    return obj


def test_secret_string_data_is_folded_into_data_and_type_defaults() -> None:
    s = _load({"kind": "Secret", "data": {"a": "MQ==", "b": "Mg=="}, "stringData": {"b": "two"}})
    assert s.data == {"a": "MQ==", "b": encode_base64(b"two")}
    assert s.string_data == {} and s.type == "Opaque"
    assert s.values() == {"a": b"1", "b": b"two"}
    assert validate(s) == []


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("ok-key_1.conf", None),
        ("bad key", CONFIG_KEY_MSG),
        ("a/b", CONFIG_KEY_MSG),
        (".", "must not be '.'"),
        ("..", "must not be '..'"),
        ("..hidden", "must not start with '..'"),
        ("k" * 254, "must be no more than 253 characters"),
    ],
)
def test_config_keys_follow_kubernetes(key: str, why: str | None) -> None:
    assert config_key_problem(key) == why


def test_config_map_problems_each_with_its_path() -> None:
    cm = _load({"kind": "ConfigMap", "data": {"a": "1", "bad key": "2"},
                "binaryData": {"a": "AA==", "b": "!!"}})  # fmt: skip
    assert [(e.field, e.message.split(":")[0]) for e in validate(cm)] == [
        ("data[bad key]", "Invalid value"),
        ("binaryData[a]", "Invalid value"),
        ("binaryData[b]", "Invalid value"),
    ]
    big = _load({"kind": "ConfigMap", "data": {"a": "x" * MAX_DATA_BYTES}})
    assert [(e.field, e.message) for e in validate(big)] == [
        ("[]", f"Too long: must have at most {MAX_DATA_BYTES} bytes")
    ]


def test_secret_types_need_their_keys_and_data_must_be_base64() -> None:
    tls = _load({"kind": "Secret", "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})
    assert [(e.field, e.message) for e in validate(tls)] == [("data[tls.key]", "Required value")]
    bad = _load({"kind": "Secret", "data": {"k": "not base64!"}})
    assert [e.field for e in validate(bad)] == ["data[k]"]
    assert "not base64" not in validate(bad)[0].message  # the value is never echoed
    assert decode_base64("not base64!") is None


def test_immutable_objects_refuse_changes_and_secrets_keep_their_type() -> None:
    old = ConfigMap(data={"a": "1"}, immutable=True)
    assert validate_config_update(ConfigMap(data={"a": "1"}, immutable=True), old) == []
    errs = validate_config_update(ConfigMap(data={"a": "2"}), old)
    assert [(e.field, e.message) for e in errs] == [
        ("immutable", IMMUTABLE_SET),
        ("data", IMMUTABLE_SET),
    ]
    assert validate_config_update(ConfigMap(data={"a": "2"}), ConfigMap(data={"a": "1"})) == []
    errs = validate_config_update(Secret(type="kubernetes.io/tls"), Secret(type="Opaque"))
    assert [(e.field, e.message) for e in errs] == [
        ("type", 'Invalid value: "kubernetes.io/tls": field is immutable')
    ]


def test_podctl_names_lists_and_describes_them() -> None:
    assert resource("cm").kind == "ConfigMap" and resource("secrets").kind == "Secret"
    cm = {"metadata": {"name": "cfg", "namespace": "default"},
          "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}  # fmt: skip
    secret = {"metadata": {"name": "db", "namespace": "default"}, "type": "Opaque",
              "data": {"password": encode_base64(b"s3cr3t")}}  # fmt: skip
    assert headers_for("ConfigMap", False) == ["NAME", "DATA", "AGE"]
    assert rows_for("ConfigMap", [cm], 0.0)[0][:2] == ["cfg", "3"]
    assert headers_for("Secret", False) == ["NAME", "TYPE", "DATA", "AGE"]
    assert rows_for("Secret", [secret], 0.0)[0][:3] == ["db", "Opaque", "1"]
    text = describe_generic("Secret", secret, [], 0.0)
    assert "password:  6 bytes" in text and "s3cr3t" not in text
    text = describe_generic("ConfigMap", cm, [], 0.0)
    assert "a:\n----\n1\n\nb:\n----\n2\n\nBinaryData\n====\nc:  1 bytes\n" in text


def test_describe_pod_names_where_env_and_volumes_come_from() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "a", "image": "busybox",
                    "envFrom": [{"prefix": "DB_", "secretRef": {"name": "db", "optional": True}}],
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "G", "valueFrom": {
                                "configMapKeyRef": {"name": "app", "key": "greeting"}}}]}],
                    "volumes": [{"name": "s", "secret": {"secretName": "db"}}]},
           "status": {}}  # fmt: skip
    lines = [" ".join(line.split()) for line in describe_pod(pod, [], 0.0).splitlines()]
    assert "db Secret with prefix 'DB_' Optional: true" in lines
    assert "N: (v1:spec.nodeName)" in lines
    assert "G: <set to the key 'greeting' of config map 'app'> Optional: false" in lines
    assert "Type: Secret (a volume populated by a Secret)" in lines
    assert "SecretName: db" in lines
