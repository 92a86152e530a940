"""Simulated container behaviour: annotation parsing and the run model."""

from __future__ import annotations

import pytest

from services.node_agent.logic.simulated_behaviour import (
    BehaviourError,
    SimulatedBehaviour,
    SimulatedRun,
    parse_behaviour,
    validate_annotations,
)

ANN = {
    "sim.podbus.io/exit-after": "3s",
    "sim.podbus.io/exit-code": "1",
    "sim.podbus.io/ready-after": "1m30s",
    "sim.podbus.io/worker.exit-code": "1,1,0",
    "sim.podbus.io/worker.stop-delay": "500ms",
    "sim.podbus.io/setup.exit-after": "2",
    "sim.podbus.io/proxy.fail-liveness-after": "10s",
    "sim.podbus.io/app.image-absent": "true",
    "other.io/ignored": "x",
}


def test_pod_wide_keys_apply_to_app_containers() -> None:
    b = parse_behaviour(ANN, "web")
    assert (b.exit_after, b.exit_codes, b.ready_after) == (3.0, (1,), 90.0)


def test_container_keys_override_pod_wide_ones() -> None:
    b = parse_behaviour(ANN, "worker")
    assert b.exit_codes == (1, 1, 0)
    assert b.stop_delay == 0.5
    assert b.exit_after == 3.0
    assert parse_behaviour(ANN, "app").image_absent is True


def test_init_containers_finish_at_once_unless_told_otherwise() -> None:
    assert parse_behaviour({}, "setup", "init").exit_after == 0.0
    assert parse_behaviour(ANN, "setup", "init").exit_after == 2.0
    # Pod-wide keys do not reach init containers.
    assert parse_behaviour(ANN, "setup", "init").exit_codes == (0,)


def test_sidecars_and_ephemeral_containers_run_until_stopped() -> None:
    proxy = parse_behaviour(ANN, "proxy", "init", sidecar=True)
    assert proxy.exit_after is None
    assert proxy.fail_liveness_after == 10.0
    assert parse_behaviour(ANN, "debug", "ephemeral") == SimulatedBehaviour()


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        ("sim.podbus.io/exit-after", "soon", "sim.podbus.io/exit-after: invalid value 'soon'"),
        ("sim.podbus.io/exit-code", "256", "exit codes are 0..255"),
        ("sim.podbus.io/app.post-start-fails", "yes", "must be true or false"),
        ("sim.podbus.io/exit-afterr", "3s", "unknown key 'exit-afterr'"),
        ("sim.podbus.io/app.bogus", "1", "unknown key 'bogus'"),
    ],
)
def test_bad_annotations_fail_loudly(annotation: str, value: str, message: str) -> None:
    with pytest.raises(BehaviourError, match=message):
        parse_behaviour({annotation: value}, "app")
    assert any(message in p for p in validate_annotations({annotation: value}))


def test_valid_annotations_have_no_problems() -> None:
    assert validate_annotations(ANN) == []


# ------------------------------------------------------------------ the run model


def test_run_starts_after_its_delay_and_exits_with_its_code() -> None:
    b = SimulatedBehaviour(start_delay=2, exit_after=3, exit_codes=(1, 0))
    run = SimulatedRun(b, attempt=0, created_at=100)
    assert run.state_at(101).state == "created"
    assert run.state_at(102).state == "running"
    assert run.state_at(102).started_at == 102
    done = run.state_at(105)
    assert (done.state, done.exit_code, done.finished_at) == ("exited", 1, 105)
    assert SimulatedRun(b, attempt=1, created_at=100).state_at(105).exit_code == 0
    assert SimulatedRun(b, attempt=7, created_at=100).state_at(105).exit_code == 0
    assert run.next_change_after(100) == 102
    assert run.next_change_after(102) == 105
    assert run.next_change_after(105) is None


def test_exit_reason_is_reported() -> None:
    run = SimulatedRun(
        SimulatedBehaviour(exit_after=1, exit_codes=(137,), exit_reason="OOMKilled"), 0, 0
    )
    assert run.state_at(1).reason == "OOMKilled"


def test_stop_exits_after_stop_delay_within_grace() -> None:
    run = SimulatedRun(SimulatedBehaviour(stop_delay=1, stop_exit_code=0), 0, 0).stop(10, grace=30)
    assert run.state_at(10.5).state == "running"
    end = run.state_at(11)
    assert (end.state, end.exit_code, end.finished_at) == ("exited", 0, 11)


def test_stop_past_grace_is_killed_with_137() -> None:
    run = SimulatedRun(SimulatedBehaviour(stop_delay=60), 0, 0).stop(10, grace=2)
    end = run.state_at(12)
    assert (end.state, end.exit_code, end.finished_at) == ("exited", 137, 12)
    # A second stop does not move the deadline.
    assert run.stop(11, grace=30).state_at(12).exit_code == 137


def test_natural_exit_before_stop_signal_takes_effect_wins() -> None:
    run = SimulatedRun(SimulatedBehaviour(exit_after=5, exit_codes=(3,), stop_delay=10), 0, 0)
    end = run.stop(4, grace=30).state_at(6)
    assert (end.exit_code, end.finished_at) == (3, 5)


def test_stopped_before_running_never_starts() -> None:
    run = SimulatedRun(SimulatedBehaviour(start_delay=5), 0, 0).stop(1, grace=30)
    end = run.state_at(1)
    assert end.state == "exited" and end.started_at is None


def test_probe_outcomes_follow_the_behaviour() -> None:
    b = SimulatedBehaviour(ready_after=5, unready_after=20, startup_after=3, fail_liveness_after=30)
    run = SimulatedRun(b, 0, 0)
    assert [run.probe("readiness", t) for t in (4, 5, 19, 20)] == [False, True, True, False]
    assert [run.probe("startup", t) for t in (2, 3)] == [False, True]
    assert [run.probe("liveness", t) for t in (29, 30)] == [True, False]
    stopped = run.stop(40, grace=0)
    assert stopped.probe("liveness", 41) is False


def test_exec_fails_after_is_a_duration() -> None:
    from services.node_agent.logic.simulated_behaviour import parse_behaviour

    got = parse_behaviour({"sim.podbus.io/exec-fails-after": "30s"}, "app")
    assert got.exec_fails_after == 30.0
