"""The node-agent's health responder: `podbus.health.node-agent.<node>`
(and `.<PODBUS_INSTANCE>` when that is set), answered like every servicekit
runner's, so compose health checks and `podbus up` ask all services alike.

The agent does not run under servicekit's ServiceRunner (it owns its signal
handling and, for hollow nodes, many nodes per process); this is the one
piece of the runner it needs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from podmodel.codec import encode
from podmodel.subjects import health
from servicekit.runner import HealthReply

SERVICE = "node-agent"


def health_instances(node_name: str, env: dict[str, str] | None = None) -> list[str]:
    """The instance names this agent answers for: its node, and the
    deployment's instance name if one is set."""
    env = dict(os.environ) if env is None else env
    names = [node_name]
    instance = env.get("PODBUS_INSTANCE", "")
    if instance and instance != node_name:
        names.append(instance)
    return names


async def serve_health(
    nc: NATS, node_name: str, details: Callable[[], dict[str, Any]] = dict
) -> None:
    """Subscribe the responder; it lives as long as the connection."""
    started = time.monotonic()

    async def answer(msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            extra = details()
        except Exception as exc:  # a broken detail must not make the agent look dead
            extra = {"error": f"health details failed: {exc}"}
        reply = HealthReply(
            service=SERVICE,
            instance=node_name,
            status="ok",
            uptime_s=round(time.monotonic() - started, 3),
            details=extra,
        )
        await msg.respond(encode(reply, json=not msg.data or msg.data[:1] == b"{"))

    for name in health_instances(node_name):
        await nc.subscribe(health(SERVICE, name), cb=answer)
