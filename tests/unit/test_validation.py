"""Validation: each rule reports its error at the exact wire path the user
wrote, with Kubernetes' wording; valid objects report nothing; every error
is reported at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from podmodel.codec import FieldError, object_from_raw
from podmodel.defaults import apply_defaults, job_selector_defaults
from podmodel.event import Event
from podmodel.meta import KubeObject, ObjectMeta, OwnerReference
from podmodel.node import Node, NodeSpec, Taint
from podmodel.pod import (
    Affinity,
    Capabilities,
    Container,
    ContainerPort,
    EmptyDirVolumeSource,
    EnvVar,
    EnvVarSource,
    EphemeralContainer,
    ExecAction,
    GRPCAction,
    HostPathVolumeSource,
    HTTPGetAction,
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
    PodReadinessGate,
    PodSecurityContext,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    SeccompProfile,
    SecurityContext,
    SleepAction,
    TCPSocketAction,
    Toleration,
    TopologySpreadConstraint,
    Volume,
    VolumeMount,
    WeightedPodAffinityTerm,
)
from podmodel.selector import LabelSelector, LabelSelectorRequirement
from podmodel.validation import validate
from podmodel.workloads import (
    Deployment,
    DeploymentSpec,
    DeploymentStrategy,
    Job,
    JobSpec,
    PersistentVolumeClaim,
    PersistentVolumeClaimSpec,
    PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
    ReplicaSet,
    ReplicaSetSpec,
    RollingUpdateDeployment,
    RollingUpdateStatefulSetStrategy,
    StatefulSet,
    StatefulSetSpec,
    StatefulSetUpdateStrategy,
    VolumeResourceRequirements,
)

EXEC = ExecAction(command=["true"])


def _container(name: str = "app", **kw: Any) -> Container:
    return Container(name=name, image="nginx:1.25", **kw)


def _pod(**spec: Any) -> Pod:
    spec.setdefault("containers", [_container()])
    pod = Pod(metadata=ObjectMeta(name="web", labels={"app": "web"}), spec=PodSpec(**spec))
    apply_defaults(pod)
    return pod


def _template(**spec: Any) -> PodTemplateSpec:
    spec.setdefault("containers", [_container()])
    return PodTemplateSpec(metadata=ObjectMeta(labels={"app": "web"}), spec=PodSpec(**spec))


def _deployment(**spec: Any) -> Deployment:
    spec.setdefault("selector", LabelSelector(match_labels={"app": "web"}))
    spec.setdefault("template", _template())
    d = Deployment(metadata=ObjectMeta(name="web"), spec=DeploymentSpec(**spec))
    apply_defaults(d)
    return d


def _stateful_set(**spec: Any) -> StatefulSet:
    spec.setdefault("selector", LabelSelector(match_labels={"app": "web"}))
    spec.setdefault("template", _template())
    sts = StatefulSet(metadata=ObjectMeta(name="web"), spec=StatefulSetSpec(**spec))
    apply_defaults(sts)
    return sts


def _job(restart_policy: str = "Never", **spec: Any) -> Job:
    spec.setdefault(
        "template",
        PodTemplateSpec(spec=PodSpec(containers=[_container()], restart_policy=restart_policy)),
    )
    job = Job(metadata=ObjectMeta(name="pi", uid="u-1"), spec=JobSpec(**spec))
    apply_defaults(job)
    job_selector_defaults(job)
    return job


def _pod_with(c: Container, **spec: Any) -> Pod:
    return _pod(containers=[c], **spec)


def _init(c: Container) -> Pod:
    return _pod(init_containers=[c])


def _probe(**kw: Any) -> Probe:
    kw.setdefault("exec", EXEC)
    return Probe(**kw)


def _sc(**kw: Any) -> Pod:
    return _pod_with(_container(security_context=SecurityContext(**kw)))


def _tol(**kw: Any) -> Pod:
    return _pod(tolerations=[Toleration(**kw)])


def _node_affinity(*reqs: NodeSelectorRequirement) -> Pod:
    term = NodeSelectorTerm(match_expressions=list(reqs))
    return _pod(
        affinity=Affinity(
            node_affinity=NodeAffinity(
                required_during_scheduling_ignored_during_execution=NodeSelector(
                    node_selector_terms=[term]
                )
            )
        )
    )


def _ephemeral(**kw: Any) -> Pod:
    pod = _pod()
    pod.spec.ephemeral_containers.append(EphemeralContainer(name="dbg", image="busybox:1", **kw))
    return pod


def _volume(**kw: Any) -> Pod:
    return _pod(volumes=[Volume(name="v", **kw)])


def _rolling(surge: int | str, unavailable: int | str) -> Deployment:
    return _deployment(
        strategy=DeploymentStrategy(
            rolling_update=RollingUpdateDeployment(max_surge=surge, max_unavailable=unavailable)
        )
    )


def _failure_policy(*rules: PodFailurePolicyRule, restart_policy: str = "Never") -> Job:
    return _job(
        restart_policy=restart_policy, pod_failure_policy=PodFailurePolicy(rules=list(rules))
    )


def _exit_codes(operator: str, *values: int, container: str | None = None) -> PodFailurePolicyRule:
    return PodFailurePolicyRule(
        action="FailJob",
        on_exit_codes=PodFailurePolicyOnExitCodesRequirement(
            operator=operator, values=list(values), container_name=container
        ),
    )


def _meta(**kw: Any) -> Pod:
    pod = _pod()
    for k, v in kw.items():
        setattr(pod.metadata, k, v)
    return pod


C0 = "spec.containers[0]"
SUBDOMAIN = "a lowercase RFC 1123 subdomain"
LABEL = "a lowercase RFC 1123 label"

# (id, object factory, wire path, message or its beginning)
CASES: list[tuple[str, Callable[[], KubeObject], str, str]] = [
    # metadata
    (
        "name-required",
        lambda: _meta(name=""),
        "metadata.name",
        "Required value: name or generateName is required",
    ),
    (
        "name-subdomain",
        lambda: _meta(name="Web_1"),
        "metadata.name",
        f'Invalid value: "Web_1": {SUBDOMAIN}',
    ),
    ("name-too-long", lambda: _meta(name="a" * 254), "metadata.name", "Invalid value: "),
    (
        "generate-name",
        lambda: _meta(name="", generate_name="Bad_"),
        "metadata.generateName",
        'Invalid value: "Bad_"',
    ),
    (
        "namespace-label",
        lambda: _meta(namespace="a.b"),
        "metadata.namespace",
        f'Invalid value: "a.b": {LABEL}',
    ),
    (
        "namespace-on-node",
        lambda: Node(metadata=ObjectMeta(name="n", namespace="default")),
        "metadata.namespace",
        "Forbidden: not allowed on this type",
    ),
    (
        "label-key",
        lambda: _meta(labels={"bad key": "v"}),
        "metadata.labels",
        'Invalid value: "bad key": name part must consist',
    ),
    (
        "label-key-prefix",
        lambda: _meta(labels={"Ex.com/k": "v"}),
        "metadata.labels",
        'Invalid value: "Ex.com/k": prefix part',
    ),
    (
        "label-value",
        lambda: _meta(labels={"k": "-bad"}),
        "metadata.labels",
        'Invalid value: "-bad": a valid label must be',
    ),
    (
        "label-value-long",
        lambda: _meta(labels={"k": "a" * 64}),
        "metadata.labels",
        "Invalid value: ",
    ),
    (
        "annotation-key",
        lambda: _meta(annotations={"/x": "v"}),
        "metadata.annotations",
        'Invalid value: "/x": prefix part must be non-empty',
    ),
    (
        "annotations-size",
        lambda: _meta(annotations={"k": "x" * (256 * 1024)}),
        "metadata.annotations",
        "Too long: must have at most 262144 bytes",
    ),
    (
        "owner-refs-two-controllers",
        lambda: _meta(
            owner_references=[
                OwnerReference(api_version="v1", kind="K", name="a", uid="1", controller=True),
                OwnerReference(api_version="v1", kind="K", name="b", uid="2", controller=True),
            ]
        ),
        "metadata.ownerReferences",
        'Invalid value: "": Only one reference can have Controller set to true',
    ),
    (
        "owner-ref-uid",
        lambda: _meta(
            owner_references=[OwnerReference(api_version="v1", kind="K", name="a", uid="")]
        ),
        "metadata.ownerReferences[0].uid",
        "Required value",
    ),
    # containers
    ("containers-required", lambda: _pod(containers=[]), "spec.containers", "Required value"),
    (
        "container-name-required",
        lambda: _pod_with(_container(name="")),
        f"{C0}.name",
        "Required value",
    ),
    (
        "container-name-label",
        lambda: _pod_with(_container(name="my.app")),
        f"{C0}.name",
        f'Invalid value: "my.app": {LABEL}',
    ),
    (
        "container-name-duplicate",
        lambda: _pod(
            containers=[_container("a"), _container("b")], init_containers=[_container("b")]
        ),
        "spec.containers[1].name",
        'Duplicate value: "b"',
    ),
    (
        "container-name-duplicate-ephemeral",
        lambda: _pod(
            containers=[_container("dbg")],
            ephemeral_containers=[EphemeralContainer(name="dbg", image="b:1")],
        ),
        "spec.ephemeralContainers[0].name",
        'Duplicate value: "dbg"',
    ),
    (
        "image-required",
        lambda: _pod(containers=[Container(name="c")]),
        f"{C0}.image",
        "Required value",
    ),
    (
        "image-pull-policy",
        lambda: _pod_with(_container(image_pull_policy="Sometimes")),
        f"{C0}.imagePullPolicy",
        'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"',
    ),
    (
        "termination-message-policy",
        lambda: _pod_with(_container(termination_message_policy="Log")),
        f"{C0}.terminationMessagePolicy",
        'Unsupported value: "Log"',
    ),
    # ports
    (
        "container-port-range",
        lambda: _pod_with(_container(ports=[ContainerPort(container_port=70000)])),
        f"{C0}.ports[0].containerPort",
        "Invalid value: 70000: must be between 1 and 65535, inclusive",
    ),
    (
        "container-port-required",
        lambda: _pod_with(_container(ports=[ContainerPort(container_port=0)])),
        f"{C0}.ports[0].containerPort",
        "Required value",
    ),
    (
        "host-port-range",
        lambda: _pod_with(_container(ports=[ContainerPort(container_port=80, host_port=-1)])),
        f"{C0}.ports[0].hostPort",
        "Invalid value: -1: must be between 1 and 65535, inclusive",
    ),
    (
        "protocol",
        lambda: _pod_with(_container(ports=[ContainerPort(container_port=80, protocol="ICMP")])),
        f"{C0}.ports[0].protocol",
        'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"',
    ),
    (
        "port-name-long",
        lambda: _pod_with(
            _container(ports=[ContainerPort(container_port=80, name="a-very-long-port-name")])
        ),
        f"{C0}.ports[0].name",
        'Invalid value: "a-very-long-port-name": must be no more than 15 characters',
    ),
    (
        "port-name-letter",
        lambda: _pod_with(_container(ports=[ContainerPort(container_port=80, name="8080")])),
        f"{C0}.ports[0].name",
        'Invalid value: "8080": must contain at least one letter (a-z)',
    ),
    (
        "port-name-duplicate",
        lambda: _pod_with(
            _container(
                ports=[
                    ContainerPort(container_port=80, name="web"),
                    ContainerPort(container_port=81, name="web"),
                ]
            )
        ),
        f"{C0}.ports[1].name",
        'Duplicate value: "web"',
    ),
    (
        "host-network-port",
        lambda: _pod_with(
            _container(ports=[ContainerPort(container_port=80, host_port=8080)]), host_network=True
        ),
        f"{C0}.ports[0].hostPort",
        "Invalid value: 8080: must match `containerPort` when `hostNetwork` is true",
    ),
    # env
    (
        "env-name",
        lambda: _pod_with(_container(env=[EnvVar(name="A=B")])),
        f"{C0}.env[0].name",
        'Invalid value: "A=B"',
    ),
    (
        "env-name-required",
        lambda: _pod_with(_container(env=[EnvVar(name="")])),
        f"{C0}.env[0].name",
        "Required value",
    ),
    (
        "env-value-and-from",
        lambda: _pod_with(
            _container(
                env=[
                    EnvVar(
                        name="A",
                        value="x",
                        value_from=EnvVarSource(
                            field_ref=ObjectFieldSelector(field_path="metadata.name")
                        ),
                    )
                ]
            )
        ),
        f"{C0}.env[0].valueFrom",
        'Invalid value: "": may not be specified when `value` is not empty',
    ),
    (
        "env-field-path",
        lambda: _pod_with(
            _container(
                env=[
                    EnvVar(
                        name="A",
                        value_from=EnvVarSource(
                            field_ref=ObjectFieldSelector(field_path="spec.bogus")
                        ),
                    )
                ]
            )
        ),
        f"{C0}.env[0].valueFrom.fieldRef.fieldPath",
        'Unsupported value: "spec.bogus"',
    ),
    (
        "env-no-source",
        lambda: _pod_with(_container(env=[EnvVar(name="A", value_from=EnvVarSource())])),
        f"{C0}.env[0].valueFrom",
        'Invalid value: "": must specify one of',
    ),
    # resources
    (
        "quantity-parse",
        lambda: _pod_with(_container(resources=ResourceRequirements(requests={"cpu": "lots"}))),
        f"{C0}.resources.requests[cpu]",
        'Invalid value: "lots": must be a valid quantity',
    ),
    (
        "quantity-negative",
        lambda: _pod_with(_container(resources=ResourceRequirements(limits={"memory": "-1Gi"}))),
        f"{C0}.resources.limits[memory]",
        'Invalid value: "-1Gi": must be greater than or equal to 0',
    ),
    (
        "requests-above-limits",
        lambda: _pod_with(
            _container(resources=ResourceRequirements(requests={"cpu": "2"}, limits={"cpu": "1"}))
        ),
        f"{C0}.resources.requests[cpu]",
        'Invalid value: "2": must be less than or equal to cpu limit of 1',
    ),
    # volume mounts and volumes
    (
        "mount-unknown-volume",
        lambda: _pod_with(_container(volume_mounts=[VolumeMount(name="nope", mount_path="/x")])),
        f"{C0}.volumeMounts[0].name",
        'Not found: "nope"',
    ),
    (
        "mount-path-required",
        lambda: _pod_with(
            _container(volume_mounts=[VolumeMount(name="v")]),
            volumes=[Volume(name="v", empty_dir=EmptyDirVolumeSource())],
        ),
        f"{C0}.volumeMounts[0].mountPath",
        "Required value",
    ),
    (
        "mount-sub-path",
        lambda: _pod_with(
            _container(volume_mounts=[VolumeMount(name="v", mount_path="/x", sub_path="../etc")]),
            volumes=[Volume(name="v", empty_dir=EmptyDirVolumeSource())],
        ),
        f"{C0}.volumeMounts[0].subPath",
        "Invalid value: \"../etc\": must not contain '..'",
    ),
    (
        "volume-no-source",
        lambda: _volume(),
        "spec.volumes[0]",
        "Required value: must specify a volume type",
    ),
    (
        "volume-two-sources",
        lambda: _volume(
            empty_dir=EmptyDirVolumeSource(), host_path=HostPathVolumeSource(path="/tmp")
        ),
        "spec.volumes[0].hostPath",
        "Forbidden: may not specify more than 1 volume type",
    ),
    (
        "volume-name",
        lambda: _pod(volumes=[Volume(name="V", empty_dir=EmptyDirVolumeSource())]),
        "spec.volumes[0].name",
        f'Invalid value: "V": {LABEL}',
    ),
    (
        "volume-duplicate",
        lambda: _pod(
            volumes=[
                Volume(name="v", empty_dir=EmptyDirVolumeSource()),
                Volume(name="v", empty_dir=EmptyDirVolumeSource()),
            ]
        ),
        "spec.volumes[1].name",
        'Duplicate value: "v"',
    ),
    (
        "host-path-type",
        lambda: _volume(host_path=HostPathVolumeSource(path="/x", type="Pipe")),
        "spec.volumes[0].hostPath.type",
        'Unsupported value: "Pipe"',
    ),
    (
        "host-path-path",
        lambda: _volume(host_path=HostPathVolumeSource()),
        "spec.volumes[0].hostPath.path",
        "Required value",
    ),
    (
        "empty-dir-medium",
        lambda: _volume(empty_dir=EmptyDirVolumeSource(medium="Disk")),
        "spec.volumes[0].emptyDir.medium",
        'Unsupported value: "Disk"',
    ),
    (
        "empty-dir-size",
        lambda: _volume(empty_dir=EmptyDirVolumeSource(size_limit="big")),
        "spec.volumes[0].emptyDir.sizeLimit",
        'Invalid value: "big": must be a valid quantity',
    ),
    # probes
    (
        "probe-no-handler",
        lambda: _pod_with(_container(liveness_probe=Probe())),
        f"{C0}.livenessProbe",
        "Required value: must specify a handler type",
    ),
    (
        "probe-two-handlers",
        lambda: _pod_with(
            _container(readiness_probe=Probe(exec=EXEC, tcp_socket=TCPSocketAction(port=80)))
        ),
        f"{C0}.readinessProbe",
        "Forbidden: may not specify more than 1 handler type",
    ),
    (
        "probe-period",
        lambda: _pod_with(_container(liveness_probe=_probe(period_seconds=-1))),
        f"{C0}.livenessProbe.periodSeconds",
        "must be >= 1",
    ),
    (
        "probe-timeout",
        lambda: _pod_with(_container(readiness_probe=_probe(timeout_seconds=-3))),
        f"{C0}.readinessProbe.timeoutSeconds",
        "must be >= 1",
    ),
    (
        "probe-initial-delay",
        lambda: _pod_with(_container(startup_probe=_probe(initial_delay_seconds=-1))),
        f"{C0}.startupProbe.initialDelaySeconds",
        "must be >= 0",
    ),
    (
        "probe-failure-threshold",
        lambda: _pod_with(_container(startup_probe=_probe(failure_threshold=-2))),
        f"{C0}.startupProbe.failureThreshold",
        "must be >= 1",
    ),
    (
        "probe-grace",
        lambda: _pod_with(_container(liveness_probe=_probe(termination_grace_period_seconds=0))),
        f"{C0}.livenessProbe.terminationGracePeriodSeconds",
        "must be >= 1",
    ),
    (
        "liveness-success-threshold",
        lambda: _pod_with(_container(liveness_probe=_probe(success_threshold=2))),
        f"{C0}.livenessProbe.successThreshold",
        "Invalid value: 2: must be 1",
    ),
    (
        "startup-success-threshold",
        lambda: _pod_with(_container(startup_probe=_probe(success_threshold=3))),
        f"{C0}.startupProbe.successThreshold",
        "Invalid value: 3: must be 1",
    ),
    (
        "readiness-grace",
        lambda: _pod_with(_container(readiness_probe=_probe(termination_grace_period_seconds=5))),
        f"{C0}.readinessProbe.terminationGracePeriodSeconds",
        "Invalid value: 5: must not be set for readinessProbes",
    ),
    (
        "exec-command",
        lambda: _pod_with(_container(liveness_probe=Probe(exec=ExecAction()))),
        f"{C0}.livenessProbe.exec.command",
        "Required value",
    ),
    (
        "http-port",
        lambda: _pod_with(_container(liveness_probe=Probe(http_get=HTTPGetAction(port=0)))),
        f"{C0}.livenessProbe.httpGet.port",
        "Invalid value: 0: must be between 1 and 65535, inclusive",
    ),
    (
        "http-port-name",
        lambda: _pod_with(
            _container(liveness_probe=Probe(http_get=HTTPGetAction(port="Web_Port")))
        ),
        f"{C0}.livenessProbe.httpGet.port",
        'Invalid value: "Web_Port"',
    ),
    (
        "http-scheme",
        lambda: _pod_with(
            _container(liveness_probe=Probe(http_get=HTTPGetAction(port=80, scheme="FTP")))
        ),
        f"{C0}.livenessProbe.httpGet.scheme",
        'Unsupported value: "FTP": supported values: "HTTP", "HTTPS"',
    ),
    (
        "tcp-port",
        lambda: _pod_with(
            _container(readiness_probe=Probe(tcp_socket=TCPSocketAction(port=99999)))
        ),
        f"{C0}.readinessProbe.tcpSocket.port",
        "Invalid value: 99999",
    ),
    (
        "grpc-port",
        lambda: _pod_with(_container(readiness_probe=Probe(grpc=GRPCAction(port=0)))),
        f"{C0}.readinessProbe.grpc.port",
        "Invalid value: 0",
    ),
    # lifecycle
    (
        "lifecycle-no-handler",
        lambda: _pod_with(_container(lifecycle=Lifecycle(pre_stop=LifecycleHandler()))),
        f"{C0}.lifecycle.preStop",
        "Required value: must specify a handler type",
    ),
    (
        "lifecycle-sleep",
        lambda: _pod_with(
            _container(
                lifecycle=Lifecycle(pre_stop=LifecycleHandler(sleep=SleepAction(seconds=60)))
            )
        ),
        f"{C0}.lifecycle.preStop.sleep.seconds",
        "Invalid value: 60: must be greater than 0 and less than terminationGracePeriodSeconds (30)",
    ),
    # init containers and sidecars
    (
        "init-probe",
        lambda: _init(_container("init", liveness_probe=_probe())),
        "spec.initContainers[0].livenessProbe",
        "Forbidden: may not be set for init containers without restartPolicy=Always",
    ),
    (
        "init-readiness",
        lambda: _init(_container("init", readiness_probe=_probe())),
        "spec.initContainers[0].readinessProbe",
        "Forbidden: may not be set for init containers without restartPolicy=Always",
    ),
    (
        "init-lifecycle",
        lambda: _init(
            _container("init", lifecycle=Lifecycle(post_start=LifecycleHandler(exec=EXEC)))
        ),
        "spec.initContainers[0].lifecycle",
        "Forbidden: may not be set for init containers without restartPolicy=Always",
    ),
    (
        "init-restart-policy",
        lambda: _init(_container("init", restart_policy="OnFailure")),
        "spec.initContainers[0].restartPolicy",
        'Unsupported value: "OnFailure": supported values: "Always"',
    ),
    (
        "sidecar-probe-still-checked",
        lambda: _init(
            _container("side", restart_policy="Always", liveness_probe=_probe(success_threshold=2))
        ),
        "spec.initContainers[0].livenessProbe.successThreshold",
        "Invalid value: 2: must be 1",
    ),
    (
        "app-restart-policy",
        lambda: _pod_with(_container(restart_policy="Always")),
        f"{C0}.restartPolicy",
        "Forbidden: may not be set for non-init containers",
    ),
    # ephemeral containers
    (
        "ephemeral-ports",
        lambda: _ephemeral(ports=[ContainerPort(container_port=80)]),
        "spec.ephemeralContainers[0].ports",
        "Forbidden: cannot be set for an Ephemeral Container",
    ),
    (
        "ephemeral-probe",
        lambda: _ephemeral(readiness_probe=_probe()),
        "spec.ephemeralContainers[0].readinessProbe",
        "Forbidden: cannot be set for an Ephemeral Container",
    ),
    (
        "ephemeral-lifecycle",
        lambda: _ephemeral(lifecycle=Lifecycle(pre_stop=LifecycleHandler(exec=EXEC))),
        "spec.ephemeralContainers[0].lifecycle",
        "Forbidden: cannot be set for an Ephemeral Container",
    ),
    (
        "ephemeral-resources",
        lambda: _ephemeral(resources=ResourceRequirements(limits={"cpu": "1"})),
        "spec.ephemeralContainers[0].resources",
        "Forbidden: cannot be set for an Ephemeral Container",
    ),
    (
        "ephemeral-restart-policy",
        lambda: _ephemeral(restart_policy="Always"),
        "spec.ephemeralContainers[0].restartPolicy",
        "Forbidden: cannot be set for an Ephemeral Container",
    ),
    (
        "ephemeral-target",
        lambda: _ephemeral(target_container_name="ghost"),
        "spec.ephemeralContainers[0].targetContainerName",
        'Not found: "ghost"',
    ),
    # security contexts
    (
        "ape-privileged",
        lambda: _sc(allow_privilege_escalation=False, privileged=True),
        f"{C0}.securityContext",
        'Invalid value: "": cannot set `allowPrivilegeEscalation` to false and `privileged` to true',
    ),
    (
        "ape-sys-admin",
        lambda: _sc(allow_privilege_escalation=False, capabilities=Capabilities(add=["SYS_ADMIN"])),
        f"{C0}.securityContext",
        'Invalid value: "": cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN',
    ),
    (
        "ape-cap-sys-admin",
        lambda: _sc(
            allow_privilege_escalation=False, capabilities=Capabilities(add=["CAP_SYS_ADMIN"])
        ),
        f"{C0}.securityContext",
        'Invalid value: "": cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN',
    ),
    (
        "run-as-user",
        lambda: _sc(run_as_user=-1),
        f"{C0}.securityContext.runAsUser",
        "Invalid value: -1: must be between 0 and 2147483647, inclusive",
    ),
    (
        "seccomp-type",
        lambda: _sc(seccomp_profile=SeccompProfile(type="Strict")),
        f"{C0}.securityContext.seccompProfile.type",
        'Unsupported value: "Strict": supported values: "RuntimeDefault", "Localhost", "Unconfined"',
    ),
    (
        "seccomp-localhost",
        lambda: _sc(seccomp_profile=SeccompProfile(type="Localhost")),
        f"{C0}.securityContext.seccompProfile.localhostProfile",
        "Required value: must be set when type is Localhost",
    ),
    (
        "pod-fs-group-policy",
        lambda: _pod(security_context=PodSecurityContext(fs_group_change_policy="Sometimes")),
        "spec.securityContext.fsGroupChangePolicy",
        'Unsupported value: "Sometimes": supported values: "OnRootMismatch", "Always"',
    ),
    (
        "pod-fs-group",
        lambda: _pod(security_context=PodSecurityContext(fs_group=-5)),
        "spec.securityContext.fsGroup",
        "Invalid value: -5",
    ),
    # pod spec
    (
        "restart-policy",
        lambda: _pod(restart_policy="Sometimes"),
        "spec.restartPolicy",
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
    ),
    (
        "dns-policy",
        lambda: _pod(dns_policy="Google"),
        "spec.dnsPolicy",
        'Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"',
    ),
    (
        "dns-none-needs-config",
        lambda: _pod(dns_policy="None"),
        "spec.dnsConfig",
        "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
    ),
    (
        "preemption-policy",
        lambda: _pod(preemption_policy="Always"),
        "spec.preemptionPolicy",
        'Unsupported value: "Always": supported values: "PreemptLowerPriority", "Never"',
    ),
    (
        "grace-negative",
        lambda: _pod(termination_grace_period_seconds=-1),
        "spec.terminationGracePeriodSeconds",
        "must be >= 0",
    ),
    (
        "active-deadline",
        lambda: _pod(active_deadline_seconds=0),
        "spec.activeDeadlineSeconds",
        "must be >= 1",
    ),
    (
        "hostname",
        lambda: _pod(hostname="my.host"),
        "spec.hostname",
        f'Invalid value: "my.host": {LABEL}',
    ),
    (
        "readiness-gate",
        lambda: _pod(readiness_gates=[PodReadinessGate(condition_type="")]),
        "spec.readinessGates[0].conditionType",
        "Required value",
    ),
    (
        "node-selector",
        lambda: _pod(node_selector={"disk": "ssd!"}),
        "spec.nodeSelector",
        'Invalid value: "ssd!"',
    ),
    # tolerations
    (
        "toleration-exists-with-value",
        lambda: _tol(key="k", operator="Exists", value="v"),
        "spec.tolerations[0].value",
        "Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
    ),
    (
        "toleration-operator",
        lambda: _tol(key="k", operator="Like"),
        "spec.tolerations[0].operator",
        'Unsupported value: "Like": supported values: "Equal", "Exists"',
    ),
    (
        "toleration-effect",
        lambda: _tol(key="k", operator="Exists", effect="NoRun"),
        "spec.tolerations[0].effect",
        'Unsupported value: "NoRun": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
    ),
    (
        "toleration-seconds-effect",
        lambda: _tol(key="k", operator="Exists", effect="NoSchedule", toleration_seconds=5),
        "spec.tolerations[0].effect",
        "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
    ),
    (
        "toleration-empty-key",
        lambda: _tol(operator="Equal", value="v"),
        "spec.tolerations[0].operator",
        'Invalid value: "Equal": operator must be Exists when `key` is empty',
    ),
    # affinity and spreading
    (
        "node-affinity-operator",
        lambda: _node_affinity(NodeSelectorRequirement(key="zone", operator="Near", values=["a"])),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator",
        'Unsupported value: "Near"',
    ),
    (
        "node-affinity-values",
        lambda: _node_affinity(NodeSelectorRequirement(key="zone", operator="In")),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values",
        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
    ),
    (
        "node-affinity-no-terms",
        lambda: _pod(
            affinity=Affinity(
                node_affinity=NodeAffinity(
                    required_during_scheduling_ignored_during_execution=NodeSelector()
                )
            )
        ),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
        "Required value: must have at least one node selector term",
    ),
    (
        "anti-affinity-topology-key",
        lambda: _pod(
            affinity=Affinity(
                pod_anti_affinity=PodAntiAffinity(
                    required_during_scheduling_ignored_during_execution=[
                        PodAffinityTerm(label_selector=LabelSelector(match_labels={"a": "b"}))
                    ]
                )
            )
        ),
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
        "Required value: can not be empty",
    ),
    (
        "anti-affinity-weight",
        lambda: _pod(
            affinity=Affinity(
                pod_anti_affinity=PodAntiAffinity(
                    preferred_during_scheduling_ignored_during_execution=[
                        WeightedPodAffinityTerm(
                            weight=101, pod_affinity_term=PodAffinityTerm(topology_key="zone")
                        )
                    ]
                )
            )
        ),
        "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
        "Invalid value: 101: must be in the range 1-100",
    ),
    (
        "anti-affinity-selector",
        lambda: _pod(
            affinity=Affinity(
                pod_anti_affinity=PodAntiAffinity(
                    required_during_scheduling_ignored_during_execution=[
                        PodAffinityTerm(
                            topology_key="zone",
                            label_selector=LabelSelector(
                                match_expressions=[
                                    LabelSelectorRequirement(
                                        key="app", operator="Exists", values=["x"]
                                    )
                                ]
                            ),
                        )
                    ]
                )
            )
        ),
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].values",
        "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
    ),
    (
        "spread-max-skew",
        lambda: _pod(
            topology_spread_constraints=[
                TopologySpreadConstraint(
                    max_skew=0, topology_key="zone", when_unsatisfiable="DoNotSchedule"
                )
            ]
        ),
        "spec.topologySpreadConstraints[0].maxSkew",
        "must be >= 1",
    ),
    (
        "spread-when-unsatisfiable",
        lambda: _pod(
            topology_spread_constraints=[
                TopologySpreadConstraint(
                    max_skew=1, topology_key="zone", when_unsatisfiable="Maybe"
                )
            ]
        ),
        "spec.topologySpreadConstraints[0].whenUnsatisfiable",
        'Unsupported value: "Maybe": supported values: "DoNotSchedule", "ScheduleAnyway"',
    ),
    # Deployment
    ("deploy-replicas", lambda: _deployment(replicas=-1), "spec.replicas", "must be >= 0"),
    (
        "deploy-selector-empty",
        lambda: _deployment(selector=LabelSelector()),
        "spec.selector",
        'Invalid value: "": empty selector is invalid for deployment',
    ),
    (
        "deploy-selector-mismatch",
        lambda: _deployment(selector=LabelSelector(match_labels={"app": "other"})),
        "spec.template.metadata.labels",
        'Invalid value: "app=web": `selector` does not match template `labels`',
    ),
    (
        "deploy-template-restart",
        lambda: _deployment(template=_template(restart_policy="Never")),
        "spec.template.spec.restartPolicy",
        'Unsupported value: "Never": supported values: "Always"',
    ),
    (
        "deploy-template-container",
        lambda: _deployment(
            template=_template(containers=[_container(liveness_probe=_probe(period_seconds=-1))])
        ),
        "spec.template.spec.containers[0].livenessProbe.periodSeconds",
        "must be >= 1",
    ),
    (
        "deploy-template-deadline",
        lambda: _deployment(template=_template(active_deadline_seconds=10)),
        "spec.template.spec.activeDeadlineSeconds",
        "Forbidden: activeDeadlineSeconds in Deployment is not Supported",
    ),
    (
        "deploy-strategy-type",
        lambda: _deployment(strategy=DeploymentStrategy(type="BlueGreen")),
        "spec.strategy.type",
        'Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate"',
    ),
    (
        "deploy-recreate-rolling",
        lambda: _deployment(
            strategy=DeploymentStrategy(type="Recreate", rolling_update=RollingUpdateDeployment())
        ),
        "spec.strategy.rollingUpdate",
        "Forbidden: may not be specified when strategy `type` is 'Recreate'",
    ),
    (
        "deploy-both-zero",
        lambda: _rolling(0, 0),
        "spec.strategy.rollingUpdate.maxUnavailable",
        "Invalid value: 0: may not be 0 when `maxSurge` is 0",
    ),
    (
        "deploy-both-zero-percent",
        lambda: _rolling("0%", 0),
        "spec.strategy.rollingUpdate.maxUnavailable",
        "Invalid value: 0: may not be 0 when `maxSurge` is 0",
    ),
    (
        "deploy-bad-percent",
        lambda: _rolling("abc", 1),
        "spec.strategy.rollingUpdate.maxSurge",
        'Invalid value: "abc": a valid percent string',
    ),
    (
        "deploy-unavailable-over-100",
        lambda: _rolling(1, "150%"),
        "spec.strategy.rollingUpdate.maxUnavailable",
        'Invalid value: "150%": must not be greater than 100%',
    ),
    (
        "deploy-negative-surge",
        lambda: _rolling(-1, 1),
        "spec.strategy.rollingUpdate.maxSurge",
        "Invalid value: -1: must be greater than or equal to 0",
    ),
    (
        "deploy-progress-deadline",
        lambda: _deployment(min_ready_seconds=700),
        "spec.progressDeadlineSeconds",
        "Invalid value: 600: must be greater than minReadySeconds",
    ),
    (
        "deploy-template-label",
        lambda: _deployment(
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels={"app": "web", "x": "bad value"}),
                spec=PodSpec(containers=[_container()]),
            )
        ),
        "spec.template.metadata.labels",
        'Invalid value: "bad value"',
    ),
    # ReplicaSet
    (
        "rs-replicas",
        lambda: ReplicaSet(
            metadata=ObjectMeta(name="r"),
            spec=ReplicaSetSpec(
                replicas=-2,
                selector=LabelSelector(match_labels={"app": "web"}),
                template=_template(),
            ),
        ),
        "spec.replicas",
        "must be >= 0",
    ),
    (
        "rs-selector",
        lambda: ReplicaSet(
            metadata=ObjectMeta(name="r"), spec=ReplicaSetSpec(template=_template())
        ),
        "spec.selector",
        'Invalid value: "": empty selector is invalid for replicaset',
    ),
    # StatefulSet
    (
        "sts-pod-management",
        lambda: _stateful_set(pod_management_policy="Random"),
        "spec.podManagementPolicy",
        'Unsupported value: "Random": supported values: "OrderedReady", "Parallel"',
    ),
    (
        "sts-update-type",
        lambda: _stateful_set(update_strategy=StatefulSetUpdateStrategy(type="Recreate")),
        "spec.updateStrategy.type",
        'Unsupported value: "Recreate": supported values: "RollingUpdate", "OnDelete"',
    ),
    (
        "sts-partition",
        lambda: _stateful_set(
            update_strategy=StatefulSetUpdateStrategy(
                rolling_update=RollingUpdateStatefulSetStrategy(partition=-1)
            )
        ),
        "spec.updateStrategy.rollingUpdate.partition",
        "must be >= 0",
    ),
    (
        "sts-selector-mismatch",
        lambda: _stateful_set(selector=LabelSelector(match_labels={"app": "db"})),
        "spec.template.metadata.labels",
        'Invalid value: "app=web": `selector` does not match template `labels`',
    ),
    (
        "sts-claim-access-modes",
        lambda: _stateful_set(
            volume_claim_templates=[PersistentVolumeClaim(metadata=ObjectMeta(name="www"))]
        ),
        "spec.volumeClaimTemplates[0].spec.accessModes",
        "Required value: at least 1 access mode is required",
    ),
    (
        "sts-claim-name",
        lambda: _stateful_set(volume_claim_templates=[PersistentVolumeClaim()]),
        "spec.volumeClaimTemplates[0].metadata.name",
        "Required value",
    ),
    (
        "sts-template-restart",
        lambda: _stateful_set(template=_template(restart_policy="OnFailure")),
        "spec.template.spec.restartPolicy",
        'Unsupported value: "OnFailure": supported values: "Always"',
    ),
    # Job
    (
        "job-restart-required",
        lambda: _job(restart_policy=""),
        "spec.template.spec.restartPolicy",
        'Required value: valid values: "OnFailure", "Never"',
    ),
    (
        "job-restart-always",
        lambda: _job(restart_policy="Always"),
        "spec.template.spec.restartPolicy",
        'Unsupported value: "Always": supported values: "OnFailure", "Never"',
    ),
    (
        "job-completion-mode",
        lambda: _job(completion_mode="Sometimes"),
        "spec.completionMode",
        'Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"',
    ),
    (
        "job-indexed-needs-completions",
        lambda: _job(completion_mode="Indexed", parallelism=2),
        "spec.completions",
        "Required value: when completion mode is Indexed",
    ),
    ("job-backoff", lambda: _job(backoff_limit=-1), "spec.backoffLimit", "must be >= 0"),
    ("job-parallelism", lambda: _job(parallelism=-1), "spec.parallelism", "must be >= 0"),
    (
        "job-active-deadline",
        lambda: _job(active_deadline_seconds=0),
        "spec.activeDeadlineSeconds",
        "must be >= 1",
    ),
    (
        "job-per-index-needs-indexed",
        lambda: _job(backoff_limit_per_index=1),
        "spec.backoffLimitPerIndex",
        "Invalid value: 1: requires indexed completion mode",
    ),
    (
        "job-manual-selector-required",
        lambda: _job(manual_selector=True),
        "spec.selector",
        "Required value",
    ),
    (
        "job-manual-selector-mismatch",
        lambda: _job(manual_selector=True, selector=LabelSelector(match_labels={"app": "x"})),
        "spec.template.metadata.labels",
        'Invalid value: "": `selector` does not match template `labels`',
    ),
    (
        "job-failure-policy-restart",
        lambda: _failure_policy(_exit_codes("In", 1), restart_policy="OnFailure"),
        "spec.template.spec.restartPolicy",
        'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified',
    ),
    (
        "job-failure-action",
        lambda: _failure_policy(
            PodFailurePolicyRule(
                action="Retry",
                on_exit_codes=PodFailurePolicyOnExitCodesRequirement(operator="In", values=[1]),
            )
        ),
        "spec.podFailurePolicy.rules[0].action",
        'Unsupported value: "Retry"',
    ),
    (
        "job-failure-exit-zero",
        lambda: _failure_policy(_exit_codes("In", 0)),
        "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
        "Invalid value: 0: must not be 0 for the In operator",
    ),
    (
        "job-failure-operator",
        lambda: _failure_policy(_exit_codes("Equals", 1)),
        "spec.podFailurePolicy.rules[0].onExitCodes.operator",
        'Unsupported value: "Equals": supported values: "In", "NotIn"',
    ),
    (
        "job-failure-container",
        lambda: _failure_policy(_exit_codes("In", 1, container="ghost")),
        "spec.podFailurePolicy.rules[0].onExitCodes.containerName",
        'Invalid value: "ghost"',
    ),
    (
        "job-failure-both",
        lambda: _failure_policy(
            PodFailurePolicyRule(
                action="Ignore",
                on_exit_codes=PodFailurePolicyOnExitCodesRequirement(operator="In", values=[1]),
                on_pod_conditions=[PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget")],
            )
        ),
        "spec.podFailurePolicy.rules[0]",
        'Invalid value: "": specifying one of OnExitCodes and OnPodConditions is required',
    ),
    (
        "job-fail-index-needs-per-index",
        lambda: _failure_policy(
            PodFailurePolicyRule(
                action="FailIndex",
                on_exit_codes=PodFailurePolicyOnExitCodesRequirement(operator="In", values=[1]),
            )
        ),
        "spec.podFailurePolicy.rules[0].action",
        "Forbidden: requires the backoffLimitPerIndex to be set",
    ),
    # Node and Event
    (
        "taint-effect",
        lambda: Node(
            metadata=ObjectMeta(name="n"), spec=NodeSpec(taints=[Taint(key="k", effect="NoRun")])
        ),
        "spec.taints[0].effect",
        'Unsupported value: "NoRun": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
    ),
    (
        "taint-effect-required",
        lambda: Node(metadata=ObjectMeta(name="n"), spec=NodeSpec(taints=[Taint(key="k")])),
        "spec.taints[0].effect",
        "Required value",
    ),
    (
        "taint-duplicate",
        lambda: Node(
            metadata=ObjectMeta(name="n"),
            spec=NodeSpec(
                taints=[
                    Taint(key="k", effect="NoSchedule"),
                    Taint(key="k", value="2", effect="NoSchedule"),
                ]
            ),
        ),
        "spec.taints[1]",
        'Duplicate value: "k:NoSchedule"',
    ),
    (
        "event-type",
        lambda: Event(metadata=ObjectMeta(name="e", namespace="default"), type="Bad"),
        "type",
        'Unsupported value: "Bad": supported values: "Normal", "Warning"',
    ),
]


@pytest.mark.parametrize(
    ("build", "path", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule_reports_its_error_at_the_wire_path(
    build: Callable[[], KubeObject], path: str, message: str
) -> None:
    errors = validate(build())
    at_path = [e.message for e in errors if e.field == path]
    assert any(m.startswith(message) for m in at_path), f"{path}: {message!r} not in {errors}"


def test_case_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "obj",
    [
        _pod(),
        _pod(
            init_containers=[
                _container(
                    "side",
                    restart_policy="Always",
                    readiness_probe=_probe(),
                    lifecycle=Lifecycle(pre_stop=LifecycleHandler(exec=EXEC)),
                ),
                _container("init"),
            ]
        ),
        _pod(
            containers=[
                _container(
                    ports=[ContainerPort(container_port=80, name="http")],
                    liveness_probe=Probe(http_get=HTTPGetAction(port="http")),
                    resources=ResourceRequirements(requests={"cpu": "500m"}, limits={"cpu": 1}),
                )
            ]
        ),
        _deployment(
            strategy=DeploymentStrategy(
                rolling_update=RollingUpdateDeployment(max_surge=0, max_unavailable=1)
            )
        ),
        _deployment(strategy=DeploymentStrategy(type="Recreate")),
        _stateful_set(),
        _job(restart_policy="OnFailure"),
        _job(
            pod_failure_policy=PodFailurePolicy(
                rules=[
                    PodFailurePolicyRule(
                        action="Ignore",
                        on_pod_conditions=[
                            PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget")
                        ],
                    )
                ]
            )
        ),
        _job(completion_mode="Indexed", completions=5, parallelism=3, backoff_limit_per_index=1),
        Node(
            metadata=ObjectMeta(name="n1"),
            spec=NodeSpec(taints=[Taint(key="node.kubernetes.io/unreachable", effect="NoExecute")]),
        ),
        Event(metadata=ObjectMeta(name="web.1", namespace="default"), type="Warning"),
    ],
    ids=[
        "pod",
        "sidecar",
        "named-port",
        "surge-zero",
        "recreate",
        "statefulset",
        "job",
        "job-policy",
        "indexed-job",
        "node",
        "event",
    ],
)
def test_valid_objects_report_no_errors(obj: KubeObject) -> None:
    assert validate(obj) == []


def test_every_error_is_reported_at_once() -> None:
    pod = _pod(
        containers=[
            _container(liveness_probe=_probe(period_seconds=-1)),
            Container(name="app", liveness_probe=_probe(period_seconds=-1)),
        ],
        restart_policy="Sometimes",
    )
    errors = validate(pod)
    assert (
        FieldError(field="spec.containers[0].livenessProbe.periodSeconds", message="must be >= 1")
        in errors
    )
    assert (
        FieldError(field="spec.containers[1].livenessProbe.periodSeconds", message="must be >= 1")
        in errors
    )
    assert FieldError(field="spec.containers[1].image", message="Required value") in errors
    assert FieldError(field="spec.containers[1].name", message='Duplicate value: "app"') in errors
    assert any(e.field == "spec.restartPolicy" for e in errors)
    assert str(errors[0]).startswith("spec.")


def test_manifest_with_errors_reports_camel_case_paths() -> None:
    raw = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "a", "image": "i:1"},
                {
                    "name": "b",
                    "image": "i:1",
                    "livenessProbe": {"exec": {"command": ["x"]}, "periodSeconds": -5},
                },
            ]
        },
    }
    obj = object_from_raw(raw)
    apply_defaults(obj)
    assert [str(e) for e in validate(obj)] == [
        "spec.containers[1].livenessProbe.periodSeconds: must be >= 1"
    ]


def test_stateful_set_mounts_may_name_claim_templates() -> None:
    sts = _stateful_set(
        template=_template(
            containers=[_container(volume_mounts=[VolumeMount(name="www", mount_path="/data")])]
        ),
        volume_claim_templates=[
            PersistentVolumeClaim(
                metadata=ObjectMeta(name="www"),
                spec=PersistentVolumeClaimSpec(
                    access_modes=["ReadWriteOnce"],
                    resources=VolumeResourceRequirements(requests={"storage": "1Gi"}),
                ),
            )
        ],
    )
    assert validate(sts) == []


def test_job_generated_selector_matches_its_template() -> None:
    job = _job()
    assert job.spec.selector is not None
    assert validate(job) == []
    job.spec.template.metadata.labels["batch.kubernetes.io/controller-uid"] = "someone-else"
    assert any(e.field == "spec.template.metadata.labels" for e in validate(job))
