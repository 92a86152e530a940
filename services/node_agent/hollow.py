"""Hollow nodes (as kwok and kubemark do): N simulated node-agents in one
process sharing one NATS connection, one Redis pool, one status manager
(so status writes of all nodes batch together) and one lease loop (all
leases renewed in one pipelined round trip). A single simulated node is
the case N = 1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from nats.aio.client import Client as NATS
from servicekit.store import Store

from services.node_agent.agent import AgentConfig, NodeAgent, ProbeSource
from services.node_agent.events import EventRecorder
from services.node_agent.logic.backoff import BackoffConfig
from services.node_agent.node import DEFAULT_LEASE_SECONDS, NodeConfig, lease_loop, register_nodes
from services.node_agent.runtime_simulated import SimulatedRuntime, ip_block_of
from services.node_agent.status_manager import StatusManager


@dataclass(frozen=True)
class EngineConfig:
    """Timings shared by the nodes of one process."""

    lease_seconds: float = DEFAULT_LEASE_SECONDS
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    resync_s: float = 30.0
    #: agents whose informers list at once when starting (a thousand
    #: concurrent lists would exhaust the Redis connection pool)
    start_wave: int = 50
    #: where probe results come from: the runtime (hollow) or a prober service
    probes: ProbeSource = "runtime"
    #: write Kubernetes events (Pulled, Started, ...) to the store
    events: bool = True
    #: static pod manifests (one node only)
    static_pod_dir: str = ""
    static_rescan_s: float = 20.0


def hollow_node_configs(prefix: str, count: int, template: NodeConfig) -> list[NodeConfig]:
    """`<prefix>-0` .. `<prefix>-<count-1>`, each like `template`."""
    return [replace(template, name=f"{prefix}-{i}") for i in range(count)]


class SimulatedNodes:
    """N simulated nodes; `run()` registers them and runs until cancelled."""

    def __init__(
        self,
        nodes: Sequence[NodeConfig],
        *,
        store: Store,
        nc: NATS,
        engine: EngineConfig | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.store = store
        self.nc = nc
        self.engine = engine or EngineConfig()
        self.status = StatusManager(store)
        self.events = EventRecorder(store, enabled=self.engine.events)
        self.agents = [
            NodeAgent(
                AgentConfig(
                    node_name=cfg.name,
                    host_ips=(cfg.host_ip,),
                    backoff=self.engine.backoff,
                    resync_s=self.engine.resync_s,
                    probes=self.engine.probes,
                    static_pod_dir=self.engine.static_pod_dir if i == 0 else "",
                    static_rescan_s=self.engine.static_rescan_s,
                ),
                store=store,
                nc=nc,
                runtime=SimulatedRuntime(ip_base=ip_block_of(cfg.name)),
                status=self.status,
                events=self.events,
            )
            for i, cfg in enumerate(self.nodes)
        ]
        self.registered = asyncio.Event()

    async def run(self) -> None:
        await register_nodes(self.store, self.nodes)
        self.registered.set()
        names = [cfg.name for cfg in self.nodes]
        tasks = [
            asyncio.create_task(self.status.run(), name="status-manager"),
            asyncio.create_task(self.events.run(), name="events"),
            asyncio.create_task(
                lease_loop(self.store.redis, names, self.engine.lease_seconds), name="leases"
            ),
        ]
        try:
            wave = max(self.engine.start_wave, 1)
            for start in range(0, len(self.agents), wave):
                group = self.agents[start : start + wave]
                tasks.extend(
                    asyncio.create_task(agent.run(), name=f"agent {agent.config.node_name}")
                    for agent in group
                )
                await asyncio.gather(*(agent.informer.wait_synced() for agent in group))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await self.status.flush()
            with contextlib.suppress(Exception):
                await self.events.flush()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Registered, and every agent's informer has listed once."""
        async with asyncio.timeout(timeout):
            await self.registered.wait()
        for agent in self.agents:
            await agent.informer.wait_synced(timeout)
