"""Pod phase and the kubelet-owned pod conditions, from the container
statuses: one pure function each, the single source of both.

Phase (K8S_SEMANTICS.md section 1; kubelet's `getPhase`):

- A regular init container failed and restartPolicy is Never -> Failed.
- A regular init container not done, or a sidecar not yet started while no
  app container has run -> Pending. An app container waiting that never ran
  -> Pending.
- Any app container running -> Running.
- All app containers stopped: when the pod is terminal (deleted, past its
  deadline, or finished) Succeeded if all exited 0, else Failed; otherwise
  Always -> Running (they restart), all exited 0 -> Succeeded, Never ->
  Failed, OnFailure -> Running.
- Sidecars (restartable init containers) count only while they gate
  initialisation: running or stopped, they never hold a pod in Running and
  never keep a Job's pod from completing.
- A terminal phase never changes back.

Whether a terminal phase may be *written* yet is the status builder's
concern (`status_merge`): not while containers could still be running.

Conditions (kubelet's status/generate.go), in this order: PodScheduled,
PodReadyToStartContainers, Initialized (ContainersNotInitialized),
ContainersReady (ContainersNotReady), Ready (ContainersNotReady or
ReadinessGatesNotReady). Messages are kubelet's, lists printed as Go prints
them (`[app sidecar]`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from podmodel.pod import Condition, ContainerStatus, Pod, PodSpec, is_sidecar

from services.node_agent.logic.container_status import PodContainerStatuses, restart_policy

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED})

# Condition types.
POD_SCHEDULED = "PodScheduled"
POD_READY_TO_START_CONTAINERS = "PodReadyToStartContainers"
INITIALIZED = "Initialized"
CONTAINERS_READY = "ContainersReady"
READY = "Ready"
#: Conditions the node-agent owns and writes, in the order it writes them.
KUBELET_CONDITIONS = (
    POD_SCHEDULED,
    POD_READY_TO_START_CONTAINERS,
    INITIALIZED,
    CONTAINERS_READY,
    READY,
)

# Condition reasons.
CONTAINERS_NOT_INITIALIZED = "ContainersNotInitialized"
CONTAINERS_NOT_READY = "ContainersNotReady"
READINESS_GATES_NOT_READY = "ReadinessGatesNotReady"
POD_COMPLETED = "PodCompleted"
POD_FAILED = "PodFailed"


def is_terminal(phase: str) -> bool:
    return phase in TERMINAL_PHASES


def _find(statuses: Iterable[ContainerStatus], name: str) -> ContainerStatus | None:
    for status in statuses:
        if status.name == name:
            return status
    return None


def any_app_container_started(spec: PodSpec, statuses: Iterable[ContainerStatus]) -> bool:
    """An app container is running or has run: initialisation happened
    (kubelet's HasAnyRegularContainerStarted)."""
    names = {c.name for c in spec.containers}
    return any(
        s.name in names and (s.state.running is not None or s.state.terminated is not None)
        for s in statuses
    )


def pod_phase(pod: Pod, statuses: PodContainerStatuses, *, pod_is_terminal: bool = False) -> str:
    """The phase the pod's container statuses imply. `pod_is_terminal`: the
    pod will not run again (deleted, past its deadline, or its containers are
    done), so stopped containers mean Succeeded or Failed whatever the
    restartPolicy. The pod's current terminal phase is kept."""
    if is_terminal(pod.status.phase):
        return pod.status.phase
    spec = pod.spec
    policy = restart_policy(pod)

    pending_init = 0
    pending_sidecars = 0
    failed_init = 0
    for container in spec.init_containers:
        status = _find(statuses.init, container.name)
        if status is None:
            # No status yet: initialisation has not got this far.
            if is_sidecar(container):
                pending_sidecars += 1
            else:
                pending_init += 1
            continue
        state = status.state
        if is_sidecar(container):
            # Pending until started; an exited or restarting sidecar is ignored.
            if (state.running is not None and not status.started) or (
                state.waiting is not None and status.last_state.terminated is None
            ):
                pending_sidecars += 1
            continue
        if state.running is not None:
            pending_init += 1
        elif state.terminated is not None:
            if state.terminated.exit_code != 0:
                failed_init += 1
        elif state.waiting is not None and status.last_state.terminated is not None:
            if status.last_state.terminated.exit_code != 0:
                failed_init += 1
        else:
            pending_init += 1

    unknown = running = waiting = stopped = succeeded = 0
    for container in spec.containers:
        status = _find(statuses.app, container.name)
        if status is None:
            unknown += 1
        elif status.state.running is not None:
            running += 1
        elif status.state.terminated is not None:
            stopped += 1
            if status.state.terminated.exit_code == 0:
                succeeded += 1
        elif status.state.waiting is not None:
            if status.last_state.terminated is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if failed_init > 0 and policy == "Never":
        return FAILED
    if pending_init > 0 or (
        pending_sidecars > 0 and not any_app_container_started(spec, statuses.app)
    ):
        return PENDING
    if waiting > 0:
        return PENDING
    if running > 0 and unknown == 0:
        return RUNNING
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return SUCCEEDED if stopped == succeeded else FAILED
        if policy == "Always":
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        if policy == "Never":
            return FAILED
        return RUNNING
    return PENDING


# ------------------------------------------------------------------ conditions


def _go_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"


def initialized_condition(spec: PodSpec, statuses: PodContainerStatuses, phase: str) -> Condition:
    """Initialized: every regular init container exited 0 and every sidecar
    started — or an app container has run already (sidecars restarting later
    do not un-initialise a pod)."""
    unknown: list[str] = []
    incomplete: list[str] = []
    for container in spec.init_containers:
        status = _find(statuses.init, container.name)
        if status is None:
            unknown.append(container.name)
        elif (is_sidecar(container) and not status.started) or (
            not is_sidecar(container) and not status.ready
        ):
            incomplete.append(container.name)
    if phase == SUCCEEDED and not unknown:
        return Condition(type=INITIALIZED, status="True", reason=POD_COMPLETED)
    if any_app_container_started(spec, statuses.app):
        return Condition(type=INITIALIZED, status="True")
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if incomplete:
        messages.append(f"containers with incomplete status: {_go_list(incomplete)}")
    if messages:
        return Condition(
            type=INITIALIZED,
            status="False",
            reason=CONTAINERS_NOT_INITIALIZED,
            message=", ".join(messages),
        )
    return Condition(type=INITIALIZED, status="True")


def containers_ready_condition(
    spec: PodSpec, statuses: PodContainerStatuses, phase: str
) -> Condition:
    """ContainersReady: every app container and every sidecar is ready."""
    unknown: list[str] = []
    unready: list[str] = []
    for container in spec.init_containers:
        if not is_sidecar(container):
            continue
        status = _find(statuses.init, container.name)
        if status is None:
            unknown.append(container.name)
        elif not status.ready:
            unready.append(container.name)
    for container in spec.containers:
        status = _find(statuses.app, container.name)
        if status is None:
            unknown.append(container.name)
        elif not status.ready:
            unready.append(container.name)
    if (phase == SUCCEEDED and not unknown) or phase == FAILED:
        reason = POD_COMPLETED if phase == SUCCEEDED else POD_FAILED
        return Condition(type=CONTAINERS_READY, status="False", reason=reason)
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_go_list(unready)}")
    if messages:
        return Condition(
            type=CONTAINERS_READY,
            status="False",
            reason=CONTAINERS_NOT_READY,
            message=", ".join(messages),
        )
    return Condition(type=CONTAINERS_READY, status="True")


def ready_condition(
    spec: PodSpec,
    statuses: PodContainerStatuses,
    phase: str,
    other_conditions: Sequence[Condition],
) -> Condition:
    """Ready: ContainersReady, and every readinessGate's condition True."""
    containers_ready = containers_ready_condition(spec, statuses, phase)
    if containers_ready.status != "True":
        return Condition(
            type=READY,
            status=containers_ready.status,
            reason=containers_ready.reason,
            message=containers_ready.message,
        )
    messages = []
    for gate in spec.readiness_gates:
        cond = next((c for c in other_conditions if c.type == gate.condition_type), None)
        if cond is None:
            messages.append(
                f'corresponding condition of pod readiness gate "{gate.condition_type}" '
                "does not exist."
            )
        elif cond.status != "True":
            messages.append(
                f'the status of pod readiness gate "{gate.condition_type}" is not "True", '
                f"but {cond.status}"
            )
    if messages:
        return Condition(
            type=READY,
            status="False",
            reason=READINESS_GATES_NOT_READY,
            message=", ".join(messages),
        )
    return Condition(type=READY, status="True")


def pod_conditions(
    pod: Pod,
    statuses: PodContainerStatuses,
    phase: str,
    *,
    sandbox_ready: bool,
) -> list[Condition]:
    """The kubelet-owned conditions in order, followed by the pod's other
    conditions (readiness gates, DisruptionTarget...) as they are. No times
    here: `status_merge.with_transition_times` sets them."""
    others = [c for c in pod.status.conditions if c.type not in KUBELET_CONDITIONS]
    spec = pod.spec
    conditions = [
        # On this node, so scheduled (static pods never pass the scheduler).
        Condition(type=POD_SCHEDULED, status="True"),
        Condition(type=POD_READY_TO_START_CONTAINERS, status="True" if sandbox_ready else "False"),
        initialized_condition(spec, statuses, phase),
        containers_ready_condition(spec, statuses, phase),
        ready_condition(spec, statuses, phase, others),
    ]
    conditions.extend(others)
    return conditions
