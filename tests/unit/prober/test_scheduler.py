"""The probe scheduler: jitter, no overlap, bounded concurrency, lag."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

from services.prober.scheduler import ProbeScheduler
from tests.conftest import wait_for


class Recorder:
    """Jobs that count their runs and how many run at once."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.starts: list[float] = []
        self.running = 0
        self.max_running = 0

    def job(self) -> Coroutine[Any, Any, None]:
        return self._run()

    async def _run(self) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.duration)
        finally:
            self.running -= 1


async def test_first_runs_are_spread_over_one_period() -> None:
    scheduler = ProbeScheduler(rng=random.Random(7))
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    added = loop.time()
    for i in range(200):
        scheduler.add(i, 10.0, recorder.job)
    offsets = [(scheduler.next_due(i) or -1.0) - added for i in range(200)]
    assert all(0.0 <= o < 10.0 + 0.1 for o in offsets)
    # Spread, not bunched: every tenth of the period gets some.
    assert {int(o) for o in offsets} == set(range(10))
    await scheduler.close()


async def test_explicit_delay_runs_first_at_that_time() -> None:
    scheduler = ProbeScheduler()
    recorder = Recorder()
    scheduler.add("a", 10.0, recorder.job, delay=0.0)
    await wait_for(lambda: recorder.starts, timeout=2, message="first run")
    assert len(recorder.starts) == 1  # the next one is a period away
    await scheduler.close()


async def test_runs_repeat_every_period() -> None:
    scheduler = ProbeScheduler()
    recorder = Recorder()
    scheduler.add("a", 0.05, recorder.job, delay=0.0)
    await wait_for(lambda: len(recorder.starts) >= 5, timeout=5, message="5 runs")
    gaps = [b - a for a, b in zip(recorder.starts, recorder.starts[1:], strict=False)]
    assert all(gap > 0.02 for gap in gaps)
    await scheduler.close()


async def test_slow_probe_skips_turns_instead_of_piling_up() -> None:
    scheduler = ProbeScheduler()
    recorder = Recorder(duration=0.25)
    scheduler.add("slow", 0.05, recorder.job, delay=0.0)
    await wait_for(lambda: len(recorder.starts) >= 2, timeout=5, message="two runs")
    assert recorder.max_running == 1
    assert scheduler.skipped >= 2
    await scheduler.close()


async def test_concurrency_is_bounded_and_waiting_runs_start_later() -> None:
    scheduler = ProbeScheduler(max_concurrency=3)
    recorder = Recorder(duration=0.1)
    for i in range(10):
        scheduler.add(i, 30.0, recorder.job, delay=0.0)
    await wait_for(lambda: len(recorder.starts) == 10, timeout=5, message="all ten ran")
    assert recorder.max_running == 3
    lags = scheduler.take_lags()
    assert len(lags) == 10
    assert max(lags) >= 0.1  # the last ones waited for a slot
    await scheduler.close()


async def test_gated_job_starts_no_task() -> None:
    scheduler = ProbeScheduler()
    calls: list[int] = []

    def gated() -> None:
        calls.append(1)

    scheduler.add("gated", 0.05, gated, delay=0.0)
    await wait_for(lambda: len(calls) >= 2, timeout=5, message="gated calls")
    assert scheduler.active == 0
    assert scheduler.runs >= 2
    await scheduler.close()


async def test_remove_cancels_the_run_and_the_schedule() -> None:
    scheduler = ProbeScheduler()
    recorder = Recorder(duration=10.0)
    scheduler.add("a", 0.05, recorder.job, delay=0.0)
    await wait_for(lambda: recorder.running == 1, timeout=2, message="run started")
    scheduler.remove("a")
    await wait_for(lambda: recorder.running == 0, timeout=2, message="run cancelled")
    starts = len(recorder.starts)
    await asyncio.sleep(0.15)
    assert len(recorder.starts) == starts
    assert "a" not in scheduler and scheduler.active == 0


async def test_reschedule_moves_the_next_run() -> None:
    scheduler = ProbeScheduler()
    recorder = Recorder()
    scheduler.add("a", 30.0, recorder.job, delay=30.0)
    scheduler.reschedule("a", 0.0)
    await wait_for(lambda: recorder.starts, timeout=2, message="rescheduled run")
    await scheduler.close()


async def test_lag_is_small_when_idle() -> None:
    scheduler = ProbeScheduler(tick=0.005)
    recorder = Recorder()
    for i in range(20):
        scheduler.add(i, 0.1, recorder.job)
    await wait_for(lambda: len(recorder.starts) >= 60, timeout=5, message="runs")
    lags = scheduler.take_lags()
    assert min(lags) >= 0.0
    assert sorted(lags)[len(lags) // 2] < 0.05
    await scheduler.close()


async def test_failing_job_is_counted_and_keeps_its_schedule() -> None:
    scheduler = ProbeScheduler()
    runs: list[int] = []

    async def boom() -> None:
        runs.append(1)
        raise RuntimeError("boom")

    scheduler.add("boom", 0.05, boom, delay=0.0)
    await wait_for(lambda: len(runs) >= 2, timeout=5, message="two failing runs")
    assert scheduler.failed >= 1
    await scheduler.close()
