"""Garbage collection against real NATS and Redis, for each
propagationPolicy: Background deletes the dependents after the owner,
Foreground deletes the dependents first and the owner last, Orphan lets the
dependents live on without an owner reference."""

from __future__ import annotations

from podmodel.meta import ObjectMeta, OwnerReference, controller_of
from podmodel.node import Node
from podmodel.pod import Container, Pod, PodSpec, Toleration
from podmodel.workloads import Deployment, ReplicaSet

from services.workload_controller.deletion import delete_with_policy
from tests.conftest import wait_for
from tests.integration.test_wc_harness import (
    FakeKubelet,
    Harness,
    controllers_running,
    deployment,
    replicaset,
)


async def _pods(h: Harness, prefix: str, n: int) -> bool:
    return len(await h.pods(prefix, active=False)) == n


async def test_background_deletes_owner_then_dependents(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(replicaset("bg", 3))
        await wait_for(lambda: _pods(h, "bg-", 3), message="3 pods")
        gone = await delete_with_policy(h.store, "ReplicaSet", "default", "bg")
        assert gone is None  # the owner goes at once
        await wait_for(lambda: _pods(h, "bg-", 0), message="dependents collected")


async def test_orphan_keeps_dependents_without_owner(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(replicaset("orph", 2))
        await wait_for(lambda: _pods(h, "orph-", 2), message="2 pods")
        marked = await delete_with_policy(h.store, "ReplicaSet", "default", "orph", policy="Orphan")
        assert marked is not None and "orphan" in marked.metadata.finalizers

        async def owner_gone() -> bool:
            return await h.store.get(ReplicaSet, "default", "orph") is None

        await wait_for(owner_gone, message="owner removed after orphaning")
        pods = await h.pods("orph-")
        assert len(pods) == 2
        assert all(not p.metadata.owner_references for p in pods)


async def test_foreground_deletes_dependents_before_owner(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        owner_gone_early: list[str] = []

        async def check() -> None:
            d = await h.store.get(Deployment, "default", "fg")
            pods = await h.pods("fg-", active=False)
            if d is None and pods:
                owner_gone_early.append(f"{len(pods)} pods left when the Deployment went")

        async with FakeKubelet(h, "fg-", observe=check):
            await h.apply(deployment("fg", 3))
            await wait_for(lambda: _pods(h, "fg-", 3), message="3 pods")
            rs = (await h.store.list(ReplicaSet, "default"))[0][0]
            assert controller_of(rs.metadata) is not None
            marked = await delete_with_policy(
                h.store, "Deployment", "default", "fg", policy="Foreground"
            )
            assert marked is not None and marked.metadata.deletion_timestamp

            async def all_gone() -> bool:
                d = await h.store.get(Deployment, "default", "fg")
                rss, _ = await h.store.list(ReplicaSet, "default")
                return d is None and not rss and not await h.pods("fg-", active=False)

            await wait_for(all_gone, timeout=15, message="foreground deletion done")
        assert not owner_gone_early, owner_gone_early


async def test_static_pod_mirror_owned_by_its_node_survives_collection(
    nats_url: str, redis_url: str
) -> None:
    """A mirror pod's owner is its (cluster-scoped) Node: the collector must
    find it and leave the mirror alone while collecting real orphans."""
    async with controllers_running(nats_url, redis_url) as h:
        node = await h.store.create(Node(metadata=ObjectMeta(name="node-m")))
        mirror = Pod(
            metadata=ObjectMeta(
                name="static-web-node-m",
                namespace="default",
                annotations={"kubernetes.io/config.mirror": "abc"},
                owner_references=[
                    OwnerReference(
                        api_version="v1",
                        kind="Node",
                        name="node-m",
                        uid=node.metadata.uid,
                        controller=True,
                    )
                ],
            ),
            # as the agent makes it: tolerating every NoExecute taint, so that
            # node lifecycle (this node has no lease) leaves it alone too
            spec=PodSpec(
                node_name="node-m",
                containers=[Container(name="web", image="busybox")],
                tolerations=[Toleration(operator="Exists", effect="NoExecute")],
            ),
        )
        created = await h.store.create(mirror)
        await h.apply(replicaset("gone", 2))
        await wait_for(lambda: _pods(h, "gone-", 2), message="2 pods")
        await delete_with_policy(h.store, "ReplicaSet", "default", "gone")
        await wait_for(lambda: _pods(h, "gone-", 0), message="orphans collected")
        h.controllers._kick_gc()
        # the collector has run at least once (it collected gone-*); run it once more
        await h.controllers._sync_gc()
        still = await h.store.get(Pod, "default", "static-web-node-m")
        assert still is not None and still.metadata.uid == created.metadata.uid
        assert still.metadata.deletion_timestamp is None, "the collector deleted the mirror"
