"""The object model: wire shapes, exact round trips, registry names, the
convenience methods later code relies on, and the Kubernetes manifests."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from podmodel.codec import decode, encode, encode_json, object_from_raw, to_builtins
from podmodel.defaults import apply_defaults
from podmodel.event import Event, ObjectReference
from podmodel.meta import ObjectMeta, OwnerReference
from podmodel.node import Node, NodeSpec, Taint
from podmodel.pod import (
    Affinity,
    Capabilities,
    Condition,
    Container,
    ContainerPort,
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    EmptyDirVolumeSource,
    EnvVar,
    EnvVarSource,
    EphemeralContainer,
    ExecAction,
    HostPathVolumeSource,
    HTTPGetAction,
    HTTPHeader,
    Lifecycle,
    LifecycleHandler,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectFieldSelector,
    Pod,
    PodAffinityTerm,
    PodAntiAffinity,
    PodIP,
    PodSpec,
    PodStatus,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    SecurityContext,
    TCPSocketAction,
    Toleration,
    Volume,
    VolumeMount,
    is_sidecar,
    qos_class,
)
from podmodel.registry import canonical_kind, is_namespaced, kind_type
from podmodel.selector import LabelSelector
from podmodel.validation import validate
from podmodel.workloads import (
    Deployment,
    DeploymentSpec,
    DeploymentStrategy,
    Job,
    JobSpec,
    PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyRule,
    ReplicaSet,
    RollingUpdateDeployment,
    StatefulSet,
)

from tests.k8s_examples import EXAMPLES as K8S_EXAMPLES

EXAMPLES = sorted(str(p) for p in K8S_EXAMPLES.glob("*.yaml"))

# ------------------------------------------------------------------ strategies

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
texts = st.text(max_size=12)
small = st.integers(min_value=0, max_value=10_000)
stamps = st.none() | st.just("2026-11-25T06:00:00Z")
label_maps = st.dictionaries(names, names, max_size=3)
quantities = st.sampled_from(["100m", "1", "2Gi", "512Mi"]) | st.integers(0, 64)
int_or_str = st.integers(1, 65535) | names

handlers = st.one_of(
    st.builds(
        lambda cmd: {"exec": ExecAction(command=cmd)}, st.lists(texts, min_size=1, max_size=3)
    ),
    st.builds(
        lambda port, path, hdr: {
            "http_get": HTTPGetAction(
                port=port, path=path, http_headers=[HTTPHeader(name=hdr, value="v")]
            )
        },
        int_or_str,
        st.just("/healthz") | st.just("/"),
        names,
    ),
    st.builds(lambda port: {"tcp_socket": TCPSocketAction(port=port)}, int_or_str),
)

probes = st.builds(
    lambda h, period, fail: Probe(**h, period_seconds=period, failure_threshold=fail),
    handlers,
    st.integers(1, 60),
    st.integers(1, 10),
)

containers = st.builds(
    Container,
    name=names,
    image=names.map(lambda n: f"registry.local/{n}:1.0"),
    command=st.lists(texts, max_size=3),
    ports=st.lists(
        st.builds(
            ContainerPort,
            container_port=st.integers(1, 65535),
            protocol=st.sampled_from(["TCP", "UDP"]),
        ),
        max_size=2,
    ),
    env=st.lists(
        st.builds(EnvVar, name=names, value=st.none() | texts)
        | st.builds(
            lambda n: EnvVar(
                name=n,
                value_from=EnvVarSource(field_ref=ObjectFieldSelector(field_path="status.podIP")),
            ),
            names,
        ),
        max_size=3,
    ),
    resources=st.builds(
        ResourceRequirements,
        requests=st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2),
        limits=st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2),
    ),
    restart_policy=st.none() | st.just("Always"),
    volume_mounts=st.lists(
        st.builds(VolumeMount, name=names, mount_path=st.just("/data"), read_only=st.booleans()),
        max_size=2,
    ),
    liveness_probe=st.none() | probes,
    readiness_probe=st.none() | probes,
    lifecycle=st.none()
    | st.builds(
        lambda cmd: Lifecycle(pre_stop=LifecycleHandler(exec=ExecAction(command=[cmd]))), texts
    ),
    security_context=st.none()
    | st.builds(
        SecurityContext,
        run_as_user=st.none() | small,
        capabilities=st.none()
        | st.builds(
            Capabilities, add=st.lists(st.sampled_from(["NET_ADMIN", "CHOWN"]), max_size=2)
        ),
        allow_privilege_escalation=st.none() | st.booleans(),
    ),
)

container_states = st.builds(
    ContainerState,
    waiting=st.none()
    | st.builds(ContainerStateWaiting, reason=st.just("CrashLoopBackOff"), message=texts),
    running=st.none() | st.builds(ContainerStateRunning, started_at=stamps),
    terminated=st.none()
    | st.builds(
        ContainerStateTerminated,
        exit_code=st.integers(0, 255),
        reason=st.just("Error"),
        finished_at=stamps,
    ),
)

pod_specs = st.builds(
    PodSpec,
    containers=st.lists(containers, min_size=1, max_size=3),
    init_containers=st.lists(containers, max_size=2),
    ephemeral_containers=st.lists(
        st.builds(EphemeralContainer, name=names, image=names, target_container_name=names),
        max_size=1,
    ),
    volumes=st.lists(
        st.builds(
            Volume,
            name=names,
            empty_dir=st.builds(EmptyDirVolumeSource, size_limit=st.none() | quantities),
        )
        | st.builds(
            Volume, name=names, host_path=st.builds(HostPathVolumeSource, path=st.just("/tmp"))
        ),
        max_size=2,
    ),
    restart_policy=st.sampled_from(["", "Always", "OnFailure", "Never"]),
    termination_grace_period_seconds=st.integers(0, 60),
    node_name=st.just("") | names,
    node_selector=label_maps,
    host_network=st.booleans(),
    tolerations=st.lists(
        st.builds(
            Toleration,
            key=names,
            operator=st.just("Exists"),
            effect=st.just("NoExecute"),
            toleration_seconds=st.none() | small,
        ),
        max_size=2,
    ),
    affinity=st.none()
    | st.builds(
        lambda key, vals, lbls: Affinity(
            node_affinity=NodeAffinity(
                required_during_scheduling_ignored_during_execution=NodeSelector(
                    node_selector_terms=[
                        NodeSelectorTerm(
                            match_expressions=[
                                NodeSelectorRequirement(key=key, operator="In", values=vals)
                            ]
                        )
                    ]
                )
            ),
            pod_anti_affinity=PodAntiAffinity(
                required_during_scheduling_ignored_during_execution=[
                    PodAffinityTerm(
                        label_selector=LabelSelector(match_labels=lbls),
                        topology_key="kubernetes.io/hostname",
                    )
                ]
            ),
        ),
        names,
        st.lists(names, min_size=1, max_size=2),
        label_maps,
    ),
    priority=st.integers(-10, 2_000_000_000),
)

metas = st.builds(
    ObjectMeta,
    name=names,
    namespace=st.just("") | names,
    uid=texts,
    labels=label_maps,
    annotations=st.dictionaries(names, texts, max_size=2),
    creation_timestamp=stamps,
    deletion_timestamp=stamps,
    owner_references=st.lists(
        st.builds(
            OwnerReference,
            api_version=st.just("apps/v1"),
            kind=st.just("ReplicaSet"),
            name=names,
            uid=texts,
            controller=st.none() | st.booleans(),
        ),
        max_size=1,
    ),
)

pod_statuses = st.builds(
    PodStatus,
    phase=st.sampled_from(["", "Pending", "Running", "Succeeded", "Failed"]),
    conditions=st.lists(
        st.builds(
            Condition,
            type=st.sampled_from(["Ready", "PodScheduled"]),
            status=st.sampled_from(["True", "False"]),
            last_transition_time=stamps,
        ),
        max_size=2,
    ),
    container_statuses=st.lists(
        st.builds(
            ContainerStatus,
            name=names,
            state=container_states,
            last_state=container_states,
            ready=st.booleans(),
            restart_count=small,
            container_id=texts,
        ),
        max_size=2,
    ),
    pod_ip=st.just("10.0.0.7"),
    pod_ips=st.just([PodIP(ip="10.0.0.7")]),
    host_ip=st.just("192.168.1.2"),
    start_time=stamps,
    qos_class=st.sampled_from(["", "BestEffort", "Burstable", "Guaranteed"]),
)

pods = st.builds(Pod, metadata=metas, spec=pod_specs, status=pod_statuses)
templates = st.builds(
    PodTemplateSpec, metadata=st.builds(ObjectMeta, labels=label_maps), spec=pod_specs
)
deployments = st.builds(
    Deployment,
    metadata=metas,
    spec=st.builds(
        DeploymentSpec,
        replicas=small,
        selector=st.builds(LabelSelector, match_labels=label_maps),
        template=templates,
        strategy=st.builds(
            DeploymentStrategy,
            type=st.sampled_from(["RollingUpdate", "Recreate"]),
            rolling_update=st.none()
            | st.builds(
                RollingUpdateDeployment,
                max_surge=st.integers(0, 5) | st.just("30%"),
                max_unavailable=st.integers(0, 5) | st.just("0%"),
            ),
        ),
        paused=st.booleans(),
    ),
)
jobs = st.builds(
    Job,
    metadata=metas,
    spec=st.builds(
        JobSpec,
        parallelism=st.none() | small,
        completions=st.none() | small,
        completion_mode=st.sampled_from(["NonIndexed", "Indexed"]),
        backoff_limit=small,
        template=templates,
        pod_failure_policy=st.none()
        | st.builds(
            lambda codes: PodFailurePolicy(
                rules=[
                    PodFailurePolicyRule(
                        action="FailJob",
                        on_exit_codes=PodFailurePolicyOnExitCodesRequirement(
                            operator="In", values=codes
                        ),
                    )
                ]
            ),
            st.lists(st.integers(1, 255), min_size=1, max_size=3),
        ),
        ttl_seconds_after_finished=st.none() | small,
    ),
)

ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("as_json", [False, True], ids=["msgpack", "json"])
@ROUND_TRIP
@given(obj=st.one_of(pods, deployments, jobs))
def test_objects_survive_encode_decode_unchanged(as_json: bool, obj: Any) -> None:
    data = encode(obj, json=as_json)
    assert decode(data, type(obj)) == obj


# ------------------------------------------------------------------ wire shape


def test_wire_names_follow_kubernetes_spelling() -> None:
    pod = Pod(
        metadata=ObjectMeta(name="p"),
        spec=PodSpec(
            containers=[
                Container(
                    name="c", image="i", ports=[ContainerPort(container_port=80, host_ip="0.0.0.0")]
                )
            ],
            host_pid=True,
        ),
        status=PodStatus(
            pod_ip="10.0.0.1",
            pod_ips=[PodIP(ip="10.0.0.1")],
            host_ip="1.2.3.4",
            qos_class="BestEffort",
            container_statuses=[ContainerStatus(name="c", image_id="sha", container_id="oci://x")],
        ),
    )
    wire = msgspec.json.decode(encode_json(pod))
    assert wire["apiVersion"] == "v1" and wire["kind"] == "Pod"
    assert wire["spec"]["hostPID"] is True
    assert wire["spec"]["containers"][0]["ports"][0] == {"containerPort": 80, "hostIP": "0.0.0.0"}
    status = wire["status"]
    assert (status["podIP"], status["podIPs"], status["hostIP"], status["qosClass"]) == (
        "10.0.0.1",
        [{"ip": "10.0.0.1"}],
        "1.2.3.4",
        "BestEffort",
    )
    assert status["containerStatuses"][0]["imageID"] == "sha"
    assert status["containerStatuses"][0]["containerID"] == "oci://x"
    node = Node(
        metadata=ObjectMeta(name="n"), spec=NodeSpec(pod_cidr="10.1.0.0/24", provider_id="sim://n")
    )
    assert msgspec.json.decode(encode_json(node))["spec"] == {
        "podCIDR": "10.1.0.0/24",
        "providerID": "sim://n",
    }


@pytest.mark.parametrize(
    ("cls", "api_version", "kind"),
    [
        (Pod, "v1", "Pod"),
        (Node, "v1", "Node"),
        (Event, "v1", "Event"),
        (Deployment, "apps/v1", "Deployment"),
        (ReplicaSet, "apps/v1", "ReplicaSet"),
        (StatefulSet, "apps/v1", "StatefulSet"),
        (Job, "batch/v1", "Job"),
    ],
)
def test_every_kind_carries_its_api_version_and_kind(cls: Any, api_version: str, kind: str) -> None:
    obj = cls()
    assert (obj.api_version, obj.kind) == (api_version, kind)
    assert msgspec.json.decode(encode_json(obj))["apiVersion"] == api_version


@pytest.mark.parametrize(
    ("alias", "kind"),
    [
        ("pods", "Pod"),
        ("po", "Pod"),
        ("nodes", "Node"),
        ("no", "Node"),
        ("deployments", "Deployment"),
        ("deploy", "Deployment"),
        ("replicasets", "ReplicaSet"),
        ("rs", "ReplicaSet"),
        ("statefulsets", "StatefulSet"),
        ("sts", "StatefulSet"),
        ("jobs", "Job"),
        ("job", "Job"),
        ("events", "Event"),
        ("ev", "Event"),
    ],
)
def test_kinds_answer_to_kubectl_names(alias: str, kind: str) -> None:
    assert canonical_kind(alias) == kind
    cls = kind_type(alias)
    assert cls is not None and kind == cls.KIND


def test_only_nodes_are_cluster_scoped() -> None:
    assert not is_namespaced("Node")
    assert all(
        is_namespaced(k) for k in ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "Job", "Event")
    )


def test_yaml_numbers_are_accepted_as_quantities_and_int_or_string_as_either() -> None:
    raw = {
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "i",
                            "resources": {"requests": {"cpu": 0.5, "memory": 1024}},
                            "livenessProbe": {"httpGet": {"port": "http"}},
                            "readinessProbe": {"tcpSocket": {"port": 8080}},
                        }
                    ]
                }
            },
        },
    }
    d = object_from_raw(raw)
    assert isinstance(d, Deployment)
    c = d.spec.template.spec.containers[0]
    assert c.resources.requests == {"cpu": 0.5, "memory": 1024}
    assert c.liveness_probe is not None and c.liveness_probe.http_get is not None
    assert c.liveness_probe.http_get.port == "http"
    assert c.readiness_probe is not None and c.readiness_probe.tcp_socket is not None
    assert c.readiness_probe.tcp_socket.port == 8080
    assert d.spec.strategy.rolling_update == RollingUpdateDeployment(
        max_surge=1, max_unavailable="10%"
    )


def test_constant_kubernetes_defaults_are_read_without_defaulting() -> None:
    probe = Probe(exec=ExecAction(command=["true"]))
    assert (
        probe.period_seconds,
        probe.timeout_seconds,
        probe.success_threshold,
        probe.failure_threshold,
    ) == (10, 1, 1, 3)
    assert HTTPGetAction(port=80).path == "/" and HTTPGetAction(port=80).scheme == "HTTP"
    assert ContainerPort(container_port=80).protocol == "TCP"
    spec = PodSpec()
    assert (spec.termination_grace_period_seconds, spec.dns_policy, spec.scheduler_name) == (
        30,
        "ClusterFirst",
        "default-scheduler",
    )
    assert Deployment().spec.replicas == 1 and Job().spec.backoff_limit == 6
    # ...and an explicit zero survives the wire, where omit_defaults would hide a default.
    zero = PodSpec(termination_grace_period_seconds=0)
    assert decode(encode(zero), PodSpec).termination_grace_period_seconds == 0


def test_event_has_the_core_v1_shape() -> None:
    ev = Event(
        metadata=ObjectMeta(name="web-0.1", namespace="default"),
        involved_object=ObjectReference(
            kind="Pod",
            namespace="default",
            name="web-0",
            uid="u",
            field_path="spec.containers{nginx}",
        ),
        reason="Unhealthy",
        message="Liveness probe failed",
        type="Warning",
        count=3,
        first_timestamp="2026-11-25T06:00:00Z",
        last_timestamp="2026-11-25T06:01:00Z",
    )
    wire = to_builtins(ev)
    assert wire["involvedObject"]["fieldPath"] == "spec.containers{nginx}"
    assert (wire["count"], wire["type"], wire["lastTimestamp"]) == (
        3,
        "Warning",
        "2026-11-25T06:01:00Z",
    )
    assert decode(encode(ev), Event) == ev


# ------------------------------------------------------------------ convenience


def test_all_containers_lists_init_then_app_then_ephemeral() -> None:
    pod = Pod(
        spec=PodSpec(
            init_containers=[Container(name="i1"), Container(name="side", restart_policy="Always")],
            containers=[Container(name="a1"), Container(name="a2")],
            ephemeral_containers=[EphemeralContainer(name="dbg", target_container_name="a1")],
        )
    )
    assert [(kind, c.name) for kind, c in pod.all_containers()] == [
        ("init", "i1"),
        ("init", "side"),
        ("app", "a1"),
        ("app", "a2"),
        ("ephemeral", "dbg"),
    ]
    assert pod.spec.container("dbg") is pod.spec.ephemeral_containers[0]
    assert pod.spec.container("nope") is None


def test_is_sidecar_only_for_restart_policy_always() -> None:
    assert is_sidecar(Container(name="s", restart_policy="Always"))
    assert not is_sidecar(Container(name="i"))


def test_pod_is_terminating_once_deletion_timestamp_is_set() -> None:
    pod = Pod(metadata=ObjectMeta(name="p"))
    assert not pod.is_terminating
    pod.metadata.deletion_timestamp = "2026-11-25T06:00:00Z"
    assert pod.is_terminating


def test_status_condition_lookup() -> None:
    status = PodStatus(conditions=[Condition(type="Ready", status="True")])
    ready = status.condition("Ready")
    assert ready is not None and ready.status == "True"
    assert status.condition("PodScheduled") is None


def _res(requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> Container:
    return Container(
        name="c",
        image="i",
        resources=ResourceRequirements(requests=requests or {}, limits=limits or {}),
    )


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([_res()], "BestEffort"),
        ([_res(requests={"ephemeral-storage": "1Gi"})], "BestEffort"),
        ([_res(requests={"cpu": "100m"})], "Burstable"),
        ([_res(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
        (
            [_res(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})],
            "Guaranteed",
        ),
        (
            [_res(requests={"cpu": "500m", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})],
            "Burstable",
        ),
        ([_res(limits={"cpu": "1", "memory": "1Gi"}), _res()], "Burstable"),
        ([_res(limits={"cpu": "1"})], "Burstable"),
        (
            [
                _res(
                    requests={"cpu": 1, "memory": "1Gi"},
                    limits={"cpu": "1000m", "memory": "1024Mi"},
                )
            ],
            "Guaranteed",
        ),
    ],
    ids=[
        "nothing",
        "only-non-qos-resource",
        "some-request",
        "limits-only",
        "requests-equal-limits",
        "request-below-limit",
        "one-container-without",
        "cpu-limit-only",
        "equal-in-other-units",
    ],
)
def test_qos_class_follows_kubernetes_rules(containers: list[Container], expected: str) -> None:
    assert qos_class(PodSpec(containers=containers)) == expected


def test_qos_class_counts_init_containers() -> None:
    guaranteed = {"cpu": "1", "memory": "1Gi"}
    spec = PodSpec(
        containers=[_res(limits=guaranteed)], init_containers=[_res(requests={"cpu": "1"})]
    )
    assert qos_class(spec) == "Burstable"


def test_node_taints_and_spec_round_trip() -> None:
    node = Node(
        metadata=ObjectMeta(name="n1"),
        spec=NodeSpec(unschedulable=True, taints=[Taint(key="k", value="v", effect="NoSchedule")]),
    )
    assert decode(encode_json(node), Node) == node


# ------------------------------------------------------------------ the Kubernetes examples


def _example_objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in EXAMPLES:
        with open(path) as f:
            for raw in yaml.safe_load_all(f):
                if raw is not None and kind_type(raw["kind"]) is not None:
                    found.append((f"{path.rsplit('/', 1)[-1]}:{raw['kind']}", raw))
    return found


def test_every_example_manifest_is_covered() -> None:
    assert len(EXAMPLES) >= 8
    kinds = {name.split(":")[1] for name, _ in _example_objects()}
    assert {"Pod", "Deployment", "StatefulSet", "Job"} <= kinds


@pytest.mark.parametrize(
    ("name", "raw"), _example_objects(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_example_manifest_decodes_defaults_and_validates(name: str, raw: dict[str, Any]) -> None:
    obj = object_from_raw(raw)
    apply_defaults(obj)
    assert validate(obj) == []
    assert decode(encode(obj), type(obj)) == obj


def test_example_manifests_keep_what_they_say() -> None:
    objs = {name: object_from_raw(raw) for name, raw in _example_objects()}
    sts = objs["web-statefulset.yaml:StatefulSet"]
    assert isinstance(sts, StatefulSet)
    claim = sts.spec.volume_claim_templates[0]
    assert (claim.metadata.name, claim.spec.access_modes, claim.spec.resources.requests) == (
        "www",
        ["ReadWriteOnce"],
        {"storage": "1Gi"},
    )
    sidecar_job = objs["job-sidecar.yaml:Job"]
    assert isinstance(sidecar_job, Job)
    assert is_sidecar(sidecar_job.spec.template.spec.init_containers[0])
    shared = objs["shared-volume.yaml:Pod"]
    assert isinstance(shared, Pod)
    empty_dir = shared.spec.volumes[0].empty_dir
    assert empty_dir is not None and empty_dir.size_limit == "10Mi"
    assert shared.spec.containers[0].volume_mounts[0].read_only is True


def test_watch_event_decodes_its_object() -> None:
    import msgspec
    from podmodel.codec import WatchEvent, encode

    pod = Pod(metadata=ObjectMeta(name="p", namespace="default"))
    event = WatchEvent(
        type="ADDED", kind="Pod", resource_version=3, object=msgspec.Raw(encode(pod))
    )
    decoded = msgspec.msgpack.decode(encode(event), type=WatchEvent)
    assert decoded.decode_object() == pod
