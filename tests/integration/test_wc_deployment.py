"""Deployment controller against real NATS and Redis: one ReplicaSet per
template, rolling updates within maxSurge / maxUnavailable, Recreate,
rollback over podbus.api.rollback, scale / pause / resume / restart by
applying the Deployment, status and revision annotations."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
from podmodel import subjects
from podmodel.event import Event
from podmodel.pod import Pod
from podmodel.workloads import Deployment, ReplicaSet
from servicekit.runner import ServiceContext
from servicekit.telemetry import (
    TRACEPARENT_ANNOTATION,
    LocalSpanRecorder,
    setup_tracing,
    shutdown_tracing,
    traceparent_ids,
)

from services.workload_controller.intake import serve_intake
from tests.conftest import wait_for
from tests.integration.test_wc_harness import (
    FakeKubelet,
    Harness,
    controllers_running,
    deployment,
)

REVISION = "deployment.kubernetes.io/revision"


async def replica_sets(h: Harness, prefix: str) -> list[ReplicaSet]:
    rss, _ = await h.store.list(ReplicaSet, "default")
    return [r for r in rss if r.metadata.name.startswith(prefix)]


async def rolled_out(h: Harness, name: str, image: str, replicas: int) -> bool:
    d = await h.store.get(Deployment, "default", name)
    if d is None or d.status.observed_generation < d.metadata.generation:
        return False
    pods = await h.pods(name + "-")
    running = [p for p in pods if p.status.phase == "Running"]
    return (
        d.status.updated_replicas == replicas
        and d.status.available_replicas == replicas
        and d.status.replicas == replicas
        and len(running) == replicas
        and all(p.spec.containers[0].image == image for p in running)
    )


async def test_rolling_update_respects_max_surge_and_max_unavailable(
    nats_url: str, redis_url: str
) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
        violations: list[str] = []

        async def check() -> None:
            rss = await replica_sets(h, "web-")
            total = sum(r.spec.replicas for r in rss)
            if total > 4 + 1:
                violations.append(f"ReplicaSets want {total} pods > replicas + maxSurge")
            d = await h.store.get(Deployment, "default", "web")
            if d is not None and d.metadata.generation > 1:
                pods = await h.pods("web-")
                ready = [p for p in pods if p.status.phase == "Running"]
                if len(ready) < 4 - 1:
                    violations.append(f"only {len(ready)} ready pods < replicas - maxUnavailable")

        async with FakeKubelet(h, "web-", observe=check):
            await h.apply(deployment("web", 4, "app:1", strategy=strategy))
            await wait_for(lambda: rolled_out(h, "web", "app:1", 4), message="first rollout")
            await h.apply(deployment("web", 4, "app:2", strategy=strategy))
            await wait_for(lambda: rolled_out(h, "web", "app:2", 4), message="second rollout")
        assert not violations, violations[:3]
        rss = sorted(await replica_sets(h, "web-"), key=lambda r: r.metadata.annotations[REVISION])
        assert [r.metadata.annotations[REVISION] for r in rss] == ["1", "2"]
        assert [r.spec.replicas for r in rss] == [0, 4]
        assert all(r.metadata.name == f"web-{r.metadata.labels['pod-template-hash']}" for r in rss)
        d = await h.store.get(Deployment, "default", "web")
        assert d is not None and d.metadata.annotations[REVISION] == "2"
        conds = {c.type: c for c in d.status.conditions}
        assert conds["Available"].status == "True"
        assert conds["Progressing"].reason == "NewReplicaSetAvailable"
        events, _ = await h.store.list(Event, "default")
        assert any(e.reason == "ScalingReplicaSet" for e in events)


async def test_recreate_removes_old_pods_before_creating_new(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        mixed: list[str] = []

        async def check() -> None:
            pods, _ = await h.store.list(Pod, "default")
            images = {p.spec.containers[0].image for p in pods if p.metadata.name.startswith("db-")}
            if len(images) > 1:
                mixed.append(str(images))

        async with FakeKubelet(h, "db-", observe=check):
            await h.apply(deployment("db", 3, "db:1", strategy={"type": "Recreate"}))
            await wait_for(lambda: rolled_out(h, "db", "db:1", 3), message="first rollout")
            await h.apply(deployment("db", 3, "db:2", strategy={"type": "Recreate"}))
            await wait_for(lambda: rolled_out(h, "db", "db:2", 3), message="recreate")
        assert not mixed, mixed[:3]


async def _request(nats_url: str, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.request(subject, json.dumps(body).encode(), timeout=5)
    finally:
        await nc.close()
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def test_rollback_scale_pause_and_restart(nats_url: str, redis_url: str) -> None:
    async with (
        controllers_running(nats_url, redis_url) as h,
        asyncio.TaskGroup() as group,
        FakeKubelet(h, "api-"),
    ):
        ctx = ServiceContext("workload-controller", "t", h.bus, group, None)
        await serve_intake(ctx, h.store)
        await h.apply(deployment("api", 2, "api:1"))
        await wait_for(lambda: rolled_out(h, "api", "api:1", 2), message="v1")
        await h.apply(deployment("api", 2, "api:2"))
        await wait_for(lambda: rolled_out(h, "api", "api:2", 2), message="v2")

        reply = await _request(nats_url, subjects.API_ROLLBACK, {"name": "api"})
        assert reply["message"] == "rolled back", reply
        await wait_for(lambda: rolled_out(h, "api", "api:1", 2), message="rolled back")
        rss = await replica_sets(h, "api-")
        revisions = sorted(int(r.metadata.annotations[REVISION]) for r in rss)
        assert revisions == [2, 3]  # the old ReplicaSet came back as revision 3

        bad = await _request(nats_url, subjects.API_ROLLBACK, {"name": "api", "toRevision": 9})
        assert "unable to find specified revision 9" in bad["error"]

        # scale through apply
        await h.apply(deployment("api", 5, "api:1"))
        await wait_for(lambda: rolled_out(h, "api", "api:1", 5), message="scaled to 5")

        # pause: a template change does not roll
        await h.apply(deployment("api", 5, "api:9", paused=True))

        async def paused_seen() -> bool:
            d = await h.store.get(Deployment, "default", "api")
            return d is not None and d.status.observed_generation == d.metadata.generation

        await wait_for(paused_seen, message="paused observed")
        assert all(p.spec.containers[0].image == "api:1" for p in await h.pods("api-"))
        # resume rolls it
        await h.apply(deployment("api", 5, "api:9", paused=False))
        await wait_for(lambda: rolled_out(h, "api", "api:9", 5), message="resumed rollout")

        # restart: a template annotation makes a new revision of the same image
        before = {r.metadata.name for r in await replica_sets(h, "api-")}
        raw = deployment("api", 5, "api:9")
        raw["spec"]["template"]["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"
        }
        await h.apply(raw)

        async def restarted() -> bool:
            names = {r.metadata.name for r in await replica_sets(h, "api-")}
            return bool(names - before) and await rolled_out(h, "api", "api:9", 5)

        await wait_for(restarted, message="restart rollout")
        ctx.stopping.set()  # ends the intake's desired-stream consumer


async def test_pods_get_their_own_trace_linked_to_the_rollout(
    nats_url: str, redis_url: str
) -> None:
    recorder = LocalSpanRecorder()
    setup_tracing("workload-controller", extra_exporters=[recorder], set_global=False)
    try:
        async with controllers_running(nats_url, redis_url) as h:
            await h.apply(deployment("traced", 2))

            async def two() -> list[Pod] | None:
                pods = await h.pods("traced-")
                return pods if len(pods) == 2 else None

            pods = await wait_for(two, message="2 pods")
            rs = (await replica_sets(h, "traced-"))[0]
            rollout = traceparent_ids(rs.metadata.annotations[TRACEPARENT_ANNOTATION])
            assert rollout is not None
            rollout_spans = recorder.trace(rollout[0])
            assert rollout_spans and rollout_spans[0].name.startswith("rollout default/traced")
            for pod in pods:
                spans = recorder.trace_of(pod.metadata.annotations[TRACEPARENT_ANNOTATION])
                by_name = {s.name: s for s in spans}
                root = by_name[f"pod default/{pod.metadata.name}"]
                assert [link.context.trace_id for link in root.links] == [rollout[0]]
                for step in ("workload-controller.admitted", "workload-controller.created"):
                    assert by_name[step].attributes is not None
                    assert by_name[step].attributes["owner"] == f"ReplicaSet/{rs.metadata.name}"
    finally:
        shutdown_tracing()


async def test_progress_deadline_exceeded_when_pods_never_become_ready(
    nats_url: str, redis_url: str
) -> None:
    async with controllers_running(nats_url, redis_url) as h, FakeKubelet(h, "slow-", ready=False):
        await h.apply(deployment("slow", 2, progressDeadlineSeconds=1))

        async def timed_out() -> str | None:
            d = await h.store.get(Deployment, "default", "slow")
            if d is None:
                return None
            for c in d.status.conditions:
                if c.type == "Progressing" and c.status == "False":
                    return c.reason
            return None

        assert await wait_for(timed_out, timeout=10, message="deadline") == (
            "ProgressDeadlineExceeded"
        )
