"""StatefulSet controller against real NATS and Redis: OrderedReady creates
0..N-1 one at a time after each predecessor is Running and Ready, never two
pods of one ordinal (also across a controller restart), Parallel creates
all at once, per-ordinal volumes pin a recreated pod to its node."""

from __future__ import annotations

from typing import Any

from podmodel.pod import Pod
from podmodel.workloads import StatefulSet

from tests.conftest import wait_for
from tests.integration.test_wc_harness import FakeKubelet, Harness, controllers_running


def statefulset(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "db:1"}]},
            },
            **spec,
        },
    }


async def names(h: Harness, prefix: str) -> list[str]:
    return sorted(p.metadata.name for p in await h.pods(prefix, active=False))


async def test_ordered_ready_creates_one_ordinal_after_another(
    nats_url: str, redis_url: str
) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        order_violations: list[str] = []

        async def check() -> None:
            pods = {p.metadata.name: p for p in await h.pods("db-", active=False)}
            for name in pods:
                i = int(name.rsplit("-", 1)[1])
                for j in range(i):
                    pred = pods.get(f"db-{j}")
                    if pred is None:
                        order_violations.append(f"{name} exists before db-{j}")

        await h.apply(statefulset("db", 3))
        await wait_for(lambda: names(h, "db-"), message="db-0")
        syncs = h.controllers.syncs
        await wait_for(lambda: h.controllers.syncs > syncs + 2, message="more syncs")
        assert await names(h, "db-") == ["db-0"]  # waits for db-0 to be Running and Ready

        async with FakeKubelet(h, "db-", observe=check):

            async def all_three() -> bool:
                sts = await h.store.get(StatefulSet, "default", "db")
                return sts is not None and sts.status.ready_replicas == 3

            await wait_for(all_three, message="3 ready")
        assert not order_violations, order_violations[:3]
        pods = await h.pods("db-")
        assert {p.spec.hostname for p in pods} == {"db-0", "db-1", "db-2"}
        assert {p.spec.subdomain for p in pods} == {"db"}

        # scale down goes from the highest ordinal
        await h.apply(statefulset("db", 1))

        async def one_left() -> bool:
            await h.finish_deletions()
            return await names(h, "db-") == ["db-0"]

        await wait_for(one_left, message="scaled down to db-0")


async def test_never_two_pods_of_one_ordinal_across_restart(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(statefulset("kv", 2, podManagementPolicy="Parallel"))
        await wait_for(lambda: _count(h, "kv-", 2), message="2 pods in parallel")
        await h.run_pods(await h.pods("kv-"))
        old = await h.store.get(Pod, "default", "kv-1")
        assert old is not None
        await h.store.delete("Pod", "default", "kv-1")  # bound: marked, not gone
        syncs = h.controllers.syncs
        await wait_for(lambda: h.controllers.syncs > syncs + 2, message="syncs after delete")
        current = await h.store.get(Pod, "default", "kv-1")
        assert current is not None and current.metadata.uid == old.metadata.uid
    # the controller "crashes"; a new term starts while kv-1 is still terminating
    async with controllers_running(nats_url, redis_url) as h:
        syncs = h.controllers.syncs
        await wait_for(lambda: h.controllers.syncs > syncs + 2, message="syncs after restart")
        current = await h.store.get(Pod, "default", "kv-1")
        assert current is not None and current.metadata.uid == old.metadata.uid
        await h.store.remove("Pod", "default", "kv-1")  # the node finishes the deletion

        async def replaced() -> bool:
            pod = await h.store.get(Pod, "default", "kv-1")
            return pod is not None and pod.metadata.uid != old.metadata.uid

        await wait_for(replaced, message="kv-1 recreated after the old one is gone")


async def _count(h: Harness, prefix: str, n: int) -> bool:
    return len(await h.pods(prefix)) == n


async def test_volume_claim_pins_recreated_pod_to_its_node(nats_url: str, redis_url: str) -> None:
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(statefulset("pg", 1, volumeClaimTemplates=[claim]))
        await wait_for(lambda: _count(h, "pg-", 1), message="pg-0")
        pod = (await h.pods("pg-"))[0]
        assert any(
            v.persistent_volume_claim is not None
            and v.persistent_volume_claim.claim_name == "data-pg-0"
            for v in pod.spec.volumes
        )
        await h.run_pods([pod], node="node-b")

        async def recorded() -> bool:
            return await h.store.redis.hget("podbus:wc:claims:default", "data-pg-0") == b"node-b"

        await wait_for(recorded, message="claim node recorded")
        await h.store.delete("Pod", "default", "pg-0")
        await h.store.remove("Pod", "default", "pg-0")

        async def pinned() -> Pod | None:
            p = await h.store.get(Pod, "default", "pg-0")
            if p is None or p.metadata.uid == pod.metadata.uid:
                return None
            return p

        new = await wait_for(pinned, message="pg-0 recreated")
        affinity = new.spec.affinity
        assert affinity is not None and affinity.node_affinity is not None
        required = affinity.node_affinity.required_during_scheduling_ignored_during_execution
        assert required is not None
        fields = [f for t in required.node_selector_terms for f in t.match_fields]
        assert [(f.key, f.values) for f in fields] == [("metadata.name", ["node-b"])]
