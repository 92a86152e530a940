"""podmodel's public surface is deliberate: `__all__` is exactly the names
below, each importable, and nothing private leaks into it. Adding a public
name means adding it here too."""

from __future__ import annotations

import importlib

import podmodel

KINDS = {
    "ConfigMap",
    "CronJob",
    "DaemonSet",
    "Deployment",
    "Event",
    "Job",
    "Node",
    "Pod",
    "ReplicaSet",
    "Secret",
    "StatefulSet",
}

META = {
    "KubeObject",
    "ListMeta",
    "Model",
    "ObjectMeta",
    "OwnerReference",
    "controller_of",
    "Condition",
    "IntOrString",
    "QuantityValue",
}

POD = {
    "Affinity",
    "AppArmorProfile",
    "Capabilities",
    "ConfigMapEnvSource",
    "ConfigMapKeySelector",
    "ConfigMapVolumeSource",
    "Container",
    "ContainerKind",
    "ContainerPort",
    "ContainerState",
    "ContainerStateRunning",
    "ContainerStateTerminated",
    "ContainerStateWaiting",
    "ContainerStatus",
    "DownwardAPIVolumeFile",
    "DownwardAPIVolumeSource",
    "EmptyDirVolumeSource",
    "EnvFromSource",
    "EnvVar",
    "EnvVarSource",
    "EphemeralContainer",
    "ExecAction",
    "GRPCAction",
    "HTTPGetAction",
    "HTTPHeader",
    "HostAlias",
    "HostIP",
    "HostPathVolumeSource",
    "KeyToPath",
    "Lifecycle",
    "LifecycleHandler",
    "LocalObjectReference",
    "NodeAffinity",
    "NodeSelector",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "ObjectFieldSelector",
    "PersistentVolumeClaimVolumeSource",
    "PodAffinity",
    "PodAffinityTerm",
    "PodAntiAffinity",
    "PodDNSConfig",
    "PodDNSConfigOption",
    "PodIP",
    "PodOS",
    "PodReadinessGate",
    "PodSecurityContext",
    "PodSpec",
    "PodStatus",
    "PodTemplateSpec",
    "PreferredSchedulingTerm",
    "Probe",
    "ResourceFieldSelector",
    "ResourceRequirements",
    "SELinuxOptions",
    "SeccompProfile",
    "SecretEnvSource",
    "SecretKeySelector",
    "SecretVolumeSource",
    "SecurityContext",
    "SleepAction",
    "Sysctl",
    "TCPSocketAction",
    "Toleration",
    "TopologySpreadConstraint",
    "Volume",
    "VolumeMount",
    "WeightedPodAffinityTerm",
    "is_sidecar",
    "qos_class",
}

NODE = {"ContainerImage", "NodeAddress", "NodeSpec", "NodeStatus", "NodeSystemInfo", "Taint"}

WORKLOADS = {
    "CronJobSpec",
    "CronJobStatus",
    "JobTemplateSpec",
    "DaemonSetSpec",
    "DaemonSetStatus",
    "DaemonSetUpdateStrategy",
    "RollingUpdateDaemonSet",
    "DeploymentSpec",
    "DeploymentStatus",
    "DeploymentStrategy",
    "JobSpec",
    "JobStatus",
    "PersistentVolumeClaim",
    "PersistentVolumeClaimSpec",
    "PodFailurePolicy",
    "PodFailurePolicyOnExitCodesRequirement",
    "PodFailurePolicyOnPodConditionsPattern",
    "PodFailurePolicyRule",
    "ReplicaSetSpec",
    "ReplicaSetStatus",
    "RollingUpdateDeployment",
    "RollingUpdateStatefulSetStrategy",
    "StatefulSetOrdinals",
    "StatefulSetPersistentVolumeClaimRetentionPolicy",
    "StatefulSetSpec",
    "StatefulSetStatus",
    "StatefulSetUpdateStrategy",
    "UncountedTerminatedPods",
    "VolumeResourceRequirements",
}

EVENT = {"EventSource", "ObjectReference"}

FUNCTIONS = {
    "LabelSelector",
    "LabelSelectorRequirement",
    "parse_quantity",
    "selector_matches",
    "apply_defaults",
    "job_selector_defaults",
    "validate",
    "DecodeError",
    "ErrorReply",
    "FieldError",
    "WatchEvent",
    "decode",
    "decode_object",
    "encode",
    "kind_type",
    "known_kinds",
    "object_from_raw",
}

INTENDED = KINDS | META | POD | NODE | WORKLOADS | EVENT | FUNCTIONS


def test_all_is_exactly_the_intended_public_names() -> None:
    assert len(podmodel.__all__) == len(set(podmodel.__all__)), "a name is listed twice"
    assert set(podmodel.__all__) == INTENDED


def test_every_public_name_is_importable_and_not_private() -> None:
    for name in podmodel.__all__:
        assert not name.startswith("_")
        assert getattr(podmodel, name) is not None


def test_public_types_are_the_module_types() -> None:
    for module_name in ("pod", "node", "workloads", "event"):
        module = importlib.import_module(f"podmodel.{module_name}")
        for name in podmodel.__all__:
            if hasattr(module, name) and isinstance(getattr(module, name), type):
                assert getattr(podmodel, name) is getattr(module, name)


def test_importing_the_package_registers_every_kind() -> None:
    assert set(podmodel.known_kinds()) >= KINDS
