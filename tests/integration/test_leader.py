"""Leader election against a real redis-server: one leader at a time,
failover within one lease TTL, the old leader's work cancelled before the new
leader starts, and fencing tokens that only grow."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest_asyncio
import redis.asyncio as aioredis
from servicekit.leader import LeaderElection, lease_key

from tests.conftest import stop_tasks, wait_for

TTL = 1.0


class CuttableProxy:
    """A TCP proxy to Redis that can be cut, to partition one instance from
    Redis while the others still reach it."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()


@pytest_asyncio.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


class Instance:
    """One competitor: records when its work started and stopped."""

    def __init__(self, client: aioredis.Redis, identity: str) -> None:
        self.election = LeaderElection(client, "scheduler", identity, ttl_s=TTL)
        self.started: list[tuple[float, int]] = []  # (time, token)
        self.cancelled: list[float] = []
        self.stopped_calls = 0
        self.task: asyncio.Task[None] | None = None

    async def work(self, token: int) -> None:
        self.started.append((asyncio.get_running_loop().time(), token))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(asyncio.get_running_loop().time())
            raise

    def stopped(self) -> None:
        self.stopped_calls += 1

    def start(self) -> None:
        self.task = asyncio.create_task(self.election.run(self.work, self.stopped))

    async def stop(self) -> None:
        assert self.task is not None
        await stop_tasks([self.task])


async def test_only_one_of_several_instances_leads(redis_client: aioredis.Redis) -> None:
    instances = [Instance(redis_client, f"i{n}") for n in range(3)]
    for inst in instances:
        inst.start()
    try:
        await wait_for(lambda: any(i.started for i in instances), message="a leader")
        # Over several renewal periods, exactly one instance ever leads.
        for _ in range(15):
            assert sum(i.election.is_leader for i in instances) == 1
            await asyncio.sleep(TTL / 5)
        assert sum(len(i.started) for i in instances) == 1
        leader = next(i for i in instances if i.started)
        holder = await redis_client.get(lease_key("scheduler"))
        assert holder == f"{leader.election.identity}|{leader.election.token}".encode()
    finally:
        for inst in instances:
            await inst.stop()


async def test_a_partitioned_leader_stops_before_the_standby_takes_over_within_one_ttl(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    url = urlparse(redis_url)
    proxy = CuttableProxy(url.hostname or "127.0.0.1", url.port or 6379)
    await proxy.start()
    via_proxy = aioredis.Redis(
        host="127.0.0.1", port=proxy.port, socket_connect_timeout=0.2, socket_timeout=0.2
    )
    old = Instance(via_proxy, "old")
    new = Instance(redis_client, "new")
    try:
        old.start()
        await wait_for(lambda: old.started, message="the first leader")
        new.start()
        await asyncio.sleep(TTL)  # the standby polls and fails while renewals succeed
        assert not new.started

        loop = asyncio.get_running_loop()
        cut_at = loop.time()
        await proxy.cut()
        await wait_for(lambda: new.started, timeout=5 * TTL, message="the standby to take over")

        stopped_at = old.cancelled[0]
        took_over_at, new_token = new.started[0]
        assert stopped_at < took_over_at, "the old leader was still working"
        assert old.stopped_calls == 1 and not old.election.is_leader
        # The lease ran out at most one TTL after the cut; the standby polls every TTL/5.
        assert took_over_at - cut_at <= TTL + TTL / 5 + 0.3
        assert new_token > old.started[0][1]
    finally:
        await old.stop()
        await new.stop()
        await via_proxy.aclose()


async def test_a_leader_that_stops_releases_the_lease_at_once(
    redis_client: aioredis.Redis,
) -> None:
    first = Instance(redis_client, "first")
    second = Instance(redis_client, "second")
    first.start()
    await wait_for(lambda: first.started, message="the first leader")
    second.start()
    try:
        await asyncio.sleep(TTL / 2)
        assert not second.started
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        await first.stop()
        assert first.cancelled and first.stopped_calls == 1
        await wait_for(lambda: second.started, timeout=TTL, message="the second leader")
        # Released, not expired: taken at the next poll, well inside one TTL.
        assert second.started[0][0] - stopped_at < TTL / 5 + 0.3
        assert second.started[0][1] == first.started[0][1] + 1
    finally:
        await second.stop()
    assert await redis_client.get(lease_key("scheduler")) is None


async def test_a_leader_whose_lease_is_taken_steps_down(redis_client: aioredis.Redis) -> None:
    inst = Instance(redis_client, "me")
    inst.start()
    try:
        await wait_for(lambda: inst.started, message="leading")
        # Someone else's lease replaces ours (e.g. an operator forcing a failover).
        await redis_client.set(lease_key("scheduler"), "intruder|999", px=int(TTL * 1000))
        await wait_for(lambda: inst.cancelled, timeout=TTL, message="stepping down")
        assert not inst.election.is_leader
        assert await redis_client.get(lease_key("scheduler")) == b"intruder|999"
    finally:
        await inst.stop()


async def test_work_that_ends_gives_up_leadership(redis_client: aioredis.Redis) -> None:
    runs: list[int] = []

    async def short_work(token: int) -> None:
        runs.append(token)
        raise RuntimeError("work failed")

    election = LeaderElection(redis_client, "jobs", "me", ttl_s=TTL)
    task = asyncio.create_task(election.run(short_work))
    try:
        await wait_for(lambda: len(runs) >= 2, timeout=3 * TTL, message="leading again")
        assert runs[1] > runs[0]
    finally:
        await stop_tasks([task])
