"""The service runner: health answers while running, stop ends every task."""

from __future__ import annotations

import asyncio
import json

import nats
from podmodel.subjects import health
from servicekit.runner import ServiceContext, ServiceRunner


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

    runner = ServiceRunner("test-service", "i1", nats_url)
    task = asyncio.create_task(runner.run(main))
    nc = await nats.connect(nats_url)
    try:
        reply = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while reply is None and loop.time() < deadline:
            try:
                reply = await nc.request(health("test-service", "i1"), b"", timeout=0.5)
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.05)
        assert reply is not None, "health subject never answered"
        body = json.loads(reply.data)
        assert body["service"] == "test-service" and body["status"] == "ok"
        assert body["details"] == {"leader": True}
        runner.request_stop()
        async with asyncio.timeout(10):
            await task
        assert ended == ["worker"]
    finally:
        await nc.close()
