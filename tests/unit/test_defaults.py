"""Kubernetes defaulting: what apply_defaults fills, what it leaves alone,
and that applying it twice changes nothing."""

from __future__ import annotations

import copy

import pytest
from podmodel.defaults import (
    CONTROLLER_UID_LABEL,
    JOB_NAME_LABEL,
    MAX_INT32,
    apply_defaults,
    image_pull_policy_for,
    job_selector_defaults,
)
from podmodel.event import Event
from podmodel.meta import KubeObject, ObjectMeta
from podmodel.node import Node
from podmodel.pod import (
    ConfigMapVolumeSource,
    Container,
    ContainerPort,
    EnvVar,
    EnvVarSource,
    EphemeralContainer,
    ExecAction,
    HTTPGetAction,
    Lifecycle,
    LifecycleHandler,
    ObjectFieldSelector,
    Pod,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    Toleration,
    Volume,
)
from podmodel.selector import LabelSelector
from podmodel.workloads import (
    Deployment,
    DeploymentSpec,
    DeploymentStrategy,
    Job,
    JobSpec,
    PersistentVolumeClaim,
    PodFailurePolicy,
    PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
    ReplicaSet,
    RollingUpdateDeployment,
    StatefulSet,
    StatefulSetSpec,
    StatefulSetUpdateStrategy,
)


def _pod(*containers: Container, **spec: object) -> Pod:
    return Pod(metadata=ObjectMeta(name="p"), spec=PodSpec(containers=list(containers), **spec))  # type: ignore[arg-type]


def _job(**spec: object) -> Job:
    template = PodTemplateSpec(spec=PodSpec(containers=[Container(name="c", image="busybox:1")]))
    return Job(metadata=ObjectMeta(name="pi"), spec=JobSpec(template=template, **spec))  # type: ignore[arg-type]


def test_pod_spec_defaults_match_kubernetes() -> None:
    pod = _pod(Container(name="c", image="nginx:1.25"))
    apply_defaults(pod)
    spec = pod.spec
    assert spec.restart_policy == "Always"
    assert spec.termination_grace_period_seconds == 30
    assert spec.dns_policy == "ClusterFirst"
    assert spec.scheduler_name == "default-scheduler"
    assert spec.preemption_policy == "PreemptLowerPriority"
    assert spec.priority == 0
    c = spec.containers[0]
    assert (c.termination_message_path, c.termination_message_policy) == (
        "/dev/termination-log",
        "File",
    )
    assert c.image_pull_policy == "IfNotPresent"


def test_given_values_are_kept() -> None:
    pod = _pod(
        Container(name="c", image="nginx", image_pull_policy="Never"),
        restart_policy="OnFailure",
        dns_policy="Default",
    )
    apply_defaults(pod)
    assert pod.spec.restart_policy == "OnFailure"
    assert pod.spec.dns_policy == "Default"
    assert pod.spec.containers[0].image_pull_policy == "Never"


def test_namespace_defaults_to_default_for_namespaced_kinds_only() -> None:
    pod = _pod(Container(name="c", image="i:1"))
    node = Node(metadata=ObjectMeta(name="n"))
    apply_defaults(pod)
    apply_defaults(node)
    assert pod.metadata.namespace == "default"
    assert node.metadata.namespace == ""
    other = Pod(metadata=ObjectMeta(name="p", namespace="team-a"))
    apply_defaults(other)
    assert other.metadata.namespace == "team-a"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("registry.local:5000/nginx", "Always"),
        ("registry.local:5000/nginx:latest", "Always"),
        ("nginx:1.15", "IfNotPresent"),
        ("registry.local:5000/team/nginx:1.15", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy_depends_on_the_tag(image: str, policy: str) -> None:
    assert image_pull_policy_for(image) == policy
    pod = _pod(Container(name="c", image=image))
    apply_defaults(pod)
    assert pod.spec.containers[0].image_pull_policy == policy


def test_probe_defaults_and_explicit_zero_treated_as_unset() -> None:
    probe = Probe(
        http_get=HTTPGetAction(port=80, path="", scheme=""),
        period_seconds=0,
        timeout_seconds=0,
        success_threshold=0,
        failure_threshold=0,
    )
    pod = _pod(
        Container(
            name="c",
            image="i:1",
            liveness_probe=probe,
            readiness_probe=Probe(exec=ExecAction(command=["true"])),
        )
    )
    apply_defaults(pod)
    live = pod.spec.containers[0].liveness_probe
    assert live is not None and live.http_get is not None
    assert (
        live.period_seconds,
        live.timeout_seconds,
        live.success_threshold,
        live.failure_threshold,
    ) == (10, 1, 1, 3)
    assert (live.http_get.path, live.http_get.scheme) == ("/", "HTTP")
    ready = pod.spec.containers[0].readiness_probe
    assert ready is not None and (ready.period_seconds, ready.initial_delay_seconds) == (10, 0)


def test_lifecycle_http_get_gets_path_and_scheme() -> None:
    hook = LifecycleHandler(http_get=HTTPGetAction(port=8080, path="", scheme=""))
    pod = _pod(Container(name="c", image="i:1", lifecycle=Lifecycle(pre_stop=hook)))
    apply_defaults(pod)
    assert hook.http_get is not None and (hook.http_get.path, hook.http_get.scheme) == ("/", "HTTP")


def test_ports_get_tcp_and_host_network_mirrors_container_port() -> None:
    pod = _pod(
        Container(name="c", image="i:1", ports=[ContainerPort(container_port=8080, protocol="")]),
        host_network=True,
    )
    apply_defaults(pod)
    port = pod.spec.containers[0].ports[0]
    assert (port.protocol, port.host_port) == ("TCP", 8080)


def test_default_tolerations_for_unreachable_and_not_ready_nodes() -> None:
    pod = _pod(Container(name="c", image="i:1"))
    apply_defaults(pod)
    assert pod.spec.tolerations == [
        Toleration(
            key="node.kubernetes.io/not-ready",
            operator="Exists",
            effect="NoExecute",
            toleration_seconds=300,
        ),
        Toleration(
            key="node.kubernetes.io/unreachable",
            operator="Exists",
            effect="NoExecute",
            toleration_seconds=300,
        ),
    ]


def test_own_toleration_for_not_ready_is_kept_and_not_duplicated() -> None:
    own = Toleration(
        key="node.kubernetes.io/not-ready",
        operator="Exists",
        effect="NoExecute",
        toleration_seconds=5,
    )
    pod = _pod(Container(name="c", image="i:1"), tolerations=[own])
    apply_defaults(pod)
    keys = [t.key for t in pod.spec.tolerations]
    assert keys == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    assert pod.spec.tolerations[0].toleration_seconds == 5


def test_toleration_of_everything_needs_no_defaults() -> None:
    pod = _pod(Container(name="c", image="i:1"), tolerations=[Toleration(operator="Exists")])
    apply_defaults(pod)
    assert pod.spec.tolerations == [Toleration(operator="Exists")]


@pytest.mark.parametrize(
    ("class_name", "priority"),
    [
        ("system-cluster-critical", 2000000000),
        ("system-node-critical", 2000001000),
        ("", 0),
        ("my-class", 0),
    ],
)
def test_priority_from_builtin_priority_classes(class_name: str, priority: int) -> None:
    pod = _pod(Container(name="c", image="i:1"), priority_class_name=class_name)
    apply_defaults(pod)
    assert pod.spec.priority == priority


def test_new_pod_is_pending_with_its_qos_class() -> None:
    pod = _pod(
        Container(
            name="c",
            image="i:1",
            resources=ResourceRequirements(limits={"cpu": "1", "memory": "1Gi"}),
        )
    )
    apply_defaults(pod)
    assert pod.status.phase == "Pending"
    assert pod.status.qos_class == "Guaranteed"
    # a limit without a request requests the limit (SetDefaults_Pod)
    assert pod.spec.containers[0].resources.requests == {"cpu": "1", "memory": "1Gi"}


def test_numbers_in_quantities_become_strings() -> None:
    res = ResourceRequirements(requests={"cpu": 0.5, "memory": 1024}, limits={"cpu": 2.0})
    pod = _pod(Container(name="c", image="i:1", resources=res))
    apply_defaults(pod)
    assert res.requests == {"cpu": "0.5", "memory": "1024"}
    assert res.limits == {"cpu": "2"}


def test_env_field_ref_and_config_map_mode() -> None:
    env = EnvVar(
        name="IP", value_from=EnvVarSource(field_ref=ObjectFieldSelector(field_path="status.podIP"))
    )
    vol = Volume(name="cfg", config_map=ConfigMapVolumeSource(name="cm"))
    pod = _pod(Container(name="c", image="i:1", env=[env]), volumes=[vol])
    apply_defaults(pod)
    assert env.value_from is not None and env.value_from.field_ref is not None
    assert env.value_from.field_ref.api_version == "v1"
    assert vol.config_map is not None and vol.config_map.default_mode == 0o644


def test_ephemeral_containers_are_defaulted_too() -> None:
    pod = _pod(Container(name="c", image="i:1"))
    pod.spec.ephemeral_containers.append(EphemeralContainer(name="dbg", image="busybox"))
    apply_defaults(pod)
    assert pod.spec.ephemeral_containers[0].image_pull_policy == "Always"


def test_deployment_defaults() -> None:
    d = Deployment(
        metadata=ObjectMeta(name="d"),
        spec=DeploymentSpec(
            template=PodTemplateSpec(spec=PodSpec(containers=[Container(name="c", image="nginx")]))
        ),
    )
    apply_defaults(d)
    spec = d.spec
    assert (
        spec.replicas,
        spec.revision_history_limit,
        spec.progress_deadline_seconds,
        spec.min_ready_seconds,
    ) == (1, 10, 600, 0)
    assert spec.strategy == DeploymentStrategy(
        type="RollingUpdate",
        rolling_update=RollingUpdateDeployment(max_surge="25%", max_unavailable="25%"),
    )
    assert spec.template.spec.restart_policy == "Always"
    assert spec.template.spec.containers[0].image_pull_policy == "Always"
    # templates get no pod-only additions
    assert spec.template.spec.tolerations == []


def test_recreate_deployment_gets_no_rolling_update() -> None:
    d = Deployment(
        metadata=ObjectMeta(name="d"),
        spec=DeploymentSpec(strategy=DeploymentStrategy(type="Recreate")),
    )
    apply_defaults(d)
    assert d.spec.strategy.rolling_update is None


def test_replica_set_defaults() -> None:
    rs = ReplicaSet(metadata=ObjectMeta(name="rs"))
    apply_defaults(rs)
    assert rs.spec.replicas == 1
    assert rs.spec.template.spec.restart_policy == "Always"


def test_stateful_set_defaults() -> None:
    sts = StatefulSet(
        metadata=ObjectMeta(name="web"),
        spec=StatefulSetSpec(
            volume_claim_templates=[PersistentVolumeClaim(metadata=ObjectMeta(name="www"))]
        ),
    )
    apply_defaults(sts)
    spec = sts.spec
    assert (spec.replicas, spec.pod_management_policy, spec.revision_history_limit) == (
        1,
        "OrderedReady",
        10,
    )
    assert spec.update_strategy.type == "RollingUpdate"
    assert (
        spec.update_strategy.rolling_update is not None
        and spec.update_strategy.rolling_update.partition == 0
    )
    policy = spec.persistent_volume_claim_retention_policy
    assert policy is not None and (policy.when_deleted, policy.when_scaled) == ("Retain", "Retain")
    claim = spec.volume_claim_templates[0]
    assert (claim.api_version, claim.kind, claim.spec.volume_mode) == (
        "v1",
        "PersistentVolumeClaim",
        "Filesystem",
    )


def test_on_delete_stateful_set_gets_no_partition() -> None:
    sts = StatefulSet(
        metadata=ObjectMeta(name="w"),
        spec=StatefulSetSpec(update_strategy=StatefulSetUpdateStrategy(type="OnDelete")),
    )
    apply_defaults(sts)
    assert sts.spec.update_strategy.rolling_update is None


def test_job_defaults() -> None:
    job = _job()
    apply_defaults(job)
    spec = job.spec
    assert (spec.completions, spec.parallelism, spec.backoff_limit, spec.completion_mode) == (
        1,
        1,
        6,
        "NonIndexed",
    )
    assert spec.suspend is False and spec.manual_selector is False
    assert spec.pod_replacement_policy == "TerminatingOrFailed"
    # the Job's template must state its restartPolicy: not defaulted
    assert spec.template.spec.restart_policy == ""
    assert spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"


def test_work_queue_job_keeps_completions_unset() -> None:
    job = _job(parallelism=3)
    apply_defaults(job)
    assert (job.spec.completions, job.spec.parallelism) == (None, 3)


def test_job_with_completions_only_gets_parallelism_one() -> None:
    job = _job(completions=5)
    apply_defaults(job)
    assert (job.spec.completions, job.spec.parallelism) == (5, 1)


def test_per_index_backoff_lifts_the_overall_limit() -> None:
    job = _job(completions=3, completion_mode="Indexed", backoff_limit_per_index=1)
    apply_defaults(job)
    assert job.spec.backoff_limit == MAX_INT32


def test_pod_failure_policy_condition_status_defaults_true() -> None:
    rule = PodFailurePolicyRule(
        action="Ignore",
        on_pod_conditions=[
            PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="")
        ],
    )
    job = _job(pod_failure_policy=PodFailurePolicy(rules=[rule]))
    apply_defaults(job)
    assert rule.on_pod_conditions[0].status == "True"
    assert job.spec.pod_replacement_policy == "Failed"


def test_job_selector_defaults_label_pods_and_select_controller_uid() -> None:
    job = _job()
    job.metadata.uid = "6f1c"
    apply_defaults(job)
    job_selector_defaults(job)
    assert job.spec.template.metadata.labels == {
        "job-name": "pi",
        JOB_NAME_LABEL: "pi",
        "controller-uid": "6f1c",
        CONTROLLER_UID_LABEL: "6f1c",
    }
    assert job.spec.selector == LabelSelector(match_labels={CONTROLLER_UID_LABEL: "6f1c"})
    assert job.metadata.labels == job.spec.template.metadata.labels


def test_job_selector_defaults_leave_manual_selectors_alone() -> None:
    job = _job(manual_selector=True, selector=LabelSelector(match_labels={"app": "x"}))
    job.metadata.uid = "u"
    job_selector_defaults(job)
    assert job.spec.selector == LabelSelector(match_labels={"app": "x"})
    assert job.spec.template.metadata.labels == {}


def test_job_selector_defaults_need_the_uid() -> None:
    with pytest.raises(ValueError, match="uid"):
        job_selector_defaults(_job())


def _all_kinds() -> list[KubeObject]:
    template = PodTemplateSpec(
        spec=PodSpec(
            containers=[
                Container(
                    name="c", image="nginx", liveness_probe=Probe(exec=ExecAction(command=["x"]))
                )
            ]
        )
    )
    return [
        _pod(Container(name="c", image="nginx", resources=ResourceRequirements(limits={"cpu": 1}))),
        Deployment(metadata=ObjectMeta(name="d"), spec=DeploymentSpec(template=template)),
        ReplicaSet(metadata=ObjectMeta(name="r")),
        StatefulSet(
            metadata=ObjectMeta(name="s"),
            spec=StatefulSetSpec(volume_claim_templates=[PersistentVolumeClaim()]),
        ),
        _job(parallelism=2),
        Node(metadata=ObjectMeta(name="n")),
        Event(metadata=ObjectMeta(name="e")),
    ]


@pytest.mark.parametrize("obj", _all_kinds(), ids=lambda o: o.kind)
def test_apply_defaults_is_idempotent(obj: KubeObject) -> None:
    apply_defaults(obj)
    once = copy.deepcopy(obj)
    apply_defaults(obj)
    assert obj == once
