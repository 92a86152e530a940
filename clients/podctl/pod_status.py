"""The READY, STATUS and RESTARTS columns of `get pods`, computed from a pod
(plain dict, camelCase, as the API returns it) exactly as kubectl's printPod
does (kubernetes/pkg/printers/internalversion/printers.go): the reason when
there is one (Init:1/2, Init:CrashLoopBackOff, PodInitializing,
CrashLoopBackOff, Completed, Error, Terminating), else the phase. See
K8S_SEMANTICS.md section 10. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clients.podctl.age import human_duration, parse_time

NODE_UNREACHABLE_REASON = "NodeLost"


@dataclass(frozen=True)
class PodColumns:
    ready: str
    status: str
    restarts: str


def _is_sidecar(container: dict[str, Any] | None) -> bool:
    return bool(container) and (container or {}).get("restartPolicy") == "Always"


def _finished_at(status: dict[str, Any]) -> float | None:
    last = (status.get("lastState") or {}).get("terminated")
    return parse_time(last.get("finishedAt")) if last else None


def _condition_true(pod: dict[str, Any], kind: str) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return bool(cond.get("status") == "True")
    return False


def _has_ready_condition(pod: dict[str, Any]) -> bool:
    return _condition_true(pod, "Ready")


def pod_columns(pod: dict[str, Any], now: float) -> PodColumns:
    """READY (`1/2`), STATUS and RESTARTS (`3 (2m ago)`) of one pod."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(
        1 for c in init_specs.values() if _is_sidecar(c)
    )
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None
    phase = status.get("phase") or "Pending"
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_count = len(spec.get("initContainers") or [])
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        finished = _finished_at(cs)
        if finished is not None and (last_restart is None or finished > last_restart):
            last_restart = finished
        sidecar = _is_sidecar(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            if finished is not None and (
                last_sidecar_restart is None or finished > last_sidecar_restart
            ):
                last_sidecar_restart = finished
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if not terminated.get("reason"):
                if terminated.get("signal"):
                    reason = f"Init:Signal:{terminated['signal']}"
                else:
                    reason = f"Init:ExitCode:{terminated.get('exitCode') or 0}"
            else:
                reason = "Init:" + terminated["reason"]
        elif (
            waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing"
        ):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{init_count}"
        initializing = True
        break

    if not initializing or _condition_true(pod, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            finished = _finished_at(cs)
            if finished is not None and (last_restart is None or finished > last_restart):
                last_restart = finished
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode') or 0}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_ready_condition(pod) else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == NODE_UNREACHABLE_REASON:
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    return PodColumns(ready=f"{ready}/{total}", status=reason, restarts=restarts_text)


def pod_status(pod: dict[str, Any], now: float = 0.0) -> str:
    """Only the STATUS column."""
    return pod_columns(pod, now).status


def pod_is_ready(pod: dict[str, Any]) -> bool:
    return _has_ready_condition(pod)
