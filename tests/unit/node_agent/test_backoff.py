"""Crash loop back-off timing: 10 s doubling to 300 s, reset after 10 min
of clean running, as kubelet's flowcontrol.Backoff behaves."""

from __future__ import annotations

import pytest

from services.node_agent.logic.backoff import BackoffConfig, CrashBackoff, backoff_message
from services.node_agent.logic.timefmt import go_duration

UID = "uid-1"


def crash_loop(backoff: CrashBackoff, crashes: int, run_for: float = 0.0) -> list[float]:
    """A container that runs `run_for` seconds and crashes, restarted as soon
    as the back-off allows: the wait before each restart."""
    now = 0.0
    waits = []
    for _ in range(crashes):
        finished = now + run_for
        start = backoff.restart_at(UID, "app", finished)
        waits.append(start - finished)
        backoff.record_restart(UID, "app", finished, start)
        now = start
    return waits


def test_default_sequence_doubles_from_ten_seconds_to_the_cap() -> None:
    waits = crash_loop(CrashBackoff(), 9)
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_timings_are_configurable() -> None:
    backoff = CrashBackoff(BackoffConfig(initial=0.1, cap=0.4, reset_after=2.0))
    assert crash_loop(backoff, 5) == pytest.approx([0, 0.1, 0.2, 0.4, 0.4])


def test_back_off_resets_after_ten_minutes_of_clean_running() -> None:
    backoff = CrashBackoff()
    crash_loop(backoff, 5)  # delay now 80 s owed
    entry = backoff.entry(UID, "app")
    assert entry is not None
    restarted = entry.last_restart
    # Crashing again after 599 s of running still owes the doubled delay ...
    assert backoff.delay(UID, "app", restarted + 599) == 160
    # ... after more than 600 s it restarts at once and the sequence starts over.
    assert backoff.delay(UID, "app", restarted + 601) == 0
    assert backoff.record_restart(UID, "app", restarted + 601, restarted + 601) == 10


def test_in_backoff_until_finish_plus_delay() -> None:
    backoff = CrashBackoff()
    backoff.record_restart(UID, "app", 0.0, 0.0)
    assert backoff.in_backoff(UID, "app", finished_at=5.0, now=14.9)
    assert not backoff.in_backoff(UID, "app", finished_at=5.0, now=15.0)


def test_entries_are_per_pod_and_container() -> None:
    backoff = CrashBackoff()
    backoff.record_restart(UID, "app", 0.0, 0.0)
    assert backoff.delay(UID, "app", 1.0) == 10
    assert backoff.delay(UID, "other", 1.0) == 0
    assert backoff.delay("uid-2", "app", 1.0) == 0
    backoff.forget_pod(UID)
    assert backoff.delay(UID, "app", 1.0) == 0
    assert len(backoff) == 0


def test_collect_drops_entries_that_can_no_longer_apply() -> None:
    backoff = CrashBackoff()
    backoff.record_restart(UID, "app", 0.0, 0.0)
    backoff.collect(now=600.0)
    assert len(backoff) == 1
    backoff.collect(now=601.0)
    assert len(backoff) == 0


def test_message_is_kubelets() -> None:
    assert backoff_message(20, "app", "web-0", "default", UID) == (
        "back-off 20s restarting failed container=app pod=web-0_default(uid-1)"
    )
    assert backoff_message(300, "app", "web-0", "default", UID).startswith("back-off 5m0s ")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (10, "10s"),
        (80, "1m20s"),
        (160, "2m40s"),
        (300, "5m0s"),
        (3600, "1h0m0s"),
        (1.5, "1.5s"),
        (0.1, "100ms"),
        (0.0015, "1.5ms"),
        (-2, "-2s"),
    ],
)
def test_go_duration_strings(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
