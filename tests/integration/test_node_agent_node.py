"""Node registration, lease renewal, hollow nodes in one process, and the
`python -m services.node_agent` entry point stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import nats
from nats.aio.msg import Msg
from podmodel.codec import decode, encode
from podmodel.node import Node
from podmodel.pod import Pod
from podmodel.probing import ProbeAssignmentSet, ProbeSyncRequest
from podmodel.subjects import probe_assign, probe_sync
from servicekit.store import Store

from services.node_agent.hollow import EngineConfig, SimulatedNodes, hollow_node_configs
from services.node_agent.node import NodeConfig, lease_key, parse_taints
from tests.conftest import stop_tasks, wait_for
from tests.integration.node_agent_harness import FAST_BACKOFF, make_pod

ROOT = Path(__file__).resolve().parents[2]


async def test_hollow_nodes_register_renew_leases_and_run_their_pods(
    nats_url: str, redis_url: str
) -> None:
    nc = await nats.connect(nats_url)
    store = await Store.connect(redis_url, publish=nc.publish)
    template = NodeConfig(
        name="x", labels={"zone": "a"}, taints=parse_taints("dedicated=infra:NoSchedule")
    )
    nodes = SimulatedNodes(
        hollow_node_configs("hollow", 3, template),
        store=store,
        nc=nc,
        engine=EngineConfig(lease_seconds=0.2, backoff=FAST_BACKOFF),
    )
    task = asyncio.create_task(nodes.run())
    try:
        await nodes.wait_synced(10)
        listed, _ = await store.list(Node)
        assert [n.metadata.name for n in listed] == ["hollow-0", "hollow-1", "hollow-2"]
        node = listed[1]
        assert node.metadata.labels["zone"] == "a"
        assert node.metadata.labels["kubernetes.io/hostname"] == "hollow-1"
        assert node.status.capacity["pods"] == "110" and node.status.allocatable["cpu"] == "4"
        assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
            ("dedicated", "infra", "NoSchedule")
        ]
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"

        first = await wait_for(
            lambda: store.redis.get(lease_key("hollow-2")), 5, message="lease written"
        )
        await wait_for(
            lambda: _lease_after(store, "hollow-2", float(first)), 5, message="lease renewed"
        )

        await store.create(make_pod("p1", node="hollow-1"))
        await store.create(make_pod("p2", node="hollow-2"))

        async def both_running() -> bool:
            pods, _ = await store.list(Pod)
            return len(pods) == 2 and all(p.status.phase == "Running" for p in pods)

        await wait_for(both_running, 10, message="pods on two hollow nodes running")
        p1 = await store.get(Pod, "default", "p1")
        p2 = await store.get(Pod, "default", "p2")
        assert p1 is not None and p2 is not None and p1.status.pod_ip != p2.status.pod_ip
        assert not nodes.agents[0].workers  # hollow-0 runs nothing
    finally:
        await stop_tasks([task])
        await store.close()
        await nc.close()


async def _lease_after(store: Store, node: str, when: float) -> bool:
    value = await store.redis.get(lease_key(node))
    return value is not None and float(value) > when


async def test_module_entry_point_runs_a_node_and_stops_on_sigterm(
    nats_url: str, redis_url: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.node_agent",
        "--name",
        "n1",
        "--runtime",
        "simulated",
        "--nats-url",
        nats_url,
        "--redis-url",
        redis_url,
        "--lease-seconds",
        "0.5",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    nc = await nats.connect(nats_url)
    store = await Store.connect(redis_url, publish=nc.publish)
    try:
        await wait_for(lambda: store.get(Node, "", "n1"), 20, message="node n1 registered")
        await wait_for(lambda: store.redis.get(lease_key("n1")), 10, message="lease of n1 written")
        await store.create(make_pod("web", node="n1"))

        async def running() -> bool:
            pod = await store.get(Pod, "default", "web")
            return pod is not None and pod.status.phase == "Running"

        await wait_for(running, 15, message="pod running under the module")
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 10)
        assert rc == 0, (await proc.stderr.read()).decode() if proc.stderr else rc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await store.close()
        await nc.close()


STATIC_WITH_PROBE = """\
apiVersion: v1
kind: Pod
metadata: {name: etcd}
spec:
  containers:
  - name: etcd
    image: busybox
    readinessProbe:
      tcpSocket: {port: 2379}
"""


async def test_module_flags_static_pods_and_probes_for_a_prober(
    nats_url: str, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "etcd.yaml").write_text(STATIC_WITH_PROBE)
    nc = await nats.connect(nats_url)
    assignments: list[ProbeAssignmentSet] = []

    async def on_assign(msg: Msg) -> None:
        assignments.append(decode(msg.data, ProbeAssignmentSet))

    await nc.subscribe(probe_assign("n1"), cb=on_assign)
    await nc.flush()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.node_agent",
        "--name",
        "n1",
        "--probes",
        "prober",
        "--static-pod-dir",
        str(tmp_path),
        "--static-rescan-seconds",
        "0.5",
        "--nats-url",
        nats_url,
        "--redis-url",
        redis_url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    store = await Store.connect(redis_url, publish=nc.publish)
    try:

        async def mirror_running() -> Pod | None:
            pod = await store.get(Pod, "default", "etcd-n1")
            return pod if pod is not None and pod.status.phase == "Running" else None

        mirror = await wait_for(mirror_running, 20, message="static pod's mirror running")
        # Probes come from a prober now: not ready until one reports.
        assert not mirror.status.container_statuses[0].ready

        def assigned() -> ProbeAssignmentSet | None:
            return next((a for a in reversed(assignments) if a.probes), None)

        latest = await wait_for(assigned, 10, message="probe assignment published")
        [probe] = latest.probes
        assert probe.pod_name == "etcd-n1" and probe.probe_type == "readiness"
        assert probe.probe.tcp_socket is not None and probe.pod_ip
        # A prober that starts asks for the assignment and gets it again.
        count = len(assignments)
        await nc.publish(probe_sync("n1"), encode(ProbeSyncRequest(node="n1")))
        await wait_for(lambda: len(assignments) > count, 10, message="assignment on sync")
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            rc = await proc.wait()
        assert rc == 0, (await proc.stderr.read()).decode() if proc.stderr else rc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await store.close()
        await nc.close()
