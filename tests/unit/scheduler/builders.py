"""Small constructors of nodes, pods and snapshots for the scheduler's unit
tests, so each test reads as the cluster it describes."""

from __future__ import annotations

import random

from podmodel.meta import ObjectMeta
from podmodel.node import ContainerImage, Node, NodeSpec, NodeStatus, Taint
from podmodel.pod import (
    Affinity,
    Container,
    ContainerPort,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PodAffinity,
    PodAffinityTerm,
    PodAntiAffinity,
    PodSpec,
    PodStatus,
    PreferredSchedulingTerm,
    ResourceRequirements,
    Toleration,
    TopologySpreadConstraint,
    WeightedPodAffinityTerm,
)
from podmodel.selector import LabelSelector

from services.scheduler.cluster_snapshot import HOSTNAME_LABEL, ZONE_LABEL, ClusterSnapshot
from services.scheduler.framework import CycleState
from services.scheduler.pod_info import PodInfo
from services.scheduler.scheduling_cycle import ScheduleResult, schedule_one


def node(
    name: str,
    cpu: str = "4",
    memory: str = "32Gi",
    pods: str = "110",
    *,
    zone: str | None = None,
    labels: dict[str, str] | None = None,
    taints: list[Taint] | None = None,
    unschedulable: bool = False,
    images: dict[str, int] | None = None,
    extra: dict[str, str] | None = None,
) -> Node:
    all_labels = {HOSTNAME_LABEL: name, **(labels or {})}
    if zone is not None:
        all_labels[ZONE_LABEL] = zone
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    return Node(
        metadata=ObjectMeta(name=name, labels=all_labels),
        spec=NodeSpec(taints=taints or [], unschedulable=unschedulable),
        status=NodeStatus(
            capacity=dict(allocatable),
            allocatable=allocatable,
            images=[ContainerImage(names=[n], size_bytes=s) for n, s in (images or {}).items()],
        ),
    )


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> Taint:
    return Taint(key=key, value=value, effect=effect)


def pod(
    name: str = "p",
    cpu: str | None = "100m",
    memory: str | None = "128Mi",
    *,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    node_name: str = "",
    priority: int = 0,
    preemption_policy: str = "PreemptLowerPriority",
    tolerations: list[Toleration] | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: Affinity | None = None,
    spread: list[TopologySpreadConstraint] | None = None,
    host_ports: list[int] | None = None,
    image: str = "busybox",
    extra: dict[str, str] | None = None,
    start_time: str | None = None,
    nominated: str = "",
    terminating: bool = False,
) -> Pod:
    requests: dict[str, str | int | float] = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    requests.update(extra or {})
    ports = [ContainerPort(container_port=p, host_port=p) for p in host_ports or []]
    return Pod(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            uid=f"uid-{name}",
            labels=labels or {},
            deletion_timestamp="2024-01-01T00:00:00Z" if terminating else None,
        ),
        spec=PodSpec(
            containers=[
                Container(
                    name="c",
                    image=image,
                    resources=ResourceRequirements(requests=requests),
                    ports=ports,
                )
            ],
            node_name=node_name,
            priority=priority,
            preemption_policy=preemption_policy,
            tolerations=tolerations or [],
            node_selector=node_selector or {},
            affinity=affinity,
            topology_spread_constraints=spread or [],
        ),
        status=PodStatus(start_time=start_time, nominated_node_name=nominated),
    )


def info(p: Pod) -> PodInfo:
    return PodInfo.of(p)


def bound(p: Pod, node_name: str) -> PodInfo:
    return PodInfo.of(p).bound_to(node_name)


def snapshot(nodes: list[Node], pods: list[PodInfo] | None = None) -> ClusterSnapshot:
    return ClusterSnapshot.build(nodes, pods or [])


def cycle(snap: ClusterSnapshot, p: Pod) -> CycleState:
    return CycleState(PodInfo.of(p), snap)


def schedule(snap: ClusterSnapshot, p: Pod, seed: int = 0, **kw: object) -> ScheduleResult:
    return schedule_one(snap, PodInfo.of(p), random.Random(seed), **kw)  # type: ignore[arg-type]


def required_node_affinity(key: str, operator: str, values: list[str]) -> Affinity:
    return Affinity(
        node_affinity=NodeAffinity(
            required_during_scheduling_ignored_during_execution=NodeSelector(
                node_selector_terms=[
                    NodeSelectorTerm(
                        match_expressions=[
                            NodeSelectorRequirement(key=key, operator=operator, values=values)
                        ]
                    )
                ]
            )
        )
    )


def preferred_node_affinity(weight: int, key: str, operator: str, values: list[str]) -> Affinity:
    return Affinity(
        node_affinity=NodeAffinity(
            preferred_during_scheduling_ignored_during_execution=[
                PreferredSchedulingTerm(
                    weight=weight,
                    preference=NodeSelectorTerm(
                        match_expressions=[
                            NodeSelectorRequirement(key=key, operator=operator, values=values)
                        ]
                    ),
                )
            ]
        )
    )


def pod_term(labels: dict[str, str], topology_key: str = HOSTNAME_LABEL) -> PodAffinityTerm:
    return PodAffinityTerm(
        label_selector=LabelSelector(match_labels=labels), topology_key=topology_key
    )


def anti_affinity(labels: dict[str, str], topology_key: str = HOSTNAME_LABEL) -> Affinity:
    return Affinity(
        pod_anti_affinity=PodAntiAffinity(
            required_during_scheduling_ignored_during_execution=[pod_term(labels, topology_key)]
        )
    )


def affinity(labels: dict[str, str], topology_key: str = HOSTNAME_LABEL) -> Affinity:
    return Affinity(
        pod_affinity=PodAffinity(
            required_during_scheduling_ignored_during_execution=[pod_term(labels, topology_key)]
        )
    )


def preferred_affinity(
    weight: int, labels: dict[str, str], topology_key: str = HOSTNAME_LABEL, anti: bool = False
) -> Affinity:
    terms = [
        WeightedPodAffinityTerm(weight=weight, pod_affinity_term=pod_term(labels, topology_key))
    ]
    if anti:
        return Affinity(
            pod_anti_affinity=PodAntiAffinity(
                preferred_during_scheduling_ignored_during_execution=terms
            )
        )
    return Affinity(
        pod_affinity=PodAffinity(preferred_during_scheduling_ignored_during_execution=terms)
    )


def spread(
    labels: dict[str, str],
    topology_key: str = ZONE_LABEL,
    max_skew: int = 1,
    when: str = "DoNotSchedule",
    min_domains: int | None = None,
) -> TopologySpreadConstraint:
    return TopologySpreadConstraint(
        max_skew=max_skew,
        topology_key=topology_key,
        when_unsatisfiable=when,
        label_selector=LabelSelector(match_labels=labels),
        min_domains=min_domains,
    )
