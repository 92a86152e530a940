"""podctl's connection to podbus: the API requests (apply, get, list,
delete, ephemeral containers) served by the workload-controller, exec and
logs served by the node-agent of the pod's node, and watch events. Objects
travel as plain dicts (camelCase, as on the wire): podctl prints what the
API returns and never needs more types than the request envelopes.

Owns I/O only; what to print and decide lives in the pure modules.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
from podmodel import subjects
from podmodel.api import (
    ApplyReply,
    ApplyRequest,
    DeleteRequest,
    EphemeralRequest,
    GetRequest,
    ListReply,
    ListRequest,
)
from podmodel.codec import ErrorReply, WatchEvent, convert, decode, decode_raw, encode
from podmodel.node_api import (
    LOGS_END_HEADER,
    ExecRequest,
    ExecResponse,
    LogsReply,
    LogsRequest,
)
from podmodel.pod import EphemeralContainer
from servicekit.bus import Bus, BusError, decode_error_reply

from clients.podctl.apply_merge import merged_object, unchanged
from clients.podctl.connection import Connection

Obj = dict[str, Any]
API_TIMEOUT_S = 10.0


class ConnectError(Exception):
    """NATS did not answer at the configured address."""


class PodbusClient:
    """A connected podctl. Use `async with PodbusClient.connect(conn) as c`."""

    def __init__(self, bus: Bus, conn: Connection) -> None:
        self.bus = bus
        self.conn = conn

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, conn: Connection) -> AsyncIterator[PodbusClient]:
        try:
            options = conn.connect_options()
        except (OSError, ValueError) as exc:
            raise ConnectError(f"TLS set-up failed: {exc}") from exc
        auth: dict[str, Any] = {}
        if "user" in options:
            auth.update(user=options["user"], password=options["password"])
        if "token" in options:
            auth["token"] = options["token"]
        if "creds" in options:
            auth["user_credentials"] = options["creds"]
        if "tls" in options:
            auth["tls"] = options["tls"]

        async def quiet(exc: Exception) -> None:
            return None

        try:
            nc = await nats.connect(
                [s.strip() for s in conn.server.split(",") if s.strip()],
                name="podctl",
                connect_timeout=3,
                max_reconnect_attempts=3,
                reconnect_time_wait=0.3,
                error_cb=quiet,
                **auth,
            )
        except Exception as exc:
            detail = str(exc) or type(exc).__name__
            raise ConnectError(
                f"cannot connect to NATS at {conn.server} (from {conn.source}): {detail}. "
                "Is `podbus up` running, or is --server / PODBUS_NATS_URL right?"
            ) from exc
        bus = Bus(nc)
        try:
            yield cls(bus, conn)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    # ------------------------------------------------------------------ API

    async def apply(self, obj: Obj, *, dry_run: bool = False) -> ApplyReply:
        reply: ApplyReply = await self.bus.request(
            subjects.API_APPLY,
            ApplyRequest(object=obj, dry_run=dry_run),
            ApplyReply,
            timeout=API_TIMEOUT_S,
        )
        return reply

    async def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            obj: Obj = await self.bus.request(
                subjects.API_GET,
                GetRequest(kind=kind, name=name, namespace=namespace),
                dict[str, Any],
                timeout=API_TIMEOUT_S,
            )
        except BusError as exc:
            if exc.reason == "NotFound":
                return None
            raise
        return obj

    async def list(
        self,
        kind: str,
        namespace: str | None,
        selector: str | None = None,
        node: str | None = None,
    ) -> list[Obj]:
        reply: ListReply = await self.bus.request(
            subjects.API_LIST,
            ListRequest(kind=kind, namespace=namespace, label_selector=selector, node=node),
            ListReply,
            timeout=API_TIMEOUT_S,
        )
        return list(reply.items)

    async def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        grace_period: int | None = None,
        propagation: str = "Background",
    ) -> Obj:
        reply: Obj = await self.bus.request(
            subjects.API_DELETE,
            DeleteRequest(
                kind=kind,
                name=name,
                namespace=namespace,
                grace_period_seconds=grace_period,
                propagation_policy=propagation,
            ),
            dict[str, Any],
            timeout=API_TIMEOUT_S,
        )
        return reply

    async def add_ephemeral(self, namespace: str, pod: str, container: Obj) -> Obj:
        reply: Obj = await self.bus.request(
            subjects.API_EPHEMERAL,
            EphemeralRequest(
                name=pod,
                namespace=namespace,
                container=convert(container, EphemeralContainer),
            ),
            dict[str, Any],
            timeout=API_TIMEOUT_S,
        )
        return reply

    # ------------------------------------------------------------------ node

    async def exec(
        self,
        node: str,
        namespace: str,
        pod: str,
        container: str,
        command: builtins.list[str],
        timeout: float,
    ) -> ExecResponse:
        reply: ExecResponse = await self.bus.request(
            subjects.node_exec(node),
            ExecRequest(
                namespace=namespace,
                pod=pod,
                container=container,
                command=command,
                timeout_s=timeout,
            ),
            ExecResponse,
            timeout=timeout + 5.0,
        )
        return reply

    async def logs(self, node: str, request: LogsRequest) -> AsyncIterator[LogsReply]:
        """The log chunks: one reply, or a followed stream until its end marker."""
        if not request.follow:
            reply: LogsReply = await self.bus.request(
                subjects.node_logs(node), request, LogsReply, timeout=API_TIMEOUT_S
            )
            yield reply
            return
        inbox = self.bus.nc.new_inbox()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1024)
        sub = await self.bus.nc.subscribe(inbox, cb=queue.put)
        try:
            await self.bus.nc.publish(subjects.node_logs(node), encode(request), reply=inbox)
            first = True
            while True:
                try:
                    msg = await asyncio.wait_for(
                        queue.get(), timeout=API_TIMEOUT_S if first else None
                    )
                except TimeoutError as exc:
                    raise BusError(
                        ErrorReply(
                            error=f"no reply on {subjects.node_logs(node)} within {API_TIMEOUT_S:g}s",
                            reason="Timeout",
                            code=504,
                        )
                    ) from exc
                first = False
                headers = msg.headers or {}
                if headers.get("Status") == "503" and not msg.data:
                    raise BusError(
                        ErrorReply(
                            error=f"no node-agent answers on {subjects.node_logs(node)}",
                            reason="ServiceUnavailable",
                            code=503,
                        )
                    )
                if headers.get("Podbus-Error"):
                    err = decode_error_reply(msg.data)
                    raise BusError(err or ErrorReply(error="log stream failed"))
                if headers.get(LOGS_END_HEADER):
                    return
                if msg.data:
                    yield decode(msg.data, LogsReply)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # ------------------------------------------------------------------ watch

    @contextlib.asynccontextmanager
    async def watch(self, kind: str) -> AsyncIterator[asyncio.Queue[tuple[str, int, Obj]]]:
        """Subscribe to every watch event of `kind` (before listing, so no
        change between list and watch is missed): (type, resourceVersion, object)."""
        queue: asyncio.Queue[tuple[str, int, Obj]] = asyncio.Queue()

        async def on_msg(msg: Any) -> None:
            try:
                event = decode(msg.data, WatchEvent)
                obj = decode_raw(event.object)
            except Exception:
                return
            if isinstance(obj, dict):
                queue.put_nowait((event.type, event.resource_version, obj))

        sub = await self.bus.nc.subscribe(subjects.watch_kind(kind), cb=on_msg)
        try:
            yield queue
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


APPLY_ATTEMPTS = 3
"""kubectl retries an apply that lost a write race (Conflict) with fresh state."""


class AlreadyExists(Exception):
    """`create` of an object that exists."""


async def apply_manifest(
    client: PodbusClient,
    manifest: Obj,
    kind: str,
    namespace: str,
    name: str,
    *,
    create: bool = False,
    dry_run: str | None = None,
) -> tuple[str, list[str], str]:
    """Create or update one object as `kubectl apply` (or `create`) does;
    returns (verb: created / configured / unchanged, warnings, stored name).
    A Conflict (someone wrote in between) is retried with fresh state."""
    first: Obj | bool | None = False  # False: not read yet
    for attempt in range(APPLY_ATTEMPTS):
        existing = await client.get(kind, namespace, name) if name else None
        if first is False:
            first = existing
            if create and existing is not None:
                raise AlreadyExists(name)
        obj = manifest if create else merged_object(manifest, existing)
        verb = "created" if first is None else "configured"
        if existing is not None and unchanged(obj, existing):
            return (verb if attempt else "unchanged"), [], name
        if dry_run == "client":
            return verb, [], name
        try:
            reply = await client.apply(obj, dry_run=dry_run == "server")
        except BusError as exc:
            if exc.reason == "Conflict" and attempt + 1 < APPLY_ATTEMPTS:
                continue
            raise
        stored = str((reply.object.get("metadata") or {}).get("name") or name)
        return ("created" if reply.created else verb), list(reply.warnings), stored
    raise AssertionError("unreachable")


def error_text(exc: BusError) -> str:
    """kubectl's `Error from server (NotFound): ...` line."""
    reply = exc.reply
    if reply.reason in ("ServiceUnavailable", "Timeout"):
        return f"error: {reply}"
    return f"Error from server ({reply.reason}): {reply}"
