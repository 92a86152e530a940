"""Benchmark: the podbus store against raw pipelined Redis SETs, same server,
same run.

Starts its own redis-server (no AOF), then measures, with realistic Pods (a
Deployment's pod: owner reference, labels, two containers with resources,
env, ports and probes, defaults applied, a Pending status):

- store create_many in batches (uid, timestamps, CAS, indexes, rv bump);
- store update_many (compare-and-set on resourceVersion, spec unchanged);
- raw redis-py SET of the same msgpack bytes, pipelined in the same batches;

and prints one figure a line, with the ratio of creates to raw SETs.

Goal (issue 2): pipelined creates >= 25 % of raw pipelined SET throughput.

    .venv/bin/python bench/store.py [--objects 20000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
import redis.asyncio as aioredis
from podmodel.defaults import apply_defaults
from podmodel.meta import ObjectMeta, OwnerReference
from podmodel.pod import (
    Condition,
    Container,
    ContainerPort,
    EnvVar,
    HTTPGetAction,
    Pod,
    PodSpec,
    PodStatus,
    Probe,
    ResourceRequirements,
)
from servicekit.embedded import RedisServer
from servicekit.store import Store


def realistic_pod(i: int) -> Pod:
    """A pod as a Deployment's ReplicaSet would create it."""
    pod = Pod(
        metadata=ObjectMeta(
            name=f"web-7d4b9c8f6-{i:06d}",
            namespace="bench",
            labels={"app": "web", "tier": "frontend", "pod-template-hash": "7d4b9c8f6"},
            annotations={"podbus.io/traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"},
            owner_references=[
                OwnerReference(
                    api_version="apps/v1",
                    kind="ReplicaSet",
                    name="web-7d4b9c8f6",
                    uid="3f0e6a52-8f2c-4c1e-9d55-2b1f0c7e8a91",
                    controller=True,
                    block_owner_deletion=True,
                )
            ],
        ),
        spec=PodSpec(
            containers=[
                Container(
                    name="web",
                    image="nginx:1.27",
                    ports=[ContainerPort(container_port=80, name="http")],
                    env=[
                        EnvVar(name="MODE", value="production"),
                        EnvVar(name="WORKERS", value="4"),
                    ],
                    resources=ResourceRequirements(
                        requests={"cpu": "100m", "memory": "128Mi"},
                        limits={"cpu": "500m", "memory": "256Mi"},
                    ),
                    readiness_probe=Probe(http_get=HTTPGetAction(path="/healthz", port=80)),
                    liveness_probe=Probe(http_get=HTTPGetAction(path="/livez", port=80)),
                ),
                Container(
                    name="log-shipper",
                    image="busybox:1.36",
                    command=["sh", "-c", "tail -F /var/log/nginx/access.log"],
                    resources=ResourceRequirements(requests={"cpu": "10m", "memory": "16Mi"}),
                ),
            ]
        ),
    )
    apply_defaults(pod)
    pod.status = PodStatus(
        phase="Pending",
        conditions=[Condition(type="PodScheduled", status="False", reason="Unschedulable")],
        qos_class="Burstable",
    )
    return pod


async def bench_creates(store: Store, pods: list[Pod], batch: int) -> tuple[float, list[Pod]]:
    created: list[Pod] = []
    start = time.perf_counter()
    for i in range(0, len(pods), batch):
        results = await store.create_many(pods[i : i + batch])
        for r in results:
            if not isinstance(r, Pod):
                raise SystemExit(f"create failed: {r}")
            created.append(r)
    return time.perf_counter() - start, created


async def bench_updates(store: Store, pods: list[Pod], batch: int) -> float:
    for p in pods:
        p.metadata.labels["revision"] = "2"
    start = time.perf_counter()
    for i in range(0, len(pods), batch):
        results = await store.update_many(pods[i : i + batch])
        for r in results:
            if not isinstance(r, Pod):
                raise SystemExit(f"update failed: {r}")
    return time.perf_counter() - start


async def bench_raw_set(client: aioredis.Redis, pods: list[Pod], batch: int) -> float:
    encoder = msgspec.msgpack.Encoder()
    keys = [f"raw:pod:{p.metadata.namespace}:{p.metadata.name}" for p in pods]
    values = [encoder.encode(p) for p in pods]
    start = time.perf_counter()
    for i in range(0, len(pods), batch):
        pipe = client.pipeline(transaction=False)
        for key, value in zip(keys[i : i + batch], values[i : i + batch], strict=True):
            pipe.set(key, value)
        await pipe.execute()
    return time.perf_counter() - start


async def run(objects: int, batch: int) -> None:
    with RedisServer(appendonly=False) as server:
        store = await Store.connect(server.url)
        raw = aioredis.Redis.from_url(server.url)
        warm = [realistic_pod(i) for i in range(batch)]
        for p in warm:
            p.metadata.namespace = "warmup"
        await bench_creates(store, warm, batch)
        await bench_raw_set(raw, warm, batch)

        pods = [realistic_pod(i) for i in range(objects)]
        size = len(msgspec.msgpack.encode(pods[0]))
        create_s, created = await bench_creates(store, pods, batch)
        update_s = await bench_updates(store, created, batch)
        raw_s = await bench_raw_set(raw, pods, batch)
        await raw.flushall()
        await raw.aclose()
        await store.close()

    creates = objects / create_s
    updates = objects / update_s
    sets = objects / raw_s
    print(f"objects: {objects} pods of {size} bytes, batch {batch}")
    print(f"store create_many: {creates:,.0f} objects/s")
    print(f"store update_many (CAS): {updates:,.0f} objects/s")
    print(f"raw pipelined SET: {sets:,.0f} ops/s")
    print(f"create vs raw SET: {creates / sets:.2f} ratio (goal >= 0.25)")
    print(f"update vs raw SET: {updates / sets:.2f} ratio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.objects, args.batch))


if __name__ == "__main__":
    main()
