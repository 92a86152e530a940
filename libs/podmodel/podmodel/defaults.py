"""Kubernetes defaulting: what the API server fills in before it validates
and stores an object.

`apply_defaults(obj)` mutates in place and is idempotent. It follows
Kubernetes' `SetDefaults_*` functions, the DefaultTolerationSeconds and
Priority admission plugins, and the pod create strategy (phase Pending,
qosClass). Constant defaults already sit on the types as struct defaults;
what happens here is what depends on other fields, plus Kubernetes' habit of
treating an explicit zero as unset (a probe's `periodSeconds: 0` becomes 10).
Quantities written as bare YAML numbers are normalised to strings.

`job_selector_defaults(job)` is separate because it needs the Job's uid,
which the store assigns: the controller calls it after the uid exists.
Pure: no I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from podmodel.config import SECRET_TYPE_OPAQUE, ConfigMap, Secret, encode_base64
from podmodel.event import Event
from podmodel.meta import KubeObject
from podmodel.node import Node
from podmodel.pod import (
    Container,
    HTTPGetAction,
    Lifecycle,
    Pod,
    PodSpec,
    Probe,
    QuantityValue,
    Toleration,
    qos_class,
)
from podmodel.registry import is_namespaced
from podmodel.selector import LabelSelector
from podmodel.workloads import (
    CronJob,
    DaemonSet,
    Deployment,
    Job,
    PersistentVolumeClaim,
    ReplicaSet,
    RollingUpdateDaemonSet,
    RollingUpdateDeployment,
    RollingUpdateStatefulSetStrategy,
    StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy,
)

DEFAULT_NAMESPACE = "default"

#: Built-in PriorityClasses and their values (scheduling.k8s.io).
SYSTEM_PRIORITY_CLASSES: dict[str, int] = {
    "system-cluster-critical": 2000000000,
    "system-node-critical": 2000001000,
}

#: What the DefaultTolerationSeconds admission plugin adds to every pod.
DEFAULT_TOLERATION_SECONDS = 300
TAINT_NODE_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_NODE_UNREACHABLE = "node.kubernetes.io/unreachable"

#: Labels a Job's pods carry and its generated selector matches.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"

#: backoffLimit of a Job with backoffLimitPerIndex: effectively unlimited.
MAX_INT32 = 2147483647

_DEFAULT_FILE_MODE = 0o644


def apply_defaults(obj: KubeObject) -> None:
    """Fill Kubernetes' defaults into `obj`, in place; safe to call again."""
    if not obj.metadata.namespace and is_namespaced(obj.kind or obj.KIND):
        obj.metadata.namespace = DEFAULT_NAMESPACE
    defaulter = _DEFAULTERS.get(type(obj))
    if defaulter is not None:
        defaulter(obj)


# ------------------------------------------------------------------ pods


def image_pull_policy_for(image: str) -> str:
    """Always for `:latest` or an image without tag or digest, else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def _canonical_quantities(values: dict[str, QuantityValue]) -> None:
    """Bare YAML numbers become quantity strings, as Kubernetes stores them."""
    for name, value in values.items():
        if isinstance(value, str):
            continue
        if isinstance(value, float):
            values[name] = str(int(value)) if value.is_integer() else repr(value)
        else:
            values[name] = str(value)


def _default_http_get(action: HTTPGetAction | None) -> None:
    if action is None:
        return
    if not action.path:
        action.path = "/"
    if not action.scheme:
        action.scheme = "HTTP"


def _default_probe(probe: Probe | None) -> None:
    if probe is None:
        return
    # Kubernetes treats zero as unset for these (SetDefaults_Probe).
    if probe.timeout_seconds == 0:
        probe.timeout_seconds = 1
    if probe.period_seconds == 0:
        probe.period_seconds = 10
    if probe.success_threshold == 0:
        probe.success_threshold = 1
    if probe.failure_threshold == 0:
        probe.failure_threshold = 3
    _default_http_get(probe.http_get)


def _default_lifecycle(lifecycle: Lifecycle | None) -> None:
    if lifecycle is None:
        return
    for handler in (lifecycle.post_start, lifecycle.pre_stop):
        if handler is not None:
            _default_http_get(handler.http_get)


def _default_container(c: Container, *, host_network: bool, is_pod: bool) -> None:
    if not c.image_pull_policy and c.image:
        c.image_pull_policy = image_pull_policy_for(c.image)
    if not c.termination_message_path:
        c.termination_message_path = "/dev/termination-log"
    if not c.termination_message_policy:
        c.termination_message_policy = "File"
    for port in c.ports:
        if not port.protocol:
            port.protocol = "TCP"
        if host_network and port.host_port == 0:
            port.host_port = port.container_port
    for env in c.env:
        ref = env.value_from.field_ref if env.value_from is not None else None
        if ref is not None and not ref.api_version:
            ref.api_version = "v1"
    _default_probe(c.liveness_probe)
    _default_probe(c.readiness_probe)
    _default_probe(c.startup_probe)
    _default_lifecycle(c.lifecycle)
    _canonical_quantities(c.resources.limits)
    _canonical_quantities(c.resources.requests)
    if is_pod:
        # SetDefaults_Pod: a limit without a request requests the limit.
        for name, limit in c.resources.limits.items():
            c.resources.requests.setdefault(name, limit)


def default_pod_spec(spec: PodSpec, *, restart_policy: bool = True, is_pod: bool = False) -> None:
    """Defaults of a PodSpec, in a Pod or a workload's template.

    restart_policy=False leaves an empty restartPolicy alone (Job templates
    must state it). is_pod=True adds what Kubernetes applies to Pod objects
    only (requests from limits), not to templates."""
    if restart_policy and not spec.restart_policy:
        spec.restart_policy = "Always"
    if not spec.dns_policy:
        spec.dns_policy = "ClusterFirst"
    if not spec.scheduler_name:
        spec.scheduler_name = "default-scheduler"
    if not spec.preemption_policy:
        spec.preemption_policy = "PreemptLowerPriority"
    for c in spec.init_containers:
        _default_container(c, host_network=spec.host_network, is_pod=is_pod)
    for c in spec.containers:
        _default_container(c, host_network=spec.host_network, is_pod=is_pod)
    for e in spec.ephemeral_containers:
        _default_container(e, host_network=False, is_pod=is_pod)
    for vol in spec.volumes:
        for source in (vol.config_map, vol.secret, vol.downward_api):
            if source is not None and source.default_mode is None:
                source.default_mode = _DEFAULT_FILE_MODE
    _canonical_quantities(spec.overhead)


def _default_tolerations(spec: PodSpec) -> None:
    """DefaultTolerationSeconds: tolerate not-ready and unreachable for 300 s
    unless the pod already tolerates them (a toleration with that key, or
    no key, and NoExecute or no effect)."""
    for key in (TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE):
        covered = any(
            t.key in (key, "") and t.effect in ("NoExecute", "") for t in spec.tolerations
        )
        if not covered:
            spec.tolerations.append(
                Toleration(
                    key=key,
                    operator="Exists",
                    effect="NoExecute",
                    toleration_seconds=DEFAULT_TOLERATION_SECONDS,
                )
            )


_QOS_CACHE: dict[tuple[tuple[tuple[tuple[str, object], ...], ...], ...], str] = {}
_QOS_CACHE_SIZE = 4096


def _qos_class(spec: PodSpec) -> str:
    """qos_class, remembered per set of container resources: pods of one
    template (and most pods) share them, and the exact arithmetic on
    quantities costs more than the look-up."""
    key = tuple(
        (tuple(c.resources.requests.items()), tuple(c.resources.limits.items()))
        for c in (*spec.init_containers, *spec.containers)
    )
    found = _QOS_CACHE.get(key)
    if found is None:
        found = qos_class(spec)
        if len(_QOS_CACHE) >= _QOS_CACHE_SIZE:
            _QOS_CACHE.clear()
        _QOS_CACHE[key] = found
    return found


def _default_pod(pod: Pod) -> None:
    spec = pod.spec
    default_pod_spec(spec, is_pod=True)
    _default_tolerations(spec)
    system_priority = SYSTEM_PRIORITY_CLASSES.get(spec.priority_class_name)
    if system_priority is not None:
        spec.priority = system_priority
    # The pod create strategy: a new pod is Pending with its QoS class.
    if not pod.status.phase:
        pod.status.phase = "Pending"
    if not pod.status.qos_class:
        # An unparsable quantity leaves it unset: validation reports it with its path.
        with contextlib.suppress(ValueError):
            pod.status.qos_class = _qos_class(spec)


# ------------------------------------------------------------------ workloads


def _default_deployment(d: Deployment) -> None:
    spec = d.spec
    if not spec.strategy.type:
        spec.strategy.type = "RollingUpdate"
    if spec.strategy.type == "RollingUpdate" and spec.strategy.rolling_update is None:
        spec.strategy.rolling_update = RollingUpdateDeployment()
    default_pod_spec(spec.template.spec)


def _default_replica_set(rs: ReplicaSet) -> None:
    default_pod_spec(rs.spec.template.spec)


def _default_daemon_set(ds: DaemonSet) -> None:
    strategy = ds.spec.update_strategy
    if not strategy.type:
        strategy.type = "RollingUpdate"
    if strategy.type == "RollingUpdate" and strategy.rolling_update is None:
        strategy.rolling_update = RollingUpdateDaemonSet()
    default_pod_spec(ds.spec.template.spec)


def _default_claim_template(claim: PersistentVolumeClaim) -> None:
    if not claim.api_version:
        claim.api_version = "v1"
    if not claim.kind:
        claim.kind = "PersistentVolumeClaim"
    if claim.spec.volume_mode is None:
        claim.spec.volume_mode = "Filesystem"
    _canonical_quantities(claim.spec.resources.requests)
    _canonical_quantities(claim.spec.resources.limits)


def _default_stateful_set(sts: StatefulSet) -> None:
    spec = sts.spec
    if not spec.pod_management_policy:
        spec.pod_management_policy = "OrderedReady"
    if not spec.update_strategy.type:
        spec.update_strategy.type = "RollingUpdate"
    if spec.update_strategy.type == "RollingUpdate" and spec.update_strategy.rolling_update is None:
        spec.update_strategy.rolling_update = RollingUpdateStatefulSetStrategy(partition=0)
    if spec.persistent_volume_claim_retention_policy is None:
        spec.persistent_volume_claim_retention_policy = (
            StatefulSetPersistentVolumeClaimRetentionPolicy()
        )
    for claim in spec.volume_claim_templates:
        _default_claim_template(claim)
    default_pod_spec(spec.template.spec)


def _default_job(job: Job) -> None:
    """SetDefaults_Job. Both completions and parallelism unset: both 1.
    Only parallelism set: a work-queue Job, completions stays unset."""
    spec = job.spec
    if spec.completions is None and spec.parallelism is None:
        spec.completions = 1
        spec.parallelism = 1
    if spec.parallelism is None:
        spec.parallelism = 1
    if spec.backoff_limit_per_index is not None and spec.backoff_limit == 6:
        # Unset backoffLimit (6 is the struct default) with a per-index limit
        # means no overall limit, as in Kubernetes.
        spec.backoff_limit = MAX_INT32
    if not spec.completion_mode:
        spec.completion_mode = "NonIndexed"
    if spec.manual_selector is None:
        spec.manual_selector = False
    if spec.pod_failure_policy is not None:
        for rule in spec.pod_failure_policy.rules:
            for pattern in rule.on_pod_conditions:
                if not pattern.status:
                    pattern.status = "True"
    if spec.pod_replacement_policy is None:
        spec.pod_replacement_policy = (
            "Failed" if spec.pod_failure_policy is not None else "TerminatingOrFailed"
        )
    if spec.template.metadata.labels and not job.metadata.labels:
        job.metadata.labels = dict(spec.template.metadata.labels)
    default_pod_spec(spec.template.spec, restart_policy=False)


def _default_cron_job(cj: CronJob) -> None:
    spec = cj.spec
    if not spec.concurrency_policy:
        spec.concurrency_policy = "Allow"
    if spec.suspend is None:
        spec.suspend = False
    if spec.successful_jobs_history_limit is None:
        spec.successful_jobs_history_limit = 3
    if spec.failed_jobs_history_limit is None:
        spec.failed_jobs_history_limit = 1
    # the template's Job defaults, through a throwaway Job holding its spec
    _default_job(Job(spec=spec.job_template.spec))


def job_selector_defaults(job: Job) -> None:
    """Generate a Job's selector and its pods' labels from its name and uid,
    as the Kubernetes job strategy does on create (unless manualSelector).

    The template gets job-name and controller-uid labels (both the
    batch.kubernetes.io/ and the legacy spelling), the selector matches
    batch.kubernetes.io/controller-uid. Labels the user set are kept, so a
    conflicting one fails validation. Call after the uid is assigned."""
    if job.spec.manual_selector:
        return
    if not job.metadata.uid:
        raise ValueError("job_selector_defaults needs metadata.uid")
    labels = job.spec.template.metadata.labels
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, job.metadata.name)
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, job.metadata.uid)
    if job.spec.selector is None:
        job.spec.selector = LabelSelector()
    job.spec.selector.match_labels.setdefault(CONTROLLER_UID_LABEL, job.metadata.uid)
    if not job.metadata.labels:
        job.metadata.labels = dict(labels)


def _default_nothing(obj: Node | Event | ConfigMap) -> None:
    """Nodes, Events and ConfigMaps have no defaults beyond their struct defaults."""


def _default_secret(secret: Secret) -> None:
    """The API server's: stringData is folded into data (base64; its keys
    win) and never stored; type defaults to Opaque."""
    if secret.string_data:
        secret.data = {
            **secret.data,
            **{k: encode_base64(v.encode()) for k, v in secret.string_data.items()},
        }
        secret.string_data = {}
    if not secret.type:
        secret.type = SECRET_TYPE_OPAQUE


_DEFAULTERS: dict[type[KubeObject], Callable[..., None]] = {
    Pod: _default_pod,
    Deployment: _default_deployment,
    ReplicaSet: _default_replica_set,
    DaemonSet: _default_daemon_set,
    CronJob: _default_cron_job,
    StatefulSet: _default_stateful_set,
    Job: _default_job,
    Node: _default_nothing,
    Event: _default_nothing,
    ConfigMap: _default_nothing,
    Secret: _default_secret,
}
