"""Opening a TCP connection for a probe, with Go's error wording.

The kubelet's probe dialer sets SO_LINGER {on, 1 s} against TIME_WAIT
build-up; not here: on Linux a lingering close() blocks (even on a
non-blocking socket) until the peer acknowledges the FIN, which would stall
the event loop behind a frozen pod. Host literals skip the resolver.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import Any

from services.prober.logic.ports import join_host_port

_FAMILIES: dict[str, int] = {}
_FAMILY_CACHE_LIMIT = 4096
_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY, errno.EINTR})


class DialError(Exception):
    """`dial tcp 10.0.0.5:80: connect: connection refused` and the like."""


def literal_family(host: str) -> int | None:
    """AF_INET / AF_INET6 for an IP literal, None for a name."""
    family = _FAMILIES.get(host)
    if family is not None:
        return family
    for candidate in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(candidate, host)
        except OSError:
            continue
        if len(_FAMILIES) >= _FAMILY_CACHE_LIMIT:
            _FAMILIES.clear()
        _FAMILIES[host] = candidate
        return candidate
    return None


def errno_text(err: int) -> str:
    """Go prints errno texts in lower case: `connection refused`."""
    text = os.strerror(err)
    return text[:1].lower() + text[1:]


def os_error_text(exc: OSError) -> str:
    if exc.errno is not None:
        return errno_text(exc.errno)
    return str(exc)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def wait_writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    fd = sock.fileno()
    future: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _wake, future)
    try:
        await future
    finally:
        loop.remove_writer(fd)


async def wait_readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    fd = sock.fileno()
    future: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, future)
    try:
        await future
    finally:
        loop.remove_reader(fd)


async def dial(host: str, port: int) -> socket.socket:
    """A connected non-blocking socket, or DialError. Cancellation (the
    caller's timeout) closes the socket.

    connect_ex plus one writability wait: cheaper than loop.sock_connect,
    which runs a resolver coroutine and done-callbacks for every call."""
    loop = asyncio.get_running_loop()
    family = literal_family(host)
    address: tuple[Any, ...]
    if family is None:
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise DialError(f"dial tcp: lookup {host}: no such host") from None
        family, _, _, _, address = infos[0]
    else:
        address = (host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        err = sock.connect_ex(address)
        if err in _IN_PROGRESS:
            await wait_writable(loop, sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise DialError(f"dial tcp {join_host_port(host, port)}: connect: {errno_text(err)}")
    except BaseException:
        sock.close()
        raise
    return sock
