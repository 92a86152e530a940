"""Memory check: N hollow nodes with M pods each in one process (issue 5:
1,000 nodes x 30 pods within 1 GiB).

Starts its own nats-server and redis-server, runs the simulated engine
(`services.node_agent.hollow.SimulatedNodes`) in this process, creates the
pods bound round-robin to the nodes (in batches), waits until every pod is
Running, and prints the resident memory of this process (which holds the
nodes, their informers' caches, pod workers and simulated containers; the
servers are separate processes and not counted):

    hollow 1000 nodes 30000 pods: N MiB

    .venv/bin/python bench/hollow_nodes.py [--nodes 1000] [--pods-per-node 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
from podmodel.meta import ObjectMeta
from podmodel.pod import Container, Pod, PodSpec
from servicekit.embedded import NatsServer, RedisServer
from servicekit.store import Store

from services.node_agent.hollow import EngineConfig, SimulatedNodes, hollow_node_configs
from services.node_agent.node import NodeConfig


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pod(i: int, node: str) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=f"p-{i}", namespace="default", labels={"app": "bench"}),
        spec=PodSpec(
            containers=[Container(name="app", image="busybox")],
            node_name=node,
            restart_policy="Always",
        ),
    )


async def count_running(store: Store, nodes: list[str]) -> int:
    """Running pods, listed node by node (one list of everything would be
    one long Lua call)."""
    running = 0
    for start in range(0, len(nodes), 50):
        lists = await asyncio.gather(*(store.list(Pod, node=n) for n in nodes[start : start + 50]))
        running += sum(1 for pods, _ in lists for p in pods if p.status.phase == "Running")
    return running


async def main(nodes: int, per_node: int, timeout: float) -> int:
    with NatsServer() as nats_server, RedisServer() as redis_server:
        nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1)
        store = await Store.connect(redis_server.url, publish=nc.publish)
        base = rss_mib()
        configs = hollow_node_configs("hollow", nodes, NodeConfig(name="x"))
        engine = EngineConfig(resync_s=300.0)
        hollow = SimulatedNodes(configs, store=store, nc=nc, engine=engine)
        task = asyncio.create_task(hollow.run())
        t0 = time.monotonic()
        await hollow.wait_synced(120)
        print(f"registered and synced {nodes} nodes in {time.monotonic() - t0:.1f} s")
        total = nodes * per_node
        t1 = time.monotonic()
        for start in range(0, total, 1000):
            batch = [
                pod(i, configs[i % nodes].name) for i in range(start, min(total, start + 1000))
            ]
            await store.create_many(batch)
        print(f"created {total} pods in {time.monotonic() - t1:.1f} s")
        deadline = time.monotonic() + timeout
        running = 0
        while time.monotonic() < deadline:
            running = await count_running(store, [c.name for c in configs])
            if running >= total:
                break
            await asyncio.sleep(1.0)
        elapsed = time.monotonic() - t1
        gc.collect()
        rss = rss_mib()
        print(f"running {running}/{total} after {elapsed:.1f} s")
        print(
            f"status writes {hollow.status.writes} in {hollow.status.batches} batches "
            f"({hollow.status.writes / max(hollow.status.batches, 1):.0f} per batch)"
        )
        print(f"rss before engine {base:.0f} MiB")
        print(f"hollow {nodes} nodes {total} pods: {rss:.0f} MiB")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
        await nc.close()
        return 0 if running >= total else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.nodes, args.pods_per_node, args.timeout)))
