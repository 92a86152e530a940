"""Node lifecycle against real NATS and Redis, with shortened timings:
a node whose lease stops being renewed becomes Ready=Unknown after the
grace period, gets the unreachable NoExecute taint, its pods Ready=False;
after the (capped) toleration its pods are evicted and their ReplicaSet
replaces them."""

from __future__ import annotations

import time

from podmodel.event import Event
from podmodel.meta import ObjectMeta
from podmodel.node import Node, NodeStatus
from podmodel.pod import Condition, Pod

from services.workload_controller.controllers import NODE_LEASE_PREFIX
from tests.conftest import wait_for
from tests.integration.test_wc_harness import controllers_running, replicaset, stamp


async def test_unreachable_node_is_tainted_and_its_pods_evicted(
    nats_url: str, redis_url: str
) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        node = Node(
            metadata=ObjectMeta(name="node-x"),
            status=NodeStatus(
                conditions=[Condition(type="Ready", status="True", last_transition_time=stamp())]
            ),
        )
        await h.store.create(node)
        await h.store.redis.set(NODE_LEASE_PREFIX + "node-x", f"{time.time():.6f}")
        await h.apply(replicaset("svc", 2))

        async def two() -> list[Pod] | None:
            pods = await h.pods("svc-")
            return pods if len(pods) == 2 else None

        first = await wait_for(two, message="2 pods")
        await h.run_pods(first, node="node-x")
        # the lease is never renewed again: after 1 s the node is unreachable

        async def tainted() -> Node | None:
            n = await h.store.get(Node, "", "node-x")
            keys = {(t.key, t.effect) for t in n.spec.taints} if n else set()
            return n if ("node.kubernetes.io/unreachable", "NoExecute") in keys else None

        n = await wait_for(tainted, message="unreachable taint")
        ready = n.status.condition("Ready")
        assert ready is not None and ready.status == "Unknown"

        old_uids = {p.metadata.uid for p in first}

        async def evicted_and_replaced() -> bool:
            await h.finish_deletions()  # the node-agent is gone; play its clean-up
            pods = await h.pods("svc-")
            return len(pods) == 2 and not old_uids & {p.metadata.uid for p in pods}

        await wait_for(evicted_and_replaced, message="evicted and replaced")
        events, _ = await h.store.list(Event, "")
        node_events, _ = await h.store.list(Event, "default")
        reasons = {e.reason for e in [*events, *node_events]}
        assert "NodeNotReady" in reasons and "TaintManagerEviction" in reasons
