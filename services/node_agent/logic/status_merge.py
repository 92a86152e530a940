"""The full PodStatus the node-agent writes, and whether writing it would
change anything.

`generate_pod_status` is kubelet's generateAPIPodStatus together with the
status manager's merge rules, as one pure function:

- container statuses from the runtime records, probe results and start
  problems (`container_status`);
- the phase (`phase.pod_phase`), forced to Failed with the reason when the
  pod worker says so (DeadlineExceeded); a terminal phase is sticky, and a
  pod only *becomes* terminal once none of its containers can still be
  running (so a Job's pod turns Succeeded after its sidecars stopped);
- once a pod that will not run again has nothing running, containers still
  shown waiting read terminated (ContainerStatusUnknown, 137) and the phase
  is terminal whatever the restartPolicy (kubelet's TerminatePod);
- reason and message kept while the phase stays the same;
- conditions in kubelet's order, lastTransitionTime kept when a
  condition's status did not change, other writers' conditions preserved;
- startTime set once, qosClass, podIP(s) from the sandbox (kept once the
  sandbox is gone), hostIP(s).

`status_equal_for_write` is kubelet's isPodStatusByKubeletEqual: condition
timestamps alone never cause a write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence

from podmodel.pod import (
    Condition,
    ContainerState,
    ContainerStateTerminated,
    ContainerStatus,
    HostIP,
    Pod,
    PodIP,
    PodStatus,
    qos_class,
)

from services.node_agent.logic.actions import PodActions
from services.node_agent.logic.container_status import (
    CONTAINER_STATUS_UNKNOWN,
    UNKNOWN_EXIT_CODE,
    PodContainerStatuses,
    WaitingReason,
    pod_container_statuses,
)
from services.node_agent.logic.phase import (
    FAILED,
    KUBELET_CONDITIONS,
    PENDING,
    is_terminal,
    pod_conditions,
    pod_phase,
)
from services.node_agent.logic.records import (
    NO_PROBE_RESULTS,
    ContainerRecord,
    ProbeResults,
    SandboxRecord,
)
from services.node_agent.logic.timefmt import rfc3339


def with_transition_times(
    conditions: Sequence[Condition], old: Sequence[Condition], now: float
) -> list[Condition]:
    """Set lastTransitionTime on the kubelet-owned conditions: the old time
    when the status is unchanged, else `now`. Other conditions pass as they
    are (their writers own their times)."""
    old_by_type = {c.type: c for c in old}
    stamp = rfc3339(now)
    out = []
    for cond in conditions:
        if cond.type in KUBELET_CONDITIONS:
            previous = old_by_type.get(cond.type)
            if previous is not None and previous.status == cond.status:
                when = previous.last_transition_time or stamp
            else:
                when = stamp
            cond = Condition(
                type=cond.type,
                status=cond.status,
                reason=cond.reason,
                message=cond.message,
                last_transition_time=when,
                last_probe_time=cond.last_probe_time,
            )
        out.append(cond)
    return out


def _lost(status: ContainerStatus) -> ContainerStatus:
    return ContainerStatus(
        name=status.name,
        state=ContainerState(
            terminated=ContainerStateTerminated(
                exit_code=UNKNOWN_EXIT_CODE,
                reason=CONTAINER_STATUS_UNKNOWN,
                message="The container could not be located when the pod was terminated",
            )
        ),
        last_state=status.last_state,
        ready=False,
        started=status.started if status.started is None else False,
        restart_count=status.restart_count,
        image=status.image,
        image_id=status.image_id,
        container_id=status.container_id,
    )


def _has_initialized(pod: Pod, statuses: PodContainerStatuses) -> bool:
    if not pod.spec.init_containers:
        return True
    if any(s.last_state.terminated is not None or s.state.waiting is None for s in statuses.app):
        return True
    if statuses.init:
        last = statuses.init[-1].state.terminated
        return last is not None and last.exit_code == 0
    return False


def finished_container_statuses(pod: Pod, statuses: PodContainerStatuses) -> PodContainerStatuses:
    """The statuses of a pod whose containers are all stopped for good
    (kubelet's status manager TerminatePod): a container still shown waiting
    is reported terminated, ContainerStatusUnknown with exit code 137, so a
    pod that never finished its work never reads as Succeeded. App
    containers only once the pod initialised; init containers up to the last
    one that ever started (at least the first)."""
    app = statuses.app
    if _has_initialized(pod, statuses):
        app = [s if s.state.terminated is not None else _lost(s) for s in app]
    init = list(statuses.init)
    attempted = 1 if init else 0
    for i in range(len(init) - 1, -1, -1):
        if init[i].state.waiting is None or init[i].last_state.terminated is not None:
            attempted = i + 1
            break
    for i in range(attempted):
        if init[i].state.terminated is None:
            init[i] = _lost(init[i])
    return PodContainerStatuses(init=init, app=app, ephemeral=statuses.ephemeral)


def generate_pod_status(
    pod: Pod,
    records: Iterable[ContainerRecord],
    *,
    now: float,
    sandbox: SandboxRecord | None,
    probes: ProbeResults = NO_PROBE_RESULTS,
    waiting: Mapping[str, WaitingReason] | None = None,
    actions: PodActions | None = None,
    host_ips: Sequence[str] = (),
) -> PodStatus:
    """The pod's status from what the node-agent observed. `waiting` holds
    the last start problem per container (ErrImageNeverPull,
    CreateContainerConfigError, ...); the back-off holds and the terminal
    verdict come from this pass's `actions`. `host_ips`: the node's
    addresses (empty keeps the pod's)."""
    records = list(records)
    old = pod.status
    reasons = dict(waiting or {})
    if actions is not None:
        reasons.update(actions.waiting_reasons())
    statuses = pod_container_statuses(pod, records, waiting=reasons, probes=probes)

    pod_is_terminal = (
        actions.pod_terminal
        if actions is not None
        else pod.metadata.deletion_timestamp is not None or is_terminal(old.phase)
    )
    could_run = any(r.could_be_running for r in records)
    finished = pod_is_terminal and not could_run
    if finished:
        statuses = finished_container_statuses(pod, statuses)
    phase = pod_phase(pod, statuses, pod_is_terminal=pod_is_terminal)
    if finished and not is_terminal(phase):
        phase = FAILED  # a pod that will never run again ends terminal
    reason, message = "", ""
    if actions is not None and actions.phase_reason and not is_terminal(old.phase):
        phase, reason, message = FAILED, actions.phase_reason, actions.phase_message
    conditions = pod_conditions(
        pod, statuses, phase, sandbox_ready=sandbox is not None and sandbox.ready
    )

    if is_terminal(phase) and not is_terminal(old.phase) and could_run:
        # Never report terminal while a container may still hold resources.
        phase, reason, message = old.phase or PENDING, old.reason, old.message
    elif phase == old.phase and not reason:
        reason, message = old.reason, old.message

    qos = old.qos_class
    if not qos:
        with contextlib.suppress(ValueError):
            qos = qos_class(pod.spec)

    pod_ips = list(sandbox.pod_ips) if sandbox is not None and sandbox.pod_ips else []
    return PodStatus(
        phase=phase,
        conditions=with_transition_times(conditions, old.conditions, now),
        message=message,
        reason=reason,
        nominated_node_name=old.nominated_node_name,
        host_ip=host_ips[0] if host_ips else old.host_ip,
        host_ips=[HostIP(ip=ip) for ip in host_ips] if host_ips else list(old.host_ips),
        pod_ip=pod_ips[0] if pod_ips else old.pod_ip,
        pod_ips=[PodIP(ip=ip) for ip in pod_ips] if pod_ips else list(old.pod_ips),
        start_time=old.start_time or rfc3339(now),
        init_container_statuses=statuses.init,
        container_statuses=statuses.app,
        ephemeral_container_statuses=statuses.ephemeral,
        qos_class=qos,
    )


def _kubelet_conditions(status: PodStatus) -> dict[str, tuple[str, str, str]]:
    return {
        c.type: (c.status, c.reason, c.message)
        for c in status.conditions
        if c.type in KUBELET_CONDITIONS
    }


def status_equal_for_write(old: PodStatus, new: PodStatus) -> bool:
    """True when writing `new` over `old` would change nothing the
    node-agent owns: kubelet conditions compare by type, status, reason and
    message (not their times), everything else field by field; other
    writers' conditions are theirs and do not count."""
    if _kubelet_conditions(old) != _kubelet_conditions(new):
        return False
    return _without_conditions(old) == _without_conditions(new)


def _without_conditions(status: PodStatus) -> PodStatus:
    return PodStatus(
        phase=status.phase,
        message=status.message,
        reason=status.reason,
        nominated_node_name=status.nominated_node_name,
        host_ip=status.host_ip,
        host_ips=status.host_ips,
        pod_ip=status.pod_ip,
        pod_ips=status.pod_ips,
        start_time=status.start_time,
        init_container_statuses=status.init_container_statuses,
        container_statuses=status.container_statuses,
        ephemeral_container_statuses=status.ephemeral_container_statuses,
        qos_class=status.qos_class,
    )
