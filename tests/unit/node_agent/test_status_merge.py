"""The full PodStatus the node-agent writes, and when a write is a no-op."""

from __future__ import annotations

from dataclasses import replace

from podmodel.pod import Condition, Pod, PodStatus, ResourceRequirements

from services.node_agent.logic.actions import compute_pod_actions
from services.node_agent.logic.backoff import CrashBackoff
from services.node_agent.logic.records import ContainerRecord, ProbeResults, SandboxRecord
from services.node_agent.logic.status_merge import generate_pod_status, status_equal_for_write
from tests.unit.node_agent.builders import (
    T0,
    UID,
    container,
    exited,
    make_pod,
    probe,
    running,
    sidecar,
)

SANDBOX = SandboxRecord(ready=True, pod_ips=("10.0.0.5", "fd00::5"))


def status_after(
    pod: Pod,
    records: list[ContainerRecord],
    now: float,
    *,
    backoff: CrashBackoff | None = None,
    sandbox: SandboxRecord | None = SANDBOX,
    probes: ProbeResults | None = None,
    host_ips: tuple[str, ...] | list[str] = (),
) -> PodStatus:
    """One pass of the pod worker: actions, then the status they imply,
    written back onto the pod."""
    probes = probes or ProbeResults()
    actions = compute_pod_actions(
        pod, records, now, backoff or CrashBackoff(), sandbox=sandbox, probes=probes
    )
    pod.status = generate_pod_status(
        pod,
        records,
        now=now,
        sandbox=sandbox,
        probes=probes,
        actions=actions,
        host_ips=host_ips,
    )
    return pod.status


def cond(status: PodStatus, type_: str) -> Condition:
    found = status.condition(type_)
    assert found is not None, type_
    return found


def test_running_pod_status_has_everything_kubernetes_shows() -> None:
    pod = make_pod([container("app", resources=ResourceRequirements(requests={"cpu": "100m"}))])
    status = status_after(pod, [running("app")], T0, host_ips=["192.168.1.10"])
    assert status.phase == "Running"
    assert status.start_time == "2023-11-14T22:13:20Z"
    assert status.pod_ip == "10.0.0.5"
    assert [ip.ip for ip in status.pod_ips] == ["10.0.0.5", "fd00::5"]
    assert status.host_ip == "192.168.1.10"
    assert status.qos_class == "Burstable"
    assert [c.type for c in status.conditions] == [
        "PodScheduled",
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ]
    assert all(c.status == "True" for c in status.conditions)
    assert status.container_statuses[0].ready is True


def test_last_transition_time_kept_while_condition_status_unchanged() -> None:
    pod = make_pod([container("app", readiness_probe=probe())])
    first = status_after(pod, [running("app")], T0)
    assert cond(first, "Ready").status == "False"
    assert cond(first, "Ready").last_transition_time == "2023-11-14T22:13:20Z"
    again = status_after(pod, [running("app")], T0 + 30)
    assert cond(again, "Ready").last_transition_time == "2023-11-14T22:13:20Z"
    ready = ProbeResults(readiness={"sim://app-0": True})
    later = status_after(pod, [running("app")], T0 + 60, probes=ready)
    assert cond(later, "Ready").status == "True"
    assert cond(later, "Ready").last_transition_time == "2023-11-14T22:14:20Z"
    assert cond(later, "Initialized").last_transition_time == "2023-11-14T22:13:20Z"
    assert later.start_time == "2023-11-14T22:13:20Z"


def test_scheduler_condition_time_is_kept() -> None:
    pod = make_pod()
    pod.status.conditions = [
        Condition(type="PodScheduled", status="True", last_transition_time="2023-11-14T22:00:00Z")
    ]
    status = status_after(pod, [running("app")], T0)
    assert cond(status, "PodScheduled").last_transition_time == "2023-11-14T22:00:00Z"


def test_job_pod_turns_succeeded_only_after_its_sidecar_stopped() -> None:
    pod = make_pod(init=[sidecar("proxy")], restart_policy="Never")
    status = status_after(pod, [running("proxy"), running("app")], T0)
    assert status.phase == "Running"
    status = status_after(pod, [running("proxy"), exited("app", 0)], T0 + 5)
    assert status.phase == "Running"  # the sidecar still runs
    stopped = [exited("proxy", 143, at=T0, ran=6), exited("app", 0)]
    status = status_after(pod, stopped, T0 + 7)
    assert status.phase == "Succeeded"
    assert cond(status, "Ready").reason == "PodCompleted"


def test_deleted_pod_goes_terminal_by_exit_codes_once_stopped() -> None:
    pod = make_pod()
    status_after(pod, [running("app")], T0)
    pod.metadata.deletion_timestamp = "2023-11-14T22:14:00Z"
    assert status_after(pod, [running("app")], T0 + 1).phase == "Running"
    assert status_after(pod, [exited("app", 143, ran=2)], T0 + 3).phase == "Failed"


def test_deadline_exceeded_fails_the_pod_with_reason() -> None:
    pod = make_pod(active_deadline_seconds=10)
    status_after(pod, [running("app")], T0)
    status = status_after(pod, [running("app")], T0 + 10)
    assert status.phase == "Running"  # not terminal while the container runs
    status = status_after(pod, [exited("app", 137, ran=11)], T0 + 12)
    assert (status.phase, status.reason) == ("Failed", "DeadlineExceeded")
    assert status.message == "Pod was active on the node longer than the specified deadline"
    again = status_after(pod, [exited("app", 137, ran=11)], T0 + 13)
    assert (again.phase, again.reason) == ("Failed", "DeadlineExceeded")


def test_an_evicted_pod_ends_failed_with_kubelets_reason_and_message() -> None:
    pod = make_pod()
    status_after(pod, [running("app")], T0)
    message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '

    def evicted(records: list[ContainerRecord], now: float) -> PodStatus:
        actions = compute_pod_actions(
            pod, records, now, CrashBackoff(), sandbox=SANDBOX, evict=message
        )
        pod.status = generate_pod_status(
            pod, records, now=now, sandbox=SANDBOX, probes=ProbeResults(), actions=actions
        )
        return pod.status

    assert evicted([running("app")], T0 + 5).phase == "Running"  # until it stopped
    status = evicted([exited("app", 137, ran=6)], T0 + 6)
    assert (status.phase, status.reason, status.message) == ("Failed", "Evicted", message)
    assert status_after(pod, [exited("app", 137, ran=6)], T0 + 7).reason == "Evicted"


def test_crash_loop_back_off_appears_in_the_status() -> None:
    pod = make_pod()
    backoff = CrashBackoff()
    backoff.record_restart(UID, "app", T0, T0)
    status = status_after(pod, [exited("app", 1, at=T0, restarts=1)], T0 + 3, backoff=backoff)
    waiting = status.container_statuses[0].state.waiting
    assert waiting is not None
    assert waiting.reason == "CrashLoopBackOff"
    assert (
        waiting.message == "back-off 10s restarting failed container=app pod=web-0_default(uid-1)"
    )
    assert status.phase == "Running"


def test_pod_ips_are_kept_after_the_sandbox_is_gone() -> None:
    pod = make_pod(restart_policy="Never")
    status_after(pod, [running("app")], T0)
    status = status_after(pod, [exited("app", 0)], T0 + 1, sandbox=None)
    assert status.pod_ip == "10.0.0.5"
    assert cond(status, "PodReadyToStartContainers").status == "False"


def test_status_equal_for_write_ignores_condition_times_only() -> None:
    pod = make_pod()
    old = status_after(pod, [running("app")], T0)
    pod.status = old
    new = generate_pod_status(pod, [running("app")], now=T0 + 50, sandbox=SANDBOX)
    assert status_equal_for_write(old, new)
    shifted = [replace_time(c) for c in new.conditions]
    new.conditions = shifted
    assert status_equal_for_write(old, new)
    restarted = generate_pod_status(pod, [running("app", restarts=1)], now=T0 + 50, sandbox=SANDBOX)
    assert not status_equal_for_write(old, restarted)
    unready = generate_pod_status(
        make_pod([container("app", readiness_probe=probe())]),
        [running("app")],
        now=T0,
        sandbox=SANDBOX,
    )
    assert not status_equal_for_write(old, unready)


def replace_time(c: Condition) -> Condition:
    return Condition(
        type=c.type,
        status=c.status,
        reason=c.reason,
        message=c.message,
        last_transition_time="2000-01-01T00:00:00Z",
    )


def test_other_writers_conditions_do_not_count_for_writes() -> None:
    pod = make_pod()
    old = status_after(pod, [running("app")], T0)
    new = generate_pod_status(pod, [running("app")], now=T0, sandbox=SANDBOX)
    new.conditions = [*new.conditions, Condition(type="example.com/x", status="True")]
    assert status_equal_for_write(old, new)


def test_record_helpers_move_through_states() -> None:
    record = ContainerRecord(name="app", state="created", container_id="c")
    record = record.started(T0)
    assert record.is_running and record.could_be_running
    record = record.exited(1, T0 + 1)
    assert record.failed and not record.could_be_running
    assert replace(record, exit_code=0).failed is False


def test_deleted_pod_that_never_ran_ends_failed_with_unknown_containers() -> None:
    pod = make_pod([container("a"), container("b")])
    pod.metadata.deletion_timestamp = "2023-11-14T22:14:00Z"
    status = status_after(pod, [exited("a", 0)], T0)
    assert status.phase == "Failed"
    a, b = status.container_statuses
    assert a.state.terminated is not None and a.state.terminated.reason == "Completed"
    assert b.state.terminated is not None
    assert (b.state.terminated.reason, b.state.terminated.exit_code) == (
        "ContainerStatusUnknown",
        137,
    )


def test_deleted_pod_during_init_marks_only_attempted_init_containers() -> None:
    pod = make_pod(init=[container("init-a"), container("init-b")])
    pod.metadata.deletion_timestamp = "2023-11-14T22:14:00Z"
    status = status_after(pod, [exited("init-a", 143)], T0)
    assert status.phase == "Failed"
    init_a, init_b = status.init_container_statuses
    assert init_a.state.terminated is not None and init_a.state.terminated.exit_code == 143
    assert init_b.state.waiting is not None
    assert status.container_statuses[0].state.waiting is not None
