"""Session-wide real servers, fresh state per test.

Each test gets the session's nats-server and redis-server with Redis emptied
and podbus streams deleted before it runs: these are the tests' own servers,
never the machine's standard ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.servers import ServerHandle, make_nats, make_redis

log = logging.getLogger(__name__)

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


@pytest.fixture(scope="session", autouse=True)
def ip_forwarding_as_found() -> Iterator[None]:
    """Oci nodes turn IPv4 forwarding on for pod NAT (as a node should);
    the tests leave the machine as they found it."""
    try:
        before = IP_FORWARD.read_text()
    except OSError:
        before = ""
    yield
    if before and os.geteuid() == 0:
        with contextlib.suppress(OSError):
            IP_FORWARD.write_text(before)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[ServerHandle]:
    server = make_nats()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerHandle]:
    server = make_redis()
    server.start()
    yield server
    server.close()


@pytest_asyncio.fixture
async def nats_url(nats_server: ServerHandle) -> AsyncIterator[str]:
    import nats

    nats_server.start()  # a previous test may have stopped it
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        for info in await js.streams_info():
            await js.delete_stream(info.config.name)
    finally:
        await nc.close()
    yield nats_server.url


@pytest_asyncio.fixture
async def redis_url(redis_server: ServerHandle) -> AsyncIterator[str]:
    import redis.asyncio as aioredis

    redis_server.start()
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server.url


async def wait_for(
    predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"
):  # type: ignore[no-untyped-def]
    """Poll `predicate` (sync or async) until it returns truthy; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


async def stop_tasks(tasks: list[asyncio.Task[Any]], per_try_s: float = 1.0) -> None:
    """Cancel until done: a cancellation that lands inside a library call that
    swallows it (redis-py has done so) would otherwise leave `await task`
    waiting forever, and the test hanging in its teardown."""
    for task in tasks:
        tries = 0
        while not task.done():
            tries += 1
            if tries == 2:
                log.warning("task %s did not stop on cancel: %s", task.get_name(), task.get_stack())
            task.cancel()
            await asyncio.wait({task}, timeout=per_try_s)
        if not task.cancelled() and task.exception() is not None:
            log.warning("task %s ended with %r", task.get_name(), task.exception())
