"""`python -m services.workload_controller --nats-url ... --redis-url ...`:
runs the desired-state intake until SIGTERM (health on
podbus.health.workload-controller.<instance> comes from the runner)."""

from __future__ import annotations

import sys

from servicekit.runner import ServiceContext, run_service
from servicekit.store import Store

from services.workload_controller.intake import serve_intake

NAME = "workload-controller"


async def main(ctx: ServiceContext) -> None:
    """Connect the store (publishing its changes on the bus) and serve the API."""

    async def publish(subject: str, payload: bytes) -> None:
        await ctx.bus.nc.publish(subject, payload)

    store = await Store.connect(ctx.args.redis_url, publish=publish)
    await serve_intake(ctx, store)


if __name__ == "__main__":
    sys.exit(run_service(NAME, main))
