"""Kubernetes ContainerStatus values, built from the runtime's container
records, the prober's results and the reasons a start is being held back.

Follows kubelet's `convertToAPIContainerStatuses` and the probe manager's
`UpdatePodStatus`:

- A container the runtime has no record of waits with ContainerCreating, or
  PodInitializing when the pod has init containers; a status the API already
  showed as terminated is kept as it was.
- running -> running.startedAt; created -> waiting with no reason; exited ->
  terminated with the exit code and Completed / Error (or the runtime's own
  reason, OOMKilled); a container the runtime lost while the API showed it
  running -> terminated ContainerStatusUnknown, exit code 137.
- The attempt before the current one becomes lastState.
- A container that will be (re)started and has a recorded start problem
  (CrashLoopBackOff while backing off, ErrImageNeverPull,
  CreateContainerConfigError, ...) shows that as its waiting reason, and its
  last termination moves to lastState.
- started: running and its startupProbe (if any) has succeeded. ready: app
  containers and sidecars when started, running and their readinessProbe (if
  any) last succeeded; a regular init container once it exited 0.
  Ephemeral containers have neither.
- Init containers keep spec order; app and ephemeral containers are sorted
  by name, as kubelet sorts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from podmodel.pod import (
    Container,
    ContainerKind,
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    Pod,
    is_sidecar,
)

from services.node_agent.logic.records import NO_PROBE_RESULTS, ContainerRecord, ProbeResults
from services.node_agent.logic.timefmt import rfc3339

# Waiting reasons.
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
ERR_IMAGE_PULL = "ErrImagePull"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"
RUN_CONTAINER_ERROR = "RunContainerError"
POST_START_HOOK_ERROR = "PostStartHookError"
# Terminated reasons.
COMPLETED = "Completed"
ERROR = "Error"
OOM_KILLED = "OOMKilled"
CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown"
#: Exit code kubelet reports for a container it lost track of (SIGKILL's).
UNKNOWN_EXIT_CODE = 137


@dataclass(frozen=True, slots=True)
class WaitingReason:
    """Why a container that should start has not: kubelet's reasonCache entry
    (the last start attempt's error), e.g. CrashLoopBackOff with kubelet's
    back-off message, or ErrImageNeverPull."""

    reason: str
    message: str = ""


def restart_policy(pod: Pod) -> str:
    """The pod's restartPolicy, Always when unset (as defaulting makes it)."""
    return pod.spec.restart_policy or "Always"


def should_restart(
    pod: Pod, container: Container, kind: ContainerKind, record: ContainerRecord | None
) -> bool:
    """kubelet's ShouldContainerBeRestarted: whether a container that is not
    running is to be started (again). Never once the pod is being deleted;
    always when it never ran or is stuck created/unknown; after an exit by
    restartPolicy — Always for sidecars whatever the pod says, and never for
    ephemeral containers."""
    if pod.metadata.deletion_timestamp is not None:
        return False
    if record is None:
        return True
    if record.state == "running":
        return False
    if record.state in ("unknown", "created"):
        return True
    if kind == "ephemeral":
        return False
    if kind == "init" and is_sidecar(container):
        return True
    policy = restart_policy(pod)
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return record.exit_code != 0
    return True


def terminated_reason(record: ContainerRecord) -> str:
    """The runtime's reason if it gave one, else Completed for exit 0 and
    Error otherwise (what containerd reports)."""
    if record.reason:
        return record.reason
    return COMPLETED if record.exit_code == 0 else ERROR


def _ts(value: float | None) -> str | None:
    return rfc3339(value) if value is not None else None


def terminated_state(record: ContainerRecord) -> ContainerState:
    """The API form of an exited attempt."""
    return ContainerState(
        terminated=ContainerStateTerminated(
            exit_code=record.exit_code if record.exit_code is not None else UNKNOWN_EXIT_CODE,
            signal=record.signal,
            reason=terminated_reason(record),
            message=record.message,
            started_at=_ts(record.started_at),
            finished_at=_ts(record.finished_at),
            container_id=record.container_id,
        )
    )


def record_state(record: ContainerRecord) -> ContainerState:
    """The API state of one attempt (unknown reads as waiting, like kubelet)."""
    if record.state == "running":
        return ContainerState(running=ContainerStateRunning(started_at=_ts(record.started_at)))
    if record.state == "exited":
        return terminated_state(record)
    return ContainerState(waiting=ContainerStateWaiting())


def _lost_while_running() -> ContainerState:
    return ContainerState(
        terminated=ContainerStateTerminated(
            exit_code=UNKNOWN_EXIT_CODE,
            reason=CONTAINER_STATUS_UNKNOWN,
            message="The container could not be located when the pod was terminated",
        )
    )


def _convert(record: ContainerRecord, old: ContainerStatus | None, image: str) -> ContainerStatus:
    status = ContainerStatus(
        name=record.name,
        restart_count=record.restart_count,
        image=record.image or image,
        image_id=record.image_id,
        container_id=record.container_id,
    )
    if record.state == "unknown" and old is not None and old.state.running is not None:
        # It ran and is gone: report it stopped, not waiting, so that a
        # run-once pod is never run twice (kubelet does the same).
        status.state = _lost_while_running()
        status.restart_count = old.restart_count + 1
    else:
        status.state = record_state(record)
    if record.previous is not None:
        status.last_state = record_state(record.previous)
    return status


def _default_status(
    container: Container, old: ContainerStatus | None, default_reason: str, *, deleted: bool
) -> ContainerStatus:
    if old is not None and old.state.terminated is not None:
        # Runtime records were lost, but the API knows how it ended.
        return ContainerStatus(
            name=old.name,
            state=old.state,
            last_state=old.last_state,
            restart_count=old.restart_count,
            image=old.image,
            image_id=old.image_id,
            container_id=old.container_id,
        )
    status = ContainerStatus(
        name=container.name,
        image=container.image,
        state=ContainerState(waiting=ContainerStateWaiting(reason=default_reason)),
    )
    if old is not None:
        status.restart_count = old.restart_count
        status.last_state = old.last_state
        if old.state.running is not None and old.last_state.terminated is None:
            # It used to run and vanished without a trace: show it stopped so
            # the pod does not fall back to Pending.
            status.last_state = ContainerState(
                terminated=ContainerStateTerminated(
                    exit_code=UNKNOWN_EXIT_CODE,
                    reason=CONTAINER_STATUS_UNKNOWN,
                    message=(
                        "The container could not be located when the pod was deleted.  "
                        "The container used to be Running"
                    ),
                )
            )
            if not deleted:
                status.restart_count += 1  # not deleted, so it is being restarted
    return status


def _is_started(container: Container, status: ContainerStatus, probes: ProbeResults) -> bool:
    if status.state.running is None:
        return False
    result = probes.startup.get(status.container_id)
    if result is not None:
        return result
    # A startup probe that has not reported yet holds the container unstarted.
    return container.startup_probe is None


def _is_ready(container: Container, status: ContainerStatus, probes: ProbeResults) -> bool:
    if status.state.running is None:
        return False
    result = probes.readiness.get(status.container_id)
    if result is not None:
        return result
    # No readiness probe counts as Success; one that has not run as Failure.
    return container.readiness_probe is None


def container_statuses(
    pod: Pod,
    kind: ContainerKind,
    records: Mapping[str, ContainerRecord],
    *,
    waiting: Mapping[str, WaitingReason] | None = None,
    probes: ProbeResults = NO_PROBE_RESULTS,
) -> list[ContainerStatus]:
    """The statuses of one container list of the pod ("init", "app" or
    "ephemeral"), from the current record of each container (by name), the
    recorded start problems and the probe results. The pod's current status
    supplies what the runtime no longer knows."""
    containers: list[Container]
    old_list: list[ContainerStatus]
    if kind == "init":
        containers, old_list = pod.spec.init_containers, pod.status.init_container_statuses
    elif kind == "app":
        containers, old_list = pod.spec.containers, pod.status.container_statuses
    else:
        containers = list(pod.spec.ephemeral_containers)
        old_list = pod.status.ephemeral_container_statuses
    old_by_name = {s.name: s for s in old_list}
    default_reason = POD_INITIALIZING if pod.spec.init_containers else CONTAINER_CREATING
    waiting = waiting or {}

    out: list[ContainerStatus] = []
    for container in containers:
        old = old_by_name.get(container.name)
        record = records.get(container.name)
        if record is not None:
            status = _convert(record, old, container.image)
        else:
            status = _default_status(
                container, old, default_reason, deleted=pod.metadata.deletion_timestamp is not None
            )
        reason = waiting.get(container.name)
        if reason is not None and _shows_waiting_reason(pod, container, kind, record):
            if status.state.terminated is not None:
                status.last_state = status.state
            status.state = ContainerState(
                waiting=ContainerStateWaiting(reason=reason.reason, message=reason.message)
            )
        if kind != "ephemeral":
            status.started = _is_started(container, status, probes)
            if kind == "init" and not is_sidecar(container):
                term = status.state.terminated
                status.ready = term is not None and term.exit_code == 0
            elif status.started:
                status.ready = _is_ready(container, status, probes)
        out.append(status)
    if kind != "init":
        out.sort(key=lambda s: s.name)
    return out


def _shows_waiting_reason(
    pod: Pod, container: Container, kind: ContainerKind, record: ContainerRecord | None
) -> bool:
    if (
        kind == "init"
        and not is_sidecar(container)
        and record is not None
        and record.state == "exited"
        and record.exit_code == 0
    ):
        return False  # a finished init container is never started again
    return should_restart(pod, container, kind, record)


@dataclass(frozen=True, slots=True)
class PodContainerStatuses:
    """The three status lists of a pod."""

    init: list[ContainerStatus]
    app: list[ContainerStatus]
    ephemeral: list[ContainerStatus]

    def all(self) -> Iterable[ContainerStatus]:
        yield from self.init
        yield from self.app
        yield from self.ephemeral


def pod_container_statuses(
    pod: Pod,
    records: Iterable[ContainerRecord],
    *,
    waiting: Mapping[str, WaitingReason] | None = None,
    probes: ProbeResults = NO_PROBE_RESULTS,
) -> PodContainerStatuses:
    """Init, app and ephemeral container statuses of the pod in one call."""
    by_name = {r.name: r for r in records}
    return PodContainerStatuses(
        init=container_statuses(pod, "init", by_name, waiting=waiting, probes=probes),
        app=container_statuses(pod, "app", by_name, waiting=waiting, probes=probes),
        ephemeral=container_statuses(pod, "ephemeral", by_name, waiting=waiting, probes=probes),
    )
