"""`python -m services.workload_controller --nats-url ... --redis-url ...`:
runs the desired-state intake on every replica and, on the replica that
holds the `workload-controller` lease, the controllers (health on
podbus.health.workload-controller.<instance> reports `leader`).

Timing flags default to Kubernetes' values; tests and demos shorten them.
"""

from __future__ import annotations

import argparse
import sys

from servicekit.leader import LeaderElection
from servicekit.runner import ServiceContext, run_service, uvloop_factory

from services.workload_controller.controllers import ControllerConfig, lead
from services.workload_controller.intake import serve_intake

NAME = "workload-controller"
LEASE_NAME = "workload-controller"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workload-controller")
    d = ControllerConfig()
    p.add_argument(
        "--node-grace-period",
        type=float,
        default=d.node_grace_period_s,
        help="seconds without a lease renewal before a node is unreachable (40)",
    )
    p.add_argument(
        "--node-monitor-period",
        type=float,
        default=d.node_monitor_period_s,
        help="seconds between node health checks (5)",
    )
    p.add_argument(
        "--pod-eviction-toleration",
        type=float,
        default=None,
        help="cap on how long pods tolerate unreachable/not-ready nodes "
        "(default: the pods' own tolerations, 300 s by default)",
    )
    p.add_argument(
        "--job-backoff-base",
        type=float,
        default=d.job_backoff_base_s,
        help="first Job pod re-creation delay in seconds, doubling (10)",
    )
    p.add_argument(
        "--job-backoff-max",
        type=float,
        default=d.job_backoff_max_s,
        help="cap on the Job back-off in seconds (360)",
    )
    p.add_argument(
        "--event-ttl", type=float, default=d.event_ttl_s, help="seconds events are kept (3600)"
    )
    p.add_argument(
        "--burst-replicas",
        type=int,
        default=d.burst_replicas,
        help="pods a ReplicaSet creates or deletes per sync (500)",
    )
    p.add_argument(
        "--slow-start-batch",
        type=int,
        default=d.slow_start_initial_batch,
        help="first batch of pod creates, doubling after each good batch (1)",
    )
    p.add_argument("--workers", type=int, default=d.workers, help="concurrent syncs (4)")
    p.add_argument("--leader-ttl", type=float, default=15.0, help="leader lease seconds (15)")
    p.add_argument(
        "--controllers",
        choices=["on", "off"],
        default="on",
        help="off: serve only the API intake (an extra intake replica; never leads)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> ControllerConfig:
    return ControllerConfig(
        node_grace_period_s=args.node_grace_period,
        node_monitor_period_s=args.node_monitor_period,
        pod_eviction_toleration_s=args.pod_eviction_toleration,
        job_backoff_base_s=args.job_backoff_base,
        job_backoff_max_s=args.job_backoff_max,
        event_ttl_s=args.event_ttl,
        burst_replicas=args.burst_replicas,
        slow_start_initial_batch=args.slow_start_batch,
        workers=args.workers,
    )


async def main(ctx: ServiceContext) -> None:
    """Serve the API on every replica; compete for the lease to run the
    controllers."""
    store = await ctx.store()
    await serve_intake(ctx, store)
    if ctx.args.controllers == "off":
        ctx.health_details = lambda: {"leader": False, "controllers": False}
        return
    config = config_from_args(ctx.args)
    election = LeaderElection(store.redis, LEASE_NAME, ctx.instance, ttl_s=ctx.args.leader_ttl)
    ctx.health_details = lambda: {"leader": election.token is not None}

    async def work(token: int) -> None:
        await lead(store, ctx.bus.nc, config, instance=ctx.instance)

    ctx.spawn(election.run(work), "leader-election")


if __name__ == "__main__":
    # uvloop: the intake is socket work (NATS requests, Redis round trips)
    sys.exit(run_service(NAME, main, build_parser(), loop_factory=uvloop_factory()))
