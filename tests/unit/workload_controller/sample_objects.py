"""Plain model objects for the workload-controller plan tests: pods in given
states, workloads with sensible specs, and a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from podmodel.defaults import apply_defaults, job_selector_defaults
from podmodel.meta import ObjectMeta, OwnerReference
from podmodel.pod import (
    Condition,
    Container,
    ContainerState,
    ContainerStateTerminated,
    ContainerStatus,
    Pod,
    PodSpec,
    PodTemplateSpec,
)
from podmodel.selector import LabelSelector
from podmodel.workloads import (
    Deployment,
    DeploymentSpec,
    DeploymentStrategy,
    Job,
    JobSpec,
    ReplicaSet,
    ReplicaSetSpec,
    RollingUpdateDeployment,
    StatefulSet,
    StatefulSetSpec,
)

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def ts(offset_s: float = 0.0) -> str:
    """RFC 3339 for NOW + offset_s."""
    return (NOW + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def template(labels: dict[str, str] | None = None, image: str = "nginx:1.25") -> PodTemplateSpec:
    return PodTemplateSpec(
        metadata=ObjectMeta(labels=dict(labels or {"app": "web"})),
        spec=PodSpec(containers=[Container(name="main", image=image)]),
    )


def owner_ref(kind: str, name: str, uid: str, api_version: str = "apps/v1") -> OwnerReference:
    return OwnerReference(
        api_version=api_version,
        kind=kind,
        name=name,
        uid=uid,
        controller=True,
        block_owner_deletion=True,
    )


def pod(
    name: str,
    *,
    owner: OwnerReference | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    phase: str = "Running",
    ready: bool = True,
    ready_since: float = -3600.0,
    node: str = "node-1",
    created: float = -3600.0,
    restarts: int = 0,
    deleting: bool = False,
    namespace: str = "default",
    uid: str | None = None,
    exit_code: int | None = None,
    finished: float | None = None,
) -> Pod:
    """A pod in the given state. `exit_code` adds a terminated container."""
    conditions = [
        Condition(
            type="Ready",
            status="True" if ready else "False",
            last_transition_time=ts(ready_since),
        )
    ]
    state = ContainerState()
    if exit_code is not None:
        state = ContainerState(
            terminated=ContainerStateTerminated(
                exit_code=exit_code,
                reason="Completed" if exit_code == 0 else "Error",
                finished_at=ts(finished if finished is not None else 0.0),
            )
        )
    p = Pod(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            uid=uid or f"uid-{name}",
            labels=dict(labels if labels is not None else {"app": "web"}),
            annotations=dict(annotations or {}),
            owner_references=[owner] if owner is not None else [],
            creation_timestamp=ts(created),
            deletion_timestamp=ts(-1) if deleting else None,
        ),
        spec=PodSpec(containers=[Container(name="main", image="nginx:1.25")], node_name=node),
    )
    p.status.phase = phase
    p.status.conditions = conditions
    p.status.container_statuses = [
        ContainerStatus(name="main", ready=ready, restart_count=restarts, state=state)
    ]
    return p


def replica_set(
    name: str = "web-abc",
    replicas: int = 3,
    *,
    uid: str = "rs-uid",
    labels: dict[str, str] | None = None,
    min_ready_seconds: int = 0,
    generation: int = 1,
) -> ReplicaSet:
    labels = labels or {"app": "web"}
    rs = ReplicaSet(
        metadata=ObjectMeta(name=name, namespace="default", uid=uid, generation=generation),
        spec=ReplicaSetSpec(
            replicas=replicas,
            min_ready_seconds=min_ready_seconds,
            selector=LabelSelector(match_labels=dict(labels)),
            template=template(labels),
        ),
    )
    apply_defaults(rs)
    return rs


def deployment(
    name: str = "web",
    replicas: int = 10,
    *,
    uid: str = "dep-uid",
    strategy: str = "RollingUpdate",
    max_surge: int | str = "25%",
    max_unavailable: int | str = "25%",
    image: str = "nginx:1.25",
    generation: int = 1,
    revision_history_limit: int = 10,
    progress_deadline_seconds: int = 600,
) -> Deployment:
    d = Deployment(
        metadata=ObjectMeta(
            name=name,
            namespace="default",
            uid=uid,
            generation=generation,
            creation_timestamp=ts(-7200),
        ),
        spec=DeploymentSpec(
            replicas=replicas,
            selector=LabelSelector(match_labels={"app": name}),
            template=template({"app": name}, image=image),
            strategy=DeploymentStrategy(
                type=strategy,
                rolling_update=(
                    RollingUpdateDeployment(max_surge=max_surge, max_unavailable=max_unavailable)
                    if strategy == "RollingUpdate"
                    else None
                ),
            ),
            revision_history_limit=revision_history_limit,
            progress_deadline_seconds=progress_deadline_seconds,
        ),
    )
    apply_defaults(d)
    return d


def stateful_set(
    name: str = "web",
    replicas: int = 3,
    *,
    uid: str = "sts-uid",
    policy: str = "OrderedReady",
    image: str = "nginx:1.25",
) -> StatefulSet:
    sts = StatefulSet(
        metadata=ObjectMeta(name=name, namespace="default", uid=uid, generation=1),
        spec=StatefulSetSpec(
            replicas=replicas,
            selector=LabelSelector(match_labels={"app": name}),
            template=template({"app": name}, image=image),
            service_name="nginx",
            pod_management_policy=policy,
        ),
    )
    apply_defaults(sts)
    return sts


def job(
    name: str = "pi",
    *,
    completions: int | None = 1,
    parallelism: int | None = 1,
    indexed: bool = False,
    backoff_limit: int = 6,
    restart_policy: str = "Never",
    uid: str = "job-uid",
) -> Job:
    j = Job(
        metadata=ObjectMeta(name=name, namespace="default", uid=uid, generation=1),
        spec=JobSpec(
            completions=completions,
            parallelism=parallelism,
            completion_mode="Indexed" if indexed else "NonIndexed",
            backoff_limit=backoff_limit,
            template=PodTemplateSpec(
                spec=PodSpec(
                    containers=[Container(name="main", image="busybox")],
                    restart_policy=restart_policy,
                )
            ),
        ),
    )
    apply_defaults(j)
    job_selector_defaults(j)
    return j
