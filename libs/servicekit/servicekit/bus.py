"""The bus: NATS with podbus's codec, error replies and stream set-up.

Owns every NATS call a service makes apart from the informer's watch
subscription: connecting (unlimited reconnect, logged state changes, slow
consumers counted), idempotent JetStream stream set-up, publish / request /
serve with msgpack between services and JSON for clients that send it or ask
for it (`Accept: application/json`), and error replies. A request that fails
to decode gets an ErrorReply naming the field and one log line; the service
goes on. Error replies carry the header `Podbus-Error: 1` so a caller can tell
them from an object without guessing.

Trace context rides in the W3C `traceparent` / `tracestate` headers; it is
injected and extracted only when an OpenTelemetry SDK provider is installed,
so tracing off costs one attribute check per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import SlowConsumerError
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from podmodel.codec import (
    JSON_CONTENT_TYPE,
    DecodeError,
    ErrorReply,
    decode,
    encode,
    is_json,
)
from podmodel.subjects import STREAM_DESIRED, STREAM_WATCH

from servicekit.telemetry import inject_headers

log = logging.getLogger("podbus.bus")

T = TypeVar("T")
R = TypeVar("R")

ERROR_HEADER = "Podbus-Error"
WATCH_MAX_AGE_S = 3600.0


class BusError(Exception):
    """An error reply from a service (or a transport failure made into one)."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class ApiError(Exception):
    """Raised by a served handler for a clean error reply."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(str(reply))
        self.reply = reply


def stream_configs() -> list[StreamConfig]:
    """The JetStream streams podbus relies on (see DESIGN.md, the bus)."""
    return [
        StreamConfig(
            name=STREAM_DESIRED,
            subjects=["podbus.desired.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_msgs_per_subject=100,
            discard=DiscardPolicy.OLD,
        ),
        StreamConfig(
            name=STREAM_WATCH,
            subjects=["podbus.watch.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=WATCH_MAX_AGE_S,
            discard=DiscardPolicy.OLD,
        ),
    ]


def wants_json(msg: Msg) -> bool:
    """Reply in JSON when the caller asked for it or spoke JSON itself."""
    headers = msg.headers or {}
    if headers.get("Accept") == JSON_CONTENT_TYPE:
        return True
    return headers.get("Content-Type") == JSON_CONTENT_TYPE or is_json(msg.data)


class Bus:
    """A connected NATS client with podbus's conventions."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.slow_consumers = 0
        self._reconnect_listeners: list[Callable[[], Awaitable[None] | None]] = []
        self._subs: list[Any] = []

    @classmethod
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        creds: str | None = None,
        tls: ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
    ) -> Bus:
        bus: Bus | None = None

        async def on_error(exc: Exception) -> None:
            if isinstance(exc, SlowConsumerError) and bus is not None:
                bus.slow_consumers += 1
                log.warning("slow consumer on %s (sid %s): messages dropped", exc.subject, exc.sid)
            else:
                log.warning("nats error: %s", exc)

        async def on_disconnected() -> None:
            log.warning("nats disconnected from %s; reconnecting", url)

        async def on_reconnected() -> None:
            log.info("nats reconnected to %s", url)
            if bus is not None:
                for listener in list(bus._reconnect_listeners):
                    result = listener()
                    if asyncio.iscoroutine(result):
                        await result

        async def on_closed() -> None:
            log.info("nats connection to %s closed", url)

        options: dict[str, Any] = {}
        if user is not None:
            options.update(user=user, password=password)
        if token is not None:
            options["token"] = token
        if creds is not None:
            options["user_credentials"] = creds
        if tls is not None:
            options["tls"] = tls
        nc = await nats.connect(
            url,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=connect_timeout,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            closed_cb=on_closed,
            **options,
        )
        bus = cls(nc)
        return bus

    def add_reconnect_listener(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        self._reconnect_listeners.append(callback)

    async def ensure_streams(self) -> None:
        """Create or update podbus's streams; safe to call from every service."""
        for config in stream_configs():
            try:
                await self.js.add_stream(config)
            except BadRequestError:
                await self.js.update_stream(config)

    # ------------------------------------------------------------ publish

    def _headers(self, headers: dict[str, str] | None, json: bool) -> dict[str, str] | None:
        out = dict(headers or {})
        if json:
            out["Content-Type"] = JSON_CONTENT_TYPE
        inject_headers(out)
        return out or None

    async def publish(
        self, subject: str, obj: Any, *, headers: dict[str, str] | None = None, json: bool = False
    ) -> None:
        await self.nc.publish(subject, encode(obj, json=json), headers=self._headers(headers, json))

    async def publish_raw(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        await self.nc.publish(subject, data, headers=headers)

    async def request(
        self,
        subject: str,
        obj: Any,
        reply_type: type[R],
        *,
        timeout: float = 5.0,
        json: bool = False,
        headers: dict[str, str] | None = None,
    ) -> R:
        """Send a request; return the decoded reply or raise BusError."""
        msg = await self.nc.request(
            subject, encode(obj, json=json), timeout=timeout, headers=self._headers(headers, json)
        )
        if msg.headers and msg.headers.get(ERROR_HEADER):
            raise BusError(decode(msg.data, ErrorReply))
        return decode(msg.data, reply_type)

    # ------------------------------------------------------------ serve

    async def serve(
        self,
        subject: str,
        handler: Callable[[T, Msg], Awaitable[Any]],
        *,
        request_type: type[T],
        queue: str = "",
        max_concurrent: int = 256,
    ) -> None:
        """Answer requests on `subject`. Decode failures and handler errors
        become error replies; the subscription never dies of bad input."""
        limit = asyncio.Semaphore(max_concurrent)

        async def on_msg(msg: Msg) -> None:
            async with limit:
                await self._answer(msg, handler, request_type)

        self._subs.append(await self.nc.subscribe(subject, queue=queue, cb=on_msg))

    async def _answer(
        self, msg: Msg, handler: Callable[[T, Msg], Awaitable[Any]], request_type: type[T]
    ) -> None:
        json = wants_json(msg)
        try:
            request = decode(msg.data, request_type)
        except DecodeError as exc:
            log.warning("bad request on %s: %s", msg.subject, exc)
            await self._reply_error(msg, ErrorReply(error=f"invalid request: {exc}"), json)
            return
        try:
            reply = await handler(request, msg)
        except ApiError as exc:
            await self._reply_error(msg, exc.reply, json)
            return
        except Exception as exc:
            log.exception("handler for %s failed", msg.subject)
            await self._reply_error(
                msg,
                ErrorReply(error=f"internal error: {exc}", reason="InternalError", code=500),
                json,
            )
            return
        if msg.reply:
            await msg.respond(encode(reply, json=json))

    async def _reply_error(self, msg: Msg, reply: ErrorReply, json: bool) -> None:
        if not msg.reply:
            return
        headers = {ERROR_HEADER: "1"}
        if json:
            headers["Content-Type"] = JSON_CONTENT_TYPE
        await self.nc.publish(msg.reply, encode(reply, json=json), headers=headers)

    async def subscribe(
        self,
        subject: str,
        handler: Callable[[Any, Msg], Awaitable[None]],
        *,
        type: type[Any] | None = None,
        queue: str = "",
    ) -> None:
        """Subscribe with decoding; a message that fails to decode is logged once
        and skipped (with an error reply if it has a reply subject)."""

        async def on_msg(msg: Msg) -> None:
            try:
                payload: Any = decode(msg.data, type) if type is not None else msg.data
            except DecodeError as exc:
                log.warning("undecodable message on %s: %s", msg.subject, exc)
                await self._reply_error(
                    msg, ErrorReply(error=f"invalid message: {exc}"), wants_json(msg)
                )
                return
            try:
                await handler(payload, msg)
            except Exception:
                log.exception("handler for %s failed", msg.subject)

        self._subs.append(await self.nc.subscribe(subject, queue=queue, cb=on_msg))

    async def js_publish(
        self, subject: str, obj: Any, *, headers: dict[str, str] | None = None, json: bool = False
    ) -> int:
        """Publish into a stream and wait for its acknowledgement; returns the
        stream sequence."""
        ack = await self.js.publish(
            subject, encode(obj, json=json), headers=self._headers(headers, json)
        )
        return int(ack.seq)

    async def durable_consumer(
        self,
        stream: str,
        durable: str,
        subject_filter: str,
        handler: Callable[[Msg], Awaitable[None]],
        *,
        batch: int = 100,
        stop: asyncio.Event | None = None,
        nak_delay_s: float = 1.0,
    ) -> None:
        """Pull messages of a durable consumer until `stop` is set (or the
        task is cancelled). The handler's success acks; an exception naks with
        a delay so the message comes back; a DecodeError terminates the
        message (it will never decode) after one log line. Survives
        reconnects: fetch errors are logged once per streak and retried."""
        sub = await self.js.pull_subscribe(subject_filter, durable=durable, stream=stream)
        try:
            await self._pull_loop(sub, stream, durable, handler, batch, stop, nak_delay_s)
        finally:
            # An open pull subscription would hold drain() for its full timeout.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _pull_loop(
        self,
        sub: Any,
        stream: str,
        durable: str,
        handler: Callable[[Msg], Awaitable[None]],
        batch: int,
        stop: asyncio.Event | None,
        nak_delay_s: float,
    ) -> None:
        failing = False
        while stop is None or not stop.is_set():
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
                failing = False
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:
                if not failing:
                    log.warning("fetch from %s/%s failed: %s; retrying", stream, durable, exc)
                failing = True
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                try:
                    await handler(msg)
                except DecodeError as exc:
                    log.warning("dropping undecodable message on %s: %s", msg.subject, exc)
                    await msg.term()
                except Exception:
                    log.exception("handler for %s failed; will retry", msg.subject)
                    await msg.nak(delay=nak_delay_s)
                else:
                    await msg.ack()

    async def close(self) -> None:
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:  # already closing or disconnected
                await self.nc.close()


def decode_error_reply(data: bytes) -> ErrorReply | None:
    """An ErrorReply if `data` is one (for clients that don't read headers)."""
    try:
        return decode(data, ErrorReply)
    except (DecodeError, msgspec.ValidationError):
        return None
