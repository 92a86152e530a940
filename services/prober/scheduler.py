"""Runs each probe at its due time, every period.

A timer wheel over the event loop's heap: due times fall into buckets of
`tick` seconds (default 5 ms), one `loop.call_at` per non-empty bucket; a
probe is re-armed at `due + period` (fixed rate, so runs do not drift by
their own duration). Buckets batch the probes that fall due together into
one loop iteration and their I/O into the same epoll calls, which is most of
the scheduler's CPU saving at a thousand probes a second; the price is up to
one tick of lag. Rules:
- the first run is spread over [0, period) by default (jitter), so that a
  restart does not probe everything at once;
- runs of one probe never overlap: a probe still running when it falls due
  again skips that turn (counted in `skipped`), never piles up;
- at most `max_concurrency` runs at once; runs over the limit wait in a FIFO
  and start when a slot frees;
- a job is a plain callable that returns a coroutine to run, or None when
  there is nothing to do this turn (a gated probe): no task is created then;
- `lag` = start time - due time, sampled for every run (monotonic clock).

The scheduler owns the tasks it starts: `close()` cancels them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

log = logging.getLogger(__name__)

Job = Callable[[], Coroutine[Any, Any, None] | None]


class _Entry:
    __slots__ = (
        "bucket",
        "done",
        "due",
        "job",
        "key",
        "period",
        "queued",
        "queued_due",
        "removed",
        "task",
    )

    def __init__(self, key: Hashable, period: float, job: Job) -> None:
        self.key = key
        self.period = period
        self.job = job
        self.due = 0.0
        self.bucket = -1
        self.done: Callable[[asyncio.Task[None]], None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.queued = False
        self.queued_due = 0.0
        self.removed = False


class ProbeScheduler:
    """Periodic, non-overlapping, bounded-concurrency runs of probe jobs."""

    def __init__(
        self,
        *,
        max_concurrency: int = 512,
        tick: float = 0.005,
        rng: random.Random | None = None,
        max_lag_samples: int = 10_000,
    ) -> None:
        self.max_concurrency = max_concurrency
        if tick <= 0:
            raise ValueError("tick must be > 0")
        self.tick = tick
        self._buckets: dict[int, list[_Entry]] = {}
        self._bucket_handles: dict[int, asyncio.TimerHandle] = {}
        self._rng = rng or random.Random()
        self._entries: dict[Hashable, _Entry] = {}
        self._backlog: deque[_Entry] = deque()
        self._active = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lags: deque[float] = deque(maxlen=max_lag_samples)
        self.runs = 0
        self.skipped = 0
        self.failed = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    @property
    def active(self) -> int:
        return self._active

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def add(self, key: Hashable, period: float, job: Job, *, delay: float | None = None) -> None:
        """Schedule `job` every `period` seconds; the first run after `delay`
        seconds, or after a random share of one period if None. Replaces a
        job already under `key`."""
        if key in self._entries:
            self.remove(key)
        loop = self._get_loop()
        entry = _Entry(key, max(period, 0.001), job)
        if delay is None:
            delay = self._rng.random() * entry.period
        entry.done = functools.partial(self._finished, entry)
        self._entries[key] = entry
        self._arm(entry, loop.time() + max(delay, 0.0))

    def next_due(self, key: Hashable) -> float | None:
        """The loop time of the next run of `key`."""
        entry = self._entries.get(key)
        return entry.due if entry is not None else None

    def reschedule(self, key: Hashable, delay: float) -> None:
        """Move the next run of `key` to `delay` seconds from now (a new
        container attempt wants its first probe soon); later runs follow at
        the period from there."""
        entry = self._entries.get(key)
        if entry is None:
            return
        self._arm(entry, self._get_loop().time() + max(delay, 0.0))

    def remove(self, key: Hashable) -> None:
        """Stop scheduling `key` and cancel its run in progress."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        entry.removed = True
        entry.bucket = -1
        if entry.task is not None:
            entry.task.cancel()

    async def close(self) -> None:
        """Stop everything and wait for the runs in progress to end."""
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for key in list(self._entries):
            self.remove(key)
        self._backlog.clear()
        for handle in self._bucket_handles.values():
            handle.cancel()
        self._bucket_handles.clear()
        self._buckets.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def take_lags(self) -> list[float]:
        """The lag samples gathered since the last call (seconds)."""
        samples = list(self.lags)
        self.lags.clear()
        return samples

    def _arm(self, entry: _Entry, due: float) -> None:
        """Put `entry` in the bucket of `due` (the first tick at or after
        it). An entry moved elsewhere stays in its old bucket's list and is
        skipped there (`entry.bucket` no longer matches)."""
        entry.due = due
        bucket = math.ceil(due / self.tick)
        entry.bucket = bucket
        entries = self._buckets.get(bucket)
        if entries is None:
            self._buckets[bucket] = [entry]
            loop = self._loop
            assert loop is not None
            self._bucket_handles[bucket] = loop.call_at(
                bucket * self.tick, self._fire_bucket, bucket
            )
        else:
            entries.append(entry)

    def _fire_bucket(self, bucket: int) -> None:
        self._bucket_handles.pop(bucket, None)
        entries = self._buckets.pop(bucket, ())
        for entry in entries:
            if entry.bucket == bucket and not entry.removed:
                self._fire(entry)

    def _fire(self, entry: _Entry) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due = entry.due
        nxt = due + entry.period
        if nxt <= now:
            # The loop was blocked for more than a period: skip the missed turns.
            missed = int((now - due) // entry.period)
            self.skipped += missed
            nxt = due + (missed + 1) * entry.period
        self._arm(entry, nxt)
        if entry.task is not None or entry.queued:
            self.skipped += 1
            return
        if self._active >= self.max_concurrency:
            entry.queued = True
            entry.queued_due = due
            self._backlog.append(entry)
            return
        self._start(entry, now - due if now > due else 0.0)

    def _start(self, entry: _Entry, lag: float) -> None:
        self.lags.append(lag)
        self.runs += 1
        try:
            coro = entry.job()
        except Exception:
            self.failed += 1
            log.exception("probe job %r failed", entry.key)
            return
        if coro is None:
            return
        loop = self._loop
        assert loop is not None
        self._active += 1
        task = loop.create_task(coro)
        entry.task = task
        assert entry.done is not None
        task.add_done_callback(entry.done)

    def _finished(self, entry: _Entry, task: asyncio.Task[None]) -> None:
        entry.task = None
        self._active -= 1
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self.failed += 1
                log.error("probe run %r failed", entry.key, exc_info=exc)
        loop = self._loop
        assert loop is not None
        while self._backlog and self._active < self.max_concurrency:
            waiting = self._backlog.popleft()
            waiting.queued = False
            if waiting.removed:
                continue
            was_due = waiting.queued_due
            now = loop.time()
            self._start(waiting, now - was_due if now > was_due else 0.0)
