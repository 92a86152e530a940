"""tcpSocket probes: success when the connection is accepted (kubelet
pkg/probe/tcp DoTCPProbe); the connection is closed at once."""

from __future__ import annotations

import asyncio

from services.prober.handlers.dial import DialError, dial
from services.prober.logic.ports import join_host_port
from services.prober.logic.thresholds import SUCCESS, Outcome


async def probe_tcp(host: str, port: int, timeout: float) -> Outcome:
    try:
        async with asyncio.timeout(timeout):
            sock = await dial(host, port)
    except TimeoutError:
        return Outcome("failure", f"dial tcp {join_host_port(host, port)}: i/o timeout")
    except DialError as exc:
        return Outcome("failure", str(exc))
    sock.close()
    return SUCCESS
