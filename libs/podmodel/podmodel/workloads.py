"""The workload kinds that create pods from a template: Deployment,
ReplicaSet, StatefulSet, DaemonSet and Job (and CronJob, which creates
Jobs), with their specs and statuses.

Constant Kubernetes defaults are struct defaults (replicas 1,
revisionHistoryLimit 10, backoffLimit 6...); defaults that depend on other
fields (a Job's completions and parallelism, the RollingUpdate parameters
of a strategy, a Job's selector) are filled by `podmodel.defaults`.
Selectors of Deployment, ReplicaSet and StatefulSet are required by
Kubernetes; here they default to an empty selector, which validation
rejects, so code reads `spec.selector.match_labels` without a None check.
Pure: no I/O.
"""

from __future__ import annotations

import msgspec

from podmodel.event import ObjectReference
from podmodel.meta import KubeObject, Model, ObjectMeta
from podmodel.pod import Condition, IntOrString, PodTemplateSpec, QuantityValue
from podmodel.registry import register
from podmodel.selector import LabelSelector

# ------------------------------------------------------------------ Deployment


class RollingUpdateDeployment(Model):
    """Absolute numbers or percentages of the desired replicas."""

    max_unavailable: IntOrString = "25%"
    max_surge: IntOrString = "25%"


class DeploymentStrategy(Model):
    """type is RollingUpdate (default) or Recreate."""

    type: str = "RollingUpdate"
    rolling_update: RollingUpdateDeployment | None = None


class DeploymentSpec(Model):
    replicas: int = 1
    selector: LabelSelector = msgspec.field(default_factory=LabelSelector)
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    strategy: DeploymentStrategy = msgspec.field(default_factory=DeploymentStrategy)
    min_ready_seconds: int = 0
    revision_history_limit: int = 10
    paused: bool = False
    progress_deadline_seconds: int = 600


class DeploymentStatus(Model):
    observed_generation: int = 0
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    unavailable_replicas: int = 0
    conditions: list[Condition] = []
    collision_count: int | None = None


@register("deployments", "deploy")
class Deployment(KubeObject):
    API_VERSION = "apps/v1"
    KIND = "Deployment"

    spec: DeploymentSpec = msgspec.field(default_factory=DeploymentSpec)
    status: DeploymentStatus = msgspec.field(default_factory=DeploymentStatus)


# ------------------------------------------------------------------ ReplicaSet


class ReplicaSetSpec(Model):
    replicas: int = 1
    min_ready_seconds: int = 0
    selector: LabelSelector = msgspec.field(default_factory=LabelSelector)
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)


class ReplicaSetStatus(Model):
    replicas: int = 0
    fully_labeled_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    observed_generation: int = 0
    conditions: list[Condition] = []


@register("replicasets", "rs")
class ReplicaSet(KubeObject):
    API_VERSION = "apps/v1"
    KIND = "ReplicaSet"

    spec: ReplicaSetSpec = msgspec.field(default_factory=ReplicaSetSpec)
    status: ReplicaSetStatus = msgspec.field(default_factory=ReplicaSetStatus)


# ------------------------------------------------------------------ StatefulSet


class VolumeResourceRequirements(Model):
    requests: dict[str, QuantityValue] = {}
    limits: dict[str, QuantityValue] = {}


class PersistentVolumeClaimSpec(Model):
    access_modes: list[str] = []
    resources: VolumeResourceRequirements = msgspec.field(
        default_factory=VolumeResourceRequirements
    )
    storage_class_name: str | None = None
    volume_mode: str | None = None
    volume_name: str = ""
    selector: LabelSelector | None = None


class PersistentVolumeClaim(Model):
    """The claim shape of a StatefulSet's volumeClaimTemplates (not a kind
    podbus stores): each ordinal gets its own volume named after it."""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PersistentVolumeClaimSpec = msgspec.field(default_factory=PersistentVolumeClaimSpec)


class RollingUpdateStatefulSetStrategy(Model):
    partition: int = 0
    max_unavailable: IntOrString | None = None


class StatefulSetUpdateStrategy(Model):
    """type is RollingUpdate (default) or OnDelete."""

    type: str = "RollingUpdate"
    rolling_update: RollingUpdateStatefulSetStrategy | None = None


class StatefulSetPersistentVolumeClaimRetentionPolicy(Model):
    """Retain (default) or Delete, on StatefulSet deletion and on scale-down."""

    when_deleted: str = "Retain"
    when_scaled: str = "Retain"


class StatefulSetOrdinals(Model):
    start: int = 0


class StatefulSetSpec(Model):
    replicas: int = 1
    selector: LabelSelector = msgspec.field(default_factory=LabelSelector)
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    volume_claim_templates: list[PersistentVolumeClaim] = []
    service_name: str = ""
    pod_management_policy: str = "OrderedReady"
    update_strategy: StatefulSetUpdateStrategy = msgspec.field(
        default_factory=StatefulSetUpdateStrategy
    )
    revision_history_limit: int = 10
    min_ready_seconds: int = 0
    persistent_volume_claim_retention_policy: (
        StatefulSetPersistentVolumeClaimRetentionPolicy | None
    ) = None
    ordinals: StatefulSetOrdinals | None = None


class StatefulSetStatus(Model):
    observed_generation: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    current_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    current_revision: str = ""
    update_revision: str = ""
    collision_count: int | None = None
    conditions: list[Condition] = []


@register("statefulsets", "sts")
class StatefulSet(KubeObject):
    API_VERSION = "apps/v1"
    KIND = "StatefulSet"

    spec: StatefulSetSpec = msgspec.field(default_factory=StatefulSetSpec)
    status: StatefulSetStatus = msgspec.field(default_factory=StatefulSetStatus)


# ------------------------------------------------------------------ Job


class PodFailurePolicyOnExitCodesRequirement(Model):
    """operator In or NotIn; containerName limits the rule to one container."""

    container_name: str | None = None
    operator: str = ""
    values: list[int] = []


class PodFailurePolicyOnPodConditionsPattern(Model):
    type: str = ""
    status: str = "True"


class PodFailurePolicyRule(Model):
    """action is FailJob, FailIndex, Ignore or Count; exactly one of
    onExitCodes / onPodConditions is set."""

    action: str = ""
    on_exit_codes: PodFailurePolicyOnExitCodesRequirement | None = None
    on_pod_conditions: list[PodFailurePolicyOnPodConditionsPattern] = []


class PodFailurePolicy(Model):
    rules: list[PodFailurePolicyRule] = []


class JobSpec(Model):
    """completions None with parallelism set is a work-queue Job, as in
    Kubernetes; `defaults.apply_defaults` fills the rest."""

    parallelism: int | None = None
    completions: int | None = None
    completion_mode: str = "NonIndexed"
    active_deadline_seconds: int | None = None
    pod_failure_policy: PodFailurePolicy | None = None
    backoff_limit: int = 6
    backoff_limit_per_index: int | None = None
    max_failed_indexes: int | None = None
    selector: LabelSelector | None = None
    manual_selector: bool | None = None
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    ttl_seconds_after_finished: int | None = None
    suspend: bool = False
    pod_replacement_policy: str | None = None


class UncountedTerminatedPods(Model):
    """uids of finished pods not yet counted in succeeded / failed."""

    succeeded: list[str] = []
    failed: list[str] = []


class JobStatus(Model):
    conditions: list[Condition] = []
    start_time: str | None = None
    completion_time: str | None = None
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    terminating: int | None = None
    ready: int | None = None
    completed_indexes: str = ""
    failed_indexes: str | None = None
    uncounted_terminated_pods: UncountedTerminatedPods | None = None


@register("jobs")
class Job(KubeObject):
    API_VERSION = "batch/v1"
    KIND = "Job"

    spec: JobSpec = msgspec.field(default_factory=JobSpec)
    status: JobStatus = msgspec.field(default_factory=JobStatus)


# ------------------------------------------------------------------ CronJob


class JobTemplateSpec(Model):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: JobSpec = msgspec.field(default_factory=JobSpec)


class CronJobSpec(Model):
    schedule: str = ""
    time_zone: str | None = None
    starting_deadline_seconds: int | None = None
    concurrency_policy: str = ""
    suspend: bool | None = None
    job_template: JobTemplateSpec = msgspec.field(default_factory=JobTemplateSpec)
    successful_jobs_history_limit: int | None = None
    failed_jobs_history_limit: int | None = None


class CronJobStatus(Model):
    active: list[ObjectReference] = []  # the Jobs running, as in Kubernetes
    last_schedule_time: str | None = None
    last_successful_time: str | None = None


@register("cronjobs", "cj")
class CronJob(KubeObject):
    API_VERSION = "batch/v1"
    KIND = "CronJob"

    spec: CronJobSpec = msgspec.field(default_factory=CronJobSpec)
    status: CronJobStatus = msgspec.field(default_factory=CronJobStatus)


# ------------------------------------------------------------------ DaemonSet


class RollingUpdateDaemonSet(Model):
    """Absolute numbers or percentages of the nodes that should run the pod."""

    max_unavailable: IntOrString = 1
    max_surge: IntOrString = 0


class DaemonSetUpdateStrategy(Model):
    """type is RollingUpdate (default) or OnDelete."""

    type: str = ""
    rolling_update: RollingUpdateDaemonSet | None = None


class DaemonSetSpec(Model):
    selector: LabelSelector = msgspec.field(default_factory=LabelSelector)
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    update_strategy: DaemonSetUpdateStrategy = msgspec.field(
        default_factory=DaemonSetUpdateStrategy
    )
    min_ready_seconds: int = 0
    revision_history_limit: int = 10


class DaemonSetStatus(Model):
    current_number_scheduled: int = 0
    number_misscheduled: int = 0
    desired_number_scheduled: int = 0
    number_ready: int = 0
    observed_generation: int = 0
    updated_number_scheduled: int = 0
    number_available: int = 0
    number_unavailable: int = 0
    collision_count: int | None = None
    conditions: list[Condition] = []


@register("daemonsets", "ds")
class DaemonSet(KubeObject):
    API_VERSION = "apps/v1"
    KIND = "DaemonSet"

    spec: DaemonSetSpec = msgspec.field(default_factory=DaemonSetSpec)
    status: DaemonSetStatus = msgspec.field(default_factory=DaemonSetStatus)
