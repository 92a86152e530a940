"""The Job plan: run pods until `completions` succeed (NonIndexed) or every
index 0..completions-1 has succeeded once (Indexed), `parallelism` at a
time, with back-off, deadlines, a pod failure policy, Kubernetes' conditions
and TTL clean-up. Follows pkg/controller/job (job_controller.go,
indexed_job_utils.go, pod_failure_policy.go, backoff_utils.go) and the TTL
controller (ttlafterfinished).

Owns `plan_job`. Pure: the Job, its pods, `now` and a random source in,
actions out.

Tracking finished pods without finalizers
-----------------------------------------
Kubernetes puts a `batch.kubernetes.io/job-tracking` finalizer on every pod
so no finished pod can vanish before it is counted. podbus pods carry no
finalizer; instead a pod annotation, `podbus.io/job-counted: "true"`, plays
the finalizer's role in reverse ("already accounted for"), with Kubernetes'
own three steps around status.uncountedTerminatedPods, each taken only on
what the plan has *observed*:

1. A finished pod that is neither marked nor listed is added to
   uncountedTerminatedPods.succeeded / .failed (a status write).
2. A pod whose uid the observed status lists is marked (a pod patch).
3. A listed uid whose pod is observed marked, or gone, moves into the
   `succeeded` / `failed` counter (a status write).

Every write depends only on state already persisted, so any prefix of a
sync's actions may fail or the controller may crash at any point without a
pod ever being counted twice or lost once it was seen finished. (Status
writes are compare-and-set, so a stale view cannot overwrite a newer one.)
A finished pod deleted before the controller ever saw it finished is not
counted; without finalizers nothing can prevent that, and its loss only
causes a replacement pod.

Indexed Jobs count successes by index (status.completedIndexes, derived
from every succeeded pod each sync), so an index counts once however many
of its pods succeed. NonIndexed Jobs never list more successes than
`completions`: a pod succeeding beyond that is marked but not counted.

Conditions: like Kubernetes >= 1.31, a Job first gets the interim
FailureTarget (or SuccessCriteriaMet) condition, its remaining pods are
deleted, and Failed (or Complete) follows once no pod is terminating and
nothing is left uncounted. activeDeadlineSeconds is checked before
backoffLimit, so a Job over both fails with DeadlineExceeded.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from podmodel.defaults import (
    CONTROLLER_UID_LABEL,
    JOB_NAME_LABEL,
    LEGACY_CONTROLLER_UID_LABEL,
    LEGACY_JOB_NAME_LABEL,
)
from podmodel.pod import (
    Condition,
    ContainerStatus,
    EnvVar,
    EnvVarSource,
    ObjectFieldSelector,
    Pod,
    PodTemplateSpec,
)
from podmodel.selector import LabelSelector, selector_matches
from podmodel.workloads import (
    Job,
    PodFailurePolicyOnExitCodesRequirement,
    UncountedTerminatedPods,
)

from services.workload_controller.logic.actions import (
    Action,
    CreatePod,
    DeleteObject,
    DeletePod,
    EmitEvent,
    PatchMetadata,
    Requeue,
    UpdateStatus,
    event,
    merge_requeues,
)
from services.workload_controller.logic.ownership import claim
from services.workload_controller.logic.pod_state import (
    deletion_order_key,
    finished_at,
    is_active,
    is_ready,
    is_terminal,
    is_terminating,
    total_container_restarts,
)
from services.workload_controller.logic.pod_template import PodFactory, generate_name
from services.workload_controller.logic.snapshots import clone
from services.workload_controller.logic.timestamps import format_time, parse_time

COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
COUNTED_ANNOTATION = "podbus.io/job-counted"

REASON_BACKOFF_LIMIT = "BackoffLimitExceeded"
REASON_DEADLINE = "DeadlineExceeded"
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
REASON_FAILED_INDEXES = "FailedIndexes"
REASON_MAX_FAILED_INDEXES = "MaxFailedIndexesExceeded"
REASON_COMPLETIONS_REACHED = "CompletionsReached"

MSG_BACKOFF_LIMIT = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_COMPLETIONS_REACHED = "Reached expected number of succeeded pods"
MSG_FAILED_INDEXES = "Job has failed indexes"
MSG_MAX_FAILED_INDEXES = "Job has exceeded the specified maximal number of failed indexes"


@dataclass(frozen=True)
class JobTuning:
    """Timings and per-sync limits. Back-off: 10 s doubling, capped at 6 min
    (K8S_SEMANTICS.md); 500 creates/deletes and 500 newly tracked pods per
    sync (MaxPodCreateDeletePerSync, MaxUncountedPods)."""

    backoff_base_s: float = 10.0
    backoff_max_s: float = 360.0
    max_pods_per_sync: int = 500
    max_uncounted: int = 500


DEFAULT_TUNING = JobTuning()


# ------------------------------------------------------------------ indexes


def parse_indexes(text: str | None) -> set[int]:
    """A completedIndexes / failedIndexes string ("1,3-5,7") as a set."""
    out: set[int] = set()
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            if dash:
                out.update(range(int(first), int(last) + 1))
            else:
                out.add(int(first))
        except ValueError:
            continue
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """Sorted indexes as intervals: {1,3,4,5,7} -> "1,3-5,7"."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def completion_index(pod: Pod) -> int | None:
    """The pod's completion index annotation, or None."""
    raw = pod.metadata.annotations.get(COMPLETION_INDEX_ANNOTATION)
    if raw is None or not raw.isdigit():
        return None
    return int(raw)


# ------------------------------------------------------------------ pod failure policy


def _matching_exit(
    statuses: list[ContainerStatus], req: PodFailurePolicyOnExitCodesRequirement
) -> ContainerStatus | None:
    for status in statuses:
        term = status.state.terminated
        if term is None or term.exit_code == 0:
            continue
        if req.container_name is not None and req.container_name != status.name:
            continue
        if req.operator == "In" and term.exit_code in req.values:
            return status
        if req.operator == "NotIn" and term.exit_code not in req.values:
            return status
    return None


def match_pod_failure_policy(job: Job, pod: Pod) -> tuple[str | None, bool, str | None]:
    """matchPodFailurePolicy: (FailJob message or None, whether the failure
    counts toward backoffLimit, the matched action or None). Rules in order,
    first match wins; no policy or no match counts."""
    policy = job.spec.pod_failure_policy
    if policy is None:
        return None, True, None
    ns, name = pod.metadata.namespace, pod.metadata.name
    for index, rule in enumerate(policy.rules):
        matched: str | None = None
        if rule.on_exit_codes is not None:
            status = _matching_exit(pod.status.container_statuses, rule.on_exit_codes)
            if status is None:
                status = _matching_exit(pod.status.init_container_statuses, rule.on_exit_codes)
            if status is not None:
                code = status.state.terminated.exit_code if status.state.terminated else 0
                matched = (
                    f"Container {status.name} for pod {ns}/{name} failed with exit code "
                    f"{code} matching {rule.action} rule at index {index}"
                )
        elif rule.on_pod_conditions:
            for cond in pod.status.conditions:
                if any(
                    cond.type == p.type and cond.status == (p.status or "True")
                    for p in rule.on_pod_conditions
                ):
                    matched = (
                        f"Pod {ns}/{name} has condition {cond.type} matching "
                        f"{rule.action} rule at index {index}"
                    )
                    break
        if matched is None:
            continue
        if rule.action == "Ignore":
            return None, False, "Ignore"
        if rule.action == "FailIndex":
            return None, True, "FailIndex"
        if rule.action == "Count":
            return None, True, "Count"
        if rule.action == "FailJob":
            return matched, True, "FailJob"
    return None, True, None


# ------------------------------------------------------------------ helpers


def get_condition(job: Job, type_: str) -> Condition | None:
    for cond in job.status.conditions:
        if cond.type == type_:
            return cond
    return None


def is_finished(job: Job) -> bool:
    """Complete or Failed is True."""
    return any(
        c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions
    )


def _new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Condition:
    stamp = format_time(now)
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_probe_time=stamp,
        last_transition_time=stamp,
    )


def _ensure_condition(
    job: Job, type_: str, status: str, reason: str, message: str, now: datetime
) -> bool:
    """ensureJobConditionStatus: update a differing condition, add a missing
    one unless it would be False. Returns whether anything changed."""
    cond = get_condition(job, type_)
    if cond is not None:
        if cond.status != status or cond.reason != reason or cond.message != message:
            job.status.conditions = [
                _new_condition(type_, status, reason, message, now) if c is cond else c
                for c in job.status.conditions
            ]
            return True
        return False
    if status != "False":
        job.status.conditions.append(_new_condition(type_, status, reason, message, now))
        return True
    return False


def backoff_delay(failures: int, tuning: JobTuning) -> float:
    """10 s for the first failure, doubling, capped (getRemainingTime)."""
    if failures <= 0:
        return 0.0
    delay = tuning.backoff_base_s
    for _ in range(1, failures):
        delay *= 2
        if delay >= tuning.backoff_max_s:
            return tuning.backoff_max_s
    return min(delay, tuning.backoff_max_s)


def _with_index_env(template: PodTemplateSpec) -> PodTemplateSpec:
    """addCompletionIndexEnvVariables: JOB_COMPLETION_INDEX from the pod's
    completion-index annotation (downward API), in every init and app
    container that does not set it already."""
    out = clone(template)
    path = f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
    for container in (*out.spec.init_containers, *out.spec.containers):
        if any(e.name == COMPLETION_INDEX_ENV for e in container.env):
            continue
        container.env.append(
            EnvVar(
                name=COMPLETION_INDEX_ENV,
                value_from=EnvVarSource(
                    field_ref=ObjectFieldSelector(field_path=path, api_version="v1")
                ),
            )
        )
    return out


# ------------------------------------------------------------------ the plan


def plan_job(
    job: Job,
    pods: Iterable[Pod],
    now: datetime,
    rng: random.Random,
    tuning: JobTuning = DEFAULT_TUNING,
) -> list[Action]:
    """Actions for one Job sync (see the module docstring).

    `pods`: the pods indexed under the Job's uid plus the namespace's orphans."""
    if is_finished(job):
        return _plan_ttl(job, now)
    if job.metadata.deletion_timestamp is not None:
        return []
    return _JobSync(job, now, rng, tuning).run(pods)


def _plan_ttl(job: Job, now: datetime) -> list[Action]:
    """ttlSecondsAfterFinished: unset keeps the Job; otherwise delete it
    (Foreground, as the TTL controller does) once finish time + ttl passed."""
    ttl = job.spec.ttl_seconds_after_finished
    if ttl is None or job.metadata.deletion_timestamp is not None:
        return []
    finished = None
    for cond in job.status.conditions:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            finished = parse_time(cond.last_transition_time)
    finished = finished or parse_time(job.status.completion_time) or now
    left = ttl - (now - finished).total_seconds()
    if left > 0:
        return [Requeue(left)]
    return [
        DeleteObject(
            kind="Job",
            namespace=job.metadata.namespace,
            name=job.metadata.name,
            uid=job.metadata.uid,
            propagation_policy="Foreground",
            reason="ttlSecondsAfterFinished",
        )
    ]


class _JobSync:
    def __init__(self, job: Job, now: datetime, rng: random.Random, tuning: JobTuning) -> None:
        self.orig = job
        self.job = clone(job)
        self.now = now
        self.rng = rng
        self.tuning = tuning
        self.head: list[Action] = []
        self.pod_actions: list[Action] = []
        self.marks: list[Action] = []
        self.events: list[EmitEvent] = []
        self.requeues: list[Action] = []
        spec = job.spec
        self.indexed = spec.completion_mode == "Indexed"
        self.completions = spec.completions
        self.parallelism = spec.parallelism if spec.parallelism is not None else 1
        policy = spec.pod_replacement_policy
        if policy is None:
            policy = "Failed" if spec.pod_failure_policy is not None else "TerminatingOrFailed"
        self.only_replace_failed = policy == "Failed" or spec.pod_failure_policy is not None

    # ---------------------------------------------------------------- pod judgements

    def _considered_failed(self, pod: Pod) -> bool:
        """isPodFailed: Failed, or (unless only failed pods are replaced)
        deleted before it succeeded."""
        if pod.status.phase == "Failed":
            return True
        if self.only_replace_failed:
            return False
        return pod.metadata.deletion_timestamp is not None and pod.status.phase != "Succeeded"

    def _valid_index(self, pod: Pod) -> int | None:
        ix = completion_index(pod)
        if ix is None or self.completions is None or ix >= self.completions:
            return None
        return ix

    def _counts_failure(self, pod: Pod) -> bool:
        return match_pod_failure_policy(self.job, pod)[1]

    # ---------------------------------------------------------------- the pass

    def run(self, candidates: Iterable[Pod]) -> list[Action]:
        job = self.job
        selector = job.spec.selector or LabelSelector(
            match_labels={CONTROLLER_UID_LABEL: job.metadata.uid}
        )
        claimed = claim(job, candidates, lambda p: selector_matches(selector, p.metadata.labels))
        self.head.extend(claimed.actions)
        pods = claimed.owned

        status = job.status
        uncounted = status.uncounted_terminated_pods or UncountedTerminatedPods()
        listed_succeeded = set(uncounted.succeeded)
        listed_failed = set(uncounted.failed)
        listed = listed_succeeded | listed_failed
        marked = {p.metadata.uid for p in pods if COUNTED_ANNOTATION in p.metadata.annotations}
        unmarked_uids = {p.metadata.uid for p in pods} - marked

        active_pods = [p for p in pods if is_active(p)]
        terminating = sum(1 for p in pods if is_terminating(p))
        fresh = [p for p in pods if p.metadata.uid not in marked and p.metadata.uid not in listed]

        # Successes.
        succeeded_indexes: set[int] = set()
        if self.indexed:
            succeeded_indexes = {
                i for i in parse_indexes(status.completed_indexes) if self._in_range(i)
            }
            for p in pods:
                if p.status.phase == "Succeeded" and (ix := self._valid_index(p)) is not None:
                    succeeded_indexes.add(ix)
            succeeded = len(succeeded_indexes)
        else:
            already = status.succeeded + len(listed_succeeded)
            new_successes = sum(1 for p in fresh if p.status.phase == "Succeeded")
            if self.completions is not None:
                new_successes = min(new_successes, max(0, self.completions - already))
            succeeded = already + new_successes

        # Failures.
        new_failed = [
            p
            for p in fresh
            if self._considered_failed(p)
            and p.status.phase != "Succeeded"
            and (not self.indexed or self._valid_index(p) is not None)
        ]
        failed = (
            status.failed
            + len(listed_failed)
            + sum(1 for p in new_failed if self._counts_failure(p))
        )
        failed_indexes = self._failed_indexes(pods, succeeded_indexes)

        if status.start_time is None and not job.spec.suspend:
            status.start_time = format_time(self.now)

        finished = self._finished_condition(pods, failed, failed_indexes, succeeded_indexes)

        active = len(active_pods)
        ready = sum(1 for p in active_pods if is_ready(p))
        suspend_changed = False
        if finished is not None:
            self._delete_pods(active_pods, "job finished")
            terminating += active
            active = ready = 0
        elif job.metadata.deletion_timestamp is None:
            active, ready, terminating, suspend_changed = self._manage(
                pods, active_pods, succeeded, succeeded_indexes, failed_indexes, terminating, ready
            )
            if self.completions is None:
                complete = succeeded > 0 and active == 0
            else:
                complete = succeeded >= self.completions and active == 0
            if complete:
                finished = _new_condition(
                    "SuccessCriteriaMet",
                    "True",
                    REASON_COMPLETIONS_REACHED,
                    MSG_COMPLETIONS_REACHED,
                    self.now,
                )

        status.active = active
        status.ready = ready
        status.terminating = terminating
        self._track(pods, unmarked_uids, listed, succeeded_indexes, finished, failed_indexes)
        self._finish_conditions(finished, terminating)

        out: list[Action] = list(self.head)
        if job.status != self.orig.status or suspend_changed:
            out.append(UpdateStatus(job))
        out.extend(self.marks)
        out.extend(self.pod_actions)
        out.extend(self.events)
        out.extend(self.requeues)
        return merge_requeues(out)

    def _in_range(self, ix: int) -> bool:
        return self.completions is not None and 0 <= ix < self.completions

    # ---------------------------------------------------------------- failure

    def _failed_indexes(self, pods: list[Pod], succeeded_indexes: set[int]) -> set[int]:
        """Indexes that will not be retried: a pod matched a FailIndex rule,
        or (backoffLimitPerIndex) the index failed more often than allowed.
        Kept in status.failedIndexes, so they survive their pods."""
        if not self.indexed:
            return set()
        job = self.job
        out = {i for i in parse_indexes(job.status.failed_indexes) if self._in_range(i)}
        per_index_limit = job.spec.backoff_limit_per_index
        failures: dict[int, int] = {}
        for p in pods:
            ix = self._valid_index(p)
            if ix is None or ix in succeeded_indexes or not self._considered_failed(p):
                continue
            _, counts, action = match_pod_failure_policy(job, p)
            if action == "FailIndex":
                out.add(ix)
            elif counts:
                failures[ix] = failures.get(ix, 0) + 1
        if per_index_limit is not None:
            out.update(ix for ix, n in failures.items() if n > per_index_limit)
        return out - succeeded_indexes

    def _finished_condition(
        self,
        pods: list[Pod],
        failed: int,
        failed_indexes: set[int],
        succeeded_indexes: set[int],
    ) -> Condition | None:
        """The condition that ends the Job this sync, if any (interim
        FailureTarget / SuccessCriteriaMet, or an already recorded one)."""
        job = self.job
        now = self.now
        scm = get_condition(job, "SuccessCriteriaMet")
        if scm is not None and scm.status == "True":
            return scm
        target = get_condition(job, "FailureTarget")
        if target is not None and target.status == "True":
            return target
        for p in pods:
            if self._considered_failed(p):
                message = match_pod_failure_policy(job, p)[0]
                if message is not None:
                    return _new_condition(
                        "FailureTarget", "True", REASON_POD_FAILURE_POLICY, message, now
                    )
        if self._past_deadline():
            return _new_condition("FailureTarget", "True", REASON_DEADLINE, MSG_DEADLINE, now)
        if failed > job.spec.backoff_limit or self._past_backoff_on_failure(pods):
            return _new_condition(
                "FailureTarget", "True", REASON_BACKOFF_LIMIT, MSG_BACKOFF_LIMIT, now
            )
        if self.indexed and failed_indexes and self.completions is not None:
            max_failed = job.spec.max_failed_indexes
            if max_failed is not None and len(failed_indexes) > max_failed:
                return _new_condition(
                    "FailureTarget", "True", REASON_MAX_FAILED_INDEXES, MSG_MAX_FAILED_INDEXES, now
                )
            if len(failed_indexes) + len(succeeded_indexes) >= self.completions:
                return _new_condition(
                    "FailureTarget", "True", REASON_FAILED_INDEXES, MSG_FAILED_INDEXES, now
                )
        deadline = job.spec.active_deadline_seconds
        start = parse_time(job.status.start_time)
        if deadline is not None and start is not None and not job.spec.suspend:
            self.requeues.append(Requeue(deadline - (now - start).total_seconds()))
        return None

    def _past_deadline(self) -> bool:
        job = self.job
        deadline = job.spec.active_deadline_seconds
        start = parse_time(job.status.start_time)
        if deadline is None or start is None or job.spec.suspend:
            return False
        return (self.now - start).total_seconds() >= deadline

    def _past_backoff_on_failure(self, pods: list[Pod]) -> bool:
        """restartPolicy OnFailure: container restarts of running and pending
        pods count against backoffLimit."""
        job = self.job
        if job.spec.template.spec.restart_policy != "OnFailure":
            return False
        restarts = sum(
            total_container_restarts(p) for p in pods if p.status.phase in ("Running", "Pending")
        )
        if job.spec.backoff_limit == 0:
            return restarts > 0
        return restarts >= job.spec.backoff_limit

    def _backoff_remaining(self, pods: list[Pod]) -> float:
        """Seconds before a replacement may be created: the back-off for the
        failures since the last success, from the last failure's end."""
        last_success = None
        for p in pods:
            if p.status.phase == "Succeeded":
                t = finished_at(p)
                if t is not None and (last_success is None or t > last_success):
                    last_success = t
        failures = 0
        last_failure = None
        for p in pods:
            if not self._considered_failed(p) or p.status.phase == "Succeeded":
                continue
            if not self._counts_failure(p):
                continue
            t = finished_at(p)
            if t is None or (last_success is not None and t <= last_success):
                continue
            failures += 1
            if last_failure is None or t > last_failure:
                last_failure = t
        if failures == 0 or last_failure is None:
            return 0.0
        delay = backoff_delay(failures, self.tuning)
        elapsed = (self.now - last_failure).total_seconds()
        return max(0.0, delay - elapsed)

    # ---------------------------------------------------------------- pods

    def _delete_pods(self, victims: list[Pod], reason: str) -> None:
        for p in victims:
            self.pod_actions.append(
                DeletePod(
                    namespace=p.metadata.namespace,
                    name=p.metadata.name,
                    uid=p.metadata.uid,
                    reason=reason,
                    event=event(self.job, "SuccessfulDelete", f"Deleted pod: {p.metadata.name}"),
                )
            )

    def _pods_for_removal(self, active_pods: list[Pod], at_least: int) -> list[Pod]:
        """activePodsForRemoval: for Indexed Jobs first pods with an index out
        of range or repeated (keeping the best of each index), then the pods
        Kubernetes prefers to delete."""
        rm: list[Pod] = []
        left: list[Pod]
        if self.indexed:
            left = []
            by_index: dict[int, list[Pod]] = {}
            for p in active_pods:
                ix = self._valid_index(p)
                if ix is None:
                    rm.append(p)
                else:
                    by_index.setdefault(ix, []).append(p)
            for group in by_index.values():
                group.sort(key=lambda p: deletion_order_key(p, self.now))
                rm.extend(group[:-1])
                left.append(group[-1])
        else:
            left = list(active_pods)
        if len(rm) < at_least:
            left.sort(key=lambda p: deletion_order_key(p, self.now))
            rm.extend(left[: at_least - len(rm)])
        return rm

    def _manage(
        self,
        pods: list[Pod],
        active_pods: list[Pod],
        succeeded: int,
        succeeded_indexes: set[int],
        failed_indexes: set[int],
        terminating: int,
        ready: int,
    ) -> tuple[int, int, int, bool]:
        """manageJob: delete surplus or create missing pods (never both in
        one sync). Returns (active, ready, terminating, suspend changed)."""
        job = self.job
        limit = self.tuning.max_pods_per_sync
        active = len(active_pods)
        if job.spec.suspend:
            victims = self._pods_for_removal(active_pods, active)
            self._delete_pods(victims, "job suspended")
            changed = _ensure_condition(
                job, "Suspended", "True", "JobSuspended", "Job suspended", self.now
            )
            if changed:
                self.events.append(event(job, "Suspended", "Job suspended"))
            removed_ready = sum(1 for p in victims if is_ready(p))
            return active - len(victims), ready - removed_ready, terminating + len(victims), changed
        changed = _ensure_condition(
            job, "Suspended", "False", "JobResumed", "Job resumed", self.now
        )
        if changed:
            self.events.append(event(job, "Resumed", "Job resumed"))
            job.status.start_time = format_time(self.now)

        if self.completions is None:
            want = active if succeeded > 0 else self.parallelism
        else:
            want = max(0, min(self.completions - succeeded, self.parallelism))

        victims = self._pods_for_removal(active_pods, max(0, active - want))[:limit]
        if victims:
            self._delete_pods(victims, "too many active pods")
            removed_ready = sum(1 for p in victims if is_ready(p))
            return active - len(victims), ready - removed_ready, terminating + len(victims), changed

        waiting = terminating if self.only_replace_failed else 0
        diff = want - waiting - active
        if diff <= 0:
            return active, ready, terminating, changed
        remaining = self._backoff_remaining(pods)
        if remaining > 0:
            self.requeues.append(Requeue(remaining))
            return active, ready, terminating, changed
        if diff > limit:
            diff = limit
            self.requeues.append(Requeue(0.0))  # more to create once these are seen
        indexes: list[int | None]
        if self.indexed and self.completions is not None:
            taken = set(succeeded_indexes) | failed_indexes
            for p in pods:
                ix = self._valid_index(p)
                if ix is None:
                    continue
                if is_active(p) or (self.only_replace_failed and is_terminating(p)):
                    taken.add(ix)
            indexes = []
            for i in range(self.completions):
                if len(indexes) >= diff:
                    break
                if i not in taken:
                    indexes.append(i)
        else:
            indexes = [None] * diff
        self._create_pods(pods, indexes)
        return active + len(indexes), ready, terminating, changed

    def _create_pods(self, pods: list[Pod], indexes: list[int | None]) -> None:
        if not indexes:
            return
        job = self.job
        name = job.metadata.name
        template = _with_index_env(job.spec.template) if self.indexed else job.spec.template
        factory = PodFactory(
            template,
            job,
            extra_labels={
                JOB_NAME_LABEL: name,
                LEGACY_JOB_NAME_LABEL: name,
                CONTROLLER_UID_LABEL: job.metadata.uid,
                LEGACY_CONTROLLER_UID_LABEL: job.metadata.uid,
            },
        )
        taken = {p.metadata.name for p in pods}
        for ix in indexes:
            if ix is None:
                pod = factory.make_generated(self.rng, taken)
            else:
                base = f"{name}-{ix}-"
                pod = factory.make(generate_name(base, self.rng, taken), generate_name=base)
                pod.metadata.annotations[COMPLETION_INDEX_ANNOTATION] = str(ix)
                pod.metadata.labels[COMPLETION_INDEX_LABEL] = str(ix)
                pod.spec.hostname = f"{name}-{ix}"
            self.pod_actions.append(
                CreatePod(
                    pod, event=event(job, "SuccessfulCreate", f"Created pod: {pod.metadata.name}")
                )
            )

    # ---------------------------------------------------------------- tracking

    def _mark(self, pod: Pod) -> None:
        self.marks.append(
            PatchMetadata(
                kind="Pod",
                namespace=pod.metadata.namespace,
                name=pod.metadata.name,
                uid=pod.metadata.uid,
                set_annotations={COUNTED_ANNOTATION: "true"},
                reason="job tracking: counted",
            )
        )

    def _track(
        self,
        pods: list[Pod],
        unmarked_uids: set[str],
        listed: set[str],
        succeeded_indexes: set[int],
        finished: Condition | None,
        failed_indexes: set[int],
    ) -> None:
        """The three tracking steps of the module docstring, then counters."""
        job = self.job
        status = job.status
        uncounted = status.uncounted_terminated_pods or UncountedTerminatedPods()
        # Step 3: listed uids whose pod is marked or gone are counted.
        keep_succeeded = [u for u in uncounted.succeeded if u in unmarked_uids]
        keep_failed = [u for u in uncounted.failed if u in unmarked_uids]
        status.succeeded += len(uncounted.succeeded) - len(keep_succeeded)
        status.failed += len(uncounted.failed) - len(keep_failed)
        # Step 2: pods the persisted status lists get marked.
        for p in pods:
            if p.metadata.uid in listed and p.metadata.uid in unmarked_uids:
                self._mark(p)
        # Step 1: finished pods neither listed nor marked get listed.
        ending_by_failure = finished is not None and finished.type not in (
            "SuccessCriteriaMet",
            "Complete",
        )
        room = (
            None
            if self.indexed or self.completions is None
            else self.completions - status.succeeded - len(keep_succeeded)
        )
        added = 0
        for p in pods:
            uid = p.metadata.uid
            if uid in listed or uid not in unmarked_uids:
                continue
            if added >= self.tuning.max_uncounted:
                break
            considered_failed = self._considered_failed(p)
            if p.status.phase == "Succeeded":
                if self.indexed:
                    continue  # counted by index, see completedIndexes
                if room is None or room > 0:
                    keep_succeeded.append(uid)
                    added += 1
                    if room is not None:
                        room -= 1
                else:
                    self._mark(p)  # beyond `completions`: never counted
            elif considered_failed or (ending_by_failure and not is_terminal(p)):
                if self.indexed and self._valid_index(p) is None:
                    self._mark(p)
                elif self._counts_failure(p):
                    keep_failed.append(uid)
                    added += 1
                else:
                    self._mark(p)  # ignored by the pod failure policy
        if keep_succeeded or keep_failed or status.uncounted_terminated_pods is not None:
            status.uncounted_terminated_pods = UncountedTerminatedPods(
                succeeded=keep_succeeded, failed=keep_failed
            )
        if self.indexed:
            status.completed_indexes = format_indexes(succeeded_indexes)
            status.succeeded = len(succeeded_indexes)
            if failed_indexes or job.status.failed_indexes is not None:
                status.failed_indexes = format_indexes(failed_indexes)

    def _finish_conditions(self, finished: Condition | None, terminating: int) -> None:
        """Record the interim condition, and the final one once nothing is
        uncounted or terminating (enactJobFinished), with its event."""
        if finished is None:
            return
        job = self.job
        status = job.status
        if finished.type in ("FailureTarget", "SuccessCriteriaMet") and (
            get_condition(job, finished.type) is None
        ):
            status.conditions.append(finished)
        uncounted = status.uncounted_terminated_pods
        if uncounted is not None and (uncounted.succeeded or uncounted.failed):
            return
        if terminating > 0:
            return
        final_type = "Complete" if finished.type in ("SuccessCriteriaMet", "Complete") else "Failed"
        _ensure_condition(job, final_type, "True", finished.reason, finished.message, self.now)
        if final_type == "Complete":
            status.completion_time = format_time(self.now)
            self.events.append(event(job, "Completed", "Job completed"))
        else:
            self.events.append(event(job, finished.reason, finished.message, "Warning"))
