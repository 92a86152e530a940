"""The CronJob plan: the Job of the most recent scheduled time, named by
it; nothing twice; concurrency policies; the starting deadline; suspend;
finished Jobs leave status.active and beyond the history limits go; the
requeue at the next time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from podmodel.event import ObjectReference
from podmodel.pod import Condition
from podmodel.workloads import CronJob, Job

from services.workload_controller.logic.actions import (
    CreateObject,
    DeleteObject,
    EmitEvent,
    Requeue,
    UpdateStatus,
)
from services.workload_controller.logic.cronjob import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    job_name,
    plan_cronjob,
)
from services.workload_controller.logic.pod_template import controller_reference
from tests.integration.test_wc_harness import prepared

NOW = datetime(2026, 12, 6, 8, 30, 20, tzinfo=UTC)


def cron_job(**spec: Any) -> CronJob:
    cj = prepared(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "default",
                         "creationTimestamp": "2026-12-06T08:00:00Z"},
            "spec": {
                "schedule": "*/10 * * * *",
                "jobTemplate": {
                    "metadata": {"labels": {"app": "report"}},
                    "spec": {"template": {"spec": {
                        "containers": [{"name": "r", "image": "busybox"}],
                        "restartPolicy": "OnFailure"}}},
                },
                **spec,
            },
        }
    )  # fmt: skip
    assert isinstance(cj, CronJob)
    cj.metadata.uid = "cj-uid"
    cj.metadata.creation_timestamp = "2026-12-06T08:00:00Z"
    return cj


def job(cj: CronJob, minute: int, outcome: str = "", started: str = "") -> Job:
    scheduled = datetime(2026, 12, 6, 8, minute, tzinfo=UTC)
    j = Job()
    j.metadata.name = job_name(cj, scheduled)
    j.metadata.namespace = "default"
    j.metadata.uid = f"uid-{minute}"
    j.metadata.owner_references = [controller_reference(cj)]
    j.status.start_time = started or f"2026-12-06T08:{minute:02d}:01Z"
    if outcome:
        j.status.conditions = [Condition(type=outcome, status="True")]
        j.status.completion_time = f"2026-12-06T08:{minute:02d}:30Z"
    return j


def of(actions: list[Any], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def reasons(actions: list[Any]) -> list[str]:
    return [a.reason for a in of(actions, EmitEvent)]


def test_creates_the_job_of_the_most_recent_time_once() -> None:
    cj = cron_job()
    actions = plan_cronjob(cj, [], NOW)
    (create,) = of(actions, CreateObject)
    made = create.obj
    assert (
        made.metadata.name
        == f"report-{int(datetime(2026, 12, 6, 8, 30, tzinfo=UTC).timestamp()) // 60}"
    )
    assert made.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] == "2026-12-06T08:30:00Z"
    assert made.metadata.labels == {"app": "report"}
    assert made.metadata.owner_references[0].kind == "CronJob"
    (update,) = of(actions, UpdateStatus)
    assert update.obj.status.last_schedule_time == "2026-12-06T08:30:00Z"
    assert [r.name for r in update.obj.status.active] == [made.metadata.name]
    assert 579 < of(actions, Requeue)[0].after_s < 581  # 08:40:00 from 08:30:20
    # once the Job exists nothing more is created for that time
    cj.status = update.obj.status
    again = plan_cronjob(cj, [job(cj, 30)], NOW)
    assert of(again, CreateObject) == []


def test_concurrency_policies() -> None:
    forbid = cron_job(concurrencyPolicy="Forbid")
    forbid.status.last_schedule_time = "2026-12-06T08:20:00Z"
    running = job(forbid, 20)
    actions = plan_cronjob(forbid, [running], NOW)
    assert of(actions, CreateObject) == [] and "JobAlreadyActive" in reasons(actions)
    replace = cron_job(concurrencyPolicy="Replace")
    replace.status.last_schedule_time = "2026-12-06T08:20:00Z"
    actions = plan_cronjob(replace, [job(replace, 20)], NOW)
    assert [a.name for a in of(actions, DeleteObject)] == [job(replace, 20).metadata.name]
    assert len(of(actions, CreateObject)) == 1
    allow = cron_job()
    allow.status.last_schedule_time = "2026-12-06T08:20:00Z"
    assert len(of(plan_cronjob(allow, [job(allow, 20)], NOW), CreateObject)) == 1


def test_starting_deadline_and_suspend() -> None:
    # 08:30:00 is 20 s ago: outside a 10 s window it is not started (and,
    # as in Kubernetes, not even looked at: the window starts the search)
    late = plan_cronjob(cron_job(startingDeadlineSeconds=10), [], NOW)
    assert of(late, CreateObject) == [] and of(late, Requeue)
    assert len(of(plan_cronjob(cron_job(startingDeadlineSeconds=30), [], NOW), CreateObject)) == 1
    suspended = cron_job(suspend=True)
    actions = plan_cronjob(suspended, [], NOW)
    assert of(actions, CreateObject) == [] and of(actions, Requeue) == []


def test_finished_jobs_leave_active_and_history_is_trimmed() -> None:
    cj = cron_job(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    cj.status.last_schedule_time = "2026-12-06T08:30:00Z"
    jobs = [job(cj, 0, "Complete"), job(cj, 10, "Complete"), job(cj, 20, "Failed"), job(cj, 30)]
    cj.status.active = [ObjectReference(kind="Job", name=jobs[1].metadata.name)]
    actions = plan_cronjob(cj, jobs, NOW)
    assert [a.name for a in of(actions, DeleteObject)] == [jobs[0].metadata.name]
    assert "SawCompletedJob" in reasons(actions)
    status = of(actions, UpdateStatus)[0].obj.status
    assert [r.name for r in status.active] == [jobs[3].metadata.name]
    assert status.last_successful_time == "2026-12-06T08:10:30Z"


def test_too_many_missed_times_still_start_the_latest() -> None:
    cj = cron_job(schedule="* * * * *")
    cj.metadata.creation_timestamp = "2026-12-01T00:00:00Z"
    actions = plan_cronjob(cj, [], NOW)
    assert "TooManyMissedTimes" in reasons(actions)
    (create,) = of(actions, CreateObject)
    assert create.obj.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] == "2026-12-06T08:30:00Z"
