"""The node-agent engine on the simulated runtime against real NATS and
Redis: pods written straight into the store with spec.nodeName reach the
states Kubernetes would report."""

from __future__ import annotations

from podmodel.config import ConfigMap, Secret, encode_base64
from podmodel.meta import ObjectMeta
from podmodel.pod import (
    ConfigMapVolumeSource,
    EnvFromSource,
    Pod,
    SecretEnvSource,
    Volume,
    VolumeMount,
)

from services.node_agent.logic.timefmt import parse_rfc3339
from tests.conftest import wait_for
from tests.integration.node_agent_harness import make_pod, running_agent


async def wait_phase(h, name: str, phase: str, timeout: float = 10.0) -> Pod:  # type: ignore[no-untyped-def]
    async def check() -> Pod | None:
        pod = await h.pod(name)
        return pod if pod is not None and pod.status.phase == phase else None

    result: Pod = await wait_for(check, timeout, message=f"{name} {phase}")
    return result


async def test_pod_bound_to_the_node_reaches_running_with_kubernetes_statuses(
    nats_url: str, redis_url: str
) -> None:
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("web", "app", "side"))
        pod = await wait_phase(h, "web", "Running")
        await wait_for(lambda: _all_ready(h, "web"), 10, message="containers ready")
        pod = await h.pod("web")
        assert pod is not None
        st = pod.status
        assert [c.name for c in st.container_statuses] == ["app", "side"]
        for cs in st.container_statuses:
            assert cs.state.running is not None and cs.state.running.started_at
            assert cs.ready is True and cs.started is True and cs.restart_count == 0
            assert cs.container_id.startswith("sim://") and cs.image == "busybox"
        conds = {c.type: c.status for c in st.conditions}
        assert conds["Initialized"] == "True" and conds["ContainersReady"] == "True"
        assert conds["Ready"] == "True" and conds["PodReadyToStartContainers"] == "True"
        assert st.pod_ip and st.host_ip == "127.0.0.1" and st.start_time
        assert st.qos_class == "BestEffort"


async def _all_ready(h, name: str) -> bool:  # type: ignore[no-untyped-def]
    pod = await h.pod(name)
    return pod is not None and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions
    )


async def test_init_containers_run_one_at_a_time_in_order(nats_url: str, redis_url: str) -> None:
    sim = {"i1.exit-after": "0.2s", "i2.exit-after": "0.2s"}
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("init", "app", init=("i1", "i2"), sim=sim))

        async def init_running() -> Pod | None:
            pod = await h.pod("init")
            if pod is None or not pod.status.init_container_statuses:
                return None
            first = pod.status.init_container_statuses[0]
            return pod if first.state.running is not None else None

        pod = await wait_for(init_running, 10, message="first init container running")
        assert pod.status.phase == "Pending"
        second = pod.status.init_container_statuses[1]
        assert second.state.waiting is not None and second.state.waiting.reason == "PodInitializing"
        assert pod.status.container_statuses[0].state.waiting is not None
        assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"

        pod = await wait_phase(h, "init", "Running")
        i1, i2 = pod.status.init_container_statuses
        assert i1.state.terminated is not None and i2.state.terminated is not None
        assert i1.state.terminated.reason == "Completed" and i1.state.terminated.exit_code == 0
        assert i2.state.terminated.reason == "Completed"
        assert parse_rfc3339(i2.state.terminated.started_at or "") >= parse_rfc3339(
            i1.state.terminated.finished_at or ""
        )
        app = pod.status.container_statuses[0]
        assert app.state.running is not None
        assert parse_rfc3339(app.state.running.started_at or "") >= parse_rfc3339(
            i2.state.terminated.finished_at or ""
        )


async def test_restart_policy_never_ends_succeeded_or_failed(nats_url: str, redis_url: str) -> None:
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(
            make_pod("ok", restart_policy="Never", sim={"exit-after": "0.1s", "exit-code": "0"})
        )
        await h.store.create(
            make_pod("bad", restart_policy="Never", sim={"exit-after": "0.1s", "exit-code": "3"})
        )
        ok = await wait_phase(h, "ok", "Succeeded")
        term = ok.status.container_statuses[0].state.terminated
        assert term is not None and term.exit_code == 0 and term.reason == "Completed"
        bad = await wait_phase(h, "bad", "Failed")
        cs = bad.status.container_statuses[0]
        assert cs.state.terminated is not None
        assert cs.state.terminated.exit_code == 3 and cs.state.terminated.reason == "Error"
        assert cs.restart_count == 0


async def test_restart_policy_always_restarts_with_growing_back_off(
    nats_url: str, redis_url: str
) -> None:
    seen_backoff: list[str] = []
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("crash", sim={"exit-after": "0.05s", "exit-code": "1"}))

        async def restarted(n: int) -> Pod | None:
            pod = await h.pod("crash")
            if pod is None or not pod.status.container_statuses:
                return None
            cs = pod.status.container_statuses[0]
            if cs.state.waiting is not None and cs.state.waiting.reason == "CrashLoopBackOff":
                seen_backoff.append(cs.state.waiting.message)
            return pod if cs.restart_count >= n else None

        pod = await wait_for(lambda: restarted(3), 15, message="three restarts")
        cs = pod.status.container_statuses[0]
        assert pod.status.phase == "Running"
        assert cs.last_state.terminated is not None
        assert cs.last_state.terminated.exit_code == 1
        assert cs.last_state.terminated.reason == "Error"
        await wait_for(lambda: restarted(4), 15, message="four restarts")
        assert any("back-off" in m and "restarting failed container=app" in m for m in seen_backoff)
        # Back-off after each restart: 0.2, 0.4, 0.8 s (capped at 1 s).
        entry = h.agent.backoff.entry(pod.metadata.uid, "app")
        assert entry is not None and entry.delay >= 0.8


async def test_graceful_deletion_stops_containers_then_removes_the_pod(
    nats_url: str, redis_url: str
) -> None:
    async with running_agent(nats_url, redis_url) as h:
        events = await h.record_events("gone")
        await h.store.create(make_pod("gone", sim={"stop-delay": "0.3s"}))
        await wait_phase(h, "gone", "Running")
        marked = await h.store.delete(Pod, "default", "gone", grace_period_seconds=5)
        assert marked is not None and marked.metadata.deletion_timestamp is not None
        # While stopping, the pod is still there; then it is removed.
        await wait_for(
            lambda: _is_gone(h, "gone"), 10, message="pod removed after its containers stopped"
        )
        assert not h.runtime.has_pod(marked.metadata.uid)
        await wait_for(lambda: events and events[-1][0] == "DELETED", 5, message="DELETED event")
        before = [p for t, p in events if t == "MODIFIED" and p.metadata.deletion_timestamp]
        assert before, "a status with the stopped containers precedes the removal"
        last = before[-1].status.container_statuses[0]
        assert last.state.terminated is not None and last.state.terminated.exit_code == 0
        assert before[-1].status.phase in ("Succeeded", "Failed")


async def _is_gone(h, name: str) -> bool:  # type: ignore[no-untyped-def]
    return await h.pod(name) is None


async def test_status_writes_of_many_pods_are_batched(nats_url: str, redis_url: str) -> None:
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create_many([make_pod(f"b{i}") for i in range(60)])

        async def all_running() -> bool:
            pods, _ = await h.store.list(Pod, node="n1")
            return len(pods) == 60 and all(p.status.phase == "Running" for p in pods)

        await wait_for(all_running, 15, message="60 pods running")
        await wait_for(lambda: not h.status._pending, 5, message="nothing pending")
        assert h.status.writes >= 60
        # Far fewer Redis round trips than pod status changes.
        assert h.status.batches <= h.status.writes / 5, (h.status.batches, h.status.writes)


async def test_start_problems_show_as_waiting_reasons_and_keep_the_pod_pending(
    nats_url: str, redis_url: str
) -> None:
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("noimg", sim={"image-absent": "true"}))
        await h.store.create(make_pod("typo", sim={"exit-aftr": "1s"}))

        async def waiting(name: str) -> str:
            pod = await h.pod(name)
            if pod is None or not pod.status.container_statuses:
                return ""
            w = pod.status.container_statuses[0].state.waiting
            return w.reason if w is not None else ""

        await wait_for(
            lambda: _eq(waiting("noimg"), "ErrImageNeverPull"), 10, message="ErrImageNeverPull"
        )
        await wait_for(
            lambda: _eq(waiting("typo"), "CreateContainerConfigError"),
            10,
            message="CreateContainerConfigError",
        )
        for name in ("noimg", "typo"):
            pod = await h.pod(name)
            assert pod is not None and pod.status.phase == "Pending"


async def _eq(value, expected: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(await value == expected)


async def test_hollow_nodes_wait_for_config_maps_and_secrets_as_real_ones_do(
    nats_url: str, redis_url: str
) -> None:
    """The simulated runtime writes no files but checks what a start needs
    from ConfigMaps and Secrets, read from the store in one round trip."""
    pod = make_pod("cfg")
    app = pod.spec.containers[0]
    app.env_from = [EnvFromSource(secret_ref=SecretEnvSource(name="creds"))]
    app.volume_mounts = [VolumeMount(name="conf", mount_path="/conf")]
    pod.spec.volumes = [Volume(name="conf", config_map=ConfigMapVolumeSource(name="conf"))]
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(pod)

        async def waiting_for(reason: str, message: str) -> bool:
            p = await h.pod("cfg")
            if p is None or not p.status.container_statuses:
                return False
            w = p.status.container_statuses[0].state.waiting
            return w is not None and (w.reason, w.message) == (reason, message)

        await wait_for(
            lambda: waiting_for("CreateContainerConfigError", 'secret "creds" not found'),
            10,
            message="CreateContainerConfigError",
        )
        secret = Secret(
            metadata=ObjectMeta(name="creds", namespace="default"),
            data={"u": encode_base64(b"x")},
        )
        await h.store.create(secret)
        mount = 'MountVolume.SetUp failed for volume "conf" : configmap "conf" not found'
        await wait_for(
            lambda: waiting_for("ContainerCreating", mount), 10, message="ContainerCreating"
        )
        await h.store.create(ConfigMap(metadata=ObjectMeta(name="conf", namespace="default")))
        await wait_phase(h, "cfg", "Running")
