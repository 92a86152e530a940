"""The embedded redis-server counts as started only once it serves: a
restarted Redis listens while it loads its append-only file and answers
-LOADING to every command until then (a CI run failed on that race).
A stand-in on a local socket plays the loading server; no Redis here."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from servicekit.embedded import RedisServer, ServerError


@pytest.fixture
def loading_then_ready() -> Iterator[tuple[int, list[bytes]]]:
    """A listener that answers PING with -LOADING three times, then +PONG."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    answered: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(64)
                reply = (
                    b"-LOADING Redis is loading the dataset in memory\r\n"
                    if len(answered) < 3
                    else b"+PONG\r\n"
                )
                answered.append(reply)
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], answered
    stop.set()
    thread.join(2)
    listener.close()


def test_start_waits_past_loading_for_a_pong(
    loading_then_ready: tuple[int, list[bytes]],
) -> None:
    port, answered = loading_then_ready
    server = RedisServer(port=port)
    try:
        server._wait_ready(time.monotonic() + 5)
    finally:
        server.close()
    assert [a[:8] for a in answered] == [b"-LOADING"] * 3 + [b"+PONG\r\n"]


def test_a_server_that_never_serves_is_an_error_naming_why(
    loading_then_ready: tuple[int, list[bytes]],
) -> None:
    port, _answered = loading_then_ready
    server = RedisServer(port=port)
    try:
        with pytest.raises(ServerError, match="not ready: -LOADING"):
            server._wait_ready(time.monotonic() + 0.03)
    finally:
        server.close()
