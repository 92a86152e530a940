"""The bus against a real nats-server: codec, error replies, streams, reconnect."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import msgspec
import pytest
import pytest_asyncio
from nats.aio.msg import Msg
from podmodel.codec import ErrorReply, FieldError, decode
from podmodel.meta import Model
from podmodel.subjects import STREAM_DESIRED, STREAM_WATCH
from servicekit.bus import ERROR_HEADER, ApiError, Bus, BusError

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


async def test_garbage_gets_error_reply_and_service_keeps_serving(bus: Bus) -> None:
    await serve_echo(bus)
    for garbage in (os.urandom(64), b"\xc1\xc1", b'{"text": 5}', b"{not json"):
        msg = await bus.nc.request("t.echo", garbage, timeout=5)
        assert msg.headers and msg.headers.get(ERROR_HEADER) == "1"
        reply = decode(msg.data, ErrorReply)
        assert reply.reason == "BadRequest"
        assert reply.error.startswith("invalid request")
    msg = await bus.nc.request("t.echo", b'{"text": 5}', timeout=5)
    assert "$.text" in decode(msg.data, ErrorReply).error
    assert (await bus.request("t.echo", Echo(text="ok"), EchoReply)).text == "ok"


async def test_handler_errors_become_error_replies(bus: Bus) -> None:
    await serve_echo(bus)
    with pytest.raises(BusError) as internal:
        await bus.request("t.echo", Echo(text="boom"), EchoReply)
    assert internal.value.reply.reason == "InternalError"
    with pytest.raises(BusError) as invalid:
        await bus.request("t.echo", Echo(text="invalid"), EchoReply)
    assert invalid.value.reply.details[0].field == "text"
    assert (await bus.request("t.echo", Echo(text="still"), EchoReply)).text == "still"


async def test_subscribe_decodes_and_skips_garbage(bus: Bus) -> None:
    got: list[str] = []

    async def on_echo(payload: Echo, msg: Msg) -> None:
        got.append(payload.text)

    await bus.subscribe("t.events", on_echo, type=Echo)
    await bus.publish_raw("t.events", b"\xc1")
    await bus.publish("t.events", Echo(text="a"))
    await bus.publish("t.events", Echo(text="b"), json=True)
    await wait_for(lambda: got == ["a", "b"], message="both valid events")


async def test_ensure_streams_is_idempotent(bus: Bus) -> None:
    await bus.ensure_streams()
    await bus.ensure_streams()
    names = {info.config.name for info in await bus.js.streams_info()}
    assert {STREAM_DESIRED, STREAM_WATCH} <= names
    ack = await bus.js.publish(
        "podbus.desired.pod.default.web", msgspec.json.encode({"kind": "Pod"})
    )
    assert ack.stream == STREAM_DESIRED


async def test_bus_serves_again_after_nats_restart(bus: Bus, nats_server: ServerHandle) -> None:
    await serve_echo(bus)
    reconnects: list[int] = []
    bus.add_reconnect_listener(lambda: reconnects.append(1))
    nats_server.restart()
    await wait_for(lambda: reconnects, timeout=20, message="reconnect")

    async def answers() -> bool:
        try:
            return (
                await bus.request("t.echo", Echo(text="back"), EchoReply, timeout=1)
            ).text == "back"
        except Exception:
            return False

    await wait_for(answers, timeout=20, message="echo after restart")


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
