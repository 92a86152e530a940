"""The bus against a real nats-server: codec, error replies, bounded
concurrency, trace context, streams, durable consumers, reconnect."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import msgspec
import nats
import pytest
import pytest_asyncio
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from podmodel.codec import ErrorReply, FieldError, decode
from podmodel.meta import Model
from podmodel.subjects import STREAM_DESIRED, STREAM_WATCH
from servicekit import telemetry
from servicekit.bus import (
    ERROR_HEADER,
    ApiError,
    Bus,
    BusError,
    BusTimeout,
    NoResponders,
    stream_configs,
)

from tests.conftest import wait_for
from tests.servers import ServerHandle


class Echo(Model):
    text: str
    times: int = 1


class EchoReply(Model):
    text: str


@pytest_asyncio.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    b = await Bus.connect(nats_url, "test")
    yield b
    await b.close()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test only, into memory; the global provider is
    never touched."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = telemetry.use_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.use_provider(previous)
        provider.shutdown()


async def serve_echo(bus: Bus) -> None:
    async def handle(req: Echo, msg: Msg) -> EchoReply:
        if req.text == "boom":
            raise RuntimeError("kaboom")
        if req.text == "invalid":
            raise ApiError(
                ErrorReply(
                    error="invalid echo",
                    reason="Invalid",
                    code=422,
                    details=[FieldError(field="text", message="must not be 'invalid'")],
                )
            )
        return EchoReply(text=req.text * req.times)

    await bus.serve("t.echo", handle, request_type=Echo, queue="echo")


async def test_request_reply_round_trips_msgpack_and_json(bus: Bus) -> None:
    await serve_echo(bus)
    assert (await bus.request("t.echo", Echo(text="ab", times=2), EchoReply)).text == "abab"
    assert (await bus.request("t.echo", Echo(text="x"), EchoReply, json=True)).text == "x"


async def test_plain_json_client_gets_json_back(bus: Bus) -> None:
    await serve_echo(bus)
    msg = await bus.nc.request("t.echo", b'{"text": "hi", "times": 3}', timeout=5)
    assert msg.data == b'{"text":"hihihi"}'
    assert not msg.headers  # plain in, plain out: the first byte says JSON


async def test_json_client_speaking_in_headers_gets_a_labelled_reply(bus: Bus) -> None:
    await serve_echo(bus)
    msg = await bus.nc.request(
        "t.echo", b'{"text": "hi"}', timeout=5, headers={"Content-Type": "application/json"}
    )
    assert msg.data == b'{"text":"hi"}'
    assert msg.headers == {"Content-Type": "application/json"}


async def test_msgpack_client_asking_for_json_gets_json(bus: Bus) -> None:
    await serve_echo(bus)
    msg = await bus.nc.request(
        "t.echo",
        msgspec.msgpack.encode({"text": "m"}),
        timeout=5,
        headers={"Accept": "application/json"},
    )
    assert msg.data == b'{"text":"m"}'
    assert msg.headers == {"Content-Type": "application/json"}


async def test_garbage_gets_error_reply_and_service_keeps_serving(bus: Bus) -> None:
    await serve_echo(bus)
    for garbage in (os.urandom(64), b"\xc1\xc1", b'{"text": 5}', b"{not json", b""):
        msg = await bus.nc.request("t.echo", garbage, timeout=5)
        assert msg.headers and msg.headers.get(ERROR_HEADER) == "1"
        reply = decode(msg.data, ErrorReply)
        assert reply.reason == "BadRequest" and reply.code == 400
        assert reply.error.startswith("invalid request")
    msg = await bus.nc.request("t.echo", b'{"text": "a", "times": "many"}', timeout=5)
    reply = decode(msg.data, ErrorReply)
    assert "$.times" in reply.error
    assert reply.details == [FieldError(field="times", message="Expected `int`, got `str`")]
    assert (await bus.request("t.echo", Echo(text="ok"), EchoReply)).text == "ok"


async def test_handler_errors_become_error_replies(bus: Bus) -> None:
    await serve_echo(bus)
    with pytest.raises(BusError) as internal:
        await bus.request("t.echo", Echo(text="boom"), EchoReply)
    assert internal.value.reply.reason == "InternalError"
    assert "kaboom" in internal.value.reply.error
    with pytest.raises(BusError) as invalid:
        await bus.request("t.echo", Echo(text="invalid"), EchoReply, json=True)
    assert invalid.value.reply.details[0].field == "text"
    assert invalid.value.reply.code == 422
    assert (await bus.request("t.echo", Echo(text="still"), EchoReply)).text == "still"


async def test_unserved_subject_and_silent_server_raise_bus_errors(bus: Bus) -> None:
    with pytest.raises(NoResponders) as none:
        await bus.request("t.nobody", Echo(text="x"), EchoReply, timeout=2)
    assert none.value.reason == "ServiceUnavailable"

    answer = asyncio.Event()

    async def late_answer(req: Echo, msg: Msg) -> EchoReply:
        await answer.wait()
        return EchoReply(text="too late")

    await bus.serve("t.slow", late_answer, request_type=Echo)
    with pytest.raises(BusTimeout) as late:
        await bus.request("t.slow", Echo(text="x"), EchoReply, timeout=0.2)
    assert late.value.reason == "Timeout"
    assert isinstance(late.value, TimeoutError)
    answer.set()


async def test_handlers_run_concurrently_up_to_the_limit(bus: Bus) -> None:
    running = 0
    peak = 0
    release = asyncio.Event()

    async def slow(req: Echo, msg: Msg) -> EchoReply:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await release.wait()
        finally:
            running -= 1
        return EchoReply(text=req.text)

    await bus.serve("t.slow", slow, request_type=Echo, max_concurrent=3)
    calls = [
        asyncio.create_task(bus.request("t.slow", Echo(text=str(i)), EchoReply)) for i in range(5)
    ]
    await wait_for(lambda: running == 3, message="three handlers running")
    await asyncio.sleep(0.1)  # give a fourth one the chance to (wrongly) start
    assert peak == 3
    release.set()
    replies = await asyncio.gather(*calls)
    assert sorted(r.text for r in replies) == ["0", "1", "2", "3", "4"]


async def test_subscribe_decodes_and_skips_garbage(bus: Bus) -> None:
    got: list[str] = []

    async def on_echo(payload: Echo, msg: Msg) -> None:
        got.append(payload.text)

    await bus.subscribe("t.events", on_echo, type=Echo)
    await bus.publish_raw("t.events", b"\xc1")
    await bus.publish("t.events", Echo(text="a"))
    await bus.publish("t.events", Echo(text="b"), json=True)
    await bus.publish_raw("t.events", b'"c"', headers={"Content-Type": "application/json"})
    await bus.publish("t.events", Echo(text="d"))
    await wait_for(lambda: got == ["a", "b", "d"], message="the valid events, in order")


async def test_subscribe_handler_failure_does_not_stop_delivery(bus: Bus) -> None:
    got: list[str] = []

    async def on_echo(payload: Echo, msg: Msg) -> None:
        if payload.text == "bad":
            raise ValueError("handler bug")
        got.append(payload.text)

    await bus.subscribe("t.events2", on_echo, type=Echo)
    for text in ("a", "bad", "b"):
        await bus.publish("t.events2", Echo(text=text))
    await wait_for(lambda: got == ["a", "b"], message="events after the failure")


async def test_trace_context_crosses_the_bus(bus: Bus, spans: InMemorySpanExporter) -> None:
    await serve_echo(bus)
    assert (await bus.request("t.echo", Echo(text="t"), EchoReply)).text == "t"

    def finished() -> list[str]:
        return sorted(s.name for s in spans.get_finished_spans())

    await wait_for(lambda: len(finished()) == 2, message="producer and consumer spans")
    by_kind = {s.kind: s for s in spans.get_finished_spans()}
    producer, consumer = by_kind[SpanKind.PRODUCER], by_kind[SpanKind.CONSUMER]
    assert producer.context is not None and consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.context is not None
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.system"] == "nats"
    assert consumer.attributes["messaging.destination.name"] == "t.echo"


async def test_published_events_are_handled_in_the_publisher_trace(
    bus: Bus, spans: InMemorySpanExporter
) -> None:
    got: list[str] = []

    async def on_echo(payload: Echo, msg: Msg) -> None:
        got.append(payload.text)

    await bus.subscribe("t.traced", on_echo, type=Echo)
    await bus.publish("t.traced", Echo(text="a"))
    await wait_for(lambda: got == ["a"], message="the event")
    await wait_for(lambda: len(spans.get_finished_spans()) == 2, message="both spans")
    by_kind = {s.kind: s for s in spans.get_finished_spans()}
    producer, consumer = by_kind[SpanKind.PRODUCER], by_kind[SpanKind.CONSUMER]
    assert producer.context is not None and consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.name == "process t.traced"


async def test_tracing_off_sends_no_trace_headers(bus: Bus) -> None:
    seen: list[Msg] = []

    async def capture(payload: bytes, msg: Msg) -> None:
        seen.append(msg)

    await bus.subscribe("t.plain", capture)
    await bus.publish("t.plain", Echo(text="x"))
    await wait_for(lambda: seen, message="the message")
    assert not seen[0].headers


async def test_ensure_streams_is_idempotent(bus: Bus) -> None:
    await bus.ensure_streams()
    await bus.ensure_streams()
    names = {info.config.name for info in await bus.js.streams_info()}
    assert {STREAM_DESIRED, STREAM_WATCH} <= names
    ack = await bus.js.publish(
        "podbus.desired.pod.default.web", msgspec.json.encode({"kind": "Pod"})
    )
    assert ack.stream == STREAM_DESIRED


async def test_ensure_streams_updates_a_stream_set_up_differently(bus: Bus) -> None:
    await bus.js.add_stream(
        StreamConfig(
            name=STREAM_WATCH, subjects=["podbus.watch.>"], max_age=60, storage=StorageType.FILE
        )
    )
    await bus.ensure_streams()
    info = await bus.js.stream_info(STREAM_WATCH)
    want = next(c for c in stream_configs() if c.name == STREAM_WATCH)
    assert info.config.max_age == want.max_age


async def test_ensure_streams_keeps_a_stream_it_cannot_change(bus: Bus) -> None:
    await bus.js.add_stream(
        StreamConfig(name=STREAM_WATCH, subjects=["podbus.watch.>"], storage=StorageType.MEMORY)
    )
    await bus.ensure_streams()  # storage cannot change: logged, not raised
    info = await bus.js.stream_info(STREAM_WATCH)
    assert info.config.storage == StorageType.MEMORY
    assert (await bus.js.stream_info(STREAM_DESIRED)).config.storage == StorageType.FILE


async def test_bus_serves_again_after_nats_restart(bus: Bus, nats_server: ServerHandle) -> None:
    await serve_echo(bus)
    reconnects: list[int] = []
    bus.add_reconnect_listener(lambda: reconnects.append(1))

    async def failing_listener() -> None:
        raise RuntimeError("a listener bug must not stop reconnecting")

    bus.add_reconnect_listener(failing_listener)
    nats_server.restart()
    await wait_for(lambda: reconnects, timeout=20, message="reconnect")
    assert bus.reconnects >= 1

    async def answers() -> bool:
        try:
            return (
                await bus.request("t.echo", Echo(text="back"), EchoReply, timeout=1)
            ).text == "back"
        except BusError:
            return False

    await wait_for(answers, timeout=20, message="echo after restart")


async def test_slow_consumer_is_counted_per_subject(bus: Bus) -> None:
    gate = asyncio.Event()

    async def stuck(msg: Msg) -> None:
        await gate.wait()

    sub = await bus.nc.subscribe("t.flood", cb=stuck, pending_msgs_limit=2)
    for _ in range(20):
        await bus.nc.publish("t.flood", b"x")
    await bus.nc.flush()
    await wait_for(lambda: bus.slow_consumer_counts.get("t.flood", 0) > 0, message="drops")
    assert bus.slow_consumers == sum(bus.slow_consumer_counts.values())
    gate.set()
    await sub.unsubscribe()


async def test_durable_consumer_gets_what_was_published_while_it_was_away(bus: Bus) -> None:
    await bus.ensure_streams()
    await bus.js_publish("podbus.desired.pod.default.a", Echo(text="a"))
    await bus.js_publish("podbus.desired.pod.default.bad", b"\xc1")
    got: list[str] = []
    failed_once: list[str] = []
    stop = asyncio.Event()

    async def handle(msg: Msg) -> None:
        echo = decode(msg.data, Echo)
        if echo.text == "b" and not failed_once:
            failed_once.append("b")
            raise RuntimeError("transient")
        got.append(echo.text)

    task = asyncio.create_task(
        bus.durable_consumer(
            STREAM_DESIRED, "test", "podbus.desired.>", handle, stop=stop, nak_delay_s=0.05
        )
    )
    await bus.js_publish("podbus.desired.pod.default.b", Echo(text="b"))
    await wait_for(lambda: sorted(got) == ["a", "b"], timeout=15, message="a and b handled")
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert failed_once == ["b"]

    # Away again: only what was published meanwhile comes, nothing acked twice.
    await bus.js_publish("podbus.desired.pod.default.c", Echo(text="c"))
    stop.clear()
    task = asyncio.create_task(
        bus.durable_consumer(STREAM_DESIRED, "test", "podbus.desired.>", handle, stop=stop)
    )
    await wait_for(lambda: len(got) == 3, timeout=15, message="c handled")
    await asyncio.sleep(0.2)  # a redelivery of a, b or the terminated message would show
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert sorted(got) == ["a", "b", "c"]
    info = await bus.js.consumer_info(STREAM_DESIRED, "test")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_durable_consumer_survives_a_nats_restart(
    bus: Bus, nats_server: ServerHandle
) -> None:
    await bus.ensure_streams()
    got: list[str] = []

    async def handle(msg: Msg) -> None:
        got.append(decode(msg.data, Echo).text)

    task = asyncio.create_task(
        bus.durable_consumer(STREAM_DESIRED, "restart", "podbus.desired.>", handle)
    )
    try:
        await bus.js_publish("podbus.desired.pod.default.before", Echo(text="before"))
        await wait_for(lambda: got == ["before"], timeout=15, message="before the restart")
        nats_server.restart()

        async def published() -> bool:
            try:
                await bus.js_publish(
                    "podbus.desired.pod.default.after", Echo(text="after"), timeout=1
                )
                return True
            except (TimeoutError, nats.errors.Error):
                return False

        await wait_for(published, timeout=20, message="JetStream back")
        await wait_for(lambda: "after" in got, timeout=20, message="after the restart")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
