"""What a pod worker does next: init order, sidecar gating and stop order,
restart policies with back-off, probes, deletion and deadlines."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from podmodel.pod import (
    EphemeralContainer,
    ExecAction,
    Lifecycle,
    LifecycleHandler,
    Pod,
    Probe,
)

from services.node_agent.logic.actions import (
    DEADLINE_EXCEEDED,
    PodActions,
    StartContainer,
    compute_pod_actions,
    stop_grace,
    termination_plan,
)
from services.node_agent.logic.backoff import CrashBackoff
from services.node_agent.logic.records import ContainerRecord, ProbeResults, SandboxRecord
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

SANDBOX = SandboxRecord(ready=True, pod_ips=("10.0.0.5",))
PRE_STOP = Lifecycle(pre_stop=LifecycleHandler(exec=ExecAction(command=["sleep", "1"])))


def act(
    pod: Pod,
    records: list[ContainerRecord],
    *,
    now: float = T0 + 100,
    backoff: CrashBackoff | None = None,
    sandbox: SandboxRecord | None = SANDBOX,
    probes: ProbeResults | None = None,
) -> PodActions:
    return compute_pod_actions(
        pod,
        records,
        now,
        backoff or CrashBackoff(),
        sandbox=sandbox,
        probes=probes or ProbeResults(),
    )


def names(starts: Iterable[StartContainer]) -> list[str]:
    return [s.name for s in starts]


# ------------------------------------------------------------------ sandbox and init order


def test_new_pod_creates_sandbox_and_starts_only_the_first_init_container() -> None:
    pod = make_pod(init=[container("init-a"), container("init-b")])
    actions = act(pod, [], sandbox=None)
    assert actions.create_sandbox
    assert names(actions.start_init) == ["init-a"]
    assert actions.start == ()


def test_new_pod_without_init_containers_starts_all_app_containers() -> None:
    pod = make_pod([container("a"), container("b")])
    actions = act(pod, [], sandbox=None)
    assert actions.create_sandbox
    assert names(actions.start) == ["a", "b"]


INIT_ORDER = [
    # (records, expected init starts, expected app starts)
    ([], ["init-a"], []),
    ([running("init-a")], [], []),
    ([exited("init-a", 0)], ["init-b"], []),
    ([exited("init-a", 0), running("init-b")], [], []),
    ([exited("init-a", 0), exited("init-b", 0)], [], ["app"]),
    # Records of earlier init containers may be gone: the last one decides.
    ([exited("init-b", 0)], [], ["app"]),
    # Once an app container exists, init containers never run again.
    ([running("app")], [], []),
]


@pytest.mark.parametrize(("records", "init", "app"), INIT_ORDER)
def test_init_containers_run_one_at_a_time_in_order(
    records: list[ContainerRecord], init: list[str], app: list[str]
) -> None:
    pod = make_pod(init=[container("init-a"), container("init-b")])
    actions = act(pod, records)
    assert not actions.create_sandbox
    assert names(actions.start_init) == init
    assert names(actions.start) == app


def test_failed_init_container_under_never_fails_the_pod() -> None:
    pod = make_pod(init=[container("init-a"), container("init-b")], restart_policy="Never")
    actions = act(pod, [exited("init-a", 1)])
    assert actions.pod_terminal
    assert actions.kill_reason == "InitFailed"
    assert actions.start_init == () and actions.start == ()


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_failed_init_container_is_retried_with_back_off(policy: str) -> None:
    pod = make_pod(init=[container("init-a")], restart_policy=policy)
    backoff = CrashBackoff()
    first = exited("init-a", 1, at=T0, ran=1)
    actions = act(pod, [first], now=T0 + 1, backoff=backoff)
    (start,) = actions.start_init
    assert start.name == "init-a" and start.previous_finished_at == T0 + 1
    backoff.record_restart(UID, "init-a", T0 + 1, T0 + 1)
    second = exited("init-a", 1, at=T0 + 1, ran=1, restarts=1)
    actions = act(pod, [second], now=T0 + 3, backoff=backoff)
    assert actions.start_init == ()
    (wait,) = actions.backoff
    assert (wait.name, wait.delay, wait.until) == ("init-a", 10, T0 + 12)
    assert actions.requeue_at == T0 + 12
    assert not actions.pod_terminal
    actions = act(pod, [second], now=T0 + 12, backoff=backoff)
    assert names(actions.start_init) == ["init-a"]


# ------------------------------------------------------------------ sidecars


SIDECAR_GATING = [
    # (sidecar has startupProbe, startup result, expected init starts)
    (False, None, ["init-b"]),
    (True, None, []),
    (True, True, ["init-b"]),
]


@pytest.mark.parametrize(("has_probe", "result", "expected"), SIDECAR_GATING)
def test_next_init_container_waits_until_the_sidecar_is_started(
    has_probe: bool, result: bool | None, expected: list[str]
) -> None:
    proxy = sidecar("proxy", startup_probe=probe() if has_probe else None)
    pod = make_pod(init=[proxy, container("init-b")])
    probes = ProbeResults(startup={"sim://proxy-0": result} if result is not None else {})
    actions = act(pod, [running("proxy")], probes=probes)
    assert names(actions.start_init) == expected
    assert actions.kill == ()


def test_sidecar_failing_its_startup_probe_is_killed_and_gates_the_next() -> None:
    proxy = sidecar("proxy", startup_probe=probe())
    pod = make_pod(init=[proxy, container("init-b")])
    probes = ProbeResults(startup={"sim://proxy-0": False})
    actions = act(pod, [running("proxy")], probes=probes)
    (kill,) = actions.kill
    assert (kill.name, kill.reason, kill.restart) == ("proxy", "StartupProbe", True)
    assert kill.message == "Init container proxy failed startup probe, will be restarted"
    assert actions.start_init == ()


def test_app_containers_start_once_the_last_sidecar_started() -> None:
    pod = make_pod(init=[container("init-a"), sidecar("proxy", startup_probe=probe())])
    records = [exited("init-a", 0), running("proxy")]
    assert act(pod, records).start == ()
    started = ProbeResults(startup={"sim://proxy-0": True})
    assert names(act(pod, records, probes=started).start) == ["app"]


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_sidecar_restarts_after_every_exit_whatever_the_pod_policy(policy: str) -> None:
    pod = make_pod(init=[sidecar("proxy")], restart_policy=policy)
    actions = act(pod, [exited("proxy", 0), running("app")])
    assert names(actions.start_init) == ["proxy"]
    assert actions.start_init[0].is_restart
    assert not actions.kill_pod


def test_sidecar_restart_uses_crash_back_off() -> None:
    pod = make_pod(init=[sidecar("proxy")])
    backoff = CrashBackoff()
    backoff.record_restart(UID, "proxy", T0, T0)
    actions = act(pod, [exited("proxy", 1, at=T0), running("app")], now=T0 + 2, backoff=backoff)
    assert actions.start_init == ()
    (wait,) = actions.backoff
    assert wait.name == "proxy" and wait.kind == "init"
    assert wait.waiting_reason().reason == "CrashLoopBackOff"


def test_sidecar_failing_liveness_is_restarted() -> None:
    pod = make_pod(init=[sidecar("proxy", liveness_probe=probe())])
    probes = ProbeResults(liveness={"sim://proxy-0": False})
    actions = act(pod, [running("proxy"), running("app")], probes=probes)
    (kill,) = actions.kill
    assert (kill.name, kill.reason) == ("proxy", "LivenessProbe")
    assert not actions.kill_pod


def test_job_pod_completes_and_stops_its_sidecars_when_main_container_is_done() -> None:
    pod = make_pod(
        init=[sidecar("logs"), sidecar("proxy")],
        restart_policy="Never",
    )
    records = [running("logs"), running("proxy"), exited("app", 0)]
    actions = act(pod, records)
    assert actions.kill_pod and actions.pod_terminal
    assert actions.kill_reason == "PodCompleted"
    assert [k.name for k in actions.kill] == ["proxy", "logs"]
    proxy, logs = actions.kill
    assert proxy.wait_for == ()
    assert logs.wait_for == ("proxy",)
    assert actions.start_init == () and actions.start == ()


# ------------------------------------------------------------------ restart policies


RESTARTS = [
    # (policy, exit code, restarted?)
    ("Always", 0, True),
    ("Always", 1, True),
    ("OnFailure", 0, False),
    ("OnFailure", 1, True),
    ("Never", 0, False),
    ("Never", 1, False),
]


@pytest.mark.parametrize(("policy", "code", "restarted"), RESTARTS)
def test_app_container_restart_follows_restart_policy(
    policy: str, code: int, restarted: bool
) -> None:
    pod = make_pod(restart_policy=policy)
    actions = act(pod, [exited("app", code)])
    assert names(actions.start) == (["app"] if restarted else [])
    assert actions.pod_terminal is not restarted


def test_other_containers_still_start_while_one_backs_off() -> None:
    pod = make_pod([container("a"), container("b")])
    backoff = CrashBackoff()
    backoff.record_restart(UID, "a", T0, T0)
    actions = act(pod, [exited("a", 1, at=T0), exited("b", 1, at=T0)], now=T0 + 3, backoff=backoff)
    assert names(actions.start) == ["b"]
    assert [w.name for w in actions.backoff] == ["a"]
    assert actions.backoff[0].message == (
        "back-off 10s restarting failed container=a pod=web-0_default(uid-1)"
    )
    assert actions.waiting_reasons()["a"].reason == "CrashLoopBackOff"
    assert not actions.kill_pod


def test_all_containers_backing_off_do_not_complete_the_pod() -> None:
    pod = make_pod()
    backoff = CrashBackoff()
    backoff.record_restart(UID, "app", T0, T0)
    actions = act(pod, [exited("app", 1, at=T0)], now=T0 + 2, backoff=backoff)
    assert not actions.kill_pod and not actions.pod_terminal
    assert actions.idle
    assert actions.requeue_at == T0 + 11


# ------------------------------------------------------------------ probes


def test_liveness_failure_kills_and_restart_follows_later() -> None:
    pod = make_pod([container("app", liveness_probe=probe())])
    probes = ProbeResults(liveness={"sim://app-0": False})
    actions = act(pod, [running("app")], probes=probes)
    (kill,) = actions.kill
    assert (kill.reason, kill.restart) == ("LivenessProbe", True)
    assert kill.message == "Container app failed liveness probe, will be restarted"
    assert kill.grace_seconds == 30
    assert actions.start == () and not actions.kill_pod


def test_liveness_kill_uses_the_probe_grace_period() -> None:
    live = Probe(exec=ExecAction(command=["true"]), termination_grace_period_seconds=5)
    pod = make_pod([container("app", liveness_probe=live, lifecycle=PRE_STOP)])
    probes = ProbeResults(liveness={"sim://app-0": False})
    (kill,) = act(pod, [running("app")], probes=probes).kill
    assert kill.grace_seconds == 5
    assert kill.run_pre_stop


def test_startup_failure_kills_the_container() -> None:
    pod = make_pod([container("app", startup_probe=probe())])
    probes = ProbeResults(startup={"sim://app-0": False})
    (kill,) = act(pod, [running("app")], probes=probes).kill
    assert kill.reason == "StartupProbe"


def test_liveness_failure_under_never_completes_the_pod() -> None:
    pod = make_pod([container("app", liveness_probe=probe())], restart_policy="Never")
    probes = ProbeResults(liveness={"sim://app-0": False})
    actions = act(pod, [running("app")], probes=probes)
    assert actions.kill_pod and actions.pod_terminal
    assert [(k.name, k.reason, k.restart) for k in actions.kill] == [
        ("app", "LivenessProbe", False)
    ]


def test_running_containers_with_passing_probes_are_left_alone() -> None:
    pod = make_pod([container("app", liveness_probe=probe())])
    probes = ProbeResults(liveness={"sim://app-0": True})
    assert act(pod, [running("app")], probes=probes).idle


# ------------------------------------------------------------------ ephemeral


def test_ephemeral_container_starts_once_and_is_never_restarted() -> None:
    pod = make_pod()
    pod.spec.ephemeral_containers = [EphemeralContainer(name="debug", image="busybox")]
    actions = act(pod, [running("app")])
    assert names(actions.start_ephemeral) == ["debug"]
    actions = act(pod, [running("app"), exited("debug", 1)])
    assert actions.idle


def test_ephemeral_container_may_start_during_initialisation() -> None:
    pod = make_pod(init=[container("init-a")])
    pod.spec.ephemeral_containers = [EphemeralContainer(name="debug", image="busybox")]
    actions = act(pod, [running("init-a")])
    assert names(actions.start_ephemeral) == ["debug"]


# ------------------------------------------------------------------ deletion and deadlines


def deleting(pod: Pod, grace: int | None = None) -> Pod:
    pod.metadata.deletion_timestamp = "2023-11-14T22:14:00Z"
    pod.metadata.deletion_grace_period_seconds = grace
    return pod


def test_deletion_stops_main_containers_first_then_sidecars_in_reverse_order() -> None:
    pod = deleting(
        make_pod(
            [container("web", lifecycle=PRE_STOP), container("worker")],
            init=[
                sidecar("first", lifecycle=PRE_STOP),
                container("setup"),
                sidecar("second"),
                sidecar("third"),
            ],
        )
    )
    records = [
        exited("setup", 0),
        running("first"),
        running("second"),
        running("third"),
        running("web"),
        running("worker"),
    ]
    actions = act(pod, records)
    assert actions.kill_pod and actions.pod_terminal and not actions.delete_pod
    assert actions.kill_reason == "PodDeleting"
    plan = {k.name: k for k in actions.kill}
    assert [k.name for k in actions.kill] == ["web", "worker", "third", "second", "first"]
    assert plan["web"].wait_for == () and plan["worker"].wait_for == ()
    assert plan["third"].wait_for == ("web", "worker")
    assert plan["second"].wait_for == ("web", "worker", "third")
    assert plan["first"].wait_for == ("web", "worker", "third", "second")
    assert plan["web"].run_pre_stop and plan["first"].run_pre_stop
    assert not plan["worker"].run_pre_stop
    assert {k.grace_seconds for k in actions.kill} == {30}
    assert plan["web"].message == "Stopping container web"
    assert actions.start == () and actions.start_init == ()


def test_deletion_grace_period_wins_and_zero_skips_pre_stop() -> None:
    pod = deleting(make_pod([container("app", lifecycle=PRE_STOP)]), grace=0)
    (kill,) = act(pod, [running("app")]).kill
    assert kill.grace_seconds == 0
    assert not kill.run_pre_stop
    pod = deleting(make_pod([container("app", lifecycle=PRE_STOP)]), grace=7)
    (kill,) = act(pod, [running("app")]).kill
    assert (kill.grace_seconds, kill.run_pre_stop) == (7, True)


def test_deleted_pod_with_nothing_running_is_removed() -> None:
    pod = deleting(make_pod())
    actions = act(pod, [exited("app", 143)])
    assert actions.delete_pod and actions.pod_terminal and actions.kill == ()
    assert act(deleting(make_pod()), [], sandbox=None).delete_pod


def test_deleted_pod_never_restarts_containers() -> None:
    pod = deleting(make_pod([container("a"), container("b")]))
    actions = act(pod, [exited("a", 1), running("b")])
    assert [k.name for k in actions.kill] == ["b"]
    assert actions.start == ()


@pytest.mark.parametrize(
    ("grace", "spent", "expected"),
    [(30, 0, 30), (30, 5.9, 25), (30, 29, 2), (30, 31, 2), (0, 0, 2), (1, 0, 2)],
)
def test_stop_grace_leaves_at_least_two_seconds_after_pre_stop(
    grace: int, spent: float, expected: int
) -> None:
    assert stop_grace(grace, spent) == expected


def test_terminal_pod_stops_everything_and_starts_nothing() -> None:
    pod = make_pod()
    pod.status.phase = "Failed"
    actions = act(pod, [running("app")])
    assert actions.kill_reason == "PodTerminal"
    assert [k.name for k in actions.kill] == ["app"]
    assert actions.start == ()


def test_active_deadline_kills_the_pod_with_deadline_exceeded() -> None:
    pod = make_pod(active_deadline_seconds=60)
    pod.status.start_time = "2023-11-14T22:13:20Z"  # T0
    before = act(pod, [running("app")], now=T0 + 59)
    assert before.idle and before.requeue_at == T0 + 60
    after = act(pod, [running("app")], now=T0 + 60)
    assert after.kill_reason == "ActiveDeadline"
    assert after.phase_reason == DEADLINE_EXCEEDED
    assert after.phase_message == "Pod was active on the node longer than the specified deadline"
    assert after.pod_terminal and not after.delete_pod
    assert [k.name for k in after.kill] == ["app"]


def test_eviction_kills_at_once_without_pre_stop_and_fails_the_pod_evicted() -> None:
    pod = make_pod(containers=[container("app", lifecycle=PRE_STOP)])
    message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    actions = compute_pod_actions(
        pod, [running("app")], T0 + 5, CrashBackoff(), sandbox=SANDBOX, evict=message
    )
    assert actions.kill_reason == "Evicted" and actions.pod_terminal
    assert (actions.phase_reason, actions.phase_message) == ("Evicted", message)
    assert [(k.name, k.grace_seconds, k.run_pre_stop) for k in actions.kill] == [("app", 0, False)]
    assert actions.start == () and not actions.delete_pod


def test_a_deleted_pod_is_deleted_not_evicted() -> None:
    pod = make_pod()
    pod.metadata.deletion_timestamp = "2023-11-14T22:14:00Z"
    actions = compute_pod_actions(
        pod, [running("app")], T0 + 5, CrashBackoff(), sandbox=SANDBOX, evict="over"
    )
    assert actions.kill_reason == "PodDeleting" and actions.phase_reason == ""


# ------------------------------------------------------------------ sandbox loss


def test_dead_sandbox_is_recreated_and_init_starts_over() -> None:
    pod = make_pod(init=[container("init-a")])
    dead = SandboxRecord(ready=False)
    actions = act(pod, [exited("init-a", 0), running("app")], sandbox=dead)
    assert actions.create_sandbox and actions.kill_pod
    assert [k.name for k in actions.kill] == ["app"]
    assert names(actions.start_init) == ["init-a"]


def test_dead_sandbox_is_not_recreated_under_never() -> None:
    pod = make_pod(restart_policy="Never")
    actions = act(pod, [exited("app", 0)], sandbox=SandboxRecord(ready=False))
    assert not actions.create_sandbox
    assert actions.pod_terminal


def test_unknown_container_is_killed_before_restart() -> None:
    pod = make_pod()
    lost = ContainerRecord(name="app", state="unknown", container_id="sim://app-0")
    actions = act(pod, [lost])
    (kill,) = actions.kill
    assert kill.reason == "Unknown"
    assert actions.start == () and not actions.kill_pod


def test_termination_plan_skips_containers_that_are_not_running() -> None:
    pod = make_pod([container("a"), container("b")], init=[sidecar("proxy")])
    plan = termination_plan(pod, [exited("a", 0), running("b"), running("proxy")], "PodDeleting")
    assert [k.name for k in plan] == ["b", "proxy"]
    assert plan[1].wait_for == ("b",)


def test_ephemeral_containers_stop_without_waiting() -> None:
    pod = deleting(make_pod(init=[sidecar("proxy")]))
    pod.spec.ephemeral_containers = [EphemeralContainer(name="debug", image="busybox")]
    plan = {k.name: k for k in act(pod, [running("app"), running("proxy"), running("debug")]).kill}
    assert plan["debug"].wait_for == () and plan["debug"].kind == "ephemeral"
    assert plan["proxy"].wait_for == ("app",)


def test_created_container_is_started() -> None:
    pod = make_pod()
    created = ContainerRecord(name="app", state="created", container_id="sim://app-0")
    assert names(act(pod, [created]).start) == ["app"]
