"""The pure runc spec builder: argv/env/user/securityContext/resources/
namespaces/mounts, and kubelet's runAsNonRoot messages."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from podmodel.pod import Container, Pod

from services.node_agent.oci.imageref import ImageConfig
from services.node_agent.oci.spec import (
    CREATE_CONTAINER_CONFIG_ERROR,
    CREATE_CONTAINER_ERROR,
    DEFAULT_CAPABILITIES,
    BuiltSpec,
    Mount,
    Namespaces,
    SpecError,
    SpecInput,
    build_spec,
    milli_cpu_to_quota,
    milli_cpu_to_shares,
    parse_signal,
    plan_volume_mounts,
)

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\n"


def pod(spec: dict[str, Any] | None = None, **container: Any) -> Pod:
    c = {"name": "app", "image": "busybox", **container}
    return msgspec.convert(
        {
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
            "spec": {"containers": [c], **(spec or {})},
        },
        Pod,
    )


def build(p: Pod, image: ImageConfig | None = None, **kw: Any) -> BuiltSpec:
    c: Container = p.spec.containers[0]
    args: dict[str, Any] = {
        "pod": p,
        "container": c,
        "kind": "app",
        "image": image or ImageConfig(cmd=("sh",)),
        "env": [(e.name, e.value or "") for e in c.env],
        "rootfs": "/r",
        "namespaces": Namespaces(network="/run/netns/x", ipc="/ns/ipc", uts="/ns/uts"),
        "cgroups_path": "/podbus/pod/app",
        "passwd": PASSWD,
        "group": GROUP,
        **kw,
    }
    return build_spec(SpecInput(**args))


def test_command_and_args_rules() -> None:
    img = ImageConfig(entrypoint=("/ep",), cmd=("c1", "c2"))
    assert build(pod(), img).argv == ("/ep", "c1", "c2")
    assert build(pod(args=["a"]), img).argv == ("/ep", "a")
    assert build(pod(command=["/bin/x"]), img).argv == ("/bin/x",)
    assert build(pod(command=["/bin/x"], args=["y"]), img).argv == ("/bin/x", "y")
    p = pod(command=["echo", "$(GREETING)", "$$(X)"], env=[{"name": "GREETING", "value": "hi"}])
    assert build(p, img).argv == ("echo", "hi", "$(X)")
    with pytest.raises(SpecError) as err:
        build(pod(), ImageConfig())
    assert err.value.reason == CREATE_CONTAINER_ERROR


def test_env_and_workdir() -> None:
    img = ImageConfig(cmd=("sh",), env=("PATH=/img", "A=image", "B=b"), working_dir="/srv")
    spec = build(pod(env=[{"name": "A", "value": "pod"}]), img, hostname="web")
    env = spec.config["process"]["env"]
    assert env == ["PATH=/img", "A=pod", "B=b", "HOSTNAME=web"]
    assert spec.config["process"]["cwd"] == "/srv"
    assert build(pod(workingDir="/w"), img).config["process"]["cwd"] == "/w"
    assert build(pod()).config["process"]["env"][0].startswith("PATH=/usr/local/sbin")


def test_users() -> None:
    user = build(pod()).config["process"]["user"]
    assert user == {"uid": 0, "gid": 0}
    p = pod(
        {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                             "supplementalGroups": [4000]}}
    )  # fmt: skip
    assert build(p).config["process"]["user"] == {
        "uid": 1000, "gid": 3000, "additionalGids": [10, 2000, 4000]
    }  # fmt: skip
    # container overrides pod
    p = pod({"securityContext": {"runAsUser": 1000}}, securityContext={"runAsUser": 7})
    assert build(p).uid == 7 and build(p).gid == 0
    # the image USER by name, uid, uid:gid, name:group
    assert (build(pod(), ImageConfig(cmd=("x",), user="app")).uid,
            build(pod(), ImageConfig(cmd=("x",), user="app")).gid) == (1000, 1001)  # fmt: skip
    assert build(pod(), ImageConfig(cmd=("x",), user="1000")).gid == 1001
    assert build(pod(), ImageConfig(cmd=("x",), user="5:6")).gid == 6
    assert build(pod(), ImageConfig(cmd=("x",), user="app:wheel")).gid == 10
    with pytest.raises(SpecError, match="unable to find user ghost"):
        build(pod(), ImageConfig(cmd=("x",), user="ghost"))


def test_run_as_non_root_messages() -> None:
    spec = {"securityContext": {"runAsNonRoot": True}}
    with pytest.raises(SpecError) as err:
        build(pod(spec))
    assert err.value.reason == CREATE_CONTAINER_CONFIG_ERROR
    assert str(err.value) == (
        'container has runAsNonRoot and image will run as root (pod: "web_default(u-1)", '
        "container: app)"
    )
    with pytest.raises(SpecError) as err:
        build(pod(spec), ImageConfig(cmd=("x",), user="app"))
    assert str(err.value) == (
        "container has runAsNonRoot and image has non-numeric user (app), cannot verify user "
        'is non-root (pod: "web_default(u-1)", container: app)'
    )
    with pytest.raises(SpecError) as err:
        build(pod(spec, securityContext={"runAsUser": 0}))
    assert str(err.value) == (
        'container\'s runAsUser breaks non-root policy (pod: "web_default(u-1)", container: app)'
    )
    assert build(pod(spec, securityContext={"runAsUser": 1000})).uid == 1000
    assert build(pod(spec), ImageConfig(cmd=("x",), user="1000")).uid == 1000


def test_capabilities_and_privileges() -> None:
    caps = build(pod()).config["process"]["capabilities"]
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES) == caps["effective"]
    sc = {"capabilities": {"add": ["NET_ADMIN"], "drop": ["NET_RAW", "chown"]}}
    got = build(pod(securityContext=sc)).config["process"]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in got and "CAP_NET_RAW" not in got and "CAP_CHOWN" not in got
    sc = {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}
    got = build(pod(securityContext=sc)).config["process"]["capabilities"]["bounding"]
    assert got == ["CAP_NET_BIND_SERVICE"]
    priv = build(pod(securityContext={"privileged": True})).config
    assert "CAP_SYS_ADMIN" in priv["process"]["capabilities"]["bounding"]
    assert "maskedPaths" not in priv["linux"]
    assert priv["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    cfg = build(pod(securityContext={"allowPrivilegeEscalation": False,
                                     "readOnlyRootFilesystem": True})).config  # fmt: skip
    assert cfg["process"]["noNewPrivileges"] is True and cfg["root"]["readonly"] is True
    cfg = build(pod()).config
    assert cfg["process"]["noNewPrivileges"] is False and cfg["root"]["readonly"] is False
    with pytest.raises(SpecError, match="unknown capability"):
        build(pod(securityContext={"capabilities": {"add": ["BOGUS"]}}))


def test_seccomp() -> None:
    assert "seccomp" not in build(pod()).config["linux"]
    rd = {"seccompProfile": {"type": "RuntimeDefault"}}
    sec = build(pod({"securityContext": rd})).config["linux"]["seccomp"]
    denied = sec["syscalls"][0]["names"]
    assert sec["defaultAction"] == "SCMP_ACT_ALLOW" and "kexec_load" in denied
    assert "mount" in denied
    with_admin = build(pod(securityContext={**rd, "capabilities": {"add": ["SYS_ADMIN"]}}))
    assert "mount" not in with_admin.config["linux"]["seccomp"]["syscalls"][0]["names"]
    unconfined = pod({"securityContext": rd},
                     securityContext={"seccompProfile": {"type": "Unconfined"}})  # fmt: skip
    assert "seccomp" not in build(unconfined).config["linux"]
    with pytest.raises(SpecError, match="cannot load Localhost seccomp profiles"):
        build(pod(securityContext={"seccompProfile": {"type": "Localhost"}}))


DOCKER_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64",
         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "basics"},
        {"name": "personality", "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_PTRACE"]}},
    ],
}  # fmt: skip


def test_localhost_seccomp_profiles_in_dockers_format() -> None:
    loaded: list[str] = []

    def load(path: str) -> dict[str, Any]:
        loaded.append(path)
        return DOCKER_PROFILE

    sc = {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/p.json"}}
    sec = build(pod(securityContext=sc), load_seccomp=load).config["linux"]["seccomp"]
    assert loaded == ["profiles/p.json"]
    assert sec == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW"},
        ],
    }  # fmt: skip
    admin = {**sc, "capabilities": {"add": ["SYS_ADMIN", "SYS_PTRACE"]}}
    names = [
        r["names"][0]
        for r in build(pod(securityContext=admin), load_seccomp=load).config["linux"]["seccomp"][
            "syscalls"
        ]
    ]
    assert "mount" in names and "ptrace" not in names
    with pytest.raises(SpecError, match="no defaultAction"):
        build(pod(securityContext=sc), load_seccomp=lambda _p: {"syscalls": []})


def test_resources_and_oom_score() -> None:
    assert milli_cpu_to_shares(0) == 2 and milli_cpu_to_shares(250) == 256
    assert milli_cpu_to_quota(500) == 50_000 and milli_cpu_to_quota(1) == 1_000
    res = {"limits": {"memory": "64Mi", "cpu": "500m"}}
    cfg = build(pod(resources=res), pids_limit=100).config
    r = cfg["linux"]["resources"]
    assert r["memory"] == {"limit": 64 * 1024 * 1024}
    assert r["cpu"] == {"shares": 512, "quota": 50_000, "period": 100_000}
    assert r["pids"] == {"limit": 100}
    assert cfg["process"]["oomScoreAdj"] == -997  # Guaranteed
    assert build(pod()).config["process"]["oomScoreAdj"] == 1000  # BestEffort
    burst = pod(resources={"requests": {"memory": "1Gi"}})
    assert build(burst, node_memory_bytes=4 * 2**30).config["process"]["oomScoreAdj"] == 750
    r = build(pod(resources={"requests": {"cpu": "100m"}})).config["linux"]["resources"]
    assert r["cpu"] == {"shares": 102} and "memory" not in r


def test_namespaces() -> None:
    ns = build(pod()).config["linux"]["namespaces"]
    assert {"type": "network", "path": "/run/netns/x"} in ns
    assert {"type": "pid"} in ns and {"type": "mount"} in ns
    shared = build(
        pod(), namespaces=Namespaces(network=None, ipc=None, uts=None, pid="/proc/9/ns/pid")
    )
    types = {n["type"]: n.get("path") for n in shared.config["linux"]["namespaces"]}
    assert "network" not in types and "ipc" not in types and types["pid"] == "/proc/9/ns/pid"
    own_uts = build(pod(), namespaces=Namespaces(uts=""), hostname="web").config
    assert own_uts["hostname"] == "web"
    assert "hostname" not in build(pod(), hostname="web").config


def test_mounts_and_stop_signal() -> None:
    p = pod(
        volumeMounts=[
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/sub", "subPath": "a/b", "readOnly": True},
            {"name": "cfg", "mountPath": "/cfg"},
        ]
    )
    c = p.spec.containers[0]
    mounts = plan_volume_mounts(c, {"data": ("/v/data", False), "cfg": ("/v/cfg", True)}, [])
    assert mounts == [
        Mount("/data", "/v/data"),
        Mount("/sub", "/v/data/a/b", read_only=True),
        Mount("/cfg", "/v/cfg", read_only=True),
    ]
    assert mounts[1].to_oci()["options"] == ["rbind", "ro"]
    with pytest.raises(SpecError, match="cannot find volume"):
        plan_volume_mounts(c, {}, [])
    bad = pod(volumeMounts=[{"name": "data", "mountPath": "/x", "subPath": "../etc"}])
    with pytest.raises(SpecError, match=r"\.\."):
        plan_volume_mounts(bad.spec.containers[0], {"data": ("/v", False)}, [])
    expr = pod(volumeMounts=[{"name": "data", "mountPath": "/x", "subPathExpr": "$(POD)"}])
    got = plan_volume_mounts(expr.spec.containers[0], {"data": ("/v", False)}, [("POD", "web-0")])
    assert got[0].source == "/v/web-0"
    cfg = build(p, mounts=[Mount("/etc/hosts", "/pod/hosts"), Mount("/dev/shm", "/pod/shm")]).config
    dests = [m["destination"] for m in cfg["mounts"]]
    assert dests.count("/dev/shm") == 1 and dests[-1] == "/dev/shm" and "/etc/hosts" in dests
    assert build(pod()).stop_signal == 15
    assert build(pod(), ImageConfig(cmd=("x",), stop_signal="SIGQUIT")).stop_signal == 3
    assert parse_signal("usr1") == 10 and parse_signal("9") == 9
    with pytest.raises(SpecError):
        parse_signal("SIGNOPE")
