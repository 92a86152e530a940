"""`python -m services.scheduler --nats-url ... --redis-url ...`: the
scheduler service. Every instance keeps its informers warm; the one that
holds the `scheduler` lease (servicekit.leader) schedules and binds, the
others stand by and take over within one lease TTL. Health on
podbus.health.scheduler.<instance> reports leadership and queue sizes.
"""

from __future__ import annotations

import argparse
import os
import sys

from servicekit.leader import LeaderElection
from servicekit.runner import ServiceContext, run_service

from services.scheduler.driver import LEASE_NAME, Scheduler

NAME = "scheduler"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.scheduler")
    p.add_argument(
        "--lease-ttl",
        type=float,
        default=float(os.environ.get("PODBUS_SCHEDULER_LEASE_TTL", "15")),
        help="leader lease TTL in seconds: a standby takes over within it "
        "(env PODBUS_SCHEDULER_LEASE_TTL)",
    )
    p.add_argument(
        "--resync",
        type=float,
        default=float(os.environ.get("PODBUS_SCHEDULER_RESYNC", "300")),
        help="seconds between full relists of pods and nodes (env PODBUS_SCHEDULER_RESYNC)",
    )
    return p


async def main(ctx: ServiceContext) -> None:
    store = await ctx.store()
    scheduler = Scheduler(store, ctx.bus.nc, instance=ctx.instance, resync_s=ctx.args.resync)
    election = LeaderElection(store.redis, LEASE_NAME, ctx.instance, ttl_s=ctx.args.lease_ttl)
    ctx.health_details = scheduler.health
    ctx.spawn(scheduler.run_informers(), "scheduler:informers")
    ctx.spawn(election.run(scheduler.lead), "scheduler:election")


if __name__ == "__main__":
    sys.exit(run_service(NAME, main, parser()))
