"""Shared set-up for the node-agent integration tests: one simulated node
agent against real NATS and Redis, and pod builders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from podmodel.codec import WatchEvent, decode
from podmodel.meta import ObjectMeta
from podmodel.pod import Container, Pod, PodSpec
from servicekit.store import Store

from services.node_agent.agent import AgentConfig, NodeAgent, ProbeSource
from services.node_agent.events import EventRecorder
from services.node_agent.logic.backoff import BackoffConfig
from services.node_agent.runtime_simulated import SimulatedRuntime
from services.node_agent.status_manager import StatusManager
from tests.conftest import stop_tasks

FAST_BACKOFF = BackoffConfig(initial=0.2, cap=1.0, reset_after=5.0)


@dataclass
class Harness:
    nc: NATS
    store: Store
    status: StatusManager
    agent: NodeAgent
    runtime: SimulatedRuntime

    async def pod(self, name: str) -> Pod | None:
        return await self.store.get(Pod, "default", name)

    async def record_events(self, name: str, node: str = "n1") -> list[tuple[str, Pod]]:
        """Every watch event of one pod from now on, as (type, pod)."""
        events: list[tuple[str, Pod]] = []

        async def on_msg(msg: Msg) -> None:
            event = decode(msg.data, WatchEvent)
            # (WatchEvent.decode_object fails on msgspec.Raw: reported.)
            events.append((event.type, msgspec.msgpack.decode(event.object, type=Pod)))

        await self.nc.subscribe(f"podbus.watch.pod.{node}.default.{name}", cb=on_msg)
        await self.nc.flush()
        return events


def make_pod(
    name: str,
    *containers: str,
    node: str = "n1",
    init: tuple[str, ...] = (),
    restart_policy: str = "Always",
    grace: int = 30,
    sim: dict[str, str] | None = None,
    sidecars: tuple[str, ...] = (),
) -> Pod:
    """A pod bound to `node`; `sim` holds sim.podbus.io/ keys without the
    prefix; `sidecars` are init containers with restartPolicy Always, placed
    before the regular `init` ones."""
    return Pod(
        metadata=ObjectMeta(
            name=name,
            namespace="default",
            annotations={f"sim.podbus.io/{k}": v for k, v in (sim or {}).items()},
        ),
        spec=PodSpec(
            containers=[Container(name=c, image="busybox") for c in containers or ("app",)],
            init_containers=[
                *(Container(name=c, image="busybox", restart_policy="Always") for c in sidecars),
                *(Container(name=c, image="busybox") for c in init),
            ],
            node_name=node,
            restart_policy=restart_policy,
            termination_grace_period_seconds=grace,
        ),
    )


@contextlib.asynccontextmanager
async def running_agent(
    nats_url: str,
    redis_url: str,
    node: str = "n1",
    *,
    runtime: SimulatedRuntime | None = None,
    store: Store | None = None,
    nc: NATS | None = None,
    probes: ProbeSource = "runtime",
    static_pod_dir: str = "",
    static_rescan_s: float = 20.0,
) -> AsyncIterator[Harness]:
    own_nc = nc is None
    nc = nc or await nats.connect(nats_url, reconnect_time_wait=0.1)
    own_store = store is None
    store = store or await Store.connect(redis_url, publish=nc.publish)
    status = StatusManager(store)
    events = EventRecorder(store, window=0.05)
    runtime = runtime or SimulatedRuntime()
    agent = NodeAgent(
        AgentConfig(
            node_name=node,
            backoff=FAST_BACKOFF,
            resync_s=5.0,
            probes=probes,
            static_pod_dir=static_pod_dir,
            static_rescan_s=static_rescan_s,
        ),
        store=store,
        nc=nc,
        runtime=runtime,
        status=status,
        events=events,
    )
    tasks = [
        asyncio.create_task(status.run()),
        asyncio.create_task(events.run()),
        asyncio.create_task(agent.run()),
    ]
    try:
        await agent.informer.wait_synced(10)
        async with asyncio.timeout(10):
            await agent.node_api_ready.wait()
            if agent.probe_link is not None:
                await agent.probe_link.ready.wait()
        yield Harness(nc, store, status, agent, runtime)
    finally:
        await stop_tasks(tasks)
        if own_store:
            await store.close()
        if own_nc:
            await nc.close()
