"""grpc probes: grpc.health.v1.Health/Check over cleartext HTTP/2, with the
kubelet's messages (pkg/probe/grpc). No gRPC library: the wire work is in
logic.grpc_health and logic.hpack.

Connecting behaves like grpc-go's blocking dial that the kubelet uses: a
refused connection is retried until the timeout, which then reads
`timeout: failed to connect service "10.0.0.5:9090" within 1s: context
deadline exceeded`.
"""

from __future__ import annotations

import asyncio

from services.prober.handlers.dial import DialError, dial, os_error_text
from services.prober.logic.grpc_health import (
    H2Call,
    H2Error,
    go_duration,
    health_check_request,
    health_outcome,
    rpc_error,
)
from services.prober.logic.http1 import USER_AGENT
from services.prober.logic.ports import join_host_port
from services.prober.logic.thresholds import Outcome

_REDIAL_INTERVAL = 0.2


async def probe_grpc(host: str, port: int, service: str, timeout: float) -> Outcome:
    addr = join_host_port(host, port)
    connected = False
    call = H2Call()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout) as deadline:
            while True:
                try:
                    sock = await dial(host, port)
                    break
                except DialError:
                    await asyncio.sleep(_REDIAL_INTERVAL)
            connected = True
            try:
                reader, writer = await asyncio.open_connection(sock=sock)
            except BaseException:
                sock.close()
                raise
            writer.write(health_check_request(addr, service, timeout, USER_AGENT))
            while not call.ended:
                data = await reader.read(65536)
                if not data:
                    call.feed_eof()
                    break
                reply = call.feed(data)
                if reply:
                    writer.write(reply)
        return health_outcome(call)
    except TimeoutError:
        if not deadline.expired():
            raise
        if not connected:
            return Outcome(
                "failure",
                f'timeout: failed to connect service "{addr}" within {go_duration(timeout)}: '
                "context deadline exceeded",
            )
        return Outcome(
            "failure", f"timeout: health rpc did not complete within {go_duration(timeout)}"
        )
    except H2Error as exc:
        return Outcome("failure", f"error: health rpc probe failed: {exc}")
    except OSError as exc:
        desc = f'connection error: desc = "transport: {os_error_text(exc)}"'
        return Outcome("failure", f"error: health rpc probe failed: {rpc_error(14, desc)}")
    finally:
        if writer is not None:
            writer.close()
