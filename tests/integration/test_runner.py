"""The service runner in-process against a real nats-server: health answers
while running, a stop (requested or SIGTERM) ends every task, a failing task
stops the service."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import msgspec
import nats
import pytest
from podmodel.codec import WatchEvent
from podmodel.meta import ObjectMeta
from podmodel.pod import Container, Pod, PodSpec
from podmodel.subjects import health
from servicekit.runner import ServiceContext, ServiceRunner

from tests.conftest import wait_for


async def ask_health(nats_url: str, subject: str, **kwargs: Any) -> nats.aio.msg.Msg:
    nc = await nats.connect(nats_url)
    try:

        async def answer() -> nats.aio.msg.Msg | None:
            try:
                return await nc.request(subject, timeout=0.5, **kwargs)
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                return None

        reply: nats.aio.msg.Msg = await wait_for(answer, timeout=10, message="health reply")
        return reply
    finally:
        await nc.close()


async def test_runner_answers_health_and_stops_all_tasks(nats_url: str) -> None:
    ended: list[str] = []

    async def worker() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("worker")

    async def main(ctx: ServiceContext) -> None:
        ctx.health_details = lambda: {"leader": True}
        ctx.spawn(worker(), name="worker")

    runner = ServiceRunner("test-service", "i1", nats_url, install_signals=False)
    task = asyncio.create_task(runner.run(main))
    reply = await ask_health(nats_url, health("test-service", "i1"), payload=b"")
    body = json.loads(reply.data)
    assert body["service"] == "test-service" and body["instance"] == "i1"
    assert body["status"] == "ok" and body["uptime_s"] >= 0
    assert body["details"] == {"leader": True}
    packed = await ask_health(nats_url, health("test-service", "i1"), payload=b"\x80")
    assert msgspec.msgpack.decode(packed.data)["status"] == "ok"
    assert ended == []
    runner.request_stop()
    async with asyncio.timeout(10):
        await task
    assert ended == ["worker"]
    assert runner.bus is not None and runner.bus.nc.is_closed


async def test_health_carries_details_before_the_service_sets_any(nats_url: str) -> None:
    """A scheduler answers health before its main has set its details (it is
    still connecting); readers index reply["details"], so it must be there."""

    connected = asyncio.Event()

    async def main(ctx: ServiceContext) -> None:
        await connected.wait()

    runner = ServiceRunner("test-service", "i2", nats_url, install_signals=False)
    task = asyncio.create_task(runner.run(main))
    try:
        reply = await ask_health(nats_url, health("test-service", "i2"), payload=b"")
        assert json.loads(reply.data)["details"] == {}
        packed = await ask_health(nats_url, health("test-service", "i2"), payload=b"\x80")
        assert msgspec.msgpack.decode(packed.data)["details"] == {}
    finally:
        connected.set()
        runner.request_stop()
        async with asyncio.timeout(10):
            await task


async def test_sigterm_stops_the_service_cleanly(nats_url: str) -> None:
    ended: list[str] = []

    async def main(ctx: ServiceContext) -> None:
        async def wait_forever() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                ended.append("loop")

        ctx.spawn(wait_forever(), name="loop")

    runner = ServiceRunner("sig-service", "i1", nats_url)
    task = asyncio.create_task(runner.run(main))
    await ask_health(nats_url, health("sig-service", "i1"))
    assert signal.SIGTERM in runner.signals_installed  # else the kill below would end pytest
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(10):
        await task
    assert ended == ["loop"]
    assert runner.signals_installed == []


async def test_a_failing_task_stops_the_service(nats_url: str) -> None:
    ended: list[str] = []

    async def sibling() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("sibling")

    async def broken() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("service bug")

    async def main(ctx: ServiceContext) -> None:
        ctx.spawn(sibling(), name="sibling")
        ctx.spawn(broken(), name="broken")

    runner = ServiceRunner("bad-service", "i1", nats_url, install_signals=False)
    with pytest.raises(ExceptionGroup) as failed:
        async with asyncio.timeout(10):
            await runner.run(main)
    assert failed.group_contains(RuntimeError, match="service bug")
    assert ended == ["sibling"]
    assert runner.bus is not None and runner.bus.nc.is_closed


async def test_service_can_stop_itself(nats_url: str) -> None:
    async def main(ctx: ServiceContext) -> None:
        ctx.request_stop()

    runner = ServiceRunner("self-stop", "i1", nats_url, install_signals=False)
    async with asyncio.timeout(10):
        await runner.run(main)


async def test_store_from_context_publishes_watch_events_on_the_bus(
    nats_url: str, redis_url: str
) -> None:
    events: list[WatchEvent] = []
    created = asyncio.Event()

    async def main(ctx: ServiceContext) -> None:
        async def on_event(event: WatchEvent, msg: Any) -> None:
            events.append(event)

        await ctx.bus.subscribe("podbus.watch.pod.>", on_event, type=WatchEvent)
        await ctx.bus.nc.flush()
        store = await ctx.store()
        assert await ctx.store() is store
        await store.create(
            Pod(
                metadata=ObjectMeta(name="web", namespace="default"),
                spec=PodSpec(containers=[Container(name="app", image="nginx")]),
            )
        )
        created.set()

    runner = ServiceRunner("store-service", "i1", nats_url, redis_url=redis_url)
    task = asyncio.create_task(runner.run(main))
    try:
        async with asyncio.timeout(10):
            await created.wait()
        await wait_for(lambda: events, message="the ADDED event")
        assert events[0].type == "ADDED" and events[0].kind == "Pod"
    finally:
        runner.request_stop()
        async with asyncio.timeout(10):
            await task
