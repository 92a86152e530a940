"""The oci runtime beyond the basics: an agent restart adopts running
containers, volumes (emptyDir in memory, fsGroup, subPath, hostPath types,
StatefulSet-style claims, a disk emptyDir's sizeLimit enforced by
eviction), and the Python shim fallback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import msgspec
from podmodel.event import Event
from podmodel.pod import Pod
from servicekit.store import Store

from services.node_agent.oci import hostops
from services.node_agent.oci.images import ImageStore
from services.node_agent.oci.runtime import OciConfig, OciRuntime
from tests.conftest import wait_for
from tests.integration.oci.conftest import NODE, OciHarness, oci_agent
from tests.integration.oci.test_oci_runtime import T, delete_and_wait, logs, make_pod, phase


async def test_agent_restart_adopts_running_containers(
    oci_config: OciConfig, nats_url: str, redis_url: str
) -> None:
    try:
        async with oci_agent(oci_config, nats_url, redis_url) as h:
            await h.store.create(make_pod("keep", [{"name": "app", "command": ["sleep", "3600"]}]))
            before = await phase(h, "keep", "Running")
        cs = before.status.container_statuses[0]
        async with oci_agent(oci_config, nats_url, redis_url) as h2:
            # the new agent keeps the same container: no restart, same id and IP
            await wait_for(lambda: h2.runtime._pods.get(before.metadata.uid), T, message="adopted")
            after = await phase(h2, "keep", "Running")
            assert after.status.pod_ip == before.status.pod_ip
            cs2 = after.status.container_statuses[0]
            assert cs2.container_id == cs.container_id and cs2.restart_count == 0
            assert (await h2.runtime.exec(after, "app", ["true"])).exit_code == 0
            # a new pod gets a new address: the allocation survived the restart
            await h2.store.create(make_pod("next", [{"name": "app", "command": ["sleep", "3600"]}]))
            nxt = await phase(h2, "next", "Running")
            assert nxt.status.pod_ip != after.status.pod_ip
            await delete_and_wait(h2, "keep", "next")
    finally:
        await OciRuntime(oci_config).cleanup()


async def test_volumes(oci: OciHarness, tmp_path: Path) -> None:
    host_dir = tmp_path / "host"
    pod = make_pod(
        "vols",
        [
            {
                "name": "app",
                "command": ["sh", "-c",
                            "grep ' /cache ' /proc/mounts; stat -c 'data-gid=%g' /data; "
                            "echo sub > /sub/f; cat /host/f; touch /ro/x 2>&1; id; "
                            "echo per-pod > /claim/f"],
                "volumeMounts": [
                    {"name": "cache", "mountPath": "/cache"},
                    {"name": "data", "mountPath": "/data"},
                    {"name": "data", "mountPath": "/sub", "subPath": "nested/dir"},
                    {"name": "host", "mountPath": "/host"},
                    {"name": "data", "mountPath": "/ro", "readOnly": True},
                    {"name": "www", "mountPath": "/claim"},
                ],
                "securityContext": {"runAsUser": 1000},
            }
        ],
        restartPolicy="Never",
        securityContext={"fsGroup": 2000},
        volumes=[
            {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
            {"name": "data", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}},
            {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0"}},
        ],
    )  # fmt: skip
    created = await oci.store.create(pod)
    done = await phase(oci, "vols", "Succeeded")
    out = await logs(oci, done, "app")
    assert "tmpfs /cache tmpfs" in out and "size=8192k" in out
    assert "data-gid=2000" in out
    assert "Read-only file system" in out
    assert "uid=1000 gid=0(root) groups=2000" in out
    assert host_dir.is_dir()
    claim = Path(oci.config.state_dir) / "local-volumes" / "default" / "www-web-0"
    assert (claim / "f").read_text() == "per-pod\n"
    await delete_and_wait(oci, "vols")
    # the claim's data outlives the pod (StatefulSet volumes); the emptyDir does not
    assert (claim / "f").exists()
    uid = created.metadata.uid
    pod_dirs = [Path(oci.config.state_dir) / "pods" / uid, Path(oci.config.run_dir) / "pods" / uid]
    await wait_for(
        lambda: not any(d.exists() for d in pod_dirs), T, message="the pod directories removed"
    )


async def test_host_path_type_check_fails_as_failed_mount(oci: OciHarness, tmp_path: Path) -> None:
    pod = make_pod(
        "hp",
        [{"name": "app", "command": ["true"], "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
        volumes=[{"name": "h", "hostPath": {"path": str(tmp_path / "absent"), "type": "Directory"}}],
    )  # fmt: skip
    await oci.store.create(pod)

    async def waiting() -> Any:
        p = await oci.pod("hp")
        w = (
            p.status.container_statuses[0].state.waiting
            if p and p.status.container_statuses
            else None
        )
        return w if w is not None and "hostPath type check failed" in w.message else None

    w = await wait_for(waiting, T, interval=0.05, message="hostPath type check")
    assert w.message.startswith('MountVolume.SetUp failed for volume "h" : ')
    await delete_and_wait(oci, "hp")


async def test_python_shim_runs_containers_too(oci_config: OciConfig) -> None:
    runtime = OciRuntime(dataclasses.replace(oci_config, shim="python"))
    assert runtime.shim == "python"
    pod = msgspec.convert(
        {"metadata": {"name": "py", "namespace": "default", "uid": "py-shim-1"},
         "spec": {"hostNetwork": True, "containers": [
             {"name": "app", "image": "busybox",
              "command": ["sh", "-c", "echo out; echo err >&2; exit 3"]}]}},
        Pod,
    )  # fmt: skip
    try:
        sandbox = await runtime.prepare_sandbox(pod)
        assert sandbox.pod_ips == ("127.0.0.1",)
        await runtime.start_container(pod, pod.spec.containers[0], "app", None)

        async def exited() -> Any:
            obs = await runtime.observe(pod)
            return obs.records[0] if obs.records[0].state == "exited" else None

        record = await wait_for(exited, T, interval=0.05, message="exited")
        assert record.exit_code == 3 and record.reason == ""
        assert await runtime.logs(pod, "app") in (b"out\nerr\n", b"err\nout\n")
        stamped = await runtime.logs_timestamped(pod, "app")
        assert all(ts > 1e9 for ts, _ in stamped)
    finally:
        await runtime.remove_pod("py-shim-1")
        await runtime.close()


async def test_pods_deleted_while_the_agent_was_down_are_removed(
    oci_config: OciConfig, nats_url: str, redis_url: str
) -> None:
    try:
        async with oci_agent(oci_config, nats_url, redis_url) as h:
            await h.store.create(make_pod("lost", [{"name": "app", "command": ["sleep", "3600"]}]))
            pod = await phase(h, "lost", "Running")
        store = await Store.connect(redis_url)
        await store.remove(Pod, "default", "lost")  # gone while no agent ran
        await store.close()
        pod_dir = Path(oci_config.state_dir) / "pods" / pod.metadata.uid
        assert pod_dir.exists()
        async with oci_agent(oci_config, nats_url, redis_url) as h2:
            removed = await h2.runtime.remove_orphans(set(h2.agent.workers), min_age_s=0)
            assert removed == [pod.metadata.uid]
            assert not pod_dir.exists() and not h2.runtime.network.allocations()
    finally:
        await OciRuntime(oci_config).cleanup()


async def test_image_stop_signal_is_honoured(oci: OciHarness) -> None:
    """The image says STOPSIGNAL SIGUSR1; the shell (pid 1, so SIGTERM would
    be ignored for the whole grace period) exits at once on it."""
    images = ImageStore(oci.config.image_root)
    if images.resolve("stopper:1") is None:
        images.import_path(
            images.layer_dirs(images.ensure_busybox())[0], "stopper:1", rootfs=True,
            cmd=["sh", "-c", "trap 'exit 0' USR1; while true; do sleep 0.1; done"],
            stop_signal="SIGUSR1",
        )  # fmt: skip
    await oci.store.create(make_pod("stopper", [{"name": "app", "image": "stopper:1"}]))
    await phase(oci, "stopper", "Running")
    await oci.store.delete(Pod, "default", "stopper", grace_period_seconds=30)
    t0 = time.monotonic()
    await wait_for(lambda: _gone(oci, "stopper"), 10, interval=0.05, message="stopped by SIGUSR1")
    assert time.monotonic() - t0 < 10


async def _gone(h: OciHarness, name: str) -> bool:
    return await h.pod(name) is None


async def test_a_cancelled_exec_leaves_no_process(oci: OciHarness) -> None:
    await oci.store.create(make_pod("ex", [{"name": "app", "command": ["sleep", "3600"]}]))
    pod = await phase(oci, "ex", "Running")
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.5):
            await oci.runtime.exec(pod, "app", ["sleep", "77"])
    ps = await oci.runtime.exec(pod, "app", ["ps", "-o", "args"])
    assert ps.exit_code == 0 and b"sleep 3600" in ps.stdout
    assert b"sleep 77" not in ps.stdout
    await delete_and_wait(oci, "ex")


async def test_share_process_namespace(oci: OciHarness) -> None:
    pod = make_pod(
        "shared-pid",
        [{"name": "a", "command": ["sleep", "3600"]},
         {"name": "b", "command": ["sh", "-c", "sleep 0.5; ps -o pid,args; sleep 3600"]}],
        shareProcessNamespace=True,
    )  # fmt: skip
    await oci.store.create(pod)
    running = await phase(oci, "shared-pid", "Running")

    async def seen() -> str | None:
        out = await logs(oci, running, "b")
        return out if "sleep 3600" in out else None

    out = await wait_for(seen, T, interval=0.1, message="b sees a's processes")
    assert "/bin/sleep 2147483647" in out or "sleep 2147483647" in out  # the holder is pid 1
    await delete_and_wait(oci, "shared-pid")


async def test_restarts_keep_the_previous_attempt_logs(oci: OciHarness) -> None:
    await oci.store.create(
        make_pod("crash", [{"name": "app", "command": ["sh", "-c", "echo run-$RANDOM; exit 2"]}])
    )

    async def restarted() -> Pod | None:
        p = await oci.pod("crash")
        cs = p.status.container_statuses if p is not None else []
        return p if cs and cs[0].restart_count >= 1 else None

    pod = await wait_for(restarted, T, interval=0.05, message="restarted")
    last = pod.status.container_statuses[0].last_state.terminated
    assert last is not None and last.exit_code == 2 and last.reason == "Error"
    previous = (await oci.runtime.logs(pod, "app", previous=True)).decode()
    assert previous.startswith("run-") and previous.endswith("\n")
    await delete_and_wait(oci, "crash")


async def test_a_disk_empty_dir_over_its_size_limit_gets_the_pod_evicted(
    oci: OciHarness,
) -> None:
    """As kubelet's eviction manager: the write itself succeeds (disk, not
    tmpfs), the next measurement finds the volume over its limit, the pod
    is killed and left Failed, reason Evicted, with kubelet's message and
    a Warning event; a pod within its limit stays."""
    oci.runtime.config = dataclasses.replace(oci.runtime.config, volume_monitoring_period_s=0.3)

    def filler(name: str, kib: int) -> Pod:
        return msgspec.convert(
            {
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "nodeName": NODE,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "app",
                            "image": "busybox",
                            "command": ["sh", "-c", f"dd if=/dev/zero of=/scratch/fill bs=1024 count={kib} && sleep 3600"],
                            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                        }
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}],
                },
            },
            Pod,
        )  # fmt: skip

    await oci.store.create_many([filler("within", 256), filler("over", 2048)])

    async def evicted() -> Pod | None:
        pod = await oci.pod("over")
        return pod if pod is not None and pod.status.phase == "Failed" else None

    pod = await wait_for(evicted, 30, interval=0.1, message="the pod over its limit evicted")
    message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    assert (pod.status.reason, pod.status.message) == ("Evicted", message)
    term = pod.status.container_statuses[0].state.terminated
    assert term is not None and term.exit_code in (137, 143), term

    async def evicted_event() -> list[Event]:
        events, _ = await oci.store.list(Event, "default")
        return [
            e for e in events if e.involved_object.uid == pod.metadata.uid and e.reason == "Evicted"
        ]

    found = await wait_for(evicted_event, 10, interval=0.1, message="an Evicted event")
    assert (found[0].type, found[0].message, found[0].source.component) == (
        "Warning",
        message,
        "kubelet",
    )
    within = await oci.pod("within")
    assert within is not None and within.status.phase == "Running", within
    await delete_and_wait(oci, "within", "over")


def _host_net_pod(name: str, uid: str, command: list[str]) -> Pod:
    return msgspec.convert(
        {"metadata": {"name": name, "namespace": "default", "uid": uid},
         "spec": {"hostNetwork": True, "containers": [
             {"name": "app", "image": "busybox", "command": command}]}},
        Pod,
    )  # fmt: skip


async def test_bundles_on_a_tmpfs_of_the_node_logs_and_layers_on_disk(
    oci_config: OciConfig,
) -> None:
    """The run dir (here under /tmp, on disk) gets a tmpfs of its own; the
    bundle and runc's state are there, the log and writable layer are not."""
    runtime = OciRuntime(oci_config)
    point, fstype, source = hostops.mount_of(oci_config.run_dir)
    assert (fstype, source) == ("tmpfs", hostops.RUN_TMPFS_SOURCE)
    assert point.endswith("/run") and oci_config.run_dir.endswith("/run")  # its own mount
    assert hostops.mount_of(oci_config.state_dir)[1] != "tmpfs"
    pod = _host_net_pod("split", "split-1", ["sh", "-c", "echo hello; echo x > /f"])
    try:
        await runtime.prepare_sandbox(pod)
        await runtime.start_container(pod, pod.spec.containers[0], "app", None)

        async def exited() -> Any:
            obs = await runtime.observe(pod)
            return obs.records[0] if obs.records[0].state == "exited" else None

        await wait_for(exited, T, interval=0.05, message="exited")
        run = Path(oci_config.run_dir) / "pods" / "split-1" / "c" / "app" / "0"
        data = Path(oci_config.state_dir) / "pods" / "split-1" / "c" / "app" / "0"
        assert (run / "config.json").is_file() and (run / "exit.json").is_file()
        assert not (run / "log").exists() and not (run / "upper").exists()
        assert (data / "log").read_bytes().endswith(b" stdout F hello\n")
        if runtime.uses_overlay:
            assert (data / "upper" / "f").read_text() == "x\n"
        assert await runtime.logs(pod, "app") == b"hello\n"
    finally:
        await runtime.remove_pod("split-1")
        await runtime.close()
    assert not (Path(oci_config.state_dir) / "pods" / "split-1").exists()
    assert not (Path(oci_config.run_dir) / "pods" / "split-1").exists()


async def test_a_pod_left_only_on_disk_is_an_orphan(oci_config: OciConfig) -> None:
    """After a reboot the run dir is empty; the pods' disk halves go."""
    runtime = OciRuntime(oci_config)
    left = Path(oci_config.state_dir) / "pods" / "rebooted-1" / "volumes" / "cache"
    left.mkdir(parents=True)
    try:
        assert "rebooted-1" in await runtime.remove_orphans(set(), min_age_s=0)
        assert not left.parent.parent.exists()
    finally:
        await runtime.close()


async def test_container_starts_wait_for_a_start_slot(oci_config: OciConfig) -> None:
    runtime = OciRuntime(dataclasses.replace(oci_config, parallel_starts=1))
    real = runtime._run_shim_now
    inside = peak = 0

    async def counted(*args: Any) -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        try:
            await real(*args)
        finally:
            inside -= 1

    runtime._run_shim_now = counted  # type: ignore[method-assign]
    pods = [_host_net_pod(f"slot{i}", f"slot-{i}", ["sleep", "60"]) for i in range(3)]
    try:
        for pod in pods:
            await runtime.prepare_sandbox(pod)
        records = await asyncio.gather(
            *(runtime.start_container(p, p.spec.containers[0], "app", None) for p in pods)
        )
        assert [r.state for r in records] == ["running"] * 3
        assert peak == 1
    finally:
        for pod in pods:
            await runtime.remove_pod(pod.metadata.uid)
        await runtime.close()
