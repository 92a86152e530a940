"""The service runner: one task group per service, graceful stop on
SIGTERM/SIGINT, logging set up once, tracing from the OTEL_* variables, and a
health responder on `podbus.health.<service>.<instance>`.

A service is an async `main(ctx)` that starts its work with `ctx.spawn`
(never a bare create_task) and returns, or keeps running itself. The runner
keeps the group alive until a stop signal (or `ctx.request_stop()`), then
cancels every task, closes the stores it handed out, drains the bus, and
flushes traces, in that order. A task that fails stops the service the same
way, and `run_service` exits non-zero.

Owns process-level concerns only; what a service does lives in the service.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, cast

import msgspec
from nats.aio.msg import Msg
from podmodel.codec import encode
from podmodel.meta import Model
from podmodel.subjects import health

from servicekit.bus import Bus, wants_json
from servicekit.store import Store
from servicekit.telemetry import setup_tracing, shutdown_tracing

log = logging.getLogger("podbus.runner")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class HealthReply(Model):
    """The health answer. Services add fields through `ctx.health_details`
    (e.g. {"leader": True}); they arrive under `details`."""

    service: str
    instance: str
    status: str  # no defaults: omit_defaults would drop "ok" from the wire
    uptime_s: float = msgspec.field(name="uptime_s")  # the documented key
    # Required, so that it is on the wire even while empty (a service that
    # has not yet set its details): callers read reply["details"] as a map.
    details: dict[str, Any]


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--nats-url, --redis-url, --instance, --log-level, each defaulting to its
    environment variable (NATS_URL, REDIS_URL, PODBUS_INSTANCE,
    PODBUS_LOG_LEVEL)."""
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL", DEFAULT_NATS_URL),
        help="NATS server(s), comma-separated (env NATS_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis (env REDIS_URL)",
    )
    parser.add_argument(
        "--instance",
        default=os.environ.get("PODBUS_INSTANCE") or default_instance(),
        help="this instance's name (default hostname-pid)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("PODBUS_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING, ERROR (env PODBUS_LOG_LEVEL)",
    )
    return parser


def nats_auth_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Bus.connect auth options from NATS_CREDS, NATS_TOKEN, NATS_USER /
    NATS_PASSWORD (the nats CLI's names), for services in a secured cluster."""
    env = os.environ if env is None else env
    auth: dict[str, Any] = {}
    if env.get("NATS_CREDS"):
        auth["creds"] = env["NATS_CREDS"]
    if env.get("NATS_TOKEN"):
        auth["token"] = env["NATS_TOKEN"]
    if env.get("NATS_USER"):
        auth["user"] = env["NATS_USER"]
        auth["password"] = env.get("NATS_PASSWORD", "")
    return auth


def nats_connect_options(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The same credentials as keyword arguments of nats-py's `nats.connect`,
    for processes that connect without a Bus (health checks, the node-agent)."""
    auth = nats_auth_from_env(env)
    options: dict[str, Any] = {}
    if "user" in auth:
        options.update(user=auth["user"], password=auth["password"])
    if "token" in auth:
        options["token"] = auth["token"]
    if "creds" in auth:
        options["user_credentials"] = auth["creds"]
    return options


class _OneLineFormatter(logging.Formatter):
    """One line per record: a traceback's newlines become ' | ', so a log
    line is a record and grep finds whole records."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


_logging_for: tuple[str, str] | None = None


def setup_logging(service: str, instance: str, level: str | None = None) -> None:
    """Root logging to stderr, one line per record naming service and
    instance. Once per process; later calls only change the level."""
    global _logging_for
    level = (level or os.environ.get("PODBUS_LOG_LEVEL") or "INFO").upper()
    if _logging_for is not None:
        logging.getLogger().setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _OneLineFormatter(f"%(asctime)s %(levelname)s {service}[{instance}] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    _logging_for = (service, instance)


class ServiceContext:
    """What a service's main gets: its identity, the bus, a Redis store
    factory, the stop event, and `spawn`, the only way to start a task.

    `health_details` returns extra fields for the health reply (leader
    status, queue lengths); replace it."""

    def __init__(
        self,
        name: str,
        instance: str,
        bus: Bus,
        group: asyncio.TaskGroup,
        args: Any,
        *,
        redis_url: str | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.name = name
        self.instance = instance
        self.bus = bus
        self.args = args
        self.redis_url = redis_url or getattr(args, "redis_url", None)
        self.stop = stop or asyncio.Event()  # set: the service should stop
        self.stopping = asyncio.Event()  # set once the runner is stopping
        self.health_details: Callable[[], dict[str, Any]] = dict
        self._group = group
        self._stores: list[Store] = []

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start `coro` in the service's task group: cancelled on stop; if it
        fails, the service stops."""
        return self._group.create_task(coro, name=name)

    def request_stop(self) -> None:
        self.stop.set()

    async def store(self) -> Store:
        """A Store on the service's Redis that publishes its watch events on
        the bus; the first call connects, later calls return the same one.
        Closed by the runner after the task group ends."""
        if self._stores:
            return self._stores[0]
        if not self.redis_url:
            raise RuntimeError(f"{self.name}: no Redis URL (--redis-url or REDIS_URL)")
        store = await Store.connect(self.redis_url, publish=self.bus.publish_raw)
        self._stores.append(store)
        return store

    async def _close_stores(self) -> None:
        for store in self._stores:
            try:
                await store.close()
            except Exception as exc:
                log.warning("closing the store failed: %s", exc)
        self._stores.clear()


class _Stop(Exception):
    """Raised inside the task group to cancel every task on stop."""


class ServiceRunner:
    """Runs one service instance in the current event loop: `await
    runner.run(main)` returns after a stop; `request_stop()` (or SIGTERM /
    SIGINT, when running in the main thread) asks for one."""

    def __init__(
        self,
        name: str,
        instance: str,
        nats_url: str,
        args: Any = None,
        *,
        redis_url: str | None = None,
        nats_auth: Mapping[str, Any] | None = None,
        install_signals: bool = True,
        close_timeout_s: float = 5.0,
    ) -> None:
        self.name = name
        self.instance = instance
        self.nats_url = nats_url
        self.args = args
        self.redis_url = redis_url or getattr(args, "redis_url", None)
        self.nats_auth = dict(nats_auth or {})
        self.install_signals = install_signals
        self.close_timeout_s = close_timeout_s
        self.started = time.monotonic()
        self.stop_requested = asyncio.Event()
        self.signals_installed: list[signal.Signals] = []
        self.bus: Bus | None = None

    def request_stop(self) -> None:
        self.stop_requested.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop_requested.is_set():
            log.info("%s again: still stopping", sig.name)
        else:
            log.info("%s: stopping", sig.name)
        self.request_stop()

    async def run(self, main: Callable[[ServiceContext], Awaitable[None]]) -> None:
        """Connect, run `main` and the health responder in one task group
        until a stop, then shut down in order. Raises what a task raised."""
        loop = asyncio.get_running_loop()
        self.started = time.monotonic()
        if self.install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    self.signals_installed.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                    pass
        ctx: ServiceContext | None = None
        try:
            bus = await Bus.connect(self.nats_url, f"{self.name}-{self.instance}", **self.nats_auth)
            self.bus = bus
            try:
                async with asyncio.TaskGroup() as group:
                    ctx = ServiceContext(
                        self.name,
                        self.instance,
                        bus,
                        group,
                        self.args,
                        redis_url=self.redis_url,
                        stop=self.stop_requested,
                    )
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
                if ctx is not None:
                    ctx.stopping.set()
                    await ctx._close_stores()
                await bus.close(timeout=self.close_timeout_s)
                log.info("%s %s stopped", self.name, self.instance)
        finally:
            for sig in self.signals_installed:
                loop.remove_signal_handler(sig)
            self.signals_installed.clear()

    async def _serve_health(self, ctx: ServiceContext) -> None:
        """Any payload (even empty) gets the reply: JSON if asked for or if
        the request is empty (`nats req podbus.health.x.y ''`), else msgpack."""

        async def answer(msg: Msg) -> None:
            try:
                details = ctx.health_details()
            except Exception as exc:
                details = {"error": f"health details failed: {exc}"}
            reply = HealthReply(
                service=self.name,
                instance=self.instance,
                status="stopping" if ctx.stopping.is_set() else "ok",
                uptime_s=round(time.monotonic() - self.started, 3),
                details=details,
            )
            as_json = wants_json(msg) or not msg.data
            if msg.reply:
                await ctx.bus.nc.publish(msg.reply, encode(reply, json=as_json))

        await ctx.bus.nc.subscribe(health(self.name, self.instance), cb=answer)


def use_pidfd_child_watcher() -> bool:
    """Wait for child processes through pidfds on the event loop (Python
    3.11's default starts a thread per child, blocked in waitpid: a node
    with 110 containers would hold 110 threads, each started on the hot
    path of a container start). Python 3.12+ does this by itself. Call it
    in the running loop, before its first subprocess; True when pidfds are
    in use."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return sys.version_info >= (3, 12)
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # kernel < 5.3, or seccomp forbids it: keep the threads
        return False
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    return True


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, None where uvloop is not installed. The
    prober runs on it: a probe is mostly event-loop work (a connect, a
    readiness wait, a read), and uvloop does that with about two thirds of
    the CPU (bench/probes.py: user time per probe 150 -> 98 us)."""
    try:
        import uvloop
    except ImportError:
        return None
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)


def run_service(
    name: str,
    main: Callable[[ServiceContext], Awaitable[None]],
    parser: argparse.ArgumentParser | None = None,
    argv: list[str] | None = None,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """Entry point for `python -m services.<name>`: parse the common
    arguments (plus the service's own, added to `parser`), set up logging and
    tracing, run until SIGTERM/SIGINT. 0 after a clean stop, 1 if a task
    failed; `ctx.args` holds the parsed arguments."""
    parser = common_args(parser or argparse.ArgumentParser(prog=name))
    args = parser.parse_args(argv)
    setup_logging(name, args.instance, args.log_level)
    setup_tracing(name, args.instance)
    runner = ServiceRunner(
        name,
        args.instance,
        args.nats_url,
        args,
        redis_url=args.redis_url,
        nats_auth=nats_auth_from_env(),
    )
    try:
        with asyncio.Runner(loop_factory=loop_factory) as loop_runner:
            loop_runner.run(runner.run(main))
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return 0
    except BaseException as exc:
        log.error("%s %s failed", name, args.instance, exc_info=exc)
        return 1
    finally:
        shutdown_tracing()
    return 0
