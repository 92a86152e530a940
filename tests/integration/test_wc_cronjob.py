"""CronJob controller against real NATS and Redis, on a clock shifted to
just before a minute boundary: the Job of that minute is created once,
named by it, runs (its Job controller makes the pod), and once it completes
the CronJob records lastSuccessfulTime and the event Kubernetes writes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from podmodel.event import Event
from podmodel.workloads import CronJob, Job

from services.workload_controller.logic.cronjob import SCHEDULED_TIMESTAMP_ANNOTATION
from tests.conftest import wait_for
from tests.integration.test_wc_harness import controllers_running


def cron_job() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "t", "image": "busybox"}],
                            "restartPolicy": "OnFailure",
                        }
                    }
                }
            },
        },
    }


async def test_a_job_at_the_minute_then_its_success(nats_url: str, redis_url: str) -> None:
    real = time.time()
    # The first minute boundary after the CronJob's creation, reached 1.5 s
    # from now on the controller's clock. The shift may be negative (the
    # boundary is under 1.5 s away): never skip a boundary, or the Job of
    # the skipped minute is (rightly) started instead.
    boundary = (int(real) // 60 + 1) * 60
    shift = timedelta(seconds=boundary - real - 1.5)

    def clock() -> datetime:
        return datetime.now(UTC) + shift

    async with controllers_running(nats_url, redis_url, clock=clock) as h:
        await h.apply(cron_job())

        async def the_job() -> Job | None:
            jobs, _ = await h.store.list(Job, "default")
            # (given its uid selector right after the create, as the API does)
            return jobs[0] if jobs and jobs[0].spec.selector is not None else None

        job = await wait_for(the_job, timeout=10, message="the minute's Job")
        assert job.metadata.name == f"tick-{boundary // 60}"
        stamp = datetime.fromtimestamp(boundary, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] == stamp

        async def succeeded() -> CronJob | None:
            pods = [p for p in await h.pods("tick-") if p.status.phase != "Succeeded"]
            if pods:  # play the node: the Job's pod exits 0
                await h.run_pods(pods, phase="Succeeded", ready=False, exit_code=0)
            cj = await h.store.get(CronJob, "default", "tick")
            ok = cj is not None and cj.status.last_successful_time and not cj.status.active
            return cj if ok else None

        cj = await wait_for(succeeded, timeout=15, message="lastSuccessfulTime")
        assert cj.status.last_schedule_time == stamp
        jobs, _ = await h.store.list(Job, "default")
        assert [j.metadata.name for j in jobs] == [job.metadata.name]  # created once
        events, _ = await h.store.list(Event, "default")
        reasons = {e.reason for e in events if e.involved_object.kind == "CronJob"}
        assert {"SuccessfulCreate", "SawCompletedJob"} <= reasons, reasons
