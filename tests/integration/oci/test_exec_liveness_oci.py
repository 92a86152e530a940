"""../shared/k8s-examples/exec-liveness.yaml on real containers: the
prober service runs the exec liveness probe (`cat /tmp/healthy`) through
the node-agent's exec inside the runc container; once the container has
removed the file the probe fails failureThreshold times, the node-agent
records the kubelet's Unhealthy and Killing events and restarts the
container, as the "Configure Liveness, Readiness and Startup Probes"
page shows after about 35 s.

Timings are shortened five times: `sleep 30` becomes `sleep 6`,
initialDelaySeconds 5 and periodSeconds 5 become 1, and the grace period
(busybox sh, the container's PID 1, ignores SIGTERM, so the kill waits it
out) is 2 s instead of 30."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest_asyncio
from podmodel.manifest import parse_documents
from podmodel.pod import Pod

from services.node_agent.oci.runtime import OciConfig
from tests.integration.oci.test_k8s_examples_oci import (
    EXAMPLES,
    Cluster,
    T,
    module_cluster,
    until,
)
from tests.servers import ServerHandle

SLEEP_S = 6
FAILURE_THRESHOLD = 3  # Kubernetes' default, as the manifest leaves it
# the kubelet puts the exec probe's output in the message as it is, newline and all
UNHEALTHY = "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n"
KILLING = "Container liveness failed liveness probe, will be restarted"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(
    oci_config: OciConfig, nats_server: ServerHandle, redis_server: ServerHandle
) -> AsyncIterator[Cluster]:
    async with module_cluster(oci_config, nats_server, redis_server) as c:
        yield c


def shortened_manifest() -> dict[str, Any]:
    docs, errors = parse_documents((EXAMPLES / "exec-liveness.yaml").read_text())
    assert not errors, errors
    (pod,) = docs
    pod["metadata"]["namespace"] = "default"
    container = pod["spec"]["containers"][0]
    script = container["args"][2]
    assert "sleep 30;" in script
    container["args"][2] = script.replace("sleep 30;", f"sleep {SLEEP_S};")
    probe = container["livenessProbe"]
    assert (probe["initialDelaySeconds"], probe["periodSeconds"]) == (5, 5)
    probe.update(initialDelaySeconds=1, periodSeconds=1)
    pod["spec"]["terminationGracePeriodSeconds"] = 2
    return pod


def ts(text: str | None) -> datetime:
    assert text, "no timestamp"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_exec_liveness_restarts_the_container_through_the_prober(cluster: Cluster) -> None:
    await cluster.client.apply(shortened_manifest())

    async def running() -> Pod | None:
        p = await cluster.pod("liveness-exec")
        st = p.status.container_statuses if p else []
        return p if st and st[0].state.running is not None else None

    first = await until(running, "liveness-exec Running")
    first_status = first.status.container_statuses[0]
    assert first_status.restart_count == 0
    assert first_status.state.running is not None
    started = ts(first_status.state.running.started_at)

    async def restarted() -> Pod | None:
        p = await cluster.pod("liveness-exec")
        st = p.status.container_statuses if p else []
        ok = st and st[0].restart_count >= 1 and st[0].state.running is not None
        return p if ok else None

    try:
        pod = await until(restarted, "a liveness restart", timeout=2 * T)
    except AssertionError:
        seen = [(e.reason, e.message) for e in await cluster.events("liveness-exec")]
        raise AssertionError(f"no restart; events: {seen}") from None
    status = pod.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.container_id != first_status.container_id
    last = status.last_state.terminated
    assert last is not None
    # busybox sh ignores SIGTERM as PID 1: killed at the end of the grace period
    assert (last.exit_code, last.reason) == (137, "Error")
    # the file was there for the first SLEEP_S seconds: no failure before
    # that, the kill after FAILURE_THRESHOLD failures (second resolution)
    assert (ts(last.finished_at) - started).total_seconds() >= SLEEP_S + FAILURE_THRESHOLD - 2

    events = await cluster.events("liveness-exec")
    unhealthy = [e for e in events if e.reason == "Unhealthy"]
    killing = [e for e in events if e.reason == "Killing"]
    assert unhealthy, [(e.reason, e.message) for e in events]
    assert {e.message for e in unhealthy} == {UNHEALTHY}
    assert all(e.type == "Warning" for e in unhealthy)
    assert sum(e.count for e in unhealthy) >= FAILURE_THRESHOLD
    first_failure = min(ts(e.first_timestamp) for e in unhealthy)
    assert (first_failure - started).total_seconds() >= SLEEP_S - 1
    assert [(e.type, e.message) for e in killing] == [("Normal", KILLING)]
    assert killing[0].involved_object.field_path == "spec.containers{liveness}"
    await cluster.delete("Pod", "liveness-exec")
