"""Job controller against real NATS and Redis: completions with
parallelism, Indexed completion indexes, backoffLimit, podFailurePolicy,
conditions and events."""

from __future__ import annotations

from typing import Any

from podmodel.event import Event
from podmodel.pod import Pod
from podmodel.workloads import Job
from servicekit.telemetry import (
    TRACEPARENT_ANNOTATION,
    LocalSpanRecorder,
    setup_tracing,
    shutdown_tracing,
    traceparent_ids,
)

from tests.conftest import wait_for
from tests.integration.test_wc_harness import Harness, controllers_running


def job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            },
            **spec,
        },
    }


async def finish(h: Harness, prefix: str, exit_code: int) -> list[Pod]:
    """Play the node: every running-to-be pod of the Job ends with exit_code."""
    pods = [p for p in await h.pods(prefix) if p.status.phase != "Succeeded"]
    if pods:
        await h.run_pods(
            pods,
            phase="Succeeded" if exit_code == 0 else "Failed",
            ready=False,
            exit_code=exit_code,
        )
    return pods


async def condition(h: Harness, name: str, type_: str) -> str | None:
    j = await h.store.get(Job, "default", name)
    if j is None:
        return None
    for c in j.status.conditions:
        if c.type == type_ and c.status == "True":
            return c.reason or type_
    return None


async def test_completions_with_parallelism_complete(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(job("batch", completions=3, parallelism=2))
        max_active = 0

        async def step() -> str | None:
            nonlocal max_active
            active = await h.pods("batch-")
            max_active = max(max_active, len(active))
            await finish(h, "batch-", 0)
            return await condition(h, "batch", "Complete")

        await wait_for(step, message="Job complete")
        assert max_active <= 2
        j = await h.store.get(Job, "default", "batch")
        assert j is not None and j.status.succeeded == 3 and j.status.completion_time
        events, _ = await h.store.list(Event, "default")
        assert any(e.reason == "Completed" for e in events)
        succeeded = [
            p for p in await h.pods("batch-", active=False) if p.status.phase == "Succeeded"
        ]
        assert len(succeeded) == 3  # never more successes than completions


async def test_indexed_job_gives_each_index_its_pod(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(job("idx", completions=3, parallelism=3, completionMode="Indexed"))

        async def three() -> list[Pod] | None:
            pods = await h.pods("idx-")
            return pods if len(pods) == 3 else None

        pods = await wait_for(three, message="3 indexed pods")
        indexes = sorted(
            p.metadata.annotations["batch.kubernetes.io/job-completion-index"] for p in pods
        )
        assert indexes == ["0", "1", "2"]
        for p in pods:
            index = p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
            env = {e.name: e for e in p.spec.containers[0].env}
            assert "JOB_COMPLETION_INDEX" in env
            assert p.spec.hostname == f"idx-{index}"
        await finish(h, "idx-", 0)
        await wait_for(lambda: condition(h, "idx", "Complete"), message="complete")
        j = await h.store.get(Job, "default", "idx")
        assert j is not None and j.status.completed_indexes == "0-2"


async def test_backoff_limit_exceeded_fails_the_job(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(job("flaky", backoffLimit=1))

        async def step() -> str | None:
            await finish(h, "flaky-", 1)
            return await condition(h, "flaky", "Failed")

        reason = await wait_for(step, message="Job failed")
        assert reason == "BackoffLimitExceeded"
        j = await h.store.get(Job, "default", "flaky")
        assert j is not None and j.status.failed == 2
        events, _ = await h.store.list(Event, "default")
        assert any(e.reason == "BackoffLimitExceeded" and e.type == "Warning" for e in events)


async def test_pod_failure_policy_fail_job_on_exit_code(nats_url: str, redis_url: str) -> None:
    policy = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        ]
    }
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(job("strict", backoffLimit=6, podFailurePolicy=policy))

        async def step() -> str | None:
            await finish(h, "strict-", 42)
            return await condition(h, "strict", "Failed")

        reason = await wait_for(step, message="Job failed by policy")
        assert reason == "PodFailurePolicy"
        j = await h.store.get(Job, "default", "strict")
        assert j is not None and j.status.failed == 1  # failed at once, no retries


async def test_job_pods_traces_link_to_the_job_run_trace(nats_url: str, redis_url: str) -> None:
    recorder = LocalSpanRecorder()
    setup_tracing("workload-controller", extra_exporters=[recorder], set_global=False)
    try:
        async with controllers_running(nats_url, redis_url) as h:
            created = await h.apply(job("traced", completions=1))
            run = traceparent_ids(created.metadata.annotations[TRACEPARENT_ANNOTATION])
            assert run is not None

            async def one() -> list[Pod] | None:
                pods = await h.pods("traced-")
                return pods or None

            pod = (await wait_for(one, message="job pod"))[0]
            spans = recorder.trace_of(pod.metadata.annotations[TRACEPARENT_ANNOTATION])
            root = next(s for s in spans if s.name == f"pod default/{pod.metadata.name}")
            assert [link.context.trace_id for link in root.links] == [run[0]]
            assert recorder.trace(run[0])[0].name == "job default/traced"
    finally:
        shutdown_tracing()
