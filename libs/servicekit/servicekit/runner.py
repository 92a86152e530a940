"""The service runner: one task group per service, graceful stop on
SIGTERM/SIGINT, logging set up once, and a health responder on
`podbus.health.<service>.<instance>`.

A service is an async `main(ctx)` that starts its work with `ctx.spawn` (never
a bare create_task) and returns; the runner keeps the group alive until a stop
signal, then cancels it, and closes the bus last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from podmodel.codec import encode
from podmodel.meta import Model
from podmodel.subjects import health

from servicekit.bus import Bus, wants_json
from servicekit.telemetry import setup_tracing

log = logging.getLogger("podbus.runner")


class HealthReply(Model):
    service: str
    instance: str
    status: str  # no defaults: omit_defaults would drop "ok" from the wire
    uptime_s: float
    details: dict[str, Any] = {}


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--instance", default=os.environ.get("PODBUS_INSTANCE", default_instance()))
    parser.add_argument("--log-level", default=os.environ.get("PODBUS_LOG_LEVEL", "INFO"))
    return parser


def setup_logging(service: str, instance: str, level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {service}[{instance}] %(name)s: %(message)s",
        force=True,
    )


class ServiceContext:
    """What a service's main gets: the bus, its identity, and a task owner."""

    def __init__(
        self, name: str, instance: str, bus: Bus, group: asyncio.TaskGroup, args: Any
    ) -> None:
        self.name = name
        self.instance = instance
        self.bus = bus
        self.args = args
        self.stopping = asyncio.Event()
        self.health_details: Callable[[], dict[str, Any]] = dict
        self._group = group

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self._group.create_task(coro, name=name)


class ServiceRunner:
    def __init__(self, name: str, instance: str, nats_url: str, args: Any = None) -> None:
        self.name = name
        self.instance = instance
        self.nats_url = nats_url
        self.args = args
        self.started = time.monotonic()
        self.stop_requested = asyncio.Event()

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def run(self, main: Callable[[ServiceContext], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        bus = await Bus.connect(self.nats_url, f"{self.name}-{self.instance}")
        try:
            async with asyncio.TaskGroup() as group:
                ctx = ServiceContext(self.name, self.instance, bus, group, self.args)
                await self._serve_health(ctx)
                await main(ctx)
                log.info("%s %s started", self.name, self.instance)
                await self.stop_requested.wait()
                log.info("%s %s stopping", self.name, self.instance)
                ctx.stopping.set()
                raise _Stop
        except* _Stop:
            pass
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await bus.close()

    async def _serve_health(self, ctx: ServiceContext) -> None:
        """Any payload (even empty) gets the reply, JSON if asked for."""

        async def answer(msg: Msg) -> None:
            reply = HealthReply(
                service=self.name,
                instance=self.instance,
                status="ok",
                uptime_s=round(time.monotonic() - self.started, 3),
                details=ctx.health_details(),
            )
            as_json = wants_json(msg) or not msg.data
            await msg.respond(encode(reply, json=as_json))

        await ctx.bus.nc.subscribe(health(self.name, self.instance), cb=answer)


class _Stop(Exception):
    """Raised inside the task group to cancel every task on stop."""


def run_service(
    name: str,
    main: Callable[[ServiceContext], Awaitable[None]],
    parser: argparse.ArgumentParser | None = None,
    argv: list[str] | None = None,
) -> int:
    """Entry point for `python -m services.<name>`."""
    parser = common_args(parser or argparse.ArgumentParser(prog=name))
    args = parser.parse_args(argv)
    setup_logging(name, args.instance, args.log_level)
    setup_tracing(name, args.instance)
    runner = ServiceRunner(name, args.instance, args.nats_url, args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner.run(main))
    return 0
