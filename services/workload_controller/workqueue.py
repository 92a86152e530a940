"""A level-triggered work queue of object keys, as client-go's workqueue.

Owns the rules that make controllers level-triggered and safe to run with
several workers in one event loop:

- a key is queued at most once however many events name it (`add` while it
  is queued is a no-op), so a burst of 10,000 pod updates costs one sync of
  their ReplicaSet, not 10,000;
- a key is never handed to two workers at once: a key added while it is
  being processed is marked dirty and queued again when `done` is called;
- `add_after` wakes a key at a later time (a Requeue from a plan, a
  deadline), `add_rate_limited` after a failure with per-key exponential
  back-off (5 ms doubling, capped), reset by `forget` after a success.

Queue contents are keys only: a worker always reads the current object from
its informer cache, so it acts on the latest state, never on an event.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Deduplicating queue with delayed and rate-limited adds."""

    def __init__(self, *, base_delay_s: float = 0.005, max_delay_s: float = 30.0) -> None:
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._delayed_at: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        self._seq = 0
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def delayed(self) -> int:
        return len(self._delayed_at)

    def add(self, key: K) -> None:
        """Queue `key` now (no-op if already queued; dirty if processing)."""
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake.set()

    def add_after(self, key: K, delay_s: float) -> None:
        """Queue `key` after `delay_s` seconds (the sooner of two delays wins)."""
        if delay_s <= 0:
            self.add(key)
            return
        when = asyncio.get_running_loop().time() + delay_s
        current = self._delayed_at.get(key)
        if current is not None and current <= when:
            return
        self._delayed_at[key] = when
        self._seq += 1
        heapq.heappush(self._delayed, (when, self._seq, key))
        self._wake.set()

    def add_rate_limited(self, key: K) -> None:
        """Queue `key` again after its back-off (failures double it)."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self.max_delay_s, self.base_delay_s * (2**failures)))

    def forget(self, key: K) -> None:
        """Reset `key`'s back-off (after a successful sync)."""
        self._failures.pop(key, None)

    def _promote_due(self) -> float | None:
        """Move due delayed keys into the queue; seconds until the next one."""
        now = asyncio.get_running_loop().time()
        while self._delayed:
            when, _seq, key = self._delayed[0]
            if self._delayed_at.get(key) != when:
                heapq.heappop(self._delayed)  # superseded by a sooner add_after
                continue
            if when > now:
                return when - now
            heapq.heappop(self._delayed)
            del self._delayed_at[key]
            self.add(key)
        return None

    async def get(self) -> K:
        """The next key to process; the caller must call `done(key)`."""
        while True:
            wait = self._promote_due()
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            self._wake.clear()
            # A timer that sets the wake event rather than asyncio.timeout:
            # on Python 3.11 a timeout expiring together with a cancellation
            # can swallow the cancellation and leave the worker waiting.
            timer = (
                asyncio.get_running_loop().call_later(wait, self._wake.set)
                if wait is not None
                else None
            )
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    def done(self, key: K) -> None:
        """Processing of `key` ended; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake.set()
