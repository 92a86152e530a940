"""Native sidecars (start before the main containers, stop after them) and
an agent restart adopting the pods it ran, on the simulated runtime."""

from __future__ import annotations

from podmodel.pod import Pod

from services.node_agent.logic.timefmt import parse_rfc3339
from tests.conftest import wait_for
from tests.integration.node_agent_harness import Harness, make_pod, running_agent


async def wait_phase(h: Harness, name: str, phase: str, timeout: float = 10.0) -> Pod:
    async def check() -> Pod | None:
        pod = await h.pod(name)
        return pod if pod is not None and pod.status.phase == phase else None

    result: Pod = await wait_for(check, timeout, message=f"{name} {phase}")
    return result


def _times(pod: Pod, name: str) -> tuple[float, float]:
    for cs in (*pod.status.init_container_statuses, *pod.status.container_statuses):
        if cs.name == name:
            term = cs.state.terminated
            assert term is not None, f"{name} not terminated: {cs.state}"
            return parse_rfc3339(term.started_at or ""), parse_rfc3339(term.finished_at or "")
    raise AssertionError(name)


async def test_sidecar_starts_before_and_stops_after_main_containers(
    nats_url: str, redis_url: str
) -> None:
    sim = {"exit-after": "0.3s", "proxy.stop-delay": "0.1s"}
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(
            make_pod("job", "main", sidecars=("proxy",), restart_policy="Never", sim=sim)
        )
        pod = await wait_phase(h, "job", "Succeeded")
        proxy_start, proxy_end = _times(pod, "proxy")
        main_start, main_end = _times(pod, "main")
        assert proxy_start <= main_start
        assert proxy_end >= main_end
        main = pod.status.container_statuses[0]
        assert main.state.terminated is not None and main.state.terminated.reason == "Completed"


async def test_sidecars_stop_in_reverse_order_after_main_on_deletion(
    nats_url: str, redis_url: str
) -> None:
    sim = {"stop-delay": "0.3s", "a.stop-delay": "0.1s", "b.stop-delay": "0.1s"}
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("svc", "main", sidecars=("a", "b"), sim=sim))
        await wait_phase(h, "svc", "Running")
        events = await h.record_events("svc")
        await h.store.delete(Pod, "default", "svc", grace_period_seconds=5)
        await wait_for(lambda: events and events[-1][0] == "DELETED", 10, message="pod removed")
        final = [
            p
            for t, p in events
            if t == "MODIFIED"
            and all(cs.state.terminated for cs in p.status.init_container_statuses)
        ]
        assert final, "the final status was seen before removal"
        pod = final[-1]
        _, main_end = _times(pod, "main")
        _, a_end = _times(pod, "a")
        _, b_end = _times(pod, "b")
        assert main_end <= b_end <= a_end


async def test_restarted_agent_adopts_running_pods_without_restarting_them(
    nats_url: str, redis_url: str
) -> None:
    async with running_agent(nats_url, redis_url) as h:
        await h.store.create(make_pod("keep", restart_policy="Never", sim={"exit-after": "1.5s"}))
        await h.store.create(make_pod("steady"))
        before = await wait_phase(h, "keep", "Running")
        await wait_phase(h, "steady", "Running")
    ids = {cs.name: cs.container_id for cs in before.status.container_statuses}

    async with running_agent(nats_url, redis_url) as h2:
        uid = before.metadata.uid
        await wait_for(lambda: h2.runtime.has_pod(uid), 5, message="pod adopted")
        pod = await wait_phase(h2, "keep", "Succeeded")
        cs = pod.status.container_statuses[0]
        assert cs.container_id == ids["app"], "the adopted container finished, not a new one"
        assert cs.restart_count == 0
        steady = await h2.pod("steady")
        assert steady is not None and steady.status.phase == "Running"
        assert steady.status.container_statuses[0].restart_count == 0
