"""The Pod kind and everything inside it: PodSpec, Container, probes, volumes,
security contexts, affinity, tolerations, PodStatus and container states.

Shapes follow Kubernetes core/v1 so that real manifests decode as they are.
Every attribute is the snake_case of its Kubernetes wire name; where plain
camelCase would differ from Kubernetes' spelling (`hostIP`, `containerID`,
`podIPs`...) the field names its wire form explicitly.

Defaults: a field whose Kubernetes default is a constant (probe timings,
`terminationMessagePath`, port `protocol`, `dnsPolicy`...) carries that
constant as its struct default, so every object reads the right value whether
or not `apply_defaults` ran; `omit_defaults` leaves it off the wire and any
decode restores it. Defaults that depend on other fields (imagePullPolicy,
priority, restartPolicy, which a Job must give) start empty and are filled
by `podmodel.defaults.apply_defaults`.

Decoding does no per-object Python work beyond KubeObject's: no
__post_init__ here, no conversions. Pure: no I/O.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

import msgspec

from podmodel.meta import KubeObject, Model, ObjectMeta
from podmodel.quantity import parse_quantity
from podmodel.registry import register
from podmodel.selector import LabelSelector

QuantityValue = str | int | float
"""A resource quantity as written: "100m", "1Gi", or a bare YAML number."""

IntOrString = int | str
"""Kubernetes' IntOrString: a port number or name, a count or a percentage."""

ContainerKind = Literal["init", "app", "ephemeral"]
"""Which list of the pod spec a container comes from."""

# ------------------------------------------------------------------ conditions


class Condition(Model):
    """A status condition, shared by every kind. `status` is "True", "False"
    or "Unknown". Pods use lastProbeTime, Deployments lastUpdateTime."""

    type: str
    status: str = "Unknown"
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    last_update_time: str | None = None
    last_probe_time: str | None = None
    observed_generation: int | None = None


# ------------------------------------------------------------------ env


class ObjectFieldSelector(Model):
    field_path: str = ""
    api_version: str = ""


class ResourceFieldSelector(Model):
    resource: str = ""
    container_name: str = ""
    divisor: QuantityValue | None = None


class ConfigMapKeySelector(Model):
    name: str = ""
    key: str = ""
    optional: bool | None = None


class SecretKeySelector(Model):
    name: str = ""
    key: str = ""
    optional: bool | None = None


class EnvVarSource(Model):
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: ConfigMapKeySelector | None = None
    secret_key_ref: SecretKeySelector | None = None


class EnvVar(Model):
    name: str = ""
    value: str | None = None
    value_from: EnvVarSource | None = None


class ConfigMapEnvSource(Model):
    name: str = ""
    optional: bool | None = None


class SecretEnvSource(Model):
    name: str = ""
    optional: bool | None = None


class EnvFromSource(Model):
    prefix: str = ""
    config_map_ref: ConfigMapEnvSource | None = None
    secret_ref: SecretEnvSource | None = None


# ------------------------------------------------------------------ ports, resources


class ContainerPort(Model):
    container_port: int = 0
    name: str = ""
    host_port: int = 0
    protocol: str = "TCP"
    host_ip: str = msgspec.field(default="", name="hostIP")


class ResourceRequirements(Model):
    """requests and limits by resource name ("cpu", "memory", ...)."""

    limits: dict[str, QuantityValue] = {}
    requests: dict[str, QuantityValue] = {}


# ------------------------------------------------------------------ handlers, probes


class ExecAction(Model):
    command: list[str] = []


class HTTPHeader(Model):
    name: str = ""
    value: str = ""


class HTTPGetAction(Model):
    path: str = "/"
    port: IntOrString = 0
    host: str = ""
    scheme: str = "HTTP"
    http_headers: list[HTTPHeader] = []


class TCPSocketAction(Model):
    port: IntOrString = 0
    host: str = ""


class GRPCAction(Model):
    port: int = 0
    service: str | None = None


class SleepAction(Model):
    seconds: int = 0


class LifecycleHandler(Model):
    """One hook action; exactly one of the handler fields is set."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


class Lifecycle(Model):
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None
    stop_signal: str = ""


class Probe(Model):
    """A liveness, readiness or startup probe; exactly one handler is set.
    Timings carry Kubernetes' defaults."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: int = 0
    timeout_seconds: int = 1
    period_seconds: int = 10
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None

    def handlers(self) -> list[str]:
        """Wire names of the handlers that are set (valid probes have one)."""
        found = []
        if self.exec is not None:
            found.append("exec")
        if self.http_get is not None:
            found.append("httpGet")
        if self.tcp_socket is not None:
            found.append("tcpSocket")
        if self.grpc is not None:
            found.append("grpc")
        return found


# ------------------------------------------------------------------ security


class Capabilities(Model):
    """Capability names without the CAP_ prefix, as Kubernetes writes them."""

    add: list[str] = []
    drop: list[str] = []


class SELinuxOptions(Model):
    user: str = ""
    role: str = ""
    type: str = ""
    level: str = ""


class SeccompProfile(Model):
    type: str = ""
    localhost_profile: str | None = None


class AppArmorProfile(Model):
    type: str = ""
    localhost_profile: str | None = None


class Sysctl(Model):
    name: str = ""
    value: str = ""


class SecurityContext(Model):
    """Container securityContext; its values win over the pod's, field by field."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    se_linux_options: SELinuxOptions | None = None
    seccomp_profile: SeccompProfile | None = None
    app_armor_profile: AppArmorProfile | None = None
    privileged: bool | None = None
    capabilities: Capabilities | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    proc_mount: str | None = None


class PodSecurityContext(Model):
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    se_linux_options: SELinuxOptions | None = None
    seccomp_profile: SeccompProfile | None = None
    app_armor_profile: AppArmorProfile | None = None
    fs_group: int | None = None
    fs_group_change_policy: str | None = None
    supplemental_groups: list[int] = []
    supplemental_groups_policy: str | None = None
    sysctls: list[Sysctl] = []


# ------------------------------------------------------------------ containers


class VolumeMount(Model):
    name: str = ""
    mount_path: str = ""
    read_only: bool = False
    sub_path: str = ""
    sub_path_expr: str = ""
    mount_propagation: str | None = None


class Container(Model):
    """An app, init or (through EphemeralContainer) ephemeral container.
    `restart_policy == "Always"` on an init container makes it a sidecar."""

    name: str = ""
    image: str = ""
    command: list[str] = []
    args: list[str] = []
    working_dir: str = ""
    ports: list[ContainerPort] = []
    env_from: list[EnvFromSource] = []
    env: list[EnvVar] = []
    resources: ResourceRequirements = msgspec.field(default_factory=ResourceRequirements)
    restart_policy: str | None = None
    volume_mounts: list[VolumeMount] = []
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
    termination_message_path: str = "/dev/termination-log"
    termination_message_policy: str = "File"
    image_pull_policy: str = ""
    security_context: SecurityContext | None = None
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False


class EphemeralContainer(Container):
    """A debugging container added through the ephemeralcontainers subresource.
    `target_container_name` names the container whose namespaces it shares."""

    target_container_name: str = ""


def is_sidecar(container: Container) -> bool:
    """True for a native sidecar: an init container with restartPolicy Always."""
    return container.restart_policy == "Always"


# ------------------------------------------------------------------ volumes


class EmptyDirVolumeSource(Model):
    medium: str = ""
    size_limit: QuantityValue | None = None


class HostPathVolumeSource(Model):
    path: str = ""
    type: str | None = None


class KeyToPath(Model):
    key: str = ""
    path: str = ""
    mode: int | None = None


class ConfigMapVolumeSource(Model):
    name: str = ""
    items: list[KeyToPath] = []
    default_mode: int | None = None
    optional: bool | None = None


class SecretVolumeSource(Model):
    secret_name: str = ""
    items: list[KeyToPath] = []
    default_mode: int | None = None
    optional: bool | None = None


class DownwardAPIVolumeFile(Model):
    path: str = ""
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    mode: int | None = None


class DownwardAPIVolumeSource(Model):
    items: list[DownwardAPIVolumeFile] = []
    default_mode: int | None = None


class PersistentVolumeClaimVolumeSource(Model):
    claim_name: str = ""
    read_only: bool = False


class Volume(Model):
    """A pod volume; exactly one source is set."""

    name: str = ""
    empty_dir: EmptyDirVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    downward_api: DownwardAPIVolumeSource | None = msgspec.field(default=None, name="downwardAPI")
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = None

    def sources(self) -> list[str]:
        """Wire names of the sources that are set (valid volumes have one)."""
        pairs = (
            ("emptyDir", self.empty_dir),
            ("hostPath", self.host_path),
            ("configMap", self.config_map),
            ("secret", self.secret),
            ("downwardAPI", self.downward_api),
            ("persistentVolumeClaim", self.persistent_volume_claim),
        )
        return [name for name, value in pairs if value is not None]


# ------------------------------------------------------------------ scheduling


class NodeSelectorRequirement(Model):
    key: str = ""
    operator: str = ""
    values: list[str] = []


class NodeSelectorTerm(Model):
    match_expressions: list[NodeSelectorRequirement] = []
    match_fields: list[NodeSelectorRequirement] = []


class NodeSelector(Model):
    node_selector_terms: list[NodeSelectorTerm] = []


class PreferredSchedulingTerm(Model):
    weight: int = 0
    preference: NodeSelectorTerm = msgspec.field(default_factory=NodeSelectorTerm)


class NodeAffinity(Model):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = []


class PodAffinityTerm(Model):
    label_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    namespaces: list[str] = []
    topology_key: str = ""
    match_label_keys: list[str] = []
    mismatch_label_keys: list[str] = []


class WeightedPodAffinityTerm(Model):
    weight: int = 0
    pod_affinity_term: PodAffinityTerm = msgspec.field(default_factory=PodAffinityTerm)


class PodAffinity(Model):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = []
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = []


class PodAntiAffinity(Model):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = []
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = []


class Affinity(Model):
    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAntiAffinity | None = None


class Toleration(Model):
    """operator "Equal" (the default when empty) or "Exists"; empty effect
    matches every effect; tolerationSeconds only with NoExecute."""

    key: str = ""
    operator: str = ""
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None


class TopologySpreadConstraint(Model):
    max_skew: int = 0
    topology_key: str = ""
    when_unsatisfiable: str = ""
    label_selector: LabelSelector | None = None
    min_domains: int | None = None
    node_affinity_policy: str | None = None
    node_taints_policy: str | None = None
    match_label_keys: list[str] = []


class PodReadinessGate(Model):
    condition_type: str = ""


# ------------------------------------------------------------------ pod spec


class LocalObjectReference(Model):
    name: str = ""


class HostAlias(Model):
    ip: str = ""
    hostnames: list[str] = []


class PodDNSConfigOption(Model):
    name: str = ""
    value: str | None = None


class PodDNSConfig(Model):
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[PodDNSConfigOption] = []


class PodOS(Model):
    name: str = ""


class PodSpec(Model):
    """What a pod runs and where. `restart_policy` starts empty: apply_defaults
    makes it "Always" except in Job templates, which must set it."""

    volumes: list[Volume] = []
    init_containers: list[Container] = []
    containers: list[Container] = []
    ephemeral_containers: list[EphemeralContainer] = []
    restart_policy: str = ""
    termination_grace_period_seconds: int = 30
    active_deadline_seconds: int | None = None
    dns_policy: str = "ClusterFirst"
    dns_config: PodDNSConfig | None = None
    node_selector: dict[str, str] = {}
    service_account_name: str = ""
    automount_service_account_token: bool | None = None
    node_name: str = ""
    host_network: bool = False
    host_pid: bool = msgspec.field(default=False, name="hostPID")
    host_ipc: bool = msgspec.field(default=False, name="hostIPC")
    share_process_namespace: bool | None = None
    security_context: PodSecurityContext | None = None
    image_pull_secrets: list[LocalObjectReference] = []
    hostname: str = ""
    subdomain: str = ""
    set_hostname_as_fqdn: bool | None = msgspec.field(default=None, name="setHostnameAsFQDN")
    affinity: Affinity | None = None
    scheduler_name: str = "default-scheduler"
    tolerations: list[Toleration] = []
    host_aliases: list[HostAlias] = []
    priority_class_name: str = ""
    priority: int = 0
    preemption_policy: str = "PreemptLowerPriority"
    readiness_gates: list[PodReadinessGate] = []
    runtime_class_name: str | None = None
    enable_service_links: bool | None = None
    overhead: dict[str, QuantityValue] = {}
    topology_spread_constraints: list[TopologySpreadConstraint] = []
    os: PodOS | None = None

    def all_containers(self) -> list[tuple[ContainerKind, Container]]:
        """Init, then app, then ephemeral containers, each with its kind."""
        out: list[tuple[ContainerKind, Container]] = [("init", c) for c in self.init_containers]
        out.extend(("app", c) for c in self.containers)
        out.extend(("ephemeral", c) for c in self.ephemeral_containers)
        return out

    def container(self, name: str) -> Container | None:
        """The container of any kind with this name."""
        for _, c in self.all_containers():
            if c.name == name:
                return c
        return None


class PodTemplateSpec(Model):
    """The pod a workload creates: its metadata (labels!) and spec."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)


# ------------------------------------------------------------------ pod status


class ContainerStateWaiting(Model):
    reason: str = ""
    message: str = ""


class ContainerStateRunning(Model):
    started_at: str | None = None


class ContainerStateTerminated(Model):
    exit_code: int = 0
    signal: int = 0
    reason: str = ""
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    container_id: str = msgspec.field(default="", name="containerID")


class ContainerState(Model):
    """At most one of waiting / running / terminated is set."""

    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(Model):
    name: str = ""
    state: ContainerState = msgspec.field(default_factory=ContainerState)
    last_state: ContainerState = msgspec.field(default_factory=ContainerState)
    ready: bool = False
    started: bool | None = None
    restart_count: int = 0
    image: str = ""
    image_id: str = msgspec.field(default="", name="imageID")
    container_id: str = msgspec.field(default="", name="containerID")


class PodIP(Model):
    ip: str = ""


class HostIP(Model):
    ip: str = ""


class PodStatus(Model):
    phase: str = ""
    conditions: list[Condition] = []
    message: str = ""
    reason: str = ""
    nominated_node_name: str = ""
    host_ip: str = msgspec.field(default="", name="hostIP")
    host_ips: list[HostIP] = msgspec.field(default_factory=list, name="hostIPs")
    pod_ip: str = msgspec.field(default="", name="podIP")
    pod_ips: list[PodIP] = msgspec.field(default_factory=list, name="podIPs")
    start_time: str | None = None
    init_container_statuses: list[ContainerStatus] = []
    container_statuses: list[ContainerStatus] = []
    ephemeral_container_statuses: list[ContainerStatus] = []
    qos_class: str = msgspec.field(default="", name="qosClass")

    def condition(self, type_: str) -> Condition | None:
        """The condition of this type, if present."""
        for cond in self.conditions:
            if cond.type == type_:
                return cond
        return None


# ------------------------------------------------------------------ the kind


@register("pods", "po")
class Pod(KubeObject):
    API_VERSION = "v1"
    KIND = "Pod"

    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    def all_containers(self) -> list[tuple[ContainerKind, Container]]:
        """Init, then app, then ephemeral containers, each with its kind."""
        return self.spec.all_containers()

    @property
    def is_terminating(self) -> bool:
        """Deletion was requested (deletionTimestamp set); the pod is stopping."""
        return self.metadata.deletion_timestamp is not None


# ------------------------------------------------------------------ QoS

_QOS_RESOURCES = ("cpu", "memory")


def qos_class(spec: PodSpec) -> str:
    """Guaranteed, Burstable or BestEffort by Kubernetes' rules (GetPodQOS):
    only cpu and memory of init and app containers count; a request left
    unset counts as equal to its limit (as defaulting makes it)."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for c in (*spec.init_containers, *spec.containers):
        limited = 0
        for name in _QOS_RESOURCES:
            raw_limit = c.resources.limits.get(name)
            raw_request = c.resources.requests.get(name, raw_limit)
            if raw_request is not None and (q := parse_quantity(raw_request)) > 0:
                requests[name] = requests.get(name, 0) + q
            if raw_limit is not None and (q := parse_quantity(raw_limit)) > 0:
                limited += 1
                limits[name] = limits.get(name, 0) + q
        if limited < len(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if (
        guaranteed
        and requests.keys() == limits.keys()
        and all(limits[name] == value for name, value in requests.items())
    ):
        return "Guaranteed"
    return "Burstable"
