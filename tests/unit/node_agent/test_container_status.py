"""Container statuses as Kubernetes reports them, from runtime records."""

from __future__ import annotations

from dataclasses import replace

from podmodel.meta import ObjectMeta
from podmodel.pod import (
    ContainerState,
    ContainerStateRunning,
    ContainerStateWaiting,
    ContainerStatus,
    EphemeralContainer,
    Pod,
)

from services.node_agent.logic.container_status import (
    WaitingReason,
    container_statuses,
    pod_container_statuses,
)
from services.node_agent.logic.records import ContainerRecord, ProbeResults, new_attempt
from tests.unit.node_agent.builders import (
    T0,
    container,
    exited,
    make_pod,
    probe,
    running,
    sidecar,
)

BACKOFF = WaitingReason(
    "CrashLoopBackOff",
    "back-off 10s restarting failed container=app pod=web-0_default(uid-1)",
)


def one(
    pod: Pod,
    records: list[ContainerRecord],
    *,
    waiting: dict[str, WaitingReason] | None = None,
    probes: ProbeResults | None = None,
) -> ContainerStatus:
    """The status of the app container named "app"."""
    by_name = {r.name: r for r in records}
    found = container_statuses(
        pod, "app", by_name, waiting=waiting, probes=probes or ProbeResults()
    )
    return next(s for s in found if s.name == "app")


def test_container_without_record_waits_container_creating() -> None:
    status = one(make_pod(), [])
    assert status.state.waiting is not None
    assert status.state.waiting.reason == "ContainerCreating"
    assert status.image == "busybox"
    assert (status.ready, status.started, status.restart_count) == (False, False, 0)


def test_app_container_waits_pod_initializing_while_pod_has_init_containers() -> None:
    pod = make_pod(init=[container("init-a")])
    st = pod_container_statuses(pod, [])
    assert st.app[0].state.waiting is not None
    assert st.app[0].state.waiting.reason == "PodInitializing"
    assert st.init[0].state.waiting is not None
    assert st.init[0].state.waiting.reason == "PodInitializing"


def test_running_container_reports_started_at_started_and_ready() -> None:
    status = one(make_pod(), [running("app")])
    assert status.state.running is not None
    assert status.state.running.started_at == "2023-11-14T22:13:20Z"
    assert status.started is True
    assert status.ready is True
    assert status.container_id == "sim://app-0"


def test_readiness_probe_not_yet_run_means_not_ready() -> None:
    pod = make_pod([container("app", readiness_probe=probe())])
    assert one(pod, [running("app")]).ready is False
    ok = ProbeResults(readiness={"sim://app-0": True})
    assert one(pod, [running("app")], probes=ok).ready is True
    stale = ProbeResults(readiness={"sim://app-previous": True})
    assert one(pod, [running("app")], probes=stale).ready is False


def test_startup_probe_gates_started_and_ready() -> None:
    pod = make_pod([container("app", startup_probe=probe())])
    status = one(pod, [running("app")])
    assert (status.started, status.ready) == (False, False)
    passed = ProbeResults(startup={"sim://app-0": True})
    status = one(pod, [running("app")], probes=passed)
    assert (status.started, status.ready) == (True, True)


def test_exit_codes_map_to_completed_error_and_oomkilled() -> None:
    pod = make_pod(restart_policy="Never")
    cases = [
        (exited("app", 0), "Completed", 0),
        (exited("app", 1), "Error", 1),
        (exited("app", 137, reason="OOMKilled"), "OOMKilled", 137),
    ]
    for record, reason, code in cases:
        term = one(pod, [record]).state.terminated
        assert term is not None
        assert (term.reason, term.exit_code) == (reason, code)
        assert term.started_at == "2023-11-14T22:13:20Z"
        assert term.finished_at == "2023-11-14T22:13:21Z"
        assert term.container_id == record.container_id


def test_previous_attempt_becomes_last_state_and_counts_restarts() -> None:
    first = exited("app", 2)
    second = new_attempt(first, "app", container_id="sim://app-1", at=T0 + 5).started(T0 + 6)
    status = one(make_pod(), [second])
    assert status.restart_count == 1
    assert status.state.running is not None
    assert status.last_state.terminated is not None
    assert status.last_state.terminated.exit_code == 2
    assert status.last_state.terminated.reason == "Error"


def test_crash_loop_back_off_shows_waiting_with_kubelet_message() -> None:
    record = exited("app", 1, restarts=3)
    status = one(make_pod(), [record], waiting={"app": BACKOFF})
    assert status.state.waiting is not None
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.state.waiting.message == BACKOFF.message
    assert status.last_state.terminated is not None
    assert status.last_state.terminated.exit_code == 1
    assert status.restart_count == 3
    assert (status.ready, status.started) == (False, False)


def test_waiting_reason_not_shown_when_restart_policy_will_not_restart() -> None:
    pod = make_pod(restart_policy="Never")
    status = one(pod, [exited("app", 1)], waiting={"app": BACKOFF})
    assert status.state.terminated is not None
    pod = make_pod(restart_policy="OnFailure")
    status = one(pod, [exited("app", 0)], waiting={"app": BACKOFF})
    assert status.state.terminated is not None


def test_image_never_pull_shows_for_container_never_created() -> None:
    reason = WaitingReason("ErrImageNeverPull", 'Container image "busybox" is not present')
    status = one(make_pod(), [], waiting={"app": reason})
    assert status.state.waiting == ContainerStateWaiting(
        reason="ErrImageNeverPull", message='Container image "busybox" is not present'
    )


def test_finished_init_container_is_ready_and_never_waits_again() -> None:
    pod = make_pod(init=[container("init-a")])
    (status,) = container_statuses(
        pod, "init", {"init-a": exited("init-a", 0)}, waiting={"init-a": BACKOFF}
    )
    assert status.state.terminated is not None
    assert status.ready is True
    assert status.started is False


def test_sidecar_is_ready_by_readiness_and_restarts_under_never() -> None:
    pod = make_pod(init=[sidecar("proxy", readiness_probe=probe())], restart_policy="Never")
    (status,) = container_statuses(pod, "init", {"proxy": running("proxy")})
    assert (status.started, status.ready) == (True, False)
    (status,) = container_statuses(
        pod,
        "init",
        {"proxy": exited("proxy", 1)},
        waiting={"proxy": WaitingReason("CrashLoopBackOff", "x")},
    )
    assert status.state.waiting is not None  # sidecars restart whatever the pod says


def test_app_statuses_are_sorted_by_name_init_keep_spec_order() -> None:
    pod = make_pod(
        [container("zeta"), container("alpha")], init=[container("z-init"), container("a-init")]
    )
    st = pod_container_statuses(pod, [])
    assert [s.name for s in st.app] == ["alpha", "zeta"]
    assert [s.name for s in st.init] == ["z-init", "a-init"]


def test_ephemeral_container_has_no_started_or_ready() -> None:
    pod = make_pod()
    pod.spec.ephemeral_containers = [EphemeralContainer(name="debug", image="busybox")]
    st = pod_container_statuses(pod, [running("app"), running("debug")])
    (debug,) = st.ephemeral
    assert debug.state.running is not None
    assert debug.started is None
    assert debug.ready is False


def test_container_lost_while_running_reports_container_status_unknown() -> None:
    pod = make_pod()
    pod.status.container_statuses = [
        ContainerStatus(
            name="app",
            restart_count=2,
            state=ContainerState(running=ContainerStateRunning(started_at="x")),
        )
    ]
    lost = ContainerRecord(name="app", state="unknown", container_id="sim://app-2", restart_count=2)
    status = one(pod, [lost])
    assert status.state.terminated is not None
    assert status.state.terminated.reason == "ContainerStatusUnknown"
    assert status.state.terminated.exit_code == 137
    assert status.restart_count == 3
    # Without any record at all it stays waiting, with the loss as lastState.
    status = one(pod, [])
    assert status.state.waiting is not None
    assert status.last_state.terminated is not None
    assert status.last_state.terminated.reason == "ContainerStatusUnknown"
    assert status.restart_count == 3
    pod.metadata = replace_meta_deleted(pod.metadata)
    assert one(pod, []).restart_count == 2


def replace_meta_deleted(meta: ObjectMeta) -> ObjectMeta:
    return ObjectMeta(
        name=meta.name,
        namespace=meta.namespace,
        uid=meta.uid,
        deletion_timestamp="2023-11-14T22:14:00Z",
    )


def test_terminated_status_kept_when_runtime_forgot_the_container() -> None:
    pod = make_pod(restart_policy="Never")
    (kept,) = container_statuses(pod, "app", {"app": exited("app", 3)})
    pod.status.container_statuses = [kept]
    (again,) = container_statuses(pod, "app", {})
    assert again == kept


def test_new_attempt_keeps_only_one_previous() -> None:
    a = exited("app", 1)
    b = new_attempt(a, "app", container_id="c1", at=T0).exited(1, T0 + 1)
    c = new_attempt(b, "app", container_id="c2", at=T0 + 2)
    assert c.restart_count == 2
    assert c.previous is not None
    assert c.previous.previous is None
    assert replace(c, previous=None).previous is None
