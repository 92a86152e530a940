"""What controllers read from a pod's status: active or terminal, ready and
since when, available after minReadySeconds, restarts, and the order in which
Kubernetes prefers to delete pods.

Owns these predicates so every controller judges pods alike (Kubernetes'
`controller.IsPodActive`, `podutil.IsPodReady/IsPodAvailable` and
`ActivePodsWithRanks`). Pure: `now` is always passed in.
"""

from __future__ import annotations

import math
from datetime import datetime

from podmodel.pod import Pod

from services.workload_controller.logic.timestamps import EPOCH_MIN, parse_time

POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_terminal(pod: Pod) -> bool:
    """Succeeded or Failed: the pod will never run again."""
    return pod.status.phase in ("Succeeded", "Failed")


def is_active(pod: Pod) -> bool:
    """Neither terminal nor being deleted: it counts toward a replica count."""
    return pod.metadata.deletion_timestamp is None and not is_terminal(pod)


def is_terminating(pod: Pod) -> bool:
    """Being deleted (deletionTimestamp set) and not yet terminal."""
    return pod.metadata.deletion_timestamp is not None and not is_terminal(pod)


def is_ready(pod: Pod) -> bool:
    """The Ready condition is True."""
    for cond in pod.status.conditions:
        if cond.type == "Ready":
            return cond.status == "True"
    return False


def ready_since(pod: Pod) -> datetime | None:
    """When the Ready condition last turned True (None if not ready)."""
    for cond in pod.status.conditions:
        if cond.type == "Ready":
            return parse_time(cond.last_transition_time) if cond.status == "True" else None
    return None


def is_available(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for more than minReadySeconds (IsPodAvailable: strictly before now)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() > min_ready_seconds


def seconds_until_available(pod: Pod, min_ready_seconds: int, now: datetime) -> float | None:
    """For a ready pod that is not yet available: seconds until it will be.
    None when it is already available or not ready at all."""
    if min_ready_seconds <= 0 or not is_ready(pod):
        return None
    since = ready_since(pod)
    if since is None:
        return None
    left = min_ready_seconds - (now - since).total_seconds()
    return left if left >= 0 else None


def is_running_and_ready(pod: Pod) -> bool:
    """Phase Running and Ready (what StatefulSets wait for)."""
    return pod.status.phase == "Running" and is_ready(pod)


def max_container_restarts(pod: Pod) -> int:
    """The highest restartCount among its init and app containers."""
    counts = [s.restart_count for s in pod.status.container_statuses]
    counts.extend(s.restart_count for s in pod.status.init_container_statuses)
    return max(counts, default=0)


def total_container_restarts(pod: Pod) -> int:
    """Sum of restartCount over init and app containers."""
    return sum(s.restart_count for s in pod.status.container_statuses) + sum(
        s.restart_count for s in pod.status.init_container_statuses
    )


def _deletion_cost(pod: Pod) -> int:
    raw = pod.metadata.annotations.get(POD_DELETION_COST_ANNOTATION)
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        return 0


def _log_age_rank(moment: datetime | None, now: datetime) -> int:
    """Kubernetes' LogarithmicScaleDown bucket: floor(log2(age in ns)); a
    missing time is -2 (sorts first), a future or zero age -1."""
    if moment is None or moment == EPOCH_MIN:
        return -2
    age_ns = (now - moment).total_seconds() * 1e9
    if age_ns <= 0:
        return -1
    return int(math.log2(age_ns))


def deletion_order_key(
    pod: Pod, now: datetime, rank: int = 0
) -> tuple[int, int, int, int, int, int, int, int, str]:
    """Sort key: pods that sort first are deleted first. Kubernetes'
    ActivePodsWithRanks order: unscheduled < scheduled; Pending < Unknown <
    Running; not ready < ready; lower pod-deletion-cost; more pods of the same
    owner on its node (`rank`) first; ready for a shorter time first (by
    log2 buckets); more container restarts first; newer first (log2 buckets);
    uid as a stable tie-break (Kubernetes' tie-break is equally arbitrary)."""
    ready = is_ready(pod)
    ready_rank = _log_age_rank(ready_since(pod), now) if ready else 0
    created = parse_time(pod.metadata.creation_timestamp)
    return (
        1 if pod.spec.node_name else 0,
        _PHASE_ORDINAL.get(pod.status.phase, 0),
        1 if ready else 0,
        _deletion_cost(pod),
        -rank,
        ready_rank,
        -max_container_restarts(pod),
        _log_age_rank(created, now),
        pod.metadata.uid,
    )


def finished_at(pod: Pod) -> datetime | None:
    """When a finished pod finished: the latest container termination, else
    its deletion or creation time (Kubernetes' getFinishedTime falls back
    similarly)."""
    latest: datetime | None = None
    for status in (*pod.status.container_statuses, *pod.status.init_container_statuses):
        term = status.state.terminated
        if term is None:
            continue
        moment = parse_time(term.finished_at)
        if moment is not None and (latest is None or moment > latest):
            latest = moment
    if latest is not None:
        return latest
    return parse_time(pod.metadata.deletion_timestamp) or parse_time(
        pod.metadata.creation_timestamp
    )
