"""Pod phase and conditions: K8S_SEMANTICS.md section 1, table by table."""

from __future__ import annotations

import pytest
from podmodel.pod import Condition, ContainerStatus, PodReadinessGate

from services.node_agent.logic.container_status import PodContainerStatuses
from services.node_agent.logic.phase import (
    CONTAINERS_READY,
    INITIALIZED,
    KUBELET_CONDITIONS,
    READY,
    pod_conditions,
    pod_phase,
)
from tests.unit.node_agent.builders import (
    container,
    make_pod,
    probe,
    sidecar,
    st_running,
    st_terminated,
    st_waiting,
)

APP = [container("app")]
TWO = [container("a"), container("b")]
INIT = [container("init-a")]
SIDE = [sidecar("proxy")]
SIDE_THEN_INIT = [sidecar("proxy"), container("init-a")]


def statuses(
    app: list[ContainerStatus], init: list[ContainerStatus] | None = None
) -> PodContainerStatuses:
    return PodContainerStatuses(init=init or [], app=app, ephemeral=[])


PHASE_CASES = [
    # (id, containers, init, policy, init statuses, app statuses, terminal, expected)
    (
        "waiting-never-ran",
        APP,
        [],
        "Always",
        [],
        [st_waiting("app", "ContainerCreating")],
        False,
        "Pending",
    ),
    ("running", APP, [], "Always", [], [st_running("app")], False, "Running"),
    ("exit0-always-restarts", APP, [], "Always", [], [st_terminated("app", 0)], False, "Running"),
    ("exit0-never", APP, [], "Never", [], [st_terminated("app", 0)], False, "Succeeded"),
    ("exit1-never", APP, [], "Never", [], [st_terminated("app", 1)], False, "Failed"),
    (
        "exit1-onfailure-restarts",
        APP,
        [],
        "OnFailure",
        [],
        [st_terminated("app", 1)],
        False,
        "Running",
    ),
    ("exit0-onfailure", APP, [], "OnFailure", [], [st_terminated("app", 0)], False, "Succeeded"),
    (
        "one-running-one-failed",
        TWO,
        [],
        "Never",
        [],
        [st_running("a"), st_terminated("b", 1)],
        False,
        "Running",
    ),
    (
        "one-ok-one-failed-never",
        TWO,
        [],
        "Never",
        [],
        [st_terminated("a", 0), st_terminated("b", 2)],
        False,
        "Failed",
    ),
    (
        "crashloop-counts-as-stopped",
        APP,
        [],
        "Always",
        [],
        [st_waiting("app", "CrashLoopBackOff", last=1)],
        False,
        "Running",
    ),
    (
        "init-running",
        APP,
        INIT,
        "Always",
        [st_running("init-a")],
        [st_waiting("app")],
        False,
        "Pending",
    ),
    (
        "init-not-started",
        APP,
        INIT,
        "Always",
        [st_waiting("init-a")],
        [st_waiting("app")],
        False,
        "Pending",
    ),
    (
        "init-failed-never",
        APP,
        INIT,
        "Never",
        [st_terminated("init-a", 1)],
        [st_waiting("app")],
        False,
        "Failed",
    ),
    (
        "init-crashloop-never",
        APP,
        INIT,
        "Never",
        [st_waiting("init-a", "CrashLoopBackOff", last=1)],
        [st_waiting("app")],
        False,
        "Failed",
    ),
    (
        "init-failed-onfailure-retries",
        APP,
        INIT,
        "OnFailure",
        [st_waiting("init-a", "CrashLoopBackOff", last=1)],
        [st_waiting("app")],
        False,
        "Pending",
    ),
    (
        "init-done-app-running",
        APP,
        INIT,
        "Always",
        [st_terminated("init-a", 0, ready=True)],
        [st_running("app")],
        False,
        "Running",
    ),
    (
        "sidecar-not-started",
        APP,
        SIDE,
        "Always",
        [st_running("proxy", started=False)],
        [st_waiting("app")],
        False,
        "Pending",
    ),
    (
        "sidecar-started-app-waiting",
        APP,
        SIDE,
        "Always",
        [st_running("proxy")],
        [st_waiting("app")],
        False,
        "Pending",
    ),
    (
        "sidecar-ignored-job-done",
        APP,
        SIDE,
        "Never",
        [st_running("proxy")],
        [st_terminated("app", 0)],
        False,
        "Succeeded",
    ),
    (
        "sidecar-ignored-job-failed",
        APP,
        SIDE,
        "Never",
        [st_running("proxy")],
        [st_terminated("app", 3)],
        False,
        "Failed",
    ),
    (
        "sidecar-ignored-onfailure",
        APP,
        SIDE,
        "OnFailure",
        [st_running("proxy")],
        [st_terminated("app", 0)],
        False,
        "Succeeded",
    ),
    (
        "sidecar-exited-app-running",
        APP,
        SIDE,
        "Always",
        [st_terminated("proxy", 1)],
        [st_running("app")],
        False,
        "Running",
    ),
    (
        "sidecar-restarting-after-init",
        APP,
        SIDE,
        "Always",
        [st_waiting("proxy", "CrashLoopBackOff", last=1)],
        [st_running("app")],
        False,
        "Running",
    ),
    (
        "sidecar-unstarted-after-app-ran",
        APP,
        SIDE,
        "Always",
        [st_running("proxy", started=False)],
        [st_running("app")],
        False,
        "Running",
    ),
    (
        "sidecar-then-init-running",
        APP,
        SIDE_THEN_INIT,
        "Always",
        [st_running("proxy"), st_running("init-a")],
        [st_waiting("app")],
        False,
        "Pending",
    ),
    ("terminal-all-ok-always", APP, [], "Always", [], [st_terminated("app", 0)], True, "Succeeded"),
    ("terminal-sigterm-always", APP, [], "Always", [], [st_terminated("app", 143)], True, "Failed"),
    ("terminal-still-running", APP, [], "Always", [], [st_running("app")], True, "Running"),
    ("no-status-yet", APP, [], "Always", [], [], False, "Pending"),
]


@pytest.mark.parametrize(
    ("containers", "init", "policy", "init_st", "app_st", "terminal", "expected"),
    [case[1:] for case in PHASE_CASES],
    ids=[case[0] for case in PHASE_CASES],
)
def test_pod_phase_table(
    containers: list,
    init: list,
    policy: str,
    init_st: list,
    app_st: list,
    terminal: bool,
    expected: str,
) -> None:
    pod = make_pod(containers, init, restart_policy=policy)
    assert pod_phase(pod, statuses(app_st, init_st), pod_is_terminal=terminal) == expected


@pytest.mark.parametrize("terminal_phase", ["Succeeded", "Failed"])
def test_terminal_phase_never_changes_back(terminal_phase: str) -> None:
    pod = make_pod(APP)
    pod.status.phase = terminal_phase
    assert pod_phase(pod, statuses([st_running("app")])) == terminal_phase


def test_unset_restart_policy_reads_as_always() -> None:
    pod = make_pod(APP, restart_policy="")
    assert pod_phase(pod, statuses([st_terminated("app", 0)])) == "Running"


# ------------------------------------------------------------------ conditions


def by_type(conditions: list[Condition]) -> dict[str, Condition]:
    return {c.type: c for c in conditions}


def test_conditions_come_in_kubelet_order_then_others() -> None:
    pod = make_pod(APP)
    pod.status.conditions = [Condition(type="example.com/gate", status="True")]
    conds = pod_conditions(pod, statuses([st_running("app")]), "Running", sandbox_ready=True)
    assert [c.type for c in conds] == [*KUBELET_CONDITIONS, "example.com/gate"]


CONDITION_CASES = [
    # (id, pod builder args, statuses, phase, sandbox, {type: (status, reason, message)})
    (
        "all-ready",
        (APP, []),
        statuses([st_running("app")]),
        "Running",
        True,
        {
            "PodScheduled": ("True", "", ""),
            "PodReadyToStartContainers": ("True", "", ""),
            "Initialized": ("True", "", ""),
            "ContainersReady": ("True", "", ""),
            "Ready": ("True", "", ""),
        },
    ),
    (
        "no-sandbox-yet",
        (APP, []),
        statuses([st_waiting("app", "ContainerCreating")]),
        "Pending",
        False,
        {
            "PodReadyToStartContainers": ("False", "", ""),
            "ContainersReady": (
                "False",
                "ContainersNotReady",
                "containers with unready status: [app]",
            ),
            "Ready": ("False", "ContainersNotReady", "containers with unready status: [app]"),
        },
    ),
    (
        "init-incomplete",
        (APP, [container("init-a"), container("init-b")]),
        statuses(
            [st_waiting("app")],
            [st_terminated("init-a", 0, ready=True), st_running("init-b", ready=False)],
        ),
        "Pending",
        True,
        {
            "Initialized": (
                "False",
                "ContainersNotInitialized",
                "containers with incomplete status: [init-b]",
            ),
        },
    ),
    (
        "init-status-unknown",
        (APP, [container("init-a")]),
        statuses([st_waiting("app")], []),
        "Pending",
        True,
        {
            "Initialized": (
                "False",
                "ContainersNotInitialized",
                "containers with unknown status: [init-a]",
            ),
        },
    ),
    (
        "sidecar-unstarted-not-initialized",
        (APP, [sidecar("proxy", startup_probe=probe())]),
        statuses([st_waiting("app")], [st_running("proxy", started=False, ready=False)]),
        "Pending",
        True,
        {
            "Initialized": (
                "False",
                "ContainersNotInitialized",
                "containers with incomplete status: [proxy]",
            ),
        },
    ),
    (
        "unready-sidecar-blocks-ready",
        (APP, [sidecar("proxy")]),
        statuses([st_running("app")], [st_running("proxy", ready=False)]),
        "Running",
        True,
        {
            "Initialized": ("True", "", ""),
            "ContainersReady": (
                "False",
                "ContainersNotReady",
                "containers with unready status: [proxy]",
            ),
        },
    ),
    (
        "several-unready",
        (TWO, []),
        statuses([st_running("a", ready=False), st_running("b", ready=False)]),
        "Running",
        True,
        {"Ready": ("False", "ContainersNotReady", "containers with unready status: [a b]")},
    ),
    (
        "succeeded",
        (APP, [container("init-a")]),
        statuses([st_terminated("app", 0)], [st_terminated("init-a", 0, ready=True)]),
        "Succeeded",
        True,
        {
            "Initialized": ("True", "PodCompleted", ""),
            "ContainersReady": ("False", "PodCompleted", ""),
            "Ready": ("False", "PodCompleted", ""),
        },
    ),
    (
        "failed",
        (APP, []),
        statuses([st_running("app")]),
        "Failed",
        True,
        {"ContainersReady": ("False", "PodFailed", ""), "Ready": ("False", "PodFailed", "")},
    ),
    (
        "initialized-once-app-ran",
        (APP, [sidecar("proxy")]),
        statuses([st_running("app")], [st_waiting("proxy", "CrashLoopBackOff", last=1)]),
        "Running",
        True,
        {"Initialized": ("True", "", "")},
    ),
]


@pytest.mark.parametrize(
    ("spec", "sts", "phase", "sandbox", "expected"),
    [case[1:] for case in CONDITION_CASES],
    ids=[case[0] for case in CONDITION_CASES],
)
def test_pod_conditions_table(
    spec: tuple, sts: PodContainerStatuses, phase: str, sandbox: bool, expected: dict
) -> None:
    pod = make_pod(spec[0], spec[1])
    got = by_type(pod_conditions(pod, sts, phase, sandbox_ready=sandbox))
    for type_, (status, reason, message) in expected.items():
        assert (got[type_].status, got[type_].reason, got[type_].message) == (
            status,
            reason,
            message,
        ), type_


def test_ready_waits_for_every_readiness_gate() -> None:
    pod = make_pod(
        APP,
        readiness_gates=[
            PodReadinessGate(condition_type="a/x"),
            PodReadinessGate(condition_type="a/y"),
        ],
    )
    pod.status.conditions = [Condition(type="a/y", status="False")]
    got = by_type(pod_conditions(pod, statuses([st_running("app")]), "Running", sandbox_ready=True))
    assert got[CONTAINERS_READY].status == "True"
    assert got[READY].status == "False"
    assert got[READY].reason == "ReadinessGatesNotReady"
    assert got[READY].message == (
        'corresponding condition of pod readiness gate "a/x" does not exist., '
        'the status of pod readiness gate "a/y" is not "True", but False'
    )
    pod.status.conditions = [
        Condition(type="a/x", status="True"),
        Condition(type="a/y", status="True"),
    ]
    got = by_type(pod_conditions(pod, statuses([st_running("app")]), "Running", sandbox_ready=True))
    assert got[READY].status == "True"
    assert got[INITIALIZED].status == "True"
