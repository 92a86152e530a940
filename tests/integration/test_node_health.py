"""The node-agent answers on podbus.health.node-agent.<node> (and its
PODBUS_INSTANCE) like every other service, so health checks need no
special case."""

from __future__ import annotations

import asyncio
import os
import sys

import nats
from podmodel.codec import decode_raw
from podmodel.subjects import health

from tests.conftest import wait_for


async def test_node_agent_answers_its_health_subject(nats_url: str, redis_url: str) -> None:
    env = {**os.environ, "PODBUS_INSTANCE": "agent-7", "NATS_URL": nats_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.node_agent",
        "--runtime",
        "simulated",
        "--name",
        "node-h",
        "--nats-url",
        nats_url,
        "--redis-url",
        redis_url,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    nc = await nats.connect(nats_url)
    try:

        async def answer(instance: str) -> dict[str, object] | None:
            try:
                msg = await nc.request(health("node-agent", instance), b"", timeout=0.5)
            except Exception:
                return None
            reply = decode_raw(msg.data)
            return reply if isinstance(reply, dict) else None

        by_node = await wait_for(lambda: answer("node-h"), timeout=20, message="health reply")
        assert by_node["status"] == "ok" and by_node["service"] == "node-agent"
        assert by_node["instance"] == "node-h"
        assert by_node["details"] == {"runtime": "simulated", "nodes": 1}
        by_instance = await answer("agent-7")
        assert by_instance is not None and by_instance["status"] == "ok"
    finally:
        await nc.close()
        proc.terminate()
        async with asyncio.timeout(15):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
