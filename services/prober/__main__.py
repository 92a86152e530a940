"""`python -m services.prober --node NAME`: the prober of one node, run
beside its node-agent (which must run with `--probes prober`, the default
for the oci runtime).

NATS from --nats-url / NATS_URL; no Redis: the prober keeps no state the
node-agent cannot give it again. SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

from servicekit.runner import ServiceContext, run_service, uvloop_factory

from services.prober.service import ProberConfig, ProberService


async def main(ctx: ServiceContext) -> None:
    args = ctx.args
    service = ProberService(
        ProberConfig(node=args.node, heartbeat_s=args.heartbeat_seconds), ctx.bus
    )
    await service.start()
    ctx.health_details = lambda: {
        "node": args.node,
        "probes": len(service.manager),
        "generation": service.manager.generation,
        "reports": service.reports_sent,
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }
    ctx.spawn(service.run(), name="prober")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.prober", description=__doc__)
    p.add_argument("--node", default=socket.gethostname(), help="the node whose probes to run")
    p.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=30.0,
        help="how often the full state of every probe is reported",
    )
    return p


if __name__ == "__main__":
    # uvloop when installed (a runtime dependency): probes are event-loop work
    sys.exit(run_service("prober", main, parser(), loop_factory=uvloop_factory()))
