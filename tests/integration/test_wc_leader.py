"""Leader failover of the workload-controller's controllers (real NATS and
Redis): two instances compete for the lease; only the leader reconciles;
when it stops, the standby takes over and reconciles what changed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from servicekit.bus import Bus
from servicekit.leader import LeaderElection
from servicekit.store import Store

from services.workload_controller.__main__ import LEASE_NAME
from services.workload_controller.controllers import Controllers, lead
from tests.conftest import stop_tasks, wait_for
from tests.integration.test_wc_harness import FAST, Harness, replicaset


@contextlib.asynccontextmanager
async def instance(
    nats_url: str, redis_url: str, name: str, terms: list[tuple[str, Controllers]]
) -> AsyncIterator[LeaderElection]:
    bus = await Bus.connect(nats_url, name)
    store = await Store.connect(redis_url, publish=bus.publish_raw)
    election = LeaderElection(store.redis, LEASE_NAME, name, ttl_s=1.5)

    async def work(token: int) -> None:
        await lead(store, bus.nc, FAST, instance=name, started=lambda c: terms.append((name, c)))

    task = asyncio.create_task(election.run(work))
    try:
        yield election
    finally:
        await stop_tasks([task])
        await store.close()
        await bus.close()


async def test_standby_takes_over_when_the_leader_stops(nats_url: str, redis_url: str) -> None:
    terms: list[tuple[str, Controllers]] = []
    bus = await Bus.connect(nats_url, "observer")
    store = await Store.connect(redis_url, publish=bus.publish_raw)
    h = Harness(store, None, bus)  # type: ignore[arg-type]

    async def count(n: int) -> bool:
        return len(await h.pods("ha-")) == n

    try:
        async with contextlib.AsyncExitStack() as b_stack:
            async with instance(nats_url, redis_url, "a", terms) as a:
                await wait_for(lambda: a.is_leader, message="a leads")
                b = await b_stack.enter_async_context(instance(nats_url, redis_url, "b", terms))
                await h.apply(replicaset("ha", 2))
                await wait_for(lambda: count(2), message="2 pods by a")
                assert [name for name, _ in terms] == ["a"] and not b.is_leader
            # a has stopped (its lease released): b takes over
            await wait_for(lambda: b.is_leader, timeout=10, message="b takes over")
            await h.apply(replicaset("ha", 4))
            await wait_for(lambda: count(4), message="b reconciles the change")
        assert [name for name, _ in terms] == ["a", "b"]
    finally:
        await store.close()
        await bus.close()


async def test_a_standby_stops_promptly_while_another_leads(nats_url: str, redis_url: str) -> None:
    terms: list[tuple[str, Controllers]] = []
    async with instance(nats_url, redis_url, "leader", terms) as leader:
        await wait_for(lambda: leader.is_leader, message="leader leads")
        for i in range(5):
            async with asyncio.timeout(5):  # a hang here once swallowed the cancellation
                async with instance(nats_url, redis_url, f"standby-{i}", terms) as standby:
                    await asyncio.sleep(0.01 * i)
                    assert not standby.is_leader
        assert [name for name, _ in terms] == ["leader"]
