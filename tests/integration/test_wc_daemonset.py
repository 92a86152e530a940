"""DaemonSet controller against real NATS and Redis: a pod on every node
that should run one (nodes joining get theirs, a tainted node none), status
counts, a rolling update that never has more than maxUnavailable nodes
without an available pod, and the pods going with their DaemonSet."""

from __future__ import annotations

import time
from typing import Any

from podmodel.meta import ObjectMeta
from podmodel.node import Node, NodeSpec, NodeStatus, Taint
from podmodel.pod import Condition, Pod
from podmodel.workloads import DaemonSet

from services.workload_controller.controllers import NODE_LEASE_PREFIX
from services.workload_controller.logic.daemonset import REVISION_LABEL, target_node
from tests.conftest import wait_for
from tests.integration.test_wc_harness import Harness, controllers_running, stamp


def daemon_set(image: str = "agent:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": image}]},
            },
        },
    }


def node(name: str, taints: list[Taint] | None = None) -> Node:
    ready = Condition(type="Ready", status="True", last_transition_time=stamp())
    return Node(
        metadata=ObjectMeta(name=name),
        spec=NodeSpec(taints=taints or []),
        status=NodeStatus(conditions=[ready]),
    )


async def play_nodes(h: Harness) -> None:
    """Renew the nodes' leases (a node without one is unreachable, and gets
    no new daemon pod, as in Kubernetes), bind each new daemon pod to the
    node it is pinned to and make it ready, remove pods marked deleted."""
    nodes, _ = await h.store.list(Node)
    for n in nodes:
        await h.store.redis.set(NODE_LEASE_PREFIX + n.metadata.name, f"{time.time():.6f}")
    await h.finish_deletions()
    for p in await h.pods("agent-"):
        if p.status.phase != "Running":
            await h.run_pods([p], node=target_node(p))


async def status(h: Harness) -> Any:
    ds = await h.store.get(DaemonSet, "default", "agent")
    assert ds is not None
    return ds.status


async def test_daemon_pods_follow_nodes_and_roll(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await h.store.create_many(
            [node("n1"), node("n2"), node("n3", [Taint(key="gpu", effect="NoSchedule")])]
        )
        await play_nodes(h)
        await h.apply(daemon_set())

        async def on_nodes(*names: str) -> bool:
            await play_nodes(h)
            pods = await h.pods("agent-")
            return sorted(p.spec.node_name for p in pods) == list(names)

        await wait_for(lambda: on_nodes("n1", "n2"), message="a pod on n1 and n2")

        async def counted(desired: int, ready: int, updated: int) -> bool:
            st = await status(h)
            return (
                st.desired_number_scheduled,
                st.current_number_scheduled,
                st.number_ready,
                st.updated_number_scheduled,
            ) == (desired, desired, ready, updated)

        await wait_for(lambda: counted(2, 2, 2), message="status 2/2 ready")
        await h.store.create(node("n4"))
        await play_nodes(h)
        await wait_for(lambda: on_nodes("n1", "n2", "n4"), message="the new node's pod")

        worst = 0

        async def roll_step() -> bool:
            nonlocal worst
            await play_nodes(h)
            pods = await h.pods("agent-")
            ready_nodes = {p.spec.node_name for p in pods if p.status.phase == "Running"}
            worst = max(worst, 3 - len(ready_nodes & {"n1", "n2", "n4"}))
            images = [p.spec.containers[0].image for p in pods]
            return len(pods) == 3 and images == ["agent:2"] * 3

        await h.apply(daemon_set("agent:2"))
        await wait_for(roll_step, timeout=20, interval=0.02, message="rolled to agent:2")
        assert worst <= 1, worst  # maxUnavailable 1
        pods: list[Pod] = await h.pods("agent-")
        assert len({p.metadata.labels[REVISION_LABEL] for p in pods}) == 1
        await wait_for(lambda: counted(3, 3, 3), message="status after the roll")

        await h.store.delete(DaemonSet, "default", "agent")

        async def all_gone() -> bool:
            await h.finish_deletions()
            return not await h.pods("agent-", active=False)

        await wait_for(all_gone, timeout=20, message="daemon pods collected")


async def test_surge_rolls_without_a_node_going_without(nats_url: str, redis_url: str) -> None:
    def surging(image: str) -> dict[str, Any]:
        raw = daemon_set(image)
        raw["spec"]["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        return raw

    async with controllers_running(nats_url, redis_url) as h:
        await h.store.create_many([node("n1"), node("n2"), node("n3")])
        await play_nodes(h)
        await h.apply(surging("agent:1"))

        async def settled(image: str) -> bool:
            await play_nodes(h)
            pods = await h.pods("agent-")
            running = {p.spec.node_name for p in pods if p.status.phase == "Running"}
            images = {p.spec.containers[0].image for p in pods}
            return len(pods) == 3 and running == {"n1", "n2", "n3"} and images == {image}

        await wait_for(lambda: settled("agent:1"), message="3 pods of agent:1")
        most = 0

        async def rolled() -> bool:
            nonlocal most
            done = await settled("agent:2")
            pods = await h.pods("agent-")
            running = {p.spec.node_name for p in pods if p.status.phase == "Running"}
            assert running == {"n1", "n2", "n3"}, pods  # no node ever without its pod
            most = max(most, len(pods))
            return done

        await h.apply(surging("agent:2"))
        await wait_for(rolled, timeout=20, interval=0.02, message="rolled with surge")
        assert most <= 4  # maxSurge 1: at most one extra pod at a time
