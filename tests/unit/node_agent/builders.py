"""Small constructors of pods, container records and container statuses
for the node-agent logic tests, so each table row reads as the situation
it describes."""

from __future__ import annotations

from podmodel.meta import ObjectMeta
from podmodel.pod import (
    Container,
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    ExecAction,
    Pod,
    PodSpec,
    Probe,
)

from services.node_agent.logic.records import ContainerRecord

T0 = 1_700_000_000.0
UID = "uid-1"


def probe() -> Probe:
    return Probe(exec=ExecAction(command=["true"]))


def container(name: str, **kw: object) -> Container:
    return Container(name=name, image="busybox", **kw)  # type: ignore[arg-type]


def sidecar(name: str, **kw: object) -> Container:
    return container(name, restart_policy="Always", **kw)


def make_pod(
    containers: list[Container] | None = None,
    init: list[Container] | None = None,
    *,
    restart_policy: str = "Always",
    name: str = "web-0",
    **spec_kw: object,
) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace="default", uid=UID),
        spec=PodSpec(
            containers=containers if containers is not None else [container("app")],
            init_containers=init or [],
            restart_policy=restart_policy,
            node_name="node-1",
            **spec_kw,  # type: ignore[arg-type]
        ),
    )


# ------------------------------------------------------------------ records


def running(name: str, *, at: float = T0, restarts: int = 0, cid: str = "") -> ContainerRecord:
    return ContainerRecord(
        name=name,
        state="running",
        container_id=cid or f"sim://{name}-{restarts}",
        created_at=at,
        started_at=at,
        restart_count=restarts,
    )


def exited(
    name: str,
    code: int = 0,
    *,
    at: float = T0,
    ran: float = 1.0,
    restarts: int = 0,
    reason: str = "",
) -> ContainerRecord:
    return ContainerRecord(
        name=name,
        state="exited",
        container_id=f"sim://{name}-{restarts}",
        created_at=at,
        started_at=at,
        finished_at=at + ran,
        exit_code=code,
        reason=reason,
        restart_count=restarts,
    )


# ------------------------------------------------------------------ API statuses


def st_running(name: str, *, started: bool = True, ready: bool = True) -> ContainerStatus:
    return ContainerStatus(
        name=name,
        state=ContainerState(running=ContainerStateRunning(started_at="2023-11-14T22:13:20Z")),
        started=started,
        ready=ready,
    )


def st_terminated(name: str, code: int = 0, *, ready: bool = False) -> ContainerStatus:
    """Terminated; pass ready=True for a regular init container that exited 0."""
    return ContainerStatus(
        name=name,
        state=ContainerState(terminated=ContainerStateTerminated(exit_code=code)),
        started=False,
        ready=ready,
    )


def st_waiting(
    name: str, reason: str = "PodInitializing", *, last: int | None = None
) -> ContainerStatus:
    status = ContainerStatus(
        name=name, state=ContainerState(waiting=ContainerStateWaiting(reason=reason)), started=False
    )
    if last is not None:
        status.last_state = ContainerState(terminated=ContainerStateTerminated(exit_code=last))
    return status
