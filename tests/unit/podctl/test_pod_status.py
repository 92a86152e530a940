"""The STATUS / READY / RESTARTS columns follow K8S_SEMANTICS section 10."""

from __future__ import annotations

from typing import Any

from clients.podctl.age import parse_time
from clients.podctl.pod_status import pod_columns, pod_status

NOW = parse_time("2024-01-01T01:00:00Z") or 0.0


def pod(
    containers: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
    *,
    phase: str = "Running",
    init: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:59:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": containers, "initContainers": init or []},
        "status": {
            "phase": phase,
            "containerStatuses": statuses,
            "initContainerStatuses": init_statuses or [],
            "conditions": conditions or [],
        },
    }


RUNNING = {"running": {"startedAt": "2024-01-01T00:00:00Z"}}


def test_running_ready_pod() -> None:
    cols = pod_columns(pod([{"name": "a"}], [{"name": "a", "ready": True, "state": RUNNING}]), NOW)
    assert (cols.ready, cols.status, cols.restarts) == ("1/1", "Running", "0")


def test_crash_loop_shows_reason_and_restarts_with_age() -> None:
    p = pod(
        [{"name": "a"}],
        [
            {
                "name": "a",
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:58:00Z"}},
            }
        ],
    )
    cols = pod_columns(p, NOW)
    assert (cols.ready, cols.status, cols.restarts) == ("0/1", "CrashLoopBackOff", "4 (2m ago)")


def test_init_progress_counts_finished_init_containers() -> None:
    p = pod(
        [{"name": "app"}],
        [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}],
        phase="Pending",
        init=[{"name": "i1"}, {"name": "i2"}],
        init_statuses=[
            {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "i2", "state": {"running": {}}},
        ],
    )
    assert pod_status(p) == "Init:1/2"


def test_init_failure_and_backoff_reasons() -> None:
    base: dict[str, Any] = {"phase": "Pending", "init": [{"name": "i1"}]}
    failed = pod(
        [{"name": "app"}],
        [],
        init_statuses=[{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
        **base,
    )
    assert pod_status(failed) == "Init:Error"
    backoff = pod(
        [{"name": "app"}],
        [],
        init_statuses=[{"name": "i1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
        **base,
    )
    assert pod_status(backoff) == "Init:CrashLoopBackOff"
    exit_code = pod(
        [{"name": "app"}],
        [],
        init_statuses=[{"name": "i1", "state": {"terminated": {"exitCode": 3}}}],
        **base,
    )
    assert pod_status(exit_code) == "Init:ExitCode:3"


def test_started_sidecar_counts_in_ready_and_does_not_block_status() -> None:
    p = pod(
        [{"name": "app"}],
        [{"name": "app", "ready": True, "state": RUNNING}],
        init=[{"name": "side", "restartPolicy": "Always"}],
        init_statuses=[{"name": "side", "started": True, "ready": True, "state": RUNNING}],
        conditions=[{"type": "Initialized", "status": "True"}],
    )
    cols = pod_columns(p, NOW)
    assert (cols.ready, cols.status) == ("2/2", "Running")


def test_completed_and_error_pods() -> None:
    done = pod(
        [{"name": "a"}],
        [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        phase="Succeeded",
    )
    assert pod_status(done) == "Completed"
    err = pod(
        [{"name": "a"}],
        [{"name": "a", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}],
        phase="Failed",
    )
    assert pod_status(err) == "Error"


def test_completed_with_a_running_container_is_running_or_not_ready() -> None:
    statuses = [
        {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "b", "ready": True, "state": RUNNING},
    ]
    containers = [{"name": "a"}, {"name": "b"}]
    assert pod_status(pod(containers, statuses)) == "NotReady"
    ready = pod(containers, statuses, conditions=[{"type": "Ready", "status": "True"}])
    assert pod_status(ready) == "Running"


def test_deleting_pod_is_terminating_unless_finished() -> None:
    p = pod([{"name": "a"}], [{"name": "a", "ready": True, "state": RUNNING}], deleting=True)
    assert pod_status(p) == "Terminating"
    done = pod([{"name": "a"}], [], phase="Succeeded", deleting=True)
    assert pod_status(done) == "Succeeded"


def test_pending_pod_without_statuses_shows_phase_or_waiting_reason() -> None:
    assert pod_status(pod([{"name": "a"}], [], phase="Pending")) == "Pending"
    creating = pod(
        [{"name": "a"}],
        [{"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}],
        phase="Pending",
    )
    assert pod_status(creating) == "ContainerCreating"
