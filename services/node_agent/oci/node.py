"""One real node: a NodeAgent over `OciRuntime` with its status manager,
event recorder and lease loop (what `python -m services.node_agent
--runtime oci` runs), and `--cleanup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from nats.aio.client import Client as NATS
from podmodel.quantity import parse_quantity
from servicekit.store import Store

from services.node_agent.agent import AgentConfig, NodeAgent, ProbeSource
from services.node_agent.events import EventRecorder
from services.node_agent.logic.backoff import BackoffConfig
from services.node_agent.node import DEFAULT_LEASE_SECONDS, NodeConfig, lease_loop, register_nodes
from services.node_agent.oci.runtime import OciConfig, OciRuntime, prerequisites
from services.node_agent.status_manager import StatusManager

log = logging.getLogger(__name__)

#: how often pods left on disk without a worker are looked for
ORPHAN_SCAN_SECONDS = 30.0


class MissingPrerequisites(Exception):
    """runc, busybox-static, iproute2 ... are missing; the message lists them."""


def check(config: OciConfig) -> None:
    problems = prerequisites(config)
    if problems:
        raise MissingPrerequisites(
            "the oci runtime cannot start on this machine:\n  - " + "\n  - ".join(problems)
        )


class OciNode:
    """A node-agent running real containers; `run()` until cancelled."""

    def __init__(
        self,
        node: NodeConfig,
        oci: OciConfig,
        *,
        store: Store,
        nc: NATS,
        probes: ProbeSource = "prober",
        backoff: BackoffConfig | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        events: bool = True,
        static_pod_dir: str = "",
        static_rescan_s: float = 20.0,
        resync_s: float = 30.0,
    ) -> None:
        check(oci)
        if not oci.node_memory_bytes:
            with contextlib.suppress(Exception):
                oci = replace(oci, node_memory_bytes=int(parse_quantity(node.memory)))
        self.node = node
        self.store = store
        self.lease_seconds = lease_seconds
        self.runtime = OciRuntime(replace(oci, host_ip=node.host_ip, node_name=node.name))
        self.status = StatusManager(store)
        self.events = EventRecorder(store, enabled=events)
        self.agent = NodeAgent(
            AgentConfig(
                node_name=node.name,
                host_ips=(node.host_ip,),
                backoff=backoff or BackoffConfig(),
                resync_s=resync_s,
                probes=probes,
                static_pod_dir=static_pod_dir,
                static_rescan_s=static_rescan_s,
            ),
            store=store,
            nc=nc,
            runtime=self.runtime,
            status=self.status,
            events=self.events,
        )
        self.registered = asyncio.Event()

    async def run(self) -> None:
        await register_nodes(self.store, [self.node])
        self.registered.set()
        tasks = [
            asyncio.create_task(self.status.run(), name="status-manager"),
            asyncio.create_task(self.events.run(), name="events"),
            asyncio.create_task(
                lease_loop(self.store.redis, [self.node.name], self.lease_seconds), name="lease"
            ),
            asyncio.create_task(self.agent.run(), name=f"agent {self.node.name}"),
            asyncio.create_task(self._collect_orphans(), name="orphans"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self.status.flush()
            with contextlib.suppress(Exception):
                await self.events.flush()
            await self.runtime.close()

    async def _collect_orphans(self) -> None:
        """Pods deleted while the agent was down still have containers,
        namespaces and addresses here: once the informer has listed (and
        the workers adopted what is still wanted), remove the rest, and look
        again now and then."""
        await self.agent.informer.wait_synced()
        while True:
            await asyncio.sleep(ORPHAN_SCAN_SECONDS)
            try:
                await self.runtime.remove_orphans(set(self.agent.workers))
            except Exception:
                log.exception("removing orphaned pods failed")

    async def wait_synced(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self.registered.wait()
        await self.agent.informer.wait_synced(timeout)


async def cleanup(oci: OciConfig) -> list[str]:
    """`--cleanup`: remove whatever a crashed agent left behind."""
    check(oci)
    return await OciRuntime(oci).cleanup()
