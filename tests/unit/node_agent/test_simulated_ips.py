"""Hollow pods on different nodes (and node-agent processes) get distinct IPs."""

from __future__ import annotations

import asyncio

from podmodel.meta import ObjectMeta
from podmodel.pod import Container, Pod, PodSpec

from services.node_agent.runtime_simulated import SimulatedRuntime, ip_block_of


def _pod(uid: str) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=uid, uid=uid),
        spec=PodSpec(containers=[Container(name="app", image="busybox")]),
    )


def _ips(node: str, count: int) -> list[str]:
    runtime = SimulatedRuntime(ip_base=ip_block_of(node))

    async def run() -> list[str]:
        return [
            (await runtime.prepare_sandbox(_pod(f"{node}-{i}"))).pod_ips[0] for i in range(count)
        ]

    return asyncio.run(run())


def test_nodes_named_differently_hand_out_different_ips() -> None:
    a, b = _ips("node-a", 30), _ips("hollow-0", 30)
    assert len(set(a)) == 30 and len(set(b)) == 30
    assert not set(a) & set(b)


def test_sandbox_ips_stay_in_the_nodes_block_and_skip_network_and_broadcast() -> None:
    ips = _ips("node-a", 300)
    prefixes = {ip.rsplit(".", 1)[0] for ip in ips}
    assert len(prefixes) == 1
    hosts = {int(ip.rsplit(".", 1)[1]) for ip in ips}
    assert hosts == set(range(1, 255))
