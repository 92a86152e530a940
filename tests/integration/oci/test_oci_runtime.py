"""Pods as real containers: runc, a network namespace and IP per pod,
shared volumes, the securityContext enforced by the kernel, cgroup
limits, and nothing left behind."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgspec
from podmodel.pod import EphemeralContainer, Pod

from services.node_agent.oci.podfiles import netns_name, veth_name
from tests.conftest import wait_for
from tests.integration.oci.conftest import NODE, OciHarness, assert_nothing_left

T = 20.0  # generous deadlines: the machine is shared


def make_pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> Pod:
    return msgspec.convert(
        {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"image": "busybox", **c} for c in containers],
                **spec,
            },
        },
        Pod,
    )


async def phase(h: OciHarness, name: str, want: str, timeout: float = T) -> Pod:
    async def check() -> Pod | None:
        pod = await h.pod(name)
        return pod if pod is not None and pod.status.phase == want else None

    found: Pod = await wait_for(check, timeout, interval=0.05, message=f"{name} {want}")
    return found


async def logs(h: OciHarness, pod: Pod, container: str) -> str:
    return (await h.runtime.logs(pod, container)).decode()


async def http_get(ip: str, port: int, path: str = "/") -> str:
    reader, writer = await asyncio.open_connection(ip, port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data.decode(errors="replace")


async def delete_and_wait(h: OciHarness, *names: str) -> None:
    for name in names:
        await h.store.delete(Pod, "default", name, grace_period_seconds=1)
    for name in names:
        await wait_for(lambda n=name: _gone(h, n), T, interval=0.05, message=f"{name} removed")


async def _gone(h: OciHarness, name: str) -> bool:
    return await h.pod(name) is None


async def test_containers_share_localhost_and_init_writes_what_the_app_serves(
    oci: OciHarness,
) -> None:
    pod = make_pod(
        "web",
        [
            {"name": "httpd", "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
             "volumeMounts": [{"name": "www", "mountPath": "/www"}]},
            {"name": "client", "command": ["sh", "-c",
             "until wget -q -O- http://127.0.0.1:80/; do sleep 0.1; done; sleep 3600"]},
        ],
        initContainers=[{"name": "init", "image": "busybox", "command": ["sh", "-c",
                         "echo served-from-init > /work/index.html"],
                         "volumeMounts": [{"name": "www", "mountPath": "/work"}]}],
        volumes=[{"name": "www", "emptyDir": {}}],
    )  # fmt: skip
    await oci.store.create(pod)
    running = await phase(oci, "web", "Running")
    ip = running.status.pod_ip
    assert ip and ip != running.status.host_ip == "127.0.0.1"
    init = running.status.init_container_statuses[0]
    assert init.state.terminated is not None and init.state.terminated.reason == "Completed"
    assert running.status.container_statuses[0].container_id.startswith("runc://")
    # the host reaches the pod at its IP
    body = await wait_for(lambda: _try_get(ip), T, interval=0.1, message="httpd at the pod IP")
    assert "served-from-init" in body
    # the second container reached the first on localhost
    await wait_for(
        lambda: _logs_contain(oci, running, "client", "served-from-init"), T, message="client log"
    )
    # exec runs in the container (its UTS namespace: the pod hostname)
    uid = running.metadata.uid
    assert (await oci.runtime.exec(running, "client", ["hostname"])).stdout == b"web\n"
    await delete_and_wait(oci, "web")
    netns = netns_name(oci.config.netns_prefix, uid)
    # the store object goes first, then the runtime removes the sandbox
    await wait_for(
        lambda: (
            not [x for x in assert_nothing_left(oci.config) if netns in x] and not _veth_exists(uid)
        ),
        T,
        message="the pod's netns and veth removed",
    )


def _veth_exists(uid: str) -> bool:
    return os.path.exists(f"/sys/class/net/{veth_name(uid)}")


async def _try_get(ip: str) -> str | None:
    try:
        text = await http_get(ip, 80, "/index.html")
    except OSError:
        return None
    return text if "200" in text.split("\r\n", 1)[0] else None


async def _logs_contain(h: OciHarness, pod: Pod, container: str, text: str) -> bool:
    return text in await logs(h, pod, container)


async def test_security_context_is_enforced_by_the_kernel(oci: OciHarness) -> None:
    pod = make_pod(
        "sec",
        [
            {"name": "user", "command": ["id"], "securityContext": {"runAsUser": 1000}},
            {"name": "caps", "command": ["grep", "-E", "NoNewPrivs|CapBnd", "/proc/self/status"],
             "securityContext": {"allowPrivilegeEscalation": False,
                                 "capabilities": {"drop": ["NET_RAW", "CHOWN"]}}},
            {"name": "ro", "command": ["sh", "-c", "touch /probe 2>&1; echo rc=$?; touch /tmp/x"],
             "securityContext": {"readOnlyRootFilesystem": True}},
            {"name": "seccomp", "command": ["grep", "Seccomp:", "/proc/self/status"],
             "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
        ],
        restartPolicy="Never",
    )  # fmt: skip
    await oci.store.create(pod)
    done = await phase(oci, "sec", "Failed")  # `ro` exits 1: its last touch fails too
    user = await logs(oci, done, "user")
    assert user.startswith("uid=1000 gid=0"), user
    caps = dict(line.split(":\t") for line in (await logs(oci, done, "caps")).splitlines())
    assert caps["NoNewPrivs"] == "1"
    bounding = int(caps["CapBnd"], 16)
    assert not bounding & (1 << 13) and not bounding & (1 << 0)  # NET_RAW, CHOWN dropped
    assert bounding & (1 << 10)  # NET_BIND_SERVICE kept
    ro = await logs(oci, done, "ro")
    assert "Read-only file system" in ro and "rc=1" in ro
    assert "Seccomp:\t2" in await logs(oci, done, "seccomp")
    statuses = {c.name: c for c in done.status.container_statuses}
    assert statuses["user"].state.terminated is not None
    assert statuses["user"].state.terminated.exit_code == 0
    await delete_and_wait(oci, "sec")


async def test_run_as_non_root_on_a_root_image_fails_with_kubernetes_message(
    oci: OciHarness,
) -> None:
    pod = make_pod("nonroot", [{"name": "app", "command": ["sleep", "60"]}],
                   securityContext={"runAsNonRoot": True})  # fmt: skip
    created = await oci.store.create(pod)

    async def waiting() -> Any:
        p = await oci.pod("nonroot")
        if p is None or not p.status.container_statuses:
            return None
        w = p.status.container_statuses[0].state.waiting
        return w if w is not None and w.reason == "CreateContainerConfigError" else None

    w = await wait_for(waiting, T, interval=0.05, message="CreateContainerConfigError")
    assert w.message == (
        "container has runAsNonRoot and image will run as root "
        f'(pod: "nonroot_default({created.metadata.uid})", container: app)'
    )
    await delete_and_wait(oci, "nonroot")


async def test_missing_image_waits_with_err_image_never_pull(oci: OciHarness) -> None:
    await oci.store.create(
        make_pod("noimg", [{"name": "app", "image": "example.com/never-imported:1.15"}])
    )

    async def waiting() -> Any:
        p = await oci.pod("noimg")
        if p is None or not p.status.container_statuses:
            return None
        w = p.status.container_statuses[0].state.waiting
        return w if w is not None and w.reason == "ErrImageNeverPull" else None

    w = await wait_for(waiting, T, interval=0.05, message="ErrImageNeverPull")
    # (a name no test imports: the examples module imports nginx tags)
    assert "podbus image import example.com/never-imported:1.15" in w.message
    await delete_and_wait(oci, "noimg")


async def test_memory_limit_ends_in_oom_killed(oci: OciHarness) -> None:
    pod = make_pod(
        "oom",
        [{"name": "hog", "command": ["sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done"],
          "resources": {"limits": {"memory": "16Mi"}}}],
        restartPolicy="Never",
    )  # fmt: skip
    await oci.store.create(pod)
    failed = await phase(oci, "oom", "Failed")
    term = failed.status.container_statuses[0].state.terminated
    assert term is not None and term.reason == "OOMKilled" and term.exit_code == 137
    await delete_and_wait(oci, "oom")


async def test_ephemeral_container_sees_the_target_processes(oci: OciHarness) -> None:
    await oci.store.create(make_pod("dbg", [{"name": "app", "command": ["sleep", "3600"]}]))
    running = await phase(oci, "dbg", "Running")
    updated = msgspec.structs.replace(
        running,
        spec=msgspec.structs.replace(
            running.spec,
            ephemeral_containers=[
                EphemeralContainer(name="debugger", image="busybox", command=["ps", "-o", "pid,args"],
                                   target_container_name="app")
            ],
        ),
    )  # fmt: skip
    await oci.store.update(updated)

    async def ps_done() -> str | None:
        p = await oci.pod("dbg")
        if p is None or not p.status.ephemeral_container_statuses:
            return None
        st = p.status.ephemeral_container_statuses[0]
        return await logs(oci, p, "debugger") if st.state.terminated is not None else None

    out = await wait_for(ps_done, T, interval=0.1, message="debugger finished")
    assert "sleep 3600" in out
    await delete_and_wait(oci, "dbg")


async def test_deleting_pods_leaves_nothing_behind(oci: OciHarness) -> None:
    names = [f"many-{i}" for i in range(3)]
    for name in names:
        await oci.store.create(make_pod(name, [{"name": "a", "command": ["sleep", "3600"]},
                                               {"name": "b", "command": ["sleep", "3600"]}]))  # fmt: skip
    for name in names:
        await phase(oci, name, "Running")
    assert len(oci.runtime.network.allocations()) >= 3
    await delete_and_wait(oci, *names)
    await wait_for(lambda: not assert_nothing_left(oci.config, pods_only=True), T, interval=0.1,
                   message="no namespaces, veths, mounts, processes, cgroups")  # fmt: skip
    assert not oci.runtime.network.allocations()
