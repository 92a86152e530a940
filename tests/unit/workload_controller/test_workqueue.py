"""The controllers' work queue: deduplicated, one worker per key, delayed
and rate-limited adds (no servers; asyncio only)."""

from __future__ import annotations

import asyncio

from services.workload_controller.workqueue import WorkQueue


async def test_a_key_added_many_times_is_queued_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(1000):
        q.add("rs/web")
    q.add("rs/db")
    assert len(q) == 2
    assert await q.get() == "rs/web"
    assert await q.get() == "rs/db"


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("k")
    key = await q.get()
    q.add("k")  # an event while a worker syncs it: never handed out twice at once
    assert len(q) == 0
    q.done(key)
    assert len(q) == 1 and await q.get() == "k"


async def test_add_after_wakes_the_key_later_and_sooner_wins() -> None:
    q: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("k", 5.0)
    q.add_after("k", 0.05)
    async with asyncio.timeout(2):
        assert await q.get() == "k"
    assert 0.04 <= loop.time() - start < 2


async def test_rate_limited_back_off_doubles_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay_s=0.01, max_delay_s=1.0)
    loop = asyncio.get_running_loop()
    waits = []
    for _ in range(3):
        start = loop.time()
        q.add_rate_limited("k")
        key = await q.get()
        waits.append(loop.time() - start)
        q.done(key)
    assert waits[0] < waits[2]
    q.forget("k")
    start = loop.time()
    q.add_rate_limited("k")
    await q.get()
    assert loop.time() - start < waits[2]


async def test_a_cancelled_get_raises_cancelled() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("later", 10)
    task = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    assert done and task.cancelled()
