"""The Job plan: completions, parallelism, indexes, back-off, deadlines,
pod failure policy, conditions, TTL and finalizer-free tracking."""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from podmodel.pod import (
    Condition,
    ContainerState,
    ContainerStateTerminated,
    ContainerStatus,
    Pod,
)
from podmodel.workloads import (
    Job,
    PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
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
)
from services.workload_controller.logic.job import (
    COMPLETION_INDEX_ANNOTATION,
    COUNTED_ANNOTATION,
    JobTuning,
    backoff_delay,
    format_indexes,
    parse_indexes,
    plan_job,
)
from tests.unit.workload_controller.sample_objects import NOW, job, ts


@dataclass
class Cluster:
    """A Job and its pods. Pods run when created; the test decides how they
    end (`finish`). Deleted pods vanish one step later."""

    job: Job
    pods: dict[str, Pod] = field(default_factory=dict)
    now: datetime = NOW
    serial: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    events: list[EmitEvent] = field(default_factory=list)
    tuning: JobTuning = field(default_factory=JobTuning)

    def plan(self) -> list[Action]:
        return plan_job(self.job, list(self.pods.values()), self.now, self.rng, self.tuning)

    def apply(self, actions: Sequence[Action]) -> None:
        for a in actions:
            if isinstance(a, CreatePod):
                self.serial += 1
                p = a.pod
                assert p.metadata.name not in self.pods
                p.metadata.uid = f"pod-{self.serial}"
                p.metadata.creation_timestamp = ts((self.now - NOW).total_seconds())
                p.status.phase = "Running"
                p.status.container_statuses = [ContainerStatus(name="main")]
                self.pods[p.metadata.name] = p
            elif isinstance(a, DeletePod):
                if a.name in self.pods:
                    self.pods[a.name].metadata.deletion_timestamp = ts()
            elif isinstance(a, UpdateStatus):
                assert isinstance(a.obj, Job)
                self.job = a.obj
            elif isinstance(a, PatchMetadata) and a.kind == "Pod":
                target = next((p for p in self.pods.values() if p.metadata.uid == a.uid), None)
                if target is not None:
                    target.metadata.annotations.update(a.set_annotations)
            elif isinstance(a, EmitEvent):
                self.events.append(a)
            if isinstance(a, (CreatePod, DeletePod)) and a.event is not None:
                self.events.append(a.event)

    def settle(self) -> None:
        for name, p in list(self.pods.items()):
            if p.metadata.deletion_timestamp is not None:
                if p.status.phase in ("Succeeded", "Failed"):
                    del self.pods[name]
                else:
                    p.status.phase = "Failed"

    def step(self, advance: float = 1.0) -> list[Action]:
        actions = self.plan()
        self.apply(actions)
        self.settle()
        self.now += timedelta(seconds=advance)
        return actions

    def run(self, steps: int, advance: float = 1.0) -> None:
        for _ in range(steps):
            self.step(advance)

    def running(self) -> list[Pod]:
        return [
            p
            for p in self.pods.values()
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        ]

    def finish(self, p: Pod, exit_code: int = 0) -> None:
        p.status.phase = "Succeeded" if exit_code == 0 else "Failed"
        term = ContainerStateTerminated(
            exit_code=exit_code, finished_at=ts((self.now - NOW).total_seconds())
        )
        p.status.container_statuses[0].state = ContainerState(terminated=term)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.job.status.conditions if c.type == type_), None)


def run_to_completion(cluster: Cluster, steps: int = 40) -> None:
    for _ in range(steps):
        cluster.step()
        for p in cluster.running():
            cluster.finish(p, 0)


def test_indexes_format_as_intervals() -> None:
    assert format_indexes([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert parse_indexes("") == set()


def test_job_creates_parallelism_pods_with_job_labels() -> None:
    cluster = Cluster(job(completions=5, parallelism=2))
    actions = cluster.step()
    made = [a.pod for a in actions if isinstance(a, CreatePod)]
    assert len(made) == 2
    for p in made:
        assert p.metadata.name.startswith("pi-") and len(p.metadata.name) == len("pi-") + 5
        labels = p.metadata.labels
        assert labels["batch.kubernetes.io/job-name"] == "pi"
        assert labels["job-name"] == "pi"
        assert labels["controller-uid"] == "job-uid"
        assert labels["batch.kubernetes.io/controller-uid"] == "job-uid"
        assert p.metadata.owner_references[0].kind == "Job"
    assert cluster.job.status.active == 2
    assert cluster.job.status.start_time == ts()


def test_job_never_creates_more_active_pods_than_remaining_completions() -> None:
    cluster = Cluster(job(completions=3, parallelism=5))
    cluster.step()
    assert len(cluster.running()) == 3


def test_job_completes_with_success_criteria_then_complete() -> None:
    cluster = Cluster(job(completions=3, parallelism=3))
    run_to_completion(cluster)
    complete = cluster.condition("Complete")
    scm = cluster.condition("SuccessCriteriaMet")
    assert complete is not None and complete.status == "True"
    assert complete.reason == "CompletionsReached"
    assert scm is not None and scm.reason == "CompletionsReached"
    assert cluster.job.status.succeeded == 3
    assert cluster.job.status.completion_time is not None
    assert any(e.reason == "Completed" and e.message == "Job completed" for e in cluster.events)
    assert sum(1 for e in cluster.events if e.reason == "Completed") == 1


def test_job_never_counts_more_completions_than_asked() -> None:
    cluster = Cluster(job(completions=2, parallelism=2))
    cluster.step()
    # Someone else's extra pod of this Job also succeeds, alongside ours.
    cluster.step()
    extra = next(iter(cluster.pods.values()))
    twin = copy.deepcopy(extra)
    twin.metadata.name = "pi-extra"
    twin.metadata.uid = "pod-extra"
    cluster.pods["pi-extra"] = twin
    for p in list(cluster.pods.values()):
        cluster.finish(p, 0)
    for _ in range(10):
        cluster.step()
    assert cluster.job.status.succeeded == 2
    assert cluster.condition("Complete") is not None


def test_job_counts_survive_restart_and_deleted_pods() -> None:
    cluster = Cluster(job(completions=2, parallelism=2))
    cluster.step()
    for p in cluster.running():
        cluster.finish(p, 0)
    cluster.step()  # step 1: uids listed as uncounted
    uncounted = cluster.job.status.uncounted_terminated_pods
    assert uncounted is not None and len(uncounted.succeeded) == 2
    # The finished pods are deleted before the controller marks them: they
    # are still counted (their uids were recorded).
    cluster.pods.clear()
    for _ in range(5):
        cluster.step()
    assert cluster.job.status.succeeded == 2
    assert cluster.condition("Complete") is not None


def test_job_replaying_a_sync_never_double_counts() -> None:
    cluster = Cluster(job(completions=3, parallelism=3))
    cluster.step()
    for p in cluster.running():
        cluster.finish(p, 0)
    # Replay every sync twice over the same observed state (a controller
    # restart between performing the actions and seeing their effects).
    for _ in range(8):
        actions = cluster.plan()
        cluster.apply(actions)
        cluster.apply(cluster.plan())
    assert cluster.job.status.succeeded == 3


def test_job_status_write_failure_does_not_lose_or_double_count() -> None:
    cluster = Cluster(job(completions=1, parallelism=1))
    cluster.step()
    (p,) = cluster.running()
    cluster.finish(p, 0)
    for _ in range(6):
        actions = cluster.plan()
        # The status write fails every other time; marks still happen.
        kept = [a for a in actions if not isinstance(a, UpdateStatus)]
        cluster.apply(kept)
        cluster.apply(cluster.plan())
    assert cluster.job.status.succeeded == 1
    assert COUNTED_ANNOTATION in p.metadata.annotations


def test_job_lost_pod_marks_never_double_count() -> None:
    cluster = Cluster(job(completions=2, parallelism=1))
    cluster.step()
    (p,) = cluster.running()
    cluster.finish(p, 0)
    # The pod patches (marks) fail for a while; status writes succeed.
    for _ in range(4):
        actions = cluster.plan()
        cluster.apply([a for a in actions if not isinstance(a, PatchMetadata)])
    assert cluster.job.status.succeeded == 0  # listed, not yet counted
    for _ in range(4):
        cluster.apply(cluster.plan())
    assert cluster.job.status.succeeded == 1


def test_indexed_job_sets_completion_index_env_annotation_and_hostname() -> None:
    cluster = Cluster(job(completions=3, parallelism=3, indexed=True))
    made = [a.pod for a in cluster.step() if isinstance(a, CreatePod)]
    assert sorted(p.metadata.annotations[COMPLETION_INDEX_ANNOTATION] for p in made) == [
        "0",
        "1",
        "2",
    ]
    for p in made:
        ix = p.metadata.annotations[COMPLETION_INDEX_ANNOTATION]
        assert p.metadata.name.startswith(f"pi-{ix}-")
        assert p.spec.hostname == f"pi-{ix}"
        assert p.metadata.labels["batch.kubernetes.io/job-completion-index"] == ix
        (env,) = [e for e in p.spec.containers[0].env if e.name == "JOB_COMPLETION_INDEX"]
        assert env.value_from is not None and env.value_from.field_ref is not None
        assert env.value_from.field_ref.field_path == (
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        )


def test_indexed_job_counts_each_index_once() -> None:
    cluster = Cluster(job(completions=3, parallelism=2, indexed=True))
    cluster.step()
    pods = cluster.running()
    # Two pods of index 0 succeed (a retry raced with the original).
    dup = copy.deepcopy(
        next(p for p in pods if p.metadata.annotations[COMPLETION_INDEX_ANNOTATION] == "0")
    )
    dup.metadata.name = "pi-0-dup"
    dup.metadata.uid = "dup"
    cluster.pods["pi-0-dup"] = dup
    for p in cluster.pods.values():
        if p.metadata.annotations[COMPLETION_INDEX_ANNOTATION] == "0":
            cluster.finish(p, 0)
    cluster.step()
    assert cluster.job.status.completed_indexes == "0"
    assert cluster.job.status.succeeded == 1
    run_to_completion(cluster)
    assert cluster.job.status.completed_indexes == "0-2"
    assert cluster.job.status.succeeded == 3
    assert cluster.condition("Complete") is not None


def test_failed_pod_is_replaced_after_backoff_delay() -> None:
    cluster = Cluster(job(completions=1, parallelism=1))
    cluster.step()
    (p,) = cluster.running()
    cluster.finish(p, 1)
    actions = cluster.plan()
    assert not [a for a in actions if isinstance(a, CreatePod)]
    (requeue,) = [a for a in actions if isinstance(a, Requeue)]
    assert 8.0 < requeue.after_s <= 10.0
    cluster.apply(actions)
    cluster.now += timedelta(seconds=11)
    assert [a for a in cluster.plan() if isinstance(a, CreatePod)]


def test_backoff_doubles_and_is_capped_at_six_minutes() -> None:
    tuning = JobTuning()
    assert [backoff_delay(n, tuning) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff_delay(10, tuning) == 360


def test_backoff_limit_exceeded_fails_the_job() -> None:
    cluster = Cluster(job(completions=1, parallelism=1, backoff_limit=1))
    for _ in range(2):
        cluster.step()
        for p in cluster.running():
            cluster.finish(p, 1)
        cluster.run(3, advance=30)
    cluster.run(5)
    failed = cluster.condition("Failed")
    assert failed is not None and failed.reason == "BackoffLimitExceeded"
    assert failed.message == "Job has reached the specified backoff limit"
    target = cluster.condition("FailureTarget")
    assert target is not None and target.reason == "BackoffLimitExceeded"
    assert cluster.job.status.failed == 2
    assert any(e.reason == "BackoffLimitExceeded" and e.type == "Warning" for e in cluster.events)


def test_on_failure_counts_container_restarts_against_backoff_limit() -> None:
    cluster = Cluster(
        job(completions=1, parallelism=1, backoff_limit=2, restart_policy="OnFailure")
    )
    cluster.step()
    (p,) = cluster.running()
    p.status.container_statuses[0].restart_count = 2
    cluster.run(4)
    failed = cluster.condition("Failed")
    assert failed is not None and failed.reason == "BackoffLimitExceeded"
    assert not cluster.running()


def test_active_deadline_fails_the_job_and_wins_over_backoff_limit() -> None:
    j = job(completions=1, parallelism=1, backoff_limit=0)
    j.spec.active_deadline_seconds = 30
    cluster = Cluster(j)
    actions = cluster.step()
    assert any(isinstance(a, Requeue) and 28 <= a.after_s <= 30 for a in actions)
    (p,) = cluster.running()
    cluster.finish(p, 1)  # backoff limit (0) exceeded too...
    cluster.now += timedelta(seconds=60)  # ...and the deadline passed
    cluster.run(4)
    failed = cluster.condition("Failed")
    assert failed is not None and failed.reason == "DeadlineExceeded"
    assert failed.message == "Job was active longer than specified deadline"


def test_deadline_deletes_running_pods() -> None:
    j = job(completions=1, parallelism=2)
    j.spec.active_deadline_seconds = 10
    cluster = Cluster(j)
    cluster.step()
    cluster.now += timedelta(seconds=20)
    actions = cluster.plan()
    assert len([a for a in actions if isinstance(a, DeletePod)]) == 1
    cluster.apply(actions)
    assert cluster.condition("Failed") is None  # pods still terminating
    cluster.settle()
    cluster.run(5)
    assert cluster.condition("Failed") is not None


def test_ttl_after_finished_deletes_the_job_when_due() -> None:
    cluster = Cluster(job(completions=1, parallelism=1))
    cluster.job.spec.ttl_seconds_after_finished = 100
    run_to_completion(cluster, 10)
    assert cluster.condition("Complete") is not None
    (requeue,) = cluster.plan()
    assert isinstance(requeue, Requeue) and 80 < requeue.after_s <= 100
    cluster.now += timedelta(seconds=100)
    (delete,) = cluster.plan()
    assert isinstance(delete, DeleteObject) and delete.kind == "Job" and delete.name == "pi"


def test_ttl_zero_deletes_at_once_and_unset_never() -> None:
    cluster = Cluster(job())
    cluster.job.spec.ttl_seconds_after_finished = 0
    run_to_completion(cluster, 10)
    assert [type(a) for a in cluster.plan()] == [DeleteObject]
    cluster.job.spec.ttl_seconds_after_finished = None
    assert cluster.plan() == []


def pod_failure_policy(*rules: PodFailurePolicyRule) -> PodFailurePolicy:
    return PodFailurePolicy(rules=list(rules))


def test_pod_failure_policy_fail_job_on_exit_code() -> None:
    j = job(completions=2, parallelism=2)
    j.spec.pod_failure_policy = pod_failure_policy(
        PodFailurePolicyRule(
            action="FailJob",
            on_exit_codes=PodFailurePolicyOnExitCodesRequirement(
                container_name="main", operator="In", values=[42]
            ),
        )
    )
    cluster = Cluster(j)
    cluster.step()
    first, second = cluster.running()
    cluster.finish(first, 42)
    cluster.run(6)
    failed = cluster.condition("Failed")
    assert failed is not None and failed.reason == "PodFailurePolicy"
    assert failed.message.startswith("Container main for pod default/pi-")
    assert "failed with exit code 42 matching FailJob rule at index 0" in failed.message
    assert second.metadata.deletion_timestamp is not None


def test_pod_failure_policy_ignore_is_not_counted() -> None:
    j = job(completions=1, parallelism=1, backoff_limit=0)
    j.spec.pod_failure_policy = pod_failure_policy(
        PodFailurePolicyRule(
            action="Ignore",
            on_pod_conditions=[PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget")],
        )
    )
    cluster = Cluster(j)
    cluster.step()
    (p,) = cluster.running()
    cluster.finish(p, 137)
    p.status.conditions.append(Condition(type="DisruptionTarget", status="True"))
    actions = cluster.plan()
    assert [a for a in actions if isinstance(a, CreatePod)]  # replaced, no back-off
    cluster.apply(actions)
    cluster.run(3)
    assert cluster.job.status.failed == 0
    assert cluster.condition("Failed") is None


def test_pod_failure_policy_first_matching_rule_wins_and_not_in_counts() -> None:
    j = job(completions=1, parallelism=1, backoff_limit=0)
    j.spec.pod_failure_policy = pod_failure_policy(
        PodFailurePolicyRule(
            action="Count",
            on_exit_codes=PodFailurePolicyOnExitCodesRequirement(operator="NotIn", values=[1]),
        ),
        PodFailurePolicyRule(
            action="FailJob",
            on_exit_codes=PodFailurePolicyOnExitCodesRequirement(operator="In", values=[2]),
        ),
    )
    cluster = Cluster(j)
    cluster.step()
    (p,) = cluster.running()
    cluster.finish(p, 2)  # NotIn [1] matches first: Count, not FailJob
    cluster.run(5)
    failed = cluster.condition("Failed")
    assert failed is not None and failed.reason == "BackoffLimitExceeded"


def test_pod_failure_policy_fail_index_stops_retrying_that_index() -> None:
    j = job(completions=2, parallelism=2, indexed=True)
    j.spec.backoff_limit_per_index = 3
    j.spec.backoff_limit = 2147483647
    j.spec.pod_failure_policy = pod_failure_policy(
        PodFailurePolicyRule(
            action="FailIndex",
            on_exit_codes=PodFailurePolicyOnExitCodesRequirement(operator="In", values=[3]),
        )
    )
    cluster = Cluster(j)
    cluster.step()
    by_index = {p.metadata.annotations[COMPLETION_INDEX_ANNOTATION]: p for p in cluster.running()}
    cluster.finish(by_index["0"], 3)
    cluster.finish(by_index["1"], 0)
    cluster.run(6, advance=30)
    assert cluster.job.status.failed_indexes == "0"
    failed = cluster.condition("Failed")
    assert failed is not None and failed.reason == "FailedIndexes"


def test_job_events_for_created_and_deleted_pods() -> None:
    cluster = Cluster(job(completions=2, parallelism=2))
    cluster.step()
    assert [e.reason for e in cluster.events] == ["SuccessfulCreate", "SuccessfulCreate"]
    cluster.job.spec.parallelism = 1
    cluster.step()
    assert cluster.events[-1].reason == "SuccessfulDelete"


def test_suspended_job_deletes_its_pods() -> None:
    cluster = Cluster(job(completions=2, parallelism=2))
    cluster.step()
    cluster.job.spec.suspend = True
    actions = cluster.step()
    assert len([a for a in actions if isinstance(a, DeletePod)]) == 2
    suspended = cluster.condition("Suspended")
    assert suspended is not None and suspended.status == "True"


def test_resumed_job_creates_pods_and_resets_start_time() -> None:
    j = job(completions=1, parallelism=1)
    j.spec.suspend = True
    cluster = Cluster(j)
    actions = cluster.step()
    assert not [a for a in actions if isinstance(a, CreatePod)]
    assert cluster.job.status.start_time is None
    cluster.job.spec.suspend = False
    cluster.now += timedelta(seconds=5)
    resumed_at = ts((cluster.now - NOW).total_seconds())
    actions = cluster.step()
    assert [a for a in actions if isinstance(a, CreatePod)]
    assert cluster.job.status.start_time == resumed_at != ts()
    assert any(e.reason == "Resumed" for e in cluster.events)
