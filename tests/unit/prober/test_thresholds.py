"""The probe state machine: gating, thresholds, transitions (kubelet worker.go)."""

from __future__ import annotations

import pytest
from podmodel.pod import Probe
from podmodel.probing import ProbeType

from services.prober.logic.thresholds import (
    Gate,
    Outcome,
    ProbeState,
    Transition,
    container_started,
)

OK = Outcome("success")
BAD = Outcome("failure", "HTTP probe failed with statuscode: 500")
ERR = Outcome("unknown", 'port "http" not found')


def make_state(
    probe_type: ProbeType = "readiness",
    *,
    initial_delay: int = 0,
    success: int = 1,
    failure: int = 3,
    started_at: float | None = 1000.0,
) -> ProbeState:
    probe = Probe(
        initial_delay_seconds=initial_delay,
        success_threshold=success,
        failure_threshold=failure,
    )
    state = ProbeState.for_probe(probe_type, probe)
    state.observe_container("c1", started_at)
    return state


def run_all(state: ProbeState, outcomes: list[Outcome]) -> list[Transition | None]:
    return [state.record(o) for o in outcomes]


@pytest.mark.parametrize(
    ("probe_type", "initial"),
    [("readiness", "failure"), ("liveness", "success"), ("startup", "unknown")],
)
def test_initial_result_per_probe_type(probe_type: ProbeType, initial: str) -> None:
    assert make_state(probe_type).result == initial


def test_readiness_is_failure_and_not_probed_before_initial_delay() -> None:
    state = make_state(initial_delay=5, started_at=1000.0)
    assert state.gate(1004.9, started=True) is Gate.INITIAL_DELAY
    assert state.result == "failure"
    assert state.gate(1005.0, started=True) is Gate.RUN


def test_not_running_container_is_not_probed() -> None:
    state = make_state(started_at=None)
    assert state.gate(5000.0, started=True) is Gate.NOT_RUNNING


@pytest.mark.parametrize(
    ("probe_type", "started", "gate"),
    [
        ("liveness", False, Gate.AWAIT_STARTUP),
        ("readiness", False, Gate.AWAIT_STARTUP),
        ("startup", False, Gate.RUN),
        ("liveness", True, Gate.RUN),
        ("readiness", True, Gate.RUN),
        ("startup", True, Gate.STARTED),
    ],
)
def test_startup_gates_liveness_and_readiness(
    probe_type: ProbeType, started: bool, gate: Gate
) -> None:
    assert make_state(probe_type).gate(2000.0, started=started) is gate


def test_initial_delay_applies_before_startup_gating() -> None:
    state = make_state("startup", initial_delay=10)
    assert state.gate(1001.0, started=False) is Gate.INITIAL_DELAY


def test_container_started_rules() -> None:
    startup = make_state("startup")
    assert container_started(False, False, None)  # no startup probe: started
    assert container_started(True, True, startup)  # the node-agent says so
    assert not container_started(True, False, startup)  # startup has not passed
    startup.record(OK)
    assert container_started(True, False, startup)


def test_failure_reported_only_at_failure_threshold() -> None:
    state = make_state("readiness", failure=3)
    state.record(OK)
    assert run_all(state, [BAD, BAD]) == [None, None]
    assert state.result == "success"
    transition = state.record(BAD)
    assert transition == Transition("failure", BAD.message, False, 3)
    assert state.result == "failure"


def test_success_threshold_counts_consecutive_successes() -> None:
    state = make_state("readiness", success=3)
    assert run_all(state, [OK, OK, BAD, OK, OK]) == [None, None, None, None, None]
    assert state.result == "failure"
    assert state.record(OK) == Transition("success", "", False, 3)


def test_liveness_and_startup_use_success_threshold_one() -> None:
    probe_types: list[ProbeType] = ["liveness", "startup"]
    for probe_type in probe_types:
        probe = Probe(success_threshold=5)
        state = ProbeState.for_probe(probe_type, probe)
        state.observe_container("c1", 0.0)
        assert state.success_threshold == 1
        assert state.record(OK) is not None


def test_transitions_only_no_repeat_reports() -> None:
    state = make_state("readiness", failure=1)
    assert state.record(OK) is not None
    assert run_all(state, [OK, OK, OK]) == [None, None, None]
    assert state.record(BAD) is not None
    assert run_all(state, [BAD, BAD]) == [None, None]
    assert state.record(OK) is not None


def test_first_thresholded_result_of_an_attempt_is_reported() -> None:
    """Even when it equals the initial value: the node-agent learns the
    reason (readiness failing from the start makes an Unhealthy event)."""
    state = make_state("readiness", failure=1)
    assert state.result == "failure"
    assert state.record(BAD) == Transition("failure", BAD.message, False, 1)


def test_liveness_failure_holds_until_new_container() -> None:
    state = make_state("liveness", failure=2)
    assert run_all(state, [BAD, BAD])[-1] == Transition("failure", BAD.message, False, 2)
    assert state.gate(5000.0, started=True) is Gate.ON_HOLD
    assert not state.observe_container("c1", 1000.0)  # same attempt: still held
    assert state.gate(5000.0, started=True) is Gate.ON_HOLD
    assert state.observe_container("c2", 4000.0)
    assert state.gate(5000.0, started=True) is Gate.RUN
    assert state.result == "success"


def test_startup_failure_holds_too() -> None:
    state = make_state("startup", failure=1)
    assert state.record(BAD) is not None
    assert state.gate(5000.0, started=False) is Gate.ON_HOLD


def test_readiness_failure_keeps_probing() -> None:
    state = make_state("readiness", failure=1)
    state.record(BAD)
    assert state.gate(5000.0, started=True) is Gate.RUN


def test_new_attempt_resets_counts_and_result() -> None:
    state = make_state("readiness", success=2, failure=2)
    run_all(state, [OK, OK])
    assert state.result == "success"
    state.observe_container("c2", 2000.0)
    assert state.result == "failure"
    assert state.record(OK) is None  # needs the full successThreshold again
    assert state.record(OK) == Transition("success", "", False, 2)


def test_errored_runs_do_not_count_and_are_reported_once() -> None:
    state = make_state("readiness", failure=2)
    assert state.record(BAD) is None
    assert state.record(ERR) == Transition("unknown", ERR.message, False, 0)
    assert state.record(ERR) is None
    assert state.record(BAD) == Transition("failure", BAD.message, False, 2)
    assert state.record(ERR) is not None  # reported again after a real run


def test_warning_success_carries_the_message() -> None:
    state = make_state("readiness")
    warned = Outcome("success", "Probe terminated redirects, Response body: ", warning=True)
    assert state.record(warned) == Transition("success", warned.message, True, 1)
