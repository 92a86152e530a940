"""Informers against real servers: list then watch, handlers, the node
filter, and convergence after lost events, a NATS restart and a Redis
restart while writes continue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from podmodel.meta import ObjectMeta
from podmodel.pod import Container, Pod, PodSpec, PodStatus
from servicekit.informer import Informer
from servicekit.store import Conflict, NotFound, Store

from tests.conftest import stop_tasks, wait_for
from tests.servers import ServerHandle


def pod(name: str, node: str = "", **labels: str) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace="default", labels=dict(labels)),
        spec=PodSpec(containers=[Container(name="c", image="busybox")], node_name=node),
    )


async def connect_nats(url: str) -> NATS:
    return await nats.connect(
        url, reconnect_time_wait=0.1, max_reconnect_attempts=-1, connect_timeout=2
    )


@pytest_asyncio.fixture
async def bus(nats_url: str) -> AsyncIterator[tuple[NATS, NATS]]:
    """(publisher for the store, subscriber for the informer): separate
    connections, as in separate services."""
    pub, sub = await connect_nats(nats_url), await connect_nats(nats_url)
    yield pub, sub
    for nc in (pub, sub):
        with contextlib.suppress(Exception):
            await nc.close()


@pytest_asyncio.fixture
async def store(redis_url: str, bus: tuple[NATS, NATS]) -> AsyncIterator[Store]:
    s = await Store.connect(redis_url, publish=bus[0].publish)
    yield s
    await s.close()


@contextlib.asynccontextmanager
async def running(informer: Informer[Any]) -> AsyncIterator[Informer[Any]]:
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced(10)
        yield informer
    finally:
        await stop_tasks([task])


async def store_state(store: Store) -> dict[tuple[str, str], str]:
    objs, _ = await store.list(Pod)
    return {(o.metadata.namespace, o.metadata.name): o.metadata.resource_version for o in objs}


def cache_state(informer: Informer[Pod]) -> dict[tuple[str, str], str]:
    return {k: o.metadata.resource_version for k, o in informer.cache.items()}


async def converged(store: Store, informer: Informer[Pod]) -> bool:
    try:
        return cache_state(informer) == await store_state(store)
    except Exception:
        return False


async def test_informer_lists_existing_objects_then_follows_events(
    store: Store, bus: tuple[NATS, NATS]
) -> None:
    await store.create_many([pod("a"), pod("b")])
    calls: list[tuple[str, str]] = []

    async def on_update(old: Pod, new: Pod) -> None:
        calls.append(("update", f"{old.metadata.name}:{new.status.phase}"))

    informer = Informer(
        store,
        bus[1],
        Pod,
        on_add=lambda p: calls.append(("add", p.metadata.name)),
        on_update=on_update,
        on_delete=lambda p: calls.append(("delete", p.metadata.name)),
    )
    async with running(informer):
        assert sorted(calls) == [("add", "a"), ("add", "b")]
        calls.clear()
        c = await store.create(pod("c"))
        await store.update_status(msgspec.structs.replace(c, status=PodStatus(phase="Running")))
        await store.delete(Pod, "default", "a")
        await wait_for(lambda: len(calls) == 3, message="three handler calls")
        assert calls == [("add", "c"), ("update", "c:Running"), ("delete", "a")]
        assert cache_state(informer) == await store_state(store)


async def test_node_filtered_informers_see_a_pod_move_from_queue_to_node(
    store: Store, bus: tuple[NATS, NATS]
) -> None:
    queue: list[str] = []
    node: list[str] = []
    scheduler = Informer(
        store,
        bus[1],
        Pod,
        node="",
        on_add=lambda p: queue.append("add"),
        on_delete=lambda p: queue.append("delete"),
    )
    agent = Informer(
        store,
        bus[1],
        Pod,
        node="n1",
        on_add=lambda p: node.append("add"),
        on_update=lambda o, n: node.append("update"),
        on_delete=lambda p: node.append("delete"),
    )
    async with running(scheduler), running(agent):
        created = await store.create(pod("p"))
        await wait_for(lambda: queue == ["add"], message="pod queued")
        await store.bind(created, "n1")
        await wait_for(lambda: queue == ["add", "delete"], message="pod left the queue")
        await wait_for(lambda: node == ["add"], message="pod arrived at the node")
        await store.delete(Pod, "default", "p")
        await store.remove(Pod, "default", "p")
        await wait_for(lambda: node == ["add", "update", "delete"], message="pod stopped")
        assert scheduler.cache == {} and agent.cache == {}


async def test_periodic_resync_repairs_a_lost_event(
    redis_url: str, store: Store, bus: tuple[NATS, NATS]
) -> None:
    informer = Informer(store, bus[1], Pod, resync_s=0.3)
    silent = await Store.connect(redis_url)  # writes whose events are never published
    try:
        async with running(informer):
            await silent.create(pod("unannounced"))
            await wait_for(
                lambda: ("default", "unannounced") in informer.cache,
                timeout=5,
                message="resync to find the unannounced pod",
            )
    finally:
        await silent.close()


async def write_until(store: Store, names: list[str], stop: asyncio.Event) -> None:
    """Keep creating, relabelling and removing pods until `stop`, riding out
    server outages. (A stop event rather than cancellation: nats-py swallows
    CancelledError inside a publish while it reconnects.)"""
    i = 0
    while not stop.is_set():
        name = names[i % len(names)]
        i += 1
        try:
            current = await store.get(Pod, "default", name)
            if current is None:
                await store.create(pod(name, gen="0"))
            elif i % 7 == 0:
                await store.remove(Pod, "default", name)
            else:
                current.metadata.labels["gen"] = str(i)
                await store.update(current)
        except (Conflict, NotFound):
            pass
        except Exception:  # the server is restarting
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.005)


async def run_writes_during(store: Store, outage: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(write_until(store, [f"w{i}" for i in range(8)], stop))
    try:
        await asyncio.sleep(0.3)
        await outage()
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_informer_converges_after_a_nats_restart_while_writes_continue(
    redis_url: str, store: Store, bus: tuple[NATS, NATS], nats_server: ServerHandle
) -> None:
    # A long resync: convergence must come from the relist after reconnecting.
    informer = Informer(store, bus[1], Pod, resync_s=3600)
    # Writes made while the bus is down whose events are lost for certain
    # (nats-py would otherwise buffer a client's publishes across the restart).
    offline = await Store.connect(redis_url)
    try:
        async with running(informer):
            reconnects = bus[1].stats["reconnects"]

            async def restart_nats() -> None:
                await asyncio.to_thread(nats_server.stop)
                await offline.create_many([pod("made-offline-1"), pod("made-offline-2")])
                await asyncio.to_thread(nats_server.start)
                await wait_for(
                    lambda: bus[1].stats["reconnects"] > reconnects and bus[1].is_connected,
                    timeout=15,
                    message="the informer's connection to reconnect",
                )

            await run_writes_during(store, restart_nats)
            await wait_for(
                lambda: converged(store, informer), timeout=10, message="informer == store"
            )
            assert ("default", "made-offline-1") in informer.cache
    finally:
        await offline.close()


async def test_informer_converges_after_a_redis_restart_while_writes_continue(
    store: Store,
    bus: tuple[NATS, NATS],
    redis_server: ServerHandle,
    caplog: pytest.LogCaptureFixture,
) -> None:
    informer = Informer(store, bus[1], Pod, resync_s=0.2, retry_max_s=0.5)
    caplog.set_level(logging.WARNING, logger="servicekit.informer")
    async with running(informer):

        async def restart_redis() -> None:
            await asyncio.to_thread(redis_server.stop)
            # The informer tries to resync while Redis is down, and survives it.
            await wait_for(
                lambda: "listing failed" in caplog.text,
                timeout=10,
                message="a failed resync while Redis is down",
            )
            await asyncio.to_thread(redis_server.start)

        await run_writes_during(store, restart_redis)
        await wait_for(lambda: converged(store, informer), timeout=10, message="informer == store")
        assert informer.cache, "the writes left no pods; nothing was compared"
