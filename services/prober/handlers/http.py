"""httpGet probes: a minimal asyncio HTTP/1.1 client (one request per
connection, as the kubelet's transport with keep-alives off), HTTPS without
certificate checks, redirects and verdict from logic.http1.

The whole exchange, redirects included, runs under one timeout
(timeoutSeconds, like Go's Client.Timeout). Messages follow Go's client:
`Get "http://10.0.0.5:8080/healthz": dial tcp 10.0.0.5:8080: connect:
connection refused`, `... context deadline exceeded (Client.Timeout exceeded
while awaiting headers)`. A failure while reading the body makes the run
errored (`unknown`), as the kubelet discards such runs.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from services.prober.handlers.dial import DialError, dial, os_error_text, wait_readable
from services.prober.logic.http1 import (
    BodyError,
    HeadError,
    HttpTarget,
    RequestTemplate,
    ResponseParser,
    judge,
    next_step,
)
from services.prober.logic.thresholds import Outcome

_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """HTTPS probes skip certificate checks (K8S_SEMANTICS §5)."""
    global _tls
    if _tls is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _tls = context
    return _tls


class _Exchange(asyncio.Protocol):
    """Writes the request when connected and feeds the response parser;
    `done` resolves when the response is complete or the exchange failed."""

    __slots__ = ("done", "parser", "request")

    def __init__(self, request: bytes, parser: ResponseParser, done: asyncio.Future[None]) -> None:
        self.request = request
        self.parser = parser
        self.done = done

    def factory(self) -> _Exchange:
        """The protocol factory create_connection wants: this one instance."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            complete = self.parser.feed(data)
        except (HeadError, BodyError) as exc:
            self.done.set_exception(exc)
            return
        if complete:
            self.done.set_result(None)

    def eof_received(self) -> bool:
        if not self.done.done():
            try:
                self.parser.feed_eof()
            except (HeadError, BodyError) as exc:
                self.done.set_exception(exc)
            else:
                self.done.set_result(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is None:
                self.eof_received()
            else:
                self.done.set_exception(exc)


async def _exchange_plain(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, request: bytes, parser: ResponseParser
) -> None:
    """Plain HTTP straight on the non-blocking socket: no transport, one
    readability wait per segment (a probe response is usually one)."""
    try:
        sent = sock.send(request)
    except BlockingIOError:
        sent = 0
    if sent < len(request):
        await loop.sock_sendall(sock, request[sent:])
    while True:
        await wait_readable(loop, sock)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue
        if not data:
            parser.feed_eof()
            return
        if parser.feed(data):
            return


async def _exchange_tls(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    host: str,
    request: bytes,
    parser: ResponseParser,
) -> None:
    """HTTPS through an asyncio TLS transport, which takes the socket over
    (and closes it, also when the handshake fails)."""
    done: asyncio.Future[None] = loop.create_future()
    exchange = _Exchange(request, parser, done)
    try:
        transport, _ = await loop.create_connection(
            exchange.factory, sock=sock, ssl=_tls_context(), server_hostname=host
        )
    except asyncio.CancelledError:
        sock.close()
        raise
    try:
        await done
    finally:
        # Like Go with keep-alives off: drop the connection, no TLS goodbye.
        transport.abort()


def _read_error(sock: socket.socket, exc: OSError, remote: str) -> str:
    """Go: `read tcp 10.0.0.1:40000->10.0.0.5:8080: read: connection reset by peer`."""
    try:
        local = sock.getsockname()
    except OSError:
        return f"read: {os_error_text(exc)}"
    return f"read tcp {local[0]}:{local[1]}->{remote}: read: {os_error_text(exc)}"


async def probe_http(target: HttpTarget, template: RequestTemplate, timeout: float) -> Outcome:
    """Run one httpGet probe against `target` (the first request's URL)."""
    loop = asyncio.get_running_loop()
    first = current = target
    host_header = template.host_header
    requests_made = 0
    parser: ResponseParser | None = None
    dialing = True
    try:
        async with asyncio.timeout(timeout) as deadline:
            while True:
                parser = None
                dialing = True
                sock = await dial(current.host, current.port)
                dialing = False
                requests_made += 1
                parser = ResponseParser()
                request = template.render(current, host_header)
                try:
                    if current.scheme == "https":
                        # The TLS transport owns the socket from here on.
                        await _exchange_tls(loop, sock, current.host, request, parser)
                    else:
                        await _exchange_plain(loop, sock, request, parser)
                except ConnectionError as exc:
                    raise HeadError(_read_error(sock, exc, current.authority)) from None
                finally:
                    if current.scheme != "https":
                        sock.close()
                response = parser.response()
                step = next_step(first, current, host_header, response, requests_made)
                if step is None:
                    return judge(response)
                current, host_header = step.target, step.host_header
    except TimeoutError:
        if not deadline.expired():
            raise
        if parser is not None and parser.has_head:
            return Outcome(
                "unknown",
                "context deadline exceeded (Client.Timeout or context cancellation while reading body)",
            )
        if dialing:
            cause = f"dial tcp {current.authority}: i/o timeout"
        else:
            cause = "context deadline exceeded"
        return Outcome(
            "failure",
            f'Get "{current.url}": {cause} (Client.Timeout exceeded while awaiting headers)',
        )
    except (DialError, HeadError) as exc:
        return Outcome("failure", f'Get "{current.url}": {exc}')
    except BodyError as exc:
        return Outcome("unknown", str(exc))
    except ssl.SSLError as exc:
        return Outcome("failure", f'Get "{current.url}": {exc.reason or exc}')
    except OSError as exc:
        return Outcome("failure", f'Get "{current.url}": {os_error_text(exc)}')
