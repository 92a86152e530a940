"""ReplicaSet controller against real NATS and Redis: keeps `replicas` pods,
replaces deleted ones, deletes surplus pods in Kubernetes' preference order,
adopts orphans and records events."""

from __future__ import annotations

import dataclasses

from podmodel.event import Event
from podmodel.meta import controller_of

from tests.conftest import wait_for
from tests.integration.test_wc_harness import FAST, controllers_running, prepared, replicaset


async def test_replicaset_creates_and_keeps_replicas(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        rs = await h.apply(replicaset("web", 5))

        async def five() -> bool:
            return len(await h.pods("web-")) == 5

        await wait_for(five, message="5 pods")
        pods = await h.pods("web-")
        assert all(controller_of(p.metadata).uid == rs.metadata.uid for p in pods)  # type: ignore[union-attr]

        victim = pods[0].metadata.name
        await h.store.delete("Pod", "default", victim)  # unbound: gone at once

        async def replaced() -> bool:
            names = {p.metadata.name for p in await h.pods("web-")}
            return len(names) == 5 and victim not in names

        await wait_for(replaced, message="replacement pod")

        async def status_counts() -> bool:
            got = await h.store.get("ReplicaSet", "default", "web")
            return got is not None and got.status.replicas == 5  # type: ignore[attr-defined]

        await wait_for(status_counts, message="status.replicas 5")
        events, _ = await h.store.list(Event, "default")
        reasons = {e.reason for e in events}
        assert "SuccessfulCreate" in reasons
        created = [e for e in events if e.reason == "SuccessfulCreate"]
        assert sum(e.count for e in created) >= 6  # deduplicated, counted


async def test_scale_down_deletes_unscheduled_then_not_ready_first(
    nats_url: str, redis_url: str
) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        await h.apply(replicaset("db", 4))

        async def four() -> bool:
            return len(await h.pods("db-")) == 4

        await wait_for(four, message="4 pods")
        pods = sorted(await h.pods("db-"), key=lambda p: p.metadata.name)
        ready, not_ready, unscheduled = pods[:2], pods[2:3], pods[3:]
        await h.run_pods(ready, ready=True)
        await h.run_pods(not_ready, ready=False)
        await h.apply(replicaset("db", 2))

        async def two() -> bool:
            return len(await h.pods("db-")) == 2

        await wait_for(two, message="scaled to 2")
        await h.finish_deletions()
        left = {p.metadata.name for p in await h.pods("db-")}
        assert left == {p.metadata.name for p in ready}
        assert unscheduled[0].metadata.name not in left


async def test_orphan_pod_matching_selector_is_adopted(nats_url: str, redis_url: str) -> None:
    async with controllers_running(nats_url, redis_url) as h:
        orphan = prepared(
            {
                "kind": "Pod",
                "metadata": {"name": "stray", "labels": {"app": "api"}},
                "spec": {"containers": [{"name": "c", "image": "app:1"}]},
            }
        )
        await h.store.create(orphan)
        rs = await h.apply(replicaset("api", 2))

        async def adopted() -> bool:
            pod = await h.store.get("Pod", "default", "stray")
            ref = controller_of(pod.metadata) if pod else None
            return ref is not None and ref.uid == rs.metadata.uid

        await wait_for(adopted, message="stray adopted")

        async def two() -> bool:
            return len(await h.pods()) == 2

        await wait_for(two, message="2 pods in total (stray counted)")


async def test_events_expire_after_their_ttl(nats_url: str, redis_url: str) -> None:
    config = dataclasses.replace(FAST, event_ttl_s=1.0)
    async with controllers_running(nats_url, redis_url, config) as h:
        await h.apply(replicaset("brief", 1))

        async def some_events() -> bool:
            return bool((await h.store.list(Event, "default"))[0])

        await wait_for(some_events, message="SuccessfulCreate recorded")

        async def expired() -> bool:
            return not (await h.store.list(Event, "default"))[0]

        await wait_for(expired, timeout=6, message="events expired")
