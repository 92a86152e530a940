"""ConfigMaps and Secrets in real containers: env (configMapKeyRef,
secretKeyRef, envFrom with a prefix), configMap, secret and downwardAPI
volumes laid out as kubelet's AtomicWriter lays them out (read-only, item
paths and modes),
and a missing object keeping the container waiting with kubelet's message
until it is created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from podmodel.config import ConfigMap, Secret, encode_base64
from podmodel.meta import ObjectMeta
from podmodel.pod import Pod

from tests.conftest import wait_for
from tests.integration.oci.conftest import OciHarness
from tests.integration.oci.test_oci_runtime import T, delete_and_wait, logs, make_pod, phase


def _meta(name: str) -> ObjectMeta:
    return ObjectMeta(name=name, namespace="default")


async def _waiting(h: OciHarness, name: str, reason: str) -> Any:
    async def check() -> Any:
        p = await h.pod(name)
        if p is None or not p.status.container_statuses:
            return None
        w = p.status.container_statuses[0].state.waiting
        return w if w is not None and w.reason == reason else None

    return await wait_for(check, T, interval=0.05, message=f"{name} waiting {reason}")


async def test_env_and_volumes_from_config_maps_and_secrets(oci: OciHarness) -> None:
    await oci.store.create(
        ConfigMap(metadata=_meta("app-config"), data={"greeting": "hello", "app.conf": "a=1\n"})
    )
    await oci.store.create(
        Secret(metadata=_meta("db"), data={"password": encode_base64(b"s3cr3t")}, type="Opaque")
    )
    script = (
        'echo "G=$GREETING P=$DB_PASSWORD C=$CFG_greeting"; cat /etc/cfg/app.conf; '
        "ls /etc/cfg; readlink /etc/cfg/..data | cut -c1-3; cat /etc/sec/pw; echo; "
        "stat -c 'mode=%a' /etc/sec/..data/pw; touch /etc/cfg/new 2>&1 | grep -o Read-only; "
        "cat /etc/podinfo/labels; echo; cat /etc/podinfo/name; echo"
    )
    pod = make_pod(
        "cfg",
        [
            {
                "name": "app",
                "command": ["sh", "-c", script],
                "env": [
                    {"name": "GREETING",
                     "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "greeting"}}},
                    {"name": "DB_PASSWORD",
                     "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                ],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "app-config"}}],
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "sec", "mountPath": "/etc/sec"},
                    {"name": "podinfo", "mountPath": "/etc/podinfo"},
                ],
            }
        ],
        restartPolicy="Never",
        volumes=[
            {"name": "cfg", "configMap": {"name": "app-config"}},
            {"name": "sec", "secret": {"secretName": "db",
                                       "items": [{"key": "password", "path": "pw",
                                                  "mode": 0o400}]}},
            {"name": "podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        ],
    )  # fmt: skip
    pod.metadata.labels = {"app": "cfg", "tier": "web"}
    await oci.store.create(pod)
    done = await phase(oci, "cfg", "Succeeded")
    out = await logs(oci, done, "app")
    assert out.splitlines() == [
        "G=hello P=s3cr3t C=hello",
        "a=1",
        "app.conf",
        "greeting",
        "..2",
        "s3cr3t",
        "mode=400",
        "Read-only",
        'app="cfg"',
        'tier="web"',
        "cfg",
    ], out
    await delete_and_wait(oci, "cfg")


async def test_a_missing_config_map_keeps_the_container_waiting_until_it_exists(
    oci: OciHarness,
) -> None:
    env_pod = make_pod(
        "needs-env",
        [{"name": "app", "command": ["sh", "-c", "echo $X; sleep 3600"],
          "env": [{"name": "X", "valueFrom": {
              "configMapKeyRef": {"name": "late", "key": "x"}}}]}],
    )  # fmt: skip
    vol_pod = make_pod(
        "needs-vol",
        [{"name": "app", "command": ["sleep", "3600"],
          "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
        volumes=[{"name": "v", "secret": {"secretName": "nothere"}}],
    )  # fmt: skip
    await oci.store.create(env_pod)
    await oci.store.create(vol_pod)
    w = await _waiting(oci, "needs-env", "CreateContainerConfigError")
    assert w.message == 'configmap "late" not found'
    w = await _waiting(oci, "needs-vol", "ContainerCreating")
    assert w.message == 'MountVolume.SetUp failed for volume "v" : secret "nothere" not found'
    await oci.store.create(ConfigMap(metadata=_meta("late"), data={"x": "arrived"}))
    running: Pod = await phase(oci, "needs-env", "Running")

    async def printed() -> bool:
        return (await logs(oci, running, "app")) == "arrived\n"

    await wait_for(printed, T, interval=0.05, message="the value in the container")
    await delete_and_wait(oci, "needs-env", "needs-vol")


async def test_mounted_files_follow_the_config_map_and_the_labels(oci: OciHarness) -> None:
    """As the kubelet's periodic remount does (here at once: a ConfigMap
    event wakes the pods that name it)."""
    await oci.store.create(ConfigMap(metadata=_meta("live"), data={"level": "info"}))
    pod = make_pod(
        "follows",
        [{"name": "app", "command": ["sleep", "3600"],
          "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"},
                           {"name": "info", "mountPath": "/info"}]}],
        volumes=[{"name": "cfg", "configMap": {"name": "live"}},
                 {"name": "info", "downwardAPI": {"items": [
                     {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}],
    )  # fmt: skip
    pod.metadata.labels = {"v": "1"}
    await oci.store.create(pod)
    running = await phase(oci, "follows", "Running")

    async def shows(path: str, want: str) -> bool:
        result = await oci.runtime.exec(running, "app", ["cat", path])
        return result.stdout.decode() == want

    assert await shows("/cfg/level", "info") and await shows("/info/labels", 'v="1"')
    cm = await oci.store.get(ConfigMap, "default", "live")
    assert cm is not None
    cm.data = {"level": "debug"}
    await oci.store.update(cm)
    await wait_for(lambda: shows("/cfg/level", "debug"), 10, message="the new value in the pod")
    current = await oci.pod("follows")
    assert current is not None
    current.metadata.labels = {"v": "2"}
    await oci.store.update(current)
    await wait_for(lambda: shows("/info/labels", 'v="2"'), 10, message="the new labels in the pod")
    await delete_and_wait(oci, "follows")


async def test_localhost_seccomp_profile_is_enforced(oci: OciHarness) -> None:
    """A Docker-format profile under the node's seccomp root, as
    `seccompProfile: {type: Localhost, localhostProfile: ...}` names it."""
    root = Path(oci.config.seccomp_root) / "profiles"
    root.mkdir(parents=True, exist_ok=True)
    deny_mkdir = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [deny_mkdir]}
    (root / "no-mkdir.json").write_text(json.dumps(profile))

    def sc(name: str) -> dict[str, Any]:
        return {"seccompProfile": {"type": "Localhost", "localhostProfile": f"profiles/{name}"}}

    mkdir = {"name": "app", "command": ["sh", "-c", "mkdir /tmp/x; echo rc=$?"],
             "securityContext": sc("no-mkdir.json")}  # fmt: skip
    await oci.store.create(make_pod("sc-local", [mkdir], restartPolicy="Never"))
    missing_profile = {"name": "app", "command": ["true"], "securityContext": sc("absent.json")}
    await oci.store.create(make_pod("sc-missing", [missing_profile]))
    done = await phase(oci, "sc-local", "Succeeded")
    out = await logs(oci, done, "app")
    assert "Operation not permitted" in out and "rc=1" in out, out
    w = await _waiting(oci, "sc-missing", "CreateContainerError")
    missing = Path(oci.config.seccomp_root) / "profiles" / "absent.json"
    assert w.message == (
        f'failed to generate spec: cannot load seccomp profile "{missing}": '
        f"open {missing}: no such file or directory"
    )
    await delete_and_wait(oci, "sc-local", "sc-missing")
