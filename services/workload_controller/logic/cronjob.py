"""The CronJob plan: a Job at each scheduled time, with the concurrency
policy, the starting deadline and the history limits, and the status.
Follows pkg/controller/cronjob (cronjob_controllerv2.go syncCronJob).

Owns `plan_cronjob`. Pure: the CronJob, the Jobs it controls and `now` come
in; actions come out, with a Requeue at the next scheduled time.

- Times are read in `spec.timeZone` (UTC when unset: podbus has no
  controller-manager local zone to fall back on). The most recent missed
  time since lastScheduleTime (or the creation) is started; more than 100
  missed times give a TooManyMissedTimes warning; a time older than
  startingDeadlineSeconds is skipped (MissSchedule warning).
- A Job is named `<cronjob>-<scheduled time in minutes since the epoch>`
  (so a time is started once), carries the template's labels and
  annotations, `batch.kubernetes.io/cronjob-scheduled-timestamp`, and a
  controller reference.
- concurrencyPolicy: Allow starts regardless; Forbid skips a time while a
  Job is active (JobAlreadyActive); Replace deletes the active Jobs first.
- Finished Jobs leave status.active (SawCompletedJob), a completed one
  moves lastSuccessfulTime; beyond successful/failedJobsHistoryLimit the
  oldest finished Jobs are deleted (SuccessfulDelete). suspend stops new
  Jobs only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from podmodel.cron import CronError, Schedule, parse_schedule
from podmodel.event import ObjectReference
from podmodel.meta import ObjectMeta
from podmodel.workloads import CronJob, CronJobStatus, Job

from services.workload_controller.logic.actions import (
    Action,
    CreateObject,
    DeleteObject,
    Requeue,
    UpdateStatus,
    event,
)
from services.workload_controller.logic.job import get_condition, is_finished
from services.workload_controller.logic.pod_template import controller_reference
from services.workload_controller.logic.snapshots import clone
from services.workload_controller.logic.timestamps import EPOCH_MIN, format_time, parse_time

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100


def job_name(cj: CronJob, scheduled: datetime) -> str:
    """getJobName: the scheduled time in minutes, so each time is one Job."""
    return f"{cj.metadata.name}-{int(scheduled.timestamp()) // 60}"


def _zone(cj: CronJob) -> tzinfo:
    try:
        return ZoneInfo(cj.spec.time_zone) if cj.spec.time_zone else UTC
    except (KeyError, ValueError):
        return UTC


def _finished_at(job: Job) -> datetime:
    return (
        parse_time(job.status.completion_time)
        or parse_time(job.status.start_time)
        or parse_time(job.metadata.creation_timestamp)
        or EPOCH_MIN
    )


def _started_at(job: Job) -> datetime:
    return (
        parse_time(job.status.start_time)
        or parse_time(job.metadata.creation_timestamp)
        or EPOCH_MIN
    )


def plan_cronjob(cj: CronJob, jobs: Iterable[Job], now: datetime) -> list[Action]:
    """Actions for one sync of `cj`; `jobs`: the Jobs it controls."""
    owned = [
        j
        for j in jobs
        if any(r.uid == cj.metadata.uid and r.controller for r in j.metadata.owner_references)
    ]
    by_name = {j.metadata.name: j for j in owned}
    actions: list[Action] = []
    status = CronJobStatus(
        active=[],
        last_schedule_time=cj.status.last_schedule_time,
        last_successful_time=cj.status.last_successful_time,
    )
    was_active = {r.name for r in cj.status.active}
    for job in owned:
        name = job.metadata.name
        if not is_finished(job):
            if job.metadata.deletion_timestamp is None:
                status.active.append(_reference(job))
            continue
        if name in was_active:
            failed = get_condition(job, "Failed")
            outcome = "Failed" if failed is not None and failed.status == "True" else "Complete"
            actions.append(
                event(cj, "SawCompletedJob", f"Saw completed job: {name}, status: {outcome}")
            )
        complete = get_condition(job, "Complete")
        if complete is not None and complete.status == "True":
            done = _finished_at(job)
            last = parse_time(status.last_successful_time)
            if last is None or done > last:
                status.last_successful_time = format_time(done)
    actions.extend(_history_cleanup(cj, owned))

    next_run: datetime | None = None
    if cj.metadata.deletion_timestamp is None and not cj.spec.suspend:
        next_run = _schedule(cj, now, by_name, status, actions)
    if status != cj.status:
        changed = clone(cj)
        changed.status = status
        actions.append(UpdateStatus(changed))
    if next_run is not None:
        actions.append(Requeue(max((next_run - now).total_seconds(), 0.0) + 0.1))
    return actions


def _rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339 in the schedule's zone (`Z` for UTC)."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _reference(job: Job) -> ObjectReference:
    return ObjectReference(
        kind="Job",
        api_version="batch/v1",
        namespace=job.metadata.namespace,
        name=job.metadata.name,
        uid=job.metadata.uid,
        resource_version=job.metadata.resource_version,
    )


def _history_cleanup(cj: CronJob, owned: list[Job]) -> list[Action]:
    out: list[Action] = []
    for condition, limit in (
        ("Complete", cj.spec.successful_jobs_history_limit),
        ("Failed", cj.spec.failed_jobs_history_limit),
    ):
        if limit is None:
            continue
        done = [
            j
            for j in owned
            if (c := get_condition(j, condition)) is not None
            and c.status == "True"
            and j.metadata.deletion_timestamp is None
        ]
        done.sort(key=lambda j: (_started_at(j), j.metadata.name))
        for job in done[: max(len(done) - limit, 0)]:
            out.append(
                DeleteObject(
                    kind="Job",
                    namespace=job.metadata.namespace,
                    name=job.metadata.name,
                    uid=job.metadata.uid,
                    reason="history limit",
                )
            )
            out.append(event(cj, "SuccessfulDelete", f"Deleted job {job.metadata.name}"))
    return out


def _schedule(
    cj: CronJob,
    now: datetime,
    by_name: dict[str, Job],
    status: CronJobStatus,
    actions: list[Action],
) -> datetime | None:
    """Start the most recent unmet scheduled time, if any; the next one."""
    try:
        schedule = parse_schedule(cj.spec.schedule)
    except CronError as exc:
        actions.append(event(cj, "UnparseableSchedule", f"unparseable schedule: {exc}", "Warning"))
        return None
    zone = _zone(cj)
    local_now = now.astimezone(zone)
    earliest = (
        parse_time(status.last_schedule_time) or parse_time(cj.metadata.creation_timestamp) or now
    ).astimezone(zone)
    deadline = cj.spec.starting_deadline_seconds
    if deadline is not None:
        window_start = now.timestamp() - deadline
        if earliest.timestamp() < window_start:
            earliest = datetime.fromtimestamp(window_start, zone)
    scheduled: datetime | None = None
    missed = 0
    t = schedule.next_after(earliest)
    while t is not None and t <= local_now and missed <= TOO_MANY_MISSED:
        scheduled = t
        missed += 1
        t = schedule.next_after(t)
    if t is not None and t <= local_now:  # more than 100: only the latest matters
        missed += 1
        scheduled = _latest_until(schedule, t, local_now)
    next_run = schedule.next_after(local_now)
    if scheduled is None:
        return next_run
    if missed > TOO_MANY_MISSED:
        actions.append(
            event(
                cj,
                "TooManyMissedTimes",
                f"too many missed start times: {missed}. Set or decrease "
                ".spec.startingDeadlineSeconds or check clock skew",
                "Warning",
            )
        )
    name = job_name(cj, scheduled)
    if name in by_name:
        return next_run
    if deadline is not None and scheduled.timestamp() < now.timestamp() - deadline:
        actions.append(
            event(
                cj,
                "MissSchedule",
                f"Missed scheduled time to start a job: {scheduled.astimezone(UTC):%a, %d %b %Y %H:%M:%S %z}",
                "Warning",
            )
        )
        return next_run
    if status.active and cj.spec.concurrency_policy == "Forbid":
        actions.append(
            event(
                cj,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy "
                "is Forbid",
            )
        )
        return next_run
    if status.active and cj.spec.concurrency_policy == "Replace":
        for ref in status.active:
            actions.append(
                DeleteObject(
                    kind="Job", namespace=ref.namespace, name=ref.name, uid=ref.uid,
                    reason="concurrency policy Replace",
                )
            )  # fmt: skip
            actions.append(event(cj, "SuccessfulDelete", f"Deleted job {ref.name}"))
        status.active = []
    job = _job_for(cj, name, scheduled)
    actions.append(CreateObject(job))
    actions.append(event(cj, "SuccessfulCreate", f"Created job {name}"))
    status.active.append(
        ObjectReference(
            kind="Job", api_version="batch/v1", namespace=job.metadata.namespace, name=name
        )
    )
    status.last_schedule_time = format_time(scheduled)
    return next_run


def _latest_until(schedule: Schedule, start: datetime, end: datetime) -> datetime:
    """The last time in [start, end] the schedule fires (it fires at
    `start`), scanning a short window before `end` first."""
    for minutes in (60, 24 * 60, 32 * 24 * 60, 367 * 24 * 60):
        window = max(start, end - timedelta(minutes=minutes))
        found = None
        t = schedule.next_after(window - timedelta(minutes=1))
        while t is not None and t <= end:
            found = t
            t = schedule.next_after(t)
        if found is not None:
            return found
    found = start
    t = schedule.next_after(start)
    while t is not None and t <= end:
        found = t
        t = schedule.next_after(t)
    return found


def _job_for(cj: CronJob, name: str, scheduled: datetime) -> Job:
    """getJobFromTemplate2."""
    template = clone(cj).spec.job_template
    return Job(
        metadata=ObjectMeta(
            name=name,
            namespace=cj.metadata.namespace,
            labels=dict(template.metadata.labels),
            annotations={
                **template.metadata.annotations,
                SCHEDULED_TIMESTAMP_ANNOTATION: _rfc3339(scheduled),
            },
            owner_references=[controller_reference(cj)],
        ),
        spec=template.spec,
    )
