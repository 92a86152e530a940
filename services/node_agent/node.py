"""The Node object of a node-agent and its heartbeat.

Registration creates (or updates) the Node: capacity and allocatable from
flags, labels (plus kubernetes.io/hostname and os/arch), taints, and the
Ready condition. The heartbeat is a lease: the Redis key
`podbus:lease:node:<name>` holding the last renew time (epoch seconds, as
text), renewed every `lease_seconds` (10 s by default) for every node of
the process in one pipelined round trip, so a thousand hollow nodes cost
one write per period. The node lifecycle controller reads the keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import redis.asyncio as aioredis
from podmodel.meta import ObjectMeta
from podmodel.node import Node, NodeAddress, NodeSpec, NodeStatus, NodeSystemInfo, Taint
from podmodel.pod import Condition
from servicekit.store import Conflict, Store

from services.node_agent.logic.timefmt import rfc3339

log = logging.getLogger(__name__)

LEASE_PREFIX = "podbus:lease:node:"
DEFAULT_MAX_PODS = 110
DEFAULT_LEASE_SECONDS = 10.0


def lease_key(node: str) -> str:
    return f"{LEASE_PREFIX}{node}"


@dataclass(frozen=True)
class NodeConfig:
    """What the flags say about one node."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    max_pods: int = DEFAULT_MAX_PODS
    cpu: str = "4"
    memory: str = "8Gi"
    host_ip: str = "127.0.0.1"
    runtime: str = "simulated"


def parse_labels(text: str) -> dict[str, str]:
    """`a=b,c=d` -> {"a": "b", "c": "d"}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key] = value
    return out


def parse_taints(text: str) -> tuple[Taint, ...]:
    """`key=value:Effect,key:Effect` -> taints."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kv, sep, effect = part.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(
                f"taint {part!r}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute"
            )
        key, _, value = kv.partition("=")
        out.append(Taint(key=key, value=value, effect=effect))
    return tuple(out)


def build_node(config: NodeConfig, now: float) -> Node:
    """The Node object the agent registers, status included."""
    labels = {
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        **config.labels,
    }
    resources = {"cpu": config.cpu, "memory": config.memory, "pods": str(config.max_pods)}
    return Node(
        metadata=ObjectMeta(name=config.name, labels=labels),
        spec=NodeSpec(taints=list(config.taints)),
        status=NodeStatus(
            capacity=dict(resources),
            allocatable=dict(resources),
            conditions=[ready_condition(now)],
            addresses=[
                NodeAddress(type="InternalIP", address=config.host_ip),
                NodeAddress(type="Hostname", address=config.name),
            ],
            node_info=NodeSystemInfo(
                operating_system="linux",
                architecture="amd64",
                container_runtime_version=f"podbus-{config.runtime}",
                kubelet_version="podbus",
            ),
        ),
    )


def ready_condition(now: float) -> Condition:
    stamp = rfc3339(now)
    return Condition(
        type="Ready",
        status="True",
        reason="KubeletReady",
        message="kubelet is posting ready status",
        last_transition_time=stamp,
    )


async def register_nodes(store: Store, configs: Sequence[NodeConfig]) -> list[Node]:
    """Create or update the Nodes (one batch each way) and set their status
    with Ready=True. Labels and taints from the flags replace the stored
    ones; a conflict is retried from fresh state."""
    now = time.time()
    wanted = {c.name: build_node(c, now) for c in configs}
    created = await store.create_many(list(wanted.values()))
    out: dict[str, Node] = {}
    for node, result in zip(wanted.values(), created, strict=True):
        if isinstance(result, Node):
            out[node.metadata.name] = result
    pending = [n for n in wanted if n not in out]
    for _attempt in range(5):
        if not pending:
            break
        fresh = [await store.get(Node, "", name) for name in pending]
        updates = []
        for name, current in zip(pending, fresh, strict=True):
            if current is None:
                continue
            meta = msgspec.structs.replace(current.metadata, labels=wanted[name].metadata.labels)
            updates.append(msgspec.structs.replace(current, metadata=meta, spec=wanted[name].spec))
        results = await store.update_many(updates)
        pending = []
        for node, result in zip(updates, results, strict=True):
            if isinstance(result, Node):
                out[node.metadata.name] = result
            else:
                pending.append(node.metadata.name)
    statuses = [msgspec.structs.replace(out[n], status=wanted[n].status) for n in out]
    results = await store.update_status_many(statuses)
    for node, result in zip(statuses, results, strict=True):
        if isinstance(result, Node):
            out[node.metadata.name] = result
        elif isinstance(result, Conflict):
            log.warning("node %s status conflict at registration", node.metadata.name)
    return list(out.values())


async def renew_leases(client: aioredis.Redis, names: Sequence[str], now: float) -> None:
    """Write every node's renew time in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    value = f"{now:.6f}"
    for name in names:
        pipe.set(lease_key(name), value)
    await pipe.execute()


async def lease_loop(
    client: aioredis.Redis, names: Sequence[str], period: float = DEFAULT_LEASE_SECONDS
) -> None:
    """Renew the leases every `period` seconds until cancelled; a failed
    renewal (Redis down) is logged and retried at the next period."""
    while True:
        try:
            await renew_leases(client, names, time.time())
        except Exception as exc:
            log.warning("lease renewal failed: %s", exc)
        await asyncio.sleep(period)
