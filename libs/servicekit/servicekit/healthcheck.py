"""`python -m servicekit.healthcheck SERVICE`: exit 0 when the service
instance in this container (or host) answers on the bus, 1 otherwise, with
one line saying why. Made for Docker/compose `healthcheck:` commands, so it
connects, asks once and leaves; no Redis, no tracing.

The instance asked is `--instance`, else PODBUS_INSTANCE, else the host
name (the compose image's entrypoint sets PODBUS_INSTANCE to the container's
host name, so the service and its health check agree without configuration).
It requests `podbus.health.<service>.<instance>` (servicekit.runner's
responder) and wants status "ok".

The node-agent answers on `podbus.health.node-agent.<NAME>` (its node) and
on its PODBUS_INSTANCE: for `node-agent --node NAME` the check tries the
first, and as a fall-back (an agent older than its responder) asks the
node's exec subject
(`podbus.node.<NAME>.exec`) about a pod that does not exist; any well-formed
answer (an error, naturally) shows the agent is connected and serving its
node.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

import nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from podmodel.codec import decode_raw, encode
from podmodel.node_api import ExecRequest
from podmodel.subjects import health, node_exec

from servicekit.runner import DEFAULT_NATS_URL, nats_connect_options

CHECK_NAMESPACE = "podbus-healthcheck"


class Unhealthy(Exception):
    """The service did not answer, or answered that it is not ok."""


async def _request(nc: Any, subject: str, payload: bytes, timeout: float) -> Any:
    try:
        msg = await nc.request(subject, payload, timeout=timeout)
    except NoRespondersError as exc:
        raise Unhealthy(f"nobody serves {subject}") from exc
    except (NatsTimeoutError, TimeoutError) as exc:
        raise Unhealthy(f"no answer on {subject} within {timeout:g}s") from exc
    try:
        return decode_raw(msg.data)
    except Exception as exc:
        raise Unhealthy(f"{subject}: undecodable answer: {exc}") from exc


async def check(
    service: str,
    *,
    nats_url: str,
    instance: str,
    node: str = "",
    timeout: float = 3.0,
) -> str:
    """One health check; the line to print when healthy, Unhealthy otherwise."""
    options = nats_connect_options()

    async def quiet(exc: Exception) -> None:
        return None  # the one line below says it

    try:
        async with asyncio.timeout(timeout):
            nc = await nats.connect(
                [u.strip() for u in nats_url.split(",") if u.strip()],
                name=f"healthcheck-{service}",
                connect_timeout=timeout,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=quiet,
                **options,
            )
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        raise Unhealthy(f"cannot connect to NATS at {nats_url}: {detail}") from None
    try:
        subject = health(service, node if service == "node-agent" and node else instance)
        try:
            reply = await _request(nc, subject, b"", timeout)
        except Unhealthy:
            if service != "node-agent" or not node:
                raise
            probe = ExecRequest(
                namespace=CHECK_NAMESPACE, pod="healthcheck", container="-", command=["true"]
            )
            answer = await _request(nc, node_exec(node), encode(probe), timeout)
            if not isinstance(answer, dict) or "error" not in answer:
                raise Unhealthy(f"{node_exec(node)}: unexpected answer {answer!r}") from None
            return f"node-agent of node {node} answers on {node_exec(node)}"
        status = reply.get("status") if isinstance(reply, dict) else None
        if status != "ok":
            raise Unhealthy(f"{subject}: status {status!r}")
        return f"{service} {reply.get('instance', instance)} ok (up {reply.get('uptime_s')}s)"
    finally:
        await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m servicekit.healthcheck", description=__doc__)
    p.add_argument("service", help="scheduler, workload-controller, node-agent, prober")
    p.add_argument("--instance", default=os.environ.get("PODBUS_INSTANCE") or socket.gethostname())
    p.add_argument(
        "--node",
        default=os.environ.get("PODBUS_NODE_NAME", ""),
        help="node-agent: the node's name (env PODBUS_NODE_NAME)",
    )
    p.add_argument("--nats-url", default=os.environ.get("NATS_URL", DEFAULT_NATS_URL))
    p.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args(argv)
    try:
        line = asyncio.run(
            check(
                args.service,
                nats_url=args.nats_url,
                instance=args.instance,
                node=args.node,
                timeout=args.timeout,
            )
        )
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
