"""Benchmark: scheduling throughput, shaped like Kubernetes' scheduler_perf
(test/integration/scheduler_perf), against its own nats-server and
redis-server, with the scheduler as its own process (`python -m
services.scheduler`, leader-elected as in production).

Scenarios (nodes are Node objects in the store, no node-agents; pods are
created in bulk as pending):

- SchedulingBasic: 5,000 nodes (4 cpu, 32Gi, 110 pods), 10,000 pods
  requesting 100m / 500Mi (scheduler_perf's node-default and pod-default).
- SchedulingNodeAffinity: the same nodes labelled zone1, pods with required
  node affinity `topology.kubernetes.io/zone In [zone1, zone2]`.
- SchedulingPodAntiAffinity: 500 nodes, 1,000 pods in two colours, each
  with required anti-affinity to its own colour on the hostname: every node
  ends with exactly one pod of each colour (the cluster is exactly full).

- SchedulingDaemonset (only with --scenario): 5,000 nodes, 5,000 pods each
  pinned to its node by `matchFields metadata.name` as the DaemonSet
  controller pins them: NodeAffinity's pre-filter narrows each cycle to that
  node (Kubernetes' PreFilterResult.NodeNames).
- SchedulingBasicTenPercentUnschedulable (only with --scenario): Basic with
  every tenth pod selecting a label no node has (the cost of failures:
  full filter passes, status writes, FailedScheduling events).

Throughput = pods bound per second from the first create to the last
binding observed on the watch subjects (`podbus.watch.pod.<node>.>`).
In the same run, the raw ceiling: binding compare-and-sets per second
straight against Redis (Store.bind_many, one Lua call per 1,000, no
publishing), and the ratio. At the end of each scenario the run checks and
prints: no pod bound twice, no node over-committed (requests <=
allocatable, pod count <= pods), every pod bound.

    .venv/bin/python bench/scheduling.py [--scale 1.0] [--scenario SchedulingBasic]
        [--no-jetstream] [--profile]

`--profile` runs the scheduler under py-spy (`.venv/bin/pip install py-spy`)
and leaves collapsed stacks in $TMPDIR/scheduling-<scenario>.folded.txt; the
summary printed at the end lists where the scheduler's samples went.

Goal (issue 4): SchedulingBasic >= 1,500 pods/s on the 2-core dev machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
from nats.aio.client import Client as NATS
from podmodel.defaults import apply_defaults
from podmodel.meta import ObjectMeta
from podmodel.node import Node, NodeSpec, NodeStatus
from podmodel.pod import (
    Affinity,
    Container,
    ContainerPort,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PodAffinityTerm,
    PodAntiAffinity,
    PodSpec,
    ResourceRequirements,
)
from podmodel.quantity import cpu_millis, memory_bytes
from podmodel.selector import LabelSelector
from servicekit.bus import Bus
from servicekit.embedded import NatsServer, RedisServer
from servicekit.store import Store, StoreError

ROOT = Path(__file__).resolve().parent.parent
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
NAMESPACE = "sched-0"
CREATE_BATCH = 1000


# ------------------------------------------------------------------ objects


def make_node(i: int, labels: dict[str, str] | None = None) -> Node:
    name = f"node-{i:05d}"
    alloc = {"cpu": "4", "memory": "32Gi", "pods": "110"}
    return Node(
        metadata=ObjectMeta(name=name, labels={HOSTNAME: name, **(labels or {})}),
        spec=NodeSpec(),
        status=NodeStatus(capacity=dict(alloc), allocatable=alloc),
    )


def base_pod(i: int, labels: dict[str, str] | None = None) -> Pod:
    pod = Pod(
        metadata=ObjectMeta(name=f"pod-{i:06d}", namespace=NAMESPACE, labels=labels or {}),
        spec=PodSpec(
            containers=[
                Container(
                    name="pause",
                    image="registry.k8s.io/pause:3.10",
                    ports=[ContainerPort(container_port=80)],
                    resources=ResourceRequirements(
                        requests={"cpu": "100m", "memory": "500Mi"},
                        limits={"cpu": "100m", "memory": "500Mi"},
                    ),
                )
            ]
        ),
    )
    apply_defaults(pod)
    return pod


def node_affinity_pod(i: int) -> Pod:
    pod = base_pod(i)
    pod.spec.affinity = Affinity(
        node_affinity=NodeAffinity(
            required_during_scheduling_ignored_during_execution=NodeSelector(
                node_selector_terms=[
                    NodeSelectorTerm(
                        match_expressions=[
                            NodeSelectorRequirement(
                                key=ZONE, operator="In", values=["zone1", "zone2"]
                            )
                        ]
                    )
                ]
            )
        )
    )
    return pod


def anti_affinity_pod(i: int) -> Pod:
    color = "green" if i % 2 == 0 else "blue"
    pod = base_pod(i, {"color": color, "name": "test"})
    pod.spec.affinity = Affinity(
        pod_anti_affinity=PodAntiAffinity(
            required_during_scheduling_ignored_during_execution=[
                PodAffinityTerm(
                    label_selector=LabelSelector(match_labels={"color": color}),
                    topology_key=HOSTNAME,
                )
            ]
        )
    )
    return pod


def daemon_pod(i: int) -> Pod:
    """A DaemonSet's pod for node i: pinned by matchFields metadata.name, as
    the DaemonSet controller pins it (scheduler_perf's SchedulingDaemonset)."""
    pod = base_pod(i)
    pin = NodeSelectorRequirement(key="metadata.name", operator="In", values=[f"node-{i:05d}"])
    pod.spec.affinity = Affinity(
        node_affinity=NodeAffinity(
            required_during_scheduling_ignored_during_execution=NodeSelector(
                node_selector_terms=[NodeSelectorTerm(match_fields=[pin])]
            )
        )
    )
    return pod


def unschedulable_every_tenth_pod(i: int) -> Pod:
    """pod-default, but every tenth pod selects a label no node has: each
    costs a full filter pass, a status write and a FailedScheduling event."""
    pod = base_pod(i)
    if i % 10 == 0:
        pod.spec.node_selector = {"disktype": "none"}
    return pod


@dataclass
class Scenario:
    name: str
    nodes: int
    pods: int
    node_labels: dict[str, str]
    pod: Any
    unschedulable: int = 0  # pods that cannot fit anywhere, by design
    optional: bool = False  # only with --scenario


def scenarios(scale: float) -> list[Scenario]:
    def n(x: int) -> int:
        return max(10, int(x * scale))

    return [
        Scenario("SchedulingBasic", n(5000), n(10000), {}, base_pod),
        Scenario("SchedulingNodeAffinity", n(5000), n(10000), {ZONE: "zone1"}, node_affinity_pod),
        Scenario("SchedulingPodAntiAffinity", n(500), 2 * n(500), {}, anti_affinity_pod),
        Scenario("SchedulingDaemonset", n(5000), n(5000), {}, daemon_pod, optional=True),
        Scenario(
            "SchedulingBasicTenPercentUnschedulable",
            n(5000),
            n(10000),
            {},
            unschedulable_every_tenth_pod,
            unschedulable=len(range(0, n(10000), 10)),
            optional=True,
        ),
    ]


# ------------------------------------------------------------------ measuring


class BindObserver:
    """Watches every pod subject; a message on a node subject is a binding
    (no node-agent writes here). Records when the last one arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.nodes: dict[str, list[str]] = defaultdict(list)
        self.messages = 0
        self.last = 0.0
        self.done = asyncio.Event()

    async def start(self, nc: NATS) -> None:
        async def on_msg(msg: Any) -> None:
            parts = msg.subject.split(".", 5)  # podbus.watch.pod.<node>.<ns>.<name>
            node = parts[3]
            if node == "_":
                return
            self.messages += 1
            seen = self.nodes[parts[5]]
            if node not in seen:
                seen.append(node)
            self.last = time.perf_counter()
            if len(self.nodes) >= self.expected:
                self.done.set()

        self.sub = await nc.subscribe(
            f"podbus.watch.pod.*.{NAMESPACE}.*", cb=on_msg, pending_msgs_limit=-1
        )
        await nc.flush()


def spawn_scheduler(
    nats_url: str, redis_url: str, profile_out: str | None
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "services.scheduler"]
    if profile_out:
        spy = str(ROOT / ".venv/bin/py-spy")
        argv = [spy, "record", "-o", profile_out, "-f", "raw", "-r", "250", "--", *argv]
    argv += [
        "--nats-url",
        nats_url,
        "--redis-url",
        redis_url,
        "--instance",
        "bench",
        "--lease-ttl",
        "15",
    ]
    env = {**os.environ, "PODBUS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_TRACES_EXPORTER", None)
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)


async def health(nc: NATS) -> dict[str, Any]:
    try:
        msg = await nc.request("podbus.health.scheduler.bench", b"", timeout=1)
    except Exception:
        return {}
    details: dict[str, Any] = json.loads(msg.data).get("details", {})
    return details


async def wait_ready(nc: NATS, nodes: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = await health(nc)
        if h.get("leader") and h.get("nodes") == nodes:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"scheduler not ready with {nodes} nodes within {timeout}s")


def check(pods: list[Pod], nodes: list[Node], observer: BindObserver) -> tuple[int, int, int]:
    """(pods bound twice, nodes over-committed, pods not bound)."""
    twice = sum(1 for seen in observer.nodes.values() if len(seen) > 1)
    twice += max(0, observer.messages - len(observer.nodes))
    unbound = sum(1 for p in pods if not p.spec.node_name)
    use: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for p in pods:
        if not p.spec.node_name:
            continue
        u = use[p.spec.node_name]
        for c in p.spec.containers:
            u[0] += cpu_millis(c.resources.requests.get("cpu", 0))
            u[1] += memory_bytes(c.resources.requests.get("memory", 0))
        u[2] += 1
        bound_to = observer.nodes.get(p.metadata.name)
        if bound_to and bound_to[0] != p.spec.node_name:
            twice += 1
    over = 0
    for n in nodes:
        used = use.get(n.metadata.name)
        if used is None:
            continue
        a = n.status.allocatable
        if (
            used[0] > cpu_millis(a["cpu"])
            or used[1] > memory_bytes(a["memory"])
            or used[2] > int(a["pods"])
        ):
            over += 1
    return twice, over, unbound


async def create_in_batches(store: Store, objs: list[Any]) -> None:
    chunks = [objs[i : i + CREATE_BATCH] for i in range(0, len(objs), CREATE_BATCH)]
    for chunk in chunks:
        for res in await store.create_many(chunk):
            if isinstance(res, StoreError):
                raise res


async def run_scenario(
    sc: Scenario, nats_url: str, redis_url: str, profile: bool
) -> tuple[float, str | None]:
    nc = await nats.connect(nats_url, pending_size=256 * 1024 * 1024)
    store = await Store.connect(redis_url, publish=nc.publish)
    await store.redis.flushall()
    nodes = [make_node(i, sc.node_labels) for i in range(sc.nodes)]
    await create_in_batches(store, nodes)
    prof = (
        str(Path(tempfile.gettempdir()) / f"scheduling-{sc.name}.folded.txt") if profile else None
    )
    proc = spawn_scheduler(nats_url, redis_url, prof)
    try:
        await wait_ready(nc, sc.nodes)
        pods = [sc.pod(i) for i in range(sc.pods)]
        observer = BindObserver(sc.pods - sc.unschedulable)
        await observer.start(nc)
        start = time.perf_counter()
        await create_in_batches(store, pods)
        created = time.perf_counter()
        try:
            async with asyncio.timeout(max(60.0, sc.pods / 200)):
                await observer.done.wait()
        except TimeoutError:
            print(f"{sc.name}: timed out with {len(observer.nodes)}/{sc.pods} bound")
        elapsed = (observer.last or time.perf_counter()) - start
        rate = len(observer.nodes) / elapsed
        stats = await health(nc)
        stored, _ = await store.list(Pod, NAMESPACE)
        twice, over, unbound = check(stored, nodes, observer)
        print(f"{sc.name}: {rate:,.0f} pods/s")
        print(
            f"{sc.name} detail: {sc.nodes} nodes, {sc.pods} pods, created in "
            f"{created - start:.2f} s, last bind at {elapsed:.2f} s; "
            f"conflicts {stats.get('bind_conflicts')}, unschedulable attempts "
            f"{stats.get('unschedulable')}"
        )
        print(f"{sc.name} pods bound twice: {twice} count")
        print(f"{sc.name} nodes over-committed: {over} count")
        print(f"{sc.name} pods not bound: {unbound - sc.unschedulable} count")
        return rate, prof
    finally:
        proc.send_signal(signal.SIGINT if profile else signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        await store.close()
        await nc.close()


def summarize_profile(name: str, path: str, top: int = 12) -> None:
    """Where the scheduler's samples went: inclusive share of chosen frames."""
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        print(f"{name} profile: unreadable ({exc})")
        return
    for line in lines:
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for frame in {f.split(" (")[0] for f in stack.split(";")}:
            inclusive[frame] += n
    wanted = [
        "schedule_one",
        "_score",
        "_filter_by_class",
        "Informer._apply_msg",
        "PodInfo.of",
        "Scheduler._bind",
        "Scheduler._writer",
        "SchedulingQueue.pop",
        "_find_and_load",
    ]
    for frame in wanted[:top]:
        share = 100 * inclusive.get(frame, 0) / max(1, total)
        print(f"{name} profile {frame}: {share:.1f} %")
    print(f"{name} profile samples: {total} count ({path})")


async def bind_ceiling(redis_url: str, pods: int) -> float:
    """Binding compare-and-sets per second straight against Redis."""
    store = await Store.connect(redis_url)  # no publish: Redis only
    await store.redis.flushall()
    created = []
    objs = [base_pod(i) for i in range(pods)]
    for i in range(0, len(objs), CREATE_BATCH):
        created.extend(await store.create_many(objs[i : i + CREATE_BATCH]))
    bindings = [
        (p.metadata.namespace, p.metadata.name, f"node-{i % 5000:05d}", p.metadata.resource_version)
        for i, p in enumerate(created)
        if isinstance(p, Pod)
    ]
    start = time.perf_counter()
    for i in range(0, len(bindings), CREATE_BATCH):
        for res in await store.bind_many(bindings[i : i + CREATE_BATCH]):
            if isinstance(res, StoreError):
                raise res
    rate = len(bindings) / (time.perf_counter() - start)
    await store.redis.flushall()
    await store.close()
    return rate


async def run(scale: float, only: list[str], profile: bool, jetstream: bool) -> None:
    ns, rs = NatsServer(), RedisServer(appendonly=False)
    ns.start()
    rs.start()
    try:
        if jetstream:  # as deployed: the watch subjects are kept in PODBUS_WATCH
            bus = await Bus.connect(ns.url, "bench-streams")
            await bus.ensure_streams()
            await bus.close()
        print(f"JetStream watch stream: {'on' if jetstream else 'off'}")
        rates: dict[str, float] = {}
        for sc in scenarios(scale):
            if (only and sc.name not in only) or (sc.optional and not only):
                continue
            rates[sc.name], prof = await run_scenario(sc, ns.url, rs.url, profile)
            if prof:
                summarize_profile(sc.name, prof)
        ceiling = await bind_ceiling(rs.url, int(10000 * scale) or 1000)
        print(f"raw bind CAS ceiling: {ceiling:,.0f} binds/s")
        for name, rate in rates.items():
            print(f"{name} vs bind ceiling: {rate / ceiling:.2f} ratio")
        if "SchedulingBasic" in rates:
            goal = "met" if rates["SchedulingBasic"] >= 1500 else "MISSED"
            print(f"SchedulingBasic goal 1500 pods/s: {goal}")
    finally:
        ns.close()
        rs.close()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply node and pod counts")
    p.add_argument("--scenario", action="append", default=[], help="run only these (repeatable)")
    p.add_argument("--profile", action="store_true", help="record the scheduler with py-spy")
    p.add_argument(
        "--no-jetstream",
        action="store_true",
        help="do not create the PODBUS_WATCH stream (watch events not persisted)",
    )
    args = p.parse_args()
    asyncio.run(run(args.scale, args.scenario, args.profile, not args.no_jetstream))


if __name__ == "__main__":
    main()
