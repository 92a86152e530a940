"""Which ConfigMaps and Secrets a pod names, the files of its configMap /
secret volumes (kubelet's MakePayload), the checks a runtime makes before a
start, and the AtomicWriter layout of those files on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
from podmodel.pod import Pod, Volume

from services.node_agent.logic.config_refs import (
    PodConfig,
    VolumeFile,
    VolumeSourceError,
    check_container_config,
    downward_api_files,
    referenced,
    volume_files,
)
from services.node_agent.logic.env import EnvError
from services.node_agent.oci.atomic_writer import write_payload


def _pod(container: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> Pod:
    return msgspec.convert(
        {"metadata": {"name": "p", "namespace": "ns"},
         "spec": {"containers": [{"name": "app", "image": "busybox", **container}],
                  "volumes": volumes or []}},
        Pod,
    )  # fmt: skip


def _vol(raw: dict[str, Any]) -> Volume:
    return msgspec.convert({"name": "v", **raw}, Volume)


CONFIG = PodConfig(config_maps={"cm": {"a": b"1", "b": b"2"}}, secrets={"s": {"pw": b"x"}})


def test_referenced_collects_env_env_from_and_volumes() -> None:
    pod = _pod(
        {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "a"}}},
                 {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "b"}}},
                 {"name": "C", "value": "plain"}],
         "envFrom": [{"configMapRef": {"name": "cm2"}}, {"secretRef": {"name": "s2"}}]},
        [{"name": "v1", "configMap": {"name": "cm3"}}, {"name": "v2", "secret": {"secretName": "s3"}},
         {"name": "v3", "emptyDir": {}}],
    )  # fmt: skip
    assert referenced(pod) == ({"cm1", "cm2", "cm3"}, {"s1", "s2", "s3"})
    assert referenced(_pod({"command": ["true"]})) == (set(), set())


def test_volume_files_every_key_or_the_items_with_modes() -> None:
    assert volume_files(_vol({"configMap": {"name": "cm"}}), CONFIG) == [
        VolumeFile("a", b"1", 0o644),
        VolumeFile("b", b"2", 0o644),
    ]
    vol = _vol({"configMap": {"name": "cm", "defaultMode": 0o600,
                              "items": [{"key": "b", "path": "sub/b.txt"},
                                        {"key": "a", "path": "a", "mode": 0o400}]}})  # fmt: skip
    assert volume_files(vol, CONFIG) == [
        VolumeFile("sub/b.txt", b"2", 0o600),
        VolumeFile("a", b"1", 0o400),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"configMap": {"name": "absent"}}, 'configmap "absent" not found'),
        ({"secret": {"secretName": "absent"}}, 'secret "absent" not found'),
        ({"configMap": {"name": "cm", "items": [{"key": "zz", "path": "z"}]}},
         "configmap references non-existent config key: zz"),
        ({"secret": {"secretName": "s", "items": [{"key": "zz", "path": "z"}]}},
         "secret references non-existent secret key: zz"),
        ({"configMap": {"name": "cm", "items": [{"key": "a", "path": "../escape"}]}},
         "invalid path '../escape' for key a"),
    ],
)  # fmt: skip
def test_volume_files_problems_read_as_kubelet_writes_them(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(VolumeSourceError) as exc:
        volume_files(_vol(raw), CONFIG)
    assert str(exc.value) == message


def test_optional_sources_and_keys_are_left_out() -> None:
    assert volume_files(_vol({"configMap": {"name": "absent", "optional": True}}), CONFIG) == []
    vol = _vol({"secret": {"secretName": "s", "optional": True,
                           "items": [{"key": "zz", "path": "z"}, {"key": "pw", "path": "p"}]}})  # fmt: skip
    assert volume_files(vol, CONFIG) == [VolumeFile("p", b"x", 0o644)]


def test_check_container_config_gives_each_waiting_message() -> None:
    env_pod = _pod({"envFrom": [{"configMapRef": {"name": "absent"}}]})
    with pytest.raises(EnvError, match='configmap "absent" not found'):
        check_container_config(env_pod, env_pod.spec.containers[0], CONFIG)
    vol_pod = _pod(
        {"volumeMounts": [{"name": "v", "mountPath": "/v"}]},
        [{"name": "v", "secret": {"secretName": "absent"}}],
    )
    with pytest.raises(VolumeSourceError) as exc:
        check_container_config(vol_pod, vol_pod.spec.containers[0], CONFIG)
    assert str(exc.value) == 'MountVolume.SetUp failed for volume "v" : secret "absent" not found'
    ok = _pod(
        {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}}]}
    )
    check_container_config(ok, ok.spec.containers[0], CONFIG)


def test_atomic_writer_swaps_data_and_drops_what_went(tmp_path: Path) -> None:
    d = tmp_path / "vol"
    assert write_payload(d, [VolumeFile("a", b"1", 0o644), VolumeFile("sub/b", b"2", 0o600)])
    first = os.readlink(d / "..data")
    assert (d / "a").read_bytes() == b"1" and (d / "sub" / "b").read_bytes() == b"2"
    assert os.readlink(d / "a") == "..data/a"
    assert (d / "..data" / "sub" / "b").stat().st_mode & 0o777 == 0o600
    assert not write_payload(d, [VolumeFile("a", b"1", 0o644), VolumeFile("sub/b", b"2", 0o600)])
    assert write_payload(d, [VolumeFile("a", b"changed", 0o644)])
    assert os.readlink(d / "..data") != first and not (d / first).exists()
    assert (d / "a").read_bytes() == b"changed" and not (d / "sub").exists()
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith("..")) == ["a"]


def test_downward_api_files_as_kubelet_writes_them() -> None:
    pod = _pod(
        {"resources": {"limits": {"memory": "64Mi"}}},
        [{"name": "info", "downwardAPI": {"defaultMode": 0o600, "items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o644},
            {"path": "mem", "resourceFieldRef": {"containerName": "app",
                                                 "resource": "limits.memory", "divisor": "1Mi"}},
        ]}}],
    )  # fmt: skip
    pod.metadata.labels = {"tier": "web", "app": 'say "hi"'}
    assert downward_api_files(pod, pod.spec.volumes[0]) == [
        VolumeFile("labels", b'app="say \\"hi\\""\ntier="web"', 0o600),
        VolumeFile("name", b"p", 0o644),
        VolumeFile("mem", b"64", 0o600),
    ]
    bad = _vol({"downwardAPI": {"items": [
        {"path": "x", "resourceFieldRef": {"containerName": "nope", "resource": "limits.cpu"}}]}})  # fmt: skip
    with pytest.raises(VolumeSourceError, match="container 'nope' not found"):
        downward_api_files(pod, bad)
