"""The bus: NATS with podbus's codec, error replies, trace context and stream set-up.

Owns every NATS call a service makes apart from the informer's watch
subscription:

- connecting: unlimited reconnect with exponential back-off and jitter, one
  log line per state change (disconnected / reconnected / closed / error),
  slow consumers counted per subject and logged, auth by user/password,
  token, creds file or TLS; `add_reconnect_listener` lets informers relist;
- idempotent JetStream set-up (`ensure_streams`): an existing stream with a
  different config is updated, a change the server refuses is logged;
- publish / request / subscribe / serve with msgpack between services and
  JSON for clients (a payload starting with '{' or '[', or the header
  `Content-Type: application/json`, is JSON; replies are JSON when the
  request was, or asked with `Accept: application/json`, and carry
  `Content-Type: application/json` when the request came with headers: a
  plain JSON request gets a plain JSON reply, told by its first byte);
- error replies: an ErrorReply with the header `Podbus-Error: 1`, so a caller
  tells it from an object without guessing; `request` raises it as BusError.
  A request that fails to decode gets reason BadRequest with the field path
  and one log line; a handler that raises gets InternalError and one log line
  with the traceback; the service goes on either way;
- W3C trace context (`traceparent` / `tracestate` headers): publish and
  request open a PRODUCER span, served handlers run in a CONSUMER span whose
  parent comes from the headers; only when servicekit.telemetry is enabled,
  so tracing off costs one boolean check per message;
- JetStream: acknowledged publish, and a durable pull consumer loop that
  acks, naks with delay, terms undecodable messages and outlives reconnects.

Handlers passed to `serve` run concurrently, bounded by a semaphore per
subscription; `subscribe` handlers run one at a time, in order (watch events
must not be reordered). Tasks started here belong to the Bus and end with
`close()`, which drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import msgspec
import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServiceUnavailableError
from opentelemetry.trace import SpanKind, Status, StatusCode
from podmodel.codec import JSON_CONTENT_TYPE, DecodeError, ErrorReply, FieldError, encode
from podmodel.subjects import STREAM_DESIRED, STREAM_WATCH

from servicekit import telemetry
from servicekit.telemetry import inject_headers

log = logging.getLogger("podbus.bus")

T = TypeVar("T")
R = TypeVar("R")

ERROR_HEADER = "Podbus-Error"
CONTENT_TYPE_HEADER = "Content-Type"
ACCEPT_HEADER = "Accept"
TRACEPARENT_HEADER = "traceparent"

WATCH_MAX_AGE_S = 3600.0
DESIRED_MAX_AGE_S = 7 * 24 * 3600.0
DEFAULT_MAX_CONCURRENT = 256

RECONNECT_BASE_S = 0.05
RECONNECT_MAX_S = 5.0
SLOW_CONSUMER_LOG_EVERY_S = 5.0

Handler = Callable[[Any, Msg], Awaitable[Any]]
ReconnectListener = Callable[[], Awaitable[None] | None]


# ------------------------------------------------------------------ errors


class BusError(Exception):
    """An error reply from a service, or a transport failure made into one
    (reason Timeout / ServiceUnavailable). `reply` is the ErrorReply."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(str(reply))
        self.reply = reply

    def __str__(self) -> str:
        return str(self.reply)

    @property
    def reason(self) -> str:
        return self.reply.reason


class BusTimeout(BusError, nats.errors.TimeoutError):
    """No reply within the timeout (also a nats TimeoutError / TimeoutError)."""


class NoResponders(BusError, nats.errors.NoRespondersError):
    """Nobody serves the subject (also a nats NoRespondersError)."""


class ApiError(Exception):
    """Raised by a served handler for a clean error reply (no traceback logged).
    A BusError from a request the handler made is passed on the same way."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(str(reply))
        self.reply = reply


# ------------------------------------------------------------------ pure helpers


def stream_configs() -> list[StreamConfig]:
    """The JetStream streams podbus relies on (see DESIGN.md, the bus).

    PODBUS_DESIRED keeps fire-and-forget applies until the controller takes
    them (file storage, limits: a week, the last 100 per object).
    PODBUS_WATCH keeps an hour of watch events for late or restarted
    consumers; informers relist from Redis for anything older."""
    return [
        StreamConfig(
            name=STREAM_DESIRED,
            subjects=["podbus.desired.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=DESIRED_MAX_AGE_S,
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


_COMPARED_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "max_age",
    "max_msgs_per_subject",
    "discard",
    "max_msgs",
    "max_bytes",
)


def stream_differs(want: StreamConfig, have: StreamConfig) -> list[str]:
    """Fields of `want` that `have` does not match (unset fields of `want` and
    server defaults of -1 / 0 count as equal)."""
    differ = []
    for name in _COMPARED_FIELDS:
        wanted = getattr(want, name)
        if wanted is None:
            continue
        got = getattr(have, name)
        if name == "subjects":
            if sorted(wanted) != sorted(got or []):
                differ.append(name)
        elif name == "max_age":
            if abs(float(wanted) - float(got or 0)) > 0.001:
                differ.append(name)
        elif wanted != got:
            differ.append(name)
    return differ


def is_json_payload(data: bytes, headers: Mapping[str, str] | None) -> bool:
    """JSON if the header says so or the first non-blank byte is '{' or '['."""
    if headers and headers.get(CONTENT_TYPE_HEADER) == JSON_CONTENT_TYPE:
        return True
    for b in data[:64]:
        if b in b" \t\r\n":
            continue
        return b in b"{["
    return False


def wants_json(msg: Msg) -> bool:
    """Reply in JSON when the caller asked for it or spoke JSON itself."""
    headers = msg.headers
    if headers and headers.get(ACCEPT_HEADER) == JSON_CONTENT_TYPE:
        return True
    return is_json_payload(msg.data, headers)


_decoders: dict[Any, tuple[msgspec.json.Decoder[Any], msgspec.msgpack.Decoder[Any]]] = {}


def decode_payload(data: bytes, headers: Mapping[str, str] | None, type: Any) -> Any:
    """Decode a message body into `type` (JSON or msgpack, see is_json_payload);
    `type=None` returns the bytes untouched. Raises DecodeError with the path."""
    if type is None:
        return data
    try:
        decoders = _decoders[type]
    except (KeyError, TypeError):
        decoders = (msgspec.json.Decoder(type), msgspec.msgpack.Decoder(type))
        with contextlib.suppress(TypeError):  # unhashable type: no cache
            _decoders[type] = decoders
    try:
        if is_json_payload(data, headers):
            return decoders[0].decode(data)
        return decoders[1].decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(str(exc)) from exc


_PATH = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$")


def bad_request(exc: DecodeError, what: str = "request") -> ErrorReply:
    """The BadRequest reply for a payload that failed to decode. msgspec names
    the wire path (`$.spec.containers[0].name`); it becomes the field error's
    field (`spec.containers[0].name`)."""
    text = str(exc)
    match = _PATH.match(text)
    if match:
        field = match["path"].lstrip(".")
        details = [FieldError(field=field, message=match["message"])]
    else:
        details = [FieldError(field="", message=text)]
    return ErrorReply(
        error=f"invalid {what}: {text}", reason="BadRequest", code=400, details=details
    )


def internal_error(exc: BaseException) -> ErrorReply:
    return ErrorReply(
        error=f"internal error: {type(exc).__name__}: {exc}", reason="InternalError", code=500
    )


def reconnect_delay(
    attempts: int, base: float = RECONNECT_BASE_S, cap: float = RECONNECT_MAX_S
) -> float:
    """Back-off before reconnect attempt number `attempts` (0 = first): doubling
    from `base` to `cap`, with jitter so a fleet does not reconnect in step."""
    return min(cap, base * (2 ** min(attempts, 30))) * random.uniform(0.5, 1.0)


def decode_error_reply(data: bytes) -> ErrorReply | None:
    """An ErrorReply if `data` is one (for clients that don't read headers)."""
    try:
        reply: ErrorReply = decode_payload(data, None, ErrorReply)
        return reply
    except DecodeError:
        return None


# ------------------------------------------------------------------ the bus


class Bus:
    """A connected NATS client with podbus's conventions. `nc` and `js` are
    the nats-py client and JetStream context for anything not wrapped here."""

    def __init__(self, nc: Client, *, max_concurrent: int = DEFAULT_MAX_CONCURRENT) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.max_concurrent = max_concurrent
        self.slow_consumers = 0  # messages dropped by this client, all subjects
        self.slow_consumer_counts: dict[str, int] = {}
        self._slow_logged_at: dict[str, float] = {}
        self._reconnect_listeners: list[ReconnectListener] = []
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._last_error = ""

    # -------------------------------------------------------------- connect

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
        tls_hostname: str | None = None,
        connect_timeout: int = 5,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        reconnect_max_s: float = RECONNECT_MAX_S,
    ) -> Bus:
        """Connect to `url` (comma-separated for a cluster) as client `name`.

        Auth: `user`/`password`, `token`, `creds` (a .creds file; needs the
        `nkeys` package) or `tls` (an ssl.SSLContext, with client certificate
        if the server verifies clients). Reconnects forever."""
        holder: list[Bus] = []

        async def on_error(exc: Exception) -> None:
            if holder:
                holder[0]._on_error(exc)
            else:
                log.warning("nats: %s", exc)

        async def on_disconnected() -> None:
            if holder and not holder[0]._closing:
                log.warning("nats: disconnected from %s; reconnecting", _server_of(holder[0].nc))

        async def on_reconnected() -> None:
            if holder:
                await holder[0]._on_reconnected()

        async def on_closed() -> None:
            if holder and holder[0]._closing:
                log.debug("nats: connection %s closed", name)
            else:
                log.warning("nats: connection %s closed", name)

        options: dict[str, Any] = {}
        if user is not None:
            options.update(user=user, password=password)
        if token is not None:
            options["token"] = token
        if creds is not None:
            options["user_credentials"] = creds
        if tls is not None:
            options["tls"] = tls
            if tls_hostname:
                options["tls_hostname"] = tls_hostname
        if _supports_reconnect_handler():

            def pick_server(servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
                server = min(servers, key=lambda s: s.reconnects)
                return server, reconnect_delay(server.reconnects, cap=reconnect_max_s)

            options["reconnect_to_server_handler"] = pick_server
        else:  # older nats-py: a fixed wait between attempts
            options["reconnect_time_wait"] = 0.5
        servers = [u.strip() for u in url.split(",") if u.strip()]
        nc = await nats.connect(
            servers,
            name=name,
            max_reconnect_attempts=-1,
            connect_timeout=connect_timeout,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            closed_cb=on_closed,
            **options,
        )
        bus = cls(nc, max_concurrent=max_concurrent)
        holder.append(bus)
        return bus

    def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            self._on_slow_consumer(exc)
            return
        text = f"{type(exc).__name__}: {exc}"
        # Every failed reconnect attempt reports the same refusal: say it once.
        if text == self._last_error:
            log.debug("nats: %s", text)
        else:
            log.warning("nats: %s", text)
        self._last_error = text

    def _on_slow_consumer(self, exc: SlowConsumerError) -> None:
        subject = exc.sub.subject if exc.sub is not None else exc.subject
        self.slow_consumers += 1
        count = self.slow_consumer_counts.get(subject, 0) + 1
        self.slow_consumer_counts[subject] = count
        now = time.monotonic()
        if now - self._slow_logged_at.get(subject, -1e9) >= SLOW_CONSUMER_LOG_EVERY_S:
            self._slow_logged_at[subject] = now
            log.warning("nats: slow consumer on %s: %d message(s) dropped so far", subject, count)

    async def _on_reconnected(self) -> None:
        self._last_error = ""
        log.info("nats: reconnected to %s", _server_of(self.nc))
        # A listener's exception must not reach nats-py: it would end the
        # client's reconnect task.
        for listener in list(self._reconnect_listeners):
            try:
                result = listener()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("reconnect listener %r failed", listener)

    def add_reconnect_listener(self, callback: ReconnectListener) -> None:
        """Call `callback` (sync or async) after every reconnect."""
        self._reconnect_listeners.append(callback)

    @property
    def reconnects(self) -> int:
        return int(self.nc.stats["reconnects"])

    # -------------------------------------------------------------- streams

    async def ensure_streams(self, configs: list[StreamConfig] | None = None) -> None:
        """Create or update podbus's streams; safe to call from every service,
        at every start. A change the server refuses (storage type, say) is
        logged and the existing stream kept."""
        for config in configs or stream_configs():
            assert config.name
            try:
                info = await self.js.stream_info(config.name)
            except NotFoundError:
                try:
                    await self.js.add_stream(config)
                    log.info("stream %s created", config.name)
                    continue
                except BadRequestError:  # another service created it meanwhile
                    info = await self.js.stream_info(config.name)
            differ = stream_differs(config, info.config)
            if not differ:
                continue
            try:
                await self.js.update_stream(config)
                log.info("stream %s updated (%s)", config.name, ", ".join(differ))
            except ServiceUnavailableError:
                raise
            except APIError as exc:  # e.g. 10052: storage type cannot change
                log.warning(
                    "stream %s differs (%s) and cannot be updated: %s; keeping it",
                    config.name,
                    ", ".join(differ),
                    exc.description,
                )

    # -------------------------------------------------------------- publish

    def _headers(self, headers: dict[str, str] | None, json: bool) -> dict[str, str] | None:
        out = dict(headers) if headers else {}
        if json:
            out[CONTENT_TYPE_HEADER] = JSON_CONTENT_TYPE
        inject_headers(out)
        return out or None

    async def publish(
        self, subject: str, obj: Any, *, headers: dict[str, str] | None = None, json: bool = False
    ) -> None:
        """Publish `obj` encoded (msgpack, or JSON with `json=True`)."""
        data = encode(obj, json=json)
        if not telemetry.enabled():
            await self.nc.publish(subject, data, headers=self._headers(headers, json))
            return
        with _producer_span("publish", subject):
            await self.nc.publish(subject, data, headers=self._headers(headers, json))

    async def publish_raw(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Publish bytes as they are (the Store's publish callback). With
        tracing on, the current trace context rides along, no span is made."""
        if telemetry.enabled():
            headers = inject_headers(dict(headers) if headers else {}) or None
        await self.nc.publish(subject, data, headers=headers)

    async def request(
        self,
        subject: str,
        obj: Any,
        reply_type: Any,
        *,
        timeout: float = 5.0,
        json: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send a request, return the reply decoded into `reply_type` (None:
        the bytes). `json=True` sends JSON and asks for a JSON reply.

        Raises BusError with the server's ErrorReply, BusTimeout (reason
        Timeout) when nobody answers in time, NoResponders (reason
        ServiceUnavailable) when nobody serves the subject."""
        data = encode(obj, json=json)
        if json:
            headers = {**(headers or {}), ACCEPT_HEADER: JSON_CONTENT_TYPE}
        if telemetry.enabled():
            with _producer_span("request", subject):
                msg = await self._request(subject, data, timeout, self._headers(headers, json))
        else:
            msg = await self._request(subject, data, timeout, self._headers(headers, json))
        if msg.headers and msg.headers.get(ERROR_HEADER):
            reply = decode_error_reply(msg.data) or ErrorReply(
                error=f"undecodable error reply on {subject}", reason="InternalError", code=502
            )
            raise BusError(reply)
        try:
            return decode_payload(msg.data, msg.headers, reply_type)
        except DecodeError as exc:
            raise BusError(
                ErrorReply(
                    error=f"invalid reply on {subject}: {exc}", reason="InternalError", code=502
                )
            ) from exc

    async def _request(
        self, subject: str, data: bytes, timeout: float, headers: dict[str, str] | None
    ) -> Msg:
        try:
            return await self.nc.request(subject, data, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError as exc:
            raise NoResponders(
                ErrorReply(
                    error=f"no service answers on {subject}",
                    reason="ServiceUnavailable",
                    code=503,
                )
            ) from exc
        except nats.errors.TimeoutError as exc:
            raise BusTimeout(
                ErrorReply(
                    error=f"no reply on {subject} within {timeout:g}s", reason="Timeout", code=504
                )
            ) from exc

    # -------------------------------------------------------------- serve

    async def serve(
        self,
        subject: str,
        handler: Callable[[T, Msg], Awaitable[Any]],
        *,
        request_type: type[T] | None,
        queue: str = "",
        max_concurrent: int | None = None,
    ) -> Subscription:
        """Answer requests on `subject` (in queue group `queue`, if given).

        `handler(request, msg)` gets the decoded request (`request_type=None`:
        the bytes) and returns the reply object, encoded like the request (or
        as asked by Accept). It may raise ApiError for a clean error reply.
        Up to `max_concurrent` handlers run at once; beyond that the
        subscription stops reading, and NATS buffers, then drops (a slow
        consumer, counted and logged), so a burst cannot exhaust memory."""
        limit = asyncio.Semaphore(max_concurrent or self.max_concurrent)
        loop = asyncio.get_running_loop()

        async def on_msg(msg: Msg) -> None:
            await limit.acquire()
            task = loop.create_task(self._answer(subject, msg, handler, request_type, limit))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        sub = await self.nc.subscribe(subject, queue=queue, cb=on_msg)
        self._subs.append(sub)
        return sub

    async def _answer(
        self,
        pattern: str,
        msg: Msg,
        handler: Handler,
        request_type: Any,
        limit: asyncio.Semaphore,
    ) -> None:
        try:
            json = wants_json(msg)
            try:
                request = decode_payload(msg.data, msg.headers, request_type)
            except DecodeError as exc:
                log.warning("bad request on %s: %s", msg.subject, exc)
                await self._reply_error(msg, bad_request(exc), json)
                return
            if telemetry.enabled():
                with _consumer_span(pattern, msg) as span:
                    failed = await self._call_handler(msg, handler, request, json)
                    if failed:
                        span.set_status(Status(StatusCode.ERROR, failed))
            else:
                await self._call_handler(msg, handler, request, json)
        finally:
            limit.release()

    async def _call_handler(self, msg: Msg, handler: Handler, request: Any, json: bool) -> str:
        """Run the handler and reply; returns the error reason, "" on success."""
        try:
            reply = await handler(request, msg)
        except (ApiError, BusError) as exc:
            await self._reply_error(msg, exc.reply, json)
            return exc.reply.reason
        except Exception as exc:
            log.exception("handler for %s failed", msg.subject)
            await self._reply_error(msg, internal_error(exc), json)
            return "InternalError"
        if msg.reply:
            # A JSON reply is labelled only for a caller that spoke in headers:
            # a plain JSON client tells it by its first byte, as the service
            # tells requests, and reading a header block costs every reply.
            headers = {CONTENT_TYPE_HEADER: JSON_CONTENT_TYPE} if json and msg.headers else None
            await self._send_reply(msg.reply, encode(reply, json=json), headers)
        return ""

    async def _reply_error(self, msg: Msg, reply: ErrorReply, json: bool) -> None:
        if not msg.reply:
            return
        headers = {ERROR_HEADER: "1"}
        if json:
            headers[CONTENT_TYPE_HEADER] = JSON_CONTENT_TYPE
        await self._send_reply(msg.reply, encode(reply, json=json), headers)

    async def _send_reply(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        try:
            await self.nc.publish(subject, data, headers=headers)
        except nats.errors.Error as exc:  # closed or draining: the caller times out
            log.debug("reply on %s not sent: %s", subject, exc)

    # -------------------------------------------------------------- subscribe

    async def subscribe(
        self,
        subject: str,
        handler: Callable[[Any, Msg], Awaitable[Any]],
        *,
        type: Any = None,
        queue: str = "",
    ) -> Subscription:
        """Deliver messages on `subject` to `handler(payload, msg)` one at a
        time, in order; `type=None` gives the bytes, else the decoded object.

        A message that fails to decode is logged (one line) and skipped, with
        an error reply if it has a reply subject; a handler exception is
        logged with its traceback. With tracing on, a message that carries a
        traceparent is handled in a CONSUMER span (untraced traffic such as
        resyncs makes no root spans)."""

        async def on_msg(msg: Msg) -> None:
            try:
                payload = decode_payload(msg.data, msg.headers, type)
            except DecodeError as exc:
                log.warning("undecodable message on %s: %s", msg.subject, exc)
                await self._reply_error(msg, bad_request(exc, "message"), wants_json(msg))
                return
            try:
                if telemetry.enabled() and msg.headers and TRACEPARENT_HEADER in msg.headers:
                    with _consumer_span(subject, msg):
                        await handler(payload, msg)
                else:
                    await handler(payload, msg)
            except Exception:
                log.exception("handler for %s failed", msg.subject)

        sub = await self.nc.subscribe(subject, queue=queue, cb=on_msg)
        self._subs.append(sub)
        return sub

    # -------------------------------------------------------------- JetStream

    async def js_publish(
        self,
        subject: str,
        obj: Any,
        *,
        headers: dict[str, str] | None = None,
        json: bool = False,
        timeout: float = 5.0,
    ) -> int:
        """Publish into a stream and wait for its acknowledgement (raises a
        nats TimeoutError without one); returns the stream sequence. Bytes are
        published as they are."""
        data = obj if isinstance(obj, bytes) else encode(obj, json=json)
        if telemetry.enabled():
            with _producer_span("publish", subject):
                ack = await self.js.publish(
                    subject, data, timeout=timeout, headers=self._headers(headers, json)
                )
        else:
            ack = await self.js.publish(
                subject, data, timeout=timeout, headers=self._headers(headers, json)
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
        ack_wait_s: float = 30.0,
        fetch_timeout_s: float = 1.0,
    ) -> None:
        """Pull messages of the durable consumer `durable` on `stream` until
        `stop` is set or the task is cancelled; run it in the service's task
        group. Messages published while no consumer ran are delivered.

        `handler(msg)` decodes and handles one message (`decode_payload` is
        there for it). Its success acks; a DecodeError terminates the message
        (it will never decode) after one log line; any other exception naks
        with `nak_delay_s` so the message comes back, logged with traceback
        on its first delivery only. Outages (reconnects, the consumer or
        stream recreated) are logged once per streak and retried with
        back-off, re-binding the consumer."""
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            filter_subject=subject_filter,
        )
        failures = 0
        while stop is None or not stop.is_set():
            sub: Any = None
            try:
                sub = await self.js.pull_subscribe(
                    subject_filter, durable=durable, stream=stream, config=config
                )
                if failures:
                    log.info("consumer %s/%s: fetching again", stream, durable)
                failures = 0
                await self._pull_loop(
                    sub, stream, durable, handler, batch, stop, nak_delay_s, fetch_timeout_s
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closing or self.nc.is_closed:
                    return
                if not failures:
                    log.warning("consumer %s/%s: %s; retrying", stream, durable, _describe(exc))
                failures += 1
                await _sleep_or_stop(reconnect_delay(failures, base=0.1, cap=2.0), stop)
            finally:
                if sub is not None:
                    # An open pull subscription would hold drain() for its timeout.
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            if self._closing or self.nc.is_closed:
                return

    async def _pull_loop(
        self,
        sub: Any,
        stream: str,
        durable: str,
        handler: Callable[[Msg], Awaitable[None]],
        batch: int,
        stop: asyncio.Event | None,
        nak_delay_s: float,
        fetch_timeout_s: float,
    ) -> None:
        fetch_failures = 0
        while stop is None or not stop.is_set():
            try:
                msgs = await sub.fetch(batch, timeout=fetch_timeout_s)
            except nats.errors.TimeoutError:
                continue  # nothing new (or reconnecting: the next fetch tells)
            except NotFoundError:
                raise  # the consumer is gone: re-create it
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                if self._closing or self.nc.is_closed:
                    return
                raise
            except nats.errors.Error as exc:
                # A server restart answers fetches with 503s until JetStream is back.
                if not fetch_failures:
                    log.warning("consumer %s/%s: %s; retrying", stream, durable, _describe(exc))
                fetch_failures += 1
                if fetch_failures > 20:
                    raise
                await _sleep_or_stop(reconnect_delay(fetch_failures, base=0.1, cap=2.0), stop)
                continue
            if fetch_failures:
                log.info("consumer %s/%s: fetching again", stream, durable)
                fetch_failures = 0
            for msg in msgs:
                await self._consume(stream, durable, msg, handler, nak_delay_s)

    async def _consume(
        self,
        stream: str,
        durable: str,
        msg: Msg,
        handler: Callable[[Msg], Awaitable[None]],
        nak_delay_s: float,
    ) -> None:
        try:
            if telemetry.enabled() and msg.headers and TRACEPARENT_HEADER in msg.headers:
                with _consumer_span(f"{stream}/{durable}", msg):
                    await handler(msg)
            else:
                await handler(msg)
        except DecodeError as exc:
            log.warning("dropping undecodable message on %s: %s", msg.subject, exc)
            await msg.term()
        except Exception as exc:
            if _first_delivery(msg):
                log.exception("handler for %s failed; will retry", msg.subject)
            else:
                log.warning("handler for %s failed again: %s; will retry", msg.subject, exc)
            await msg.nak(delay=nak_delay_s)
        else:
            await msg.ack()

    # -------------------------------------------------------------- close

    async def close(self, timeout: float = 5.0) -> None:
        """Drain: stop taking messages, let running handlers reply (up to
        `timeout`), flush what was published, close. Safe to call twice."""
        if self._closing:
            return
        self._closing = True
        if self.nc.is_connected:
            subs = [s for s in self._subs if not getattr(s, "_closed", False)]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*(s.drain() for s in subs), return_exceptions=True), timeout
                )
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:  # reconnecting or already closing
                await self.nc.close()


# ------------------------------------------------------------------ spans


def _producer_span(operation: str, subject: str) -> Any:
    return telemetry.tracer().start_as_current_span(
        f"{operation} {subject}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "send" if operation == "request" else "publish",
            "messaging.destination.name": subject,
        },
    )


def _consumer_span(pattern: str, msg: Msg) -> Any:
    """A CONSUMER span named for the subscription (low cardinality), child
    of the context in the message's headers."""
    return telemetry.tracer().start_as_current_span(
        f"process {pattern}",
        context=telemetry.extract_context(msg.headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.destination.name": msg.subject,
            "messaging.message.body.size": len(msg.data),
        },
    )


# ------------------------------------------------------------------ small things


def _server_of(nc: Client) -> str:
    url = nc.connected_url
    return url.netloc if url is not None else "?"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_delivery(msg: Msg) -> bool:
    try:
        return int(msg.metadata.num_delivered) <= 1
    except Exception:
        return True


async def _sleep_or_stop(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _supports_reconnect_handler() -> bool:
    return "reconnect_to_server_handler" in inspect.signature(Client.connect).parameters
