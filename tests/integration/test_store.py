"""The Redis store against a real redis-server: compare-and-set, the
create/update/status/delete rules, batches, lists, binding, and the watch
events published on a real nats-server after each commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import nats
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from nats.aio.msg import Msg
from podmodel.codec import WatchEvent
from podmodel.meta import ObjectMeta
from podmodel.node import Node
from podmodel.pod import Container, Pod, PodSpec, PodStatus
from podmodel.selector import LabelSelector, LabelSelectorRequirement
from podmodel.workloads import Deployment, DeploymentSpec
from servicekit.store import (
    AlreadyExists,
    Conflict,
    Invalid,
    NotFound,
    Store,
    StoreError,
    node_index_key,
)

from tests.conftest import wait_for


@pytest_asyncio.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    s = await Store.connect(redis_url)
    yield s
    await s.close()


def pod(name: str, ns: str = "default", node: str = "", **labels: str) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace=ns, labels=dict(labels)),
        spec=PodSpec(containers=[Container(name="c", image="busybox")], node_name=node),
    )


def deployment(name: str, ns: str = "default", finalizers: list[str] | None = None) -> Deployment:
    return Deployment(
        metadata=ObjectMeta(name=name, namespace=ns, finalizers=finalizers or []),
        spec=DeploymentSpec(replicas=2),
    )


def parse_time(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


# ------------------------------------------------------------------ CAS


async def test_concurrent_writers_with_retry_on_conflict_lose_no_update(store: Store) -> None:
    await store.create(pod("counter", counter="0"))
    writers, increments = 20, 5
    conflicts = 0

    async def writer() -> None:
        nonlocal conflicts
        for _ in range(increments):
            while True:
                current = await store.get(Pod, "default", "counter")
                assert current is not None
                current.metadata.labels["counter"] = str(
                    int(current.metadata.labels["counter"]) + 1
                )
                try:
                    await store.update(current)
                    break
                except Conflict:
                    conflicts += 1

    await asyncio.gather(*(writer() for _ in range(writers)))
    final = await store.get(Pod, "default", "counter")
    assert final is not None
    assert final.metadata.labels["counter"] == str(writers * increments)
    assert conflicts > 0, "the writers never raced; the test proves nothing"
    assert final.metadata.generation == 1  # labels are not spec


async def test_update_with_a_stale_resource_version_conflicts(store: Store) -> None:
    first = await store.create(pod("p"))
    second = await store.update(first)
    with pytest.raises(Conflict, match='pods "default/p"'):
        await store.update(first)
    with pytest.raises(Conflict):
        await store.update_status(first)
    with pytest.raises(Conflict):
        await store.update(second, expected_rv="1")
    assert (await store.update(second)).metadata.resource_version > second.metadata.resource_version


async def test_update_without_resource_version_is_unconditional(store: Store) -> None:
    await store.create(pod("p"))
    blind = pod("p", app="x")
    updated = await store.update(blind)
    assert updated.metadata.labels == {"app": "x"}


async def test_update_of_a_recreated_object_fails_the_uid_precondition(store: Store) -> None:
    old = await store.create(pod("p"))
    await store.remove(Pod, "default", "p")
    await store.create(pod("p"))
    old.metadata.resource_version = ""
    with pytest.raises(Conflict, match="uid"):
        await store.update(old)


# ------------------------------------------------------------------ create


async def test_create_assigns_uid_timestamp_generation_and_resource_version(store: Store) -> None:
    before = time.time()
    created = await store.create(pod("web"))
    meta = created.metadata
    assert len(meta.uid) == 36 and meta.uid.count("-") == 4
    assert meta.generation == 1
    assert meta.creation_timestamp is not None and meta.creation_timestamp.endswith("Z")
    assert before - 1 <= parse_time(meta.creation_timestamp) <= time.time()
    assert int(meta.resource_version) > 0
    assert await store.get(Pod, "default", "web") == created
    other = await store.create(pod("web2"))
    assert int(other.metadata.resource_version) > int(meta.resource_version)
    assert other.metadata.uid != meta.uid


async def test_create_ignores_store_owned_metadata_from_the_caller(store: Store) -> None:
    forged = pod("p")
    forged.metadata.uid = "forged"
    forged.metadata.generation = 9
    forged.metadata.deletion_timestamp = "2000-01-01T00:00:00Z"
    created = await store.create(forged)
    assert created.metadata.uid != "forged"
    assert created.metadata.generation == 1
    assert created.metadata.deletion_timestamp is None
    assert await store.get(Pod, "default", "p") == created


async def test_creating_an_existing_object_fails_with_its_name(store: Store) -> None:
    await store.create(pod("web"))
    with pytest.raises(AlreadyExists, match='pods "default/web" already exists'):
        await store.create(pod("web"))


async def test_create_generates_a_name_from_generate_name(store: Store) -> None:
    template = Pod(
        metadata=ObjectMeta(generate_name="web-", namespace="default"),
        spec=PodSpec(containers=[Container(name="c", image="i")]),
    )
    names = {(await store.create(template)).metadata.name for _ in range(5)}
    assert len(names) == 5 and all(n.startswith("web-") and len(n) == 9 for n in names)
    with pytest.raises(Invalid, match="name"):
        await store.create(Pod(metadata=ObjectMeta(namespace="default")))


# ------------------------------------------------------------------ update rules


async def test_generation_moves_only_when_the_spec_changes(store: Store) -> None:
    d = await store.create(deployment("api"))
    d.metadata.labels["team"] = "a"
    d = await store.update(d)
    assert d.metadata.generation == 1
    d.spec.replicas = 5
    d = await store.update(d)
    assert d.metadata.generation == 2
    d.status.replicas = 3
    d = await store.update_status(d)
    assert d.metadata.generation == 2


async def test_update_keeps_the_stored_status_and_identity(store: Store) -> None:
    created = await store.create(pod("p"))
    running = msgspec.structs.replace(created, status=PodStatus(phase="Running"))
    running = await store.update_status(running)
    stale_status = msgspec.structs.replace(running, status=PodStatus(phase="Failed"))
    stale_status.metadata.labels["x"] = "y"
    stale_status.metadata.creation_timestamp = "2000-01-01T00:00:00Z"
    updated = await store.update(stale_status)
    assert updated.status.phase == "Running"
    assert updated.metadata.labels == {"x": "y"}
    assert updated.metadata.uid == created.metadata.uid
    assert updated.metadata.creation_timestamp == created.metadata.creation_timestamp


async def test_update_status_changes_only_the_status(store: Store) -> None:
    created = await store.create(pod("p", app="web"))
    changed = msgspec.structs.replace(created, status=PodStatus(phase="Running"))
    changed.metadata.labels = {"app": "other"}
    changed.spec.containers[0].image = "other"
    result = await store.update_status(changed)
    assert result.status.phase == "Running"
    assert result.metadata.labels == {"app": "web"}
    assert result.spec.containers[0].image == "busybox"


async def test_missing_objects_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update(pod("ghost"))
    with pytest.raises(NotFound):
        await store.update_status(pod("ghost"))
    with pytest.raises(NotFound):
        await store.delete(Pod, "default", "ghost")
    assert await store.get(Pod, "default", "ghost") is None


# ------------------------------------------------------------------ delete


async def test_deleting_a_bound_pod_is_graceful_until_removed(store: Store) -> None:
    p = pod("p", node="n1")
    p.spec.termination_grace_period_seconds = 20
    await store.create(p)
    before = time.time()
    marked = await store.delete(Pod, "default", "p")
    assert isinstance(marked, Pod)
    assert marked.metadata.deletion_grace_period_seconds == 20
    assert marked.metadata.deletion_timestamp is not None
    assert before + 19 <= parse_time(marked.metadata.deletion_timestamp) <= time.time() + 21
    assert await store.get(Pod, "default", "p") == marked
    again = await store.delete(Pod, "default", "p")
    assert again == marked  # a repeated delete with the same grace changes nothing
    shorter = await store.delete(Pod, "default", "p", grace_period_seconds=5)
    assert shorter is not None and shorter.metadata.deletion_grace_period_seconds == 5
    assert await store.remove(Pod, "default", "p") is None
    assert await store.get(Pod, "default", "p") is None
    assert await store.list(Pod, node="n1") == ([], int(await store.redis.get("podbus:rv")))


async def test_unbound_finished_or_zero_grace_pods_go_at_once(store: Store) -> None:
    await store.create(pod("unbound"))
    assert await store.delete(Pod, "default", "unbound") is None
    await store.create(pod("zero", node="n1"))
    assert await store.delete(Pod, "default", "zero", grace_period_seconds=0) is None
    done = await store.create(pod("done", node="n1"))
    await store.update_status(msgspec.structs.replace(done, status=PodStatus(phase="Succeeded")))
    assert await store.delete(Pod, "default", "done") is None
    assert (await store.list(Pod))[0] == []


async def test_other_kinds_are_removed_at_once(store: Store) -> None:
    await store.create(deployment("api"))
    assert await store.delete(Deployment, "default", "api") is None
    assert await store.get(Deployment, "default", "api") is None


async def test_finalizers_hold_an_object_until_the_last_is_removed(store: Store) -> None:
    await store.create(deployment("api", finalizers=["podbus.io/gc"]))
    marked = await store.delete(Deployment, "default", "api")
    assert marked is not None and marked.metadata.deletion_timestamp is not None
    assert marked.metadata.finalizers == ["podbus.io/gc"]
    marked.metadata.labels["still"] = "here"
    marked = await store.update(marked)  # other updates keep it
    assert marked.metadata.deletion_timestamp is not None
    marked.metadata.finalizers = []
    await store.update(marked)
    assert await store.get(Deployment, "default", "api") is None


async def test_delete_with_a_stale_resource_version_conflicts(store: Store) -> None:
    created = await store.create(pod("p"))
    await store.update(created)
    with pytest.raises(Conflict):
        await store.delete(Pod, "default", "p", expected_rv=created.metadata.resource_version)


# ------------------------------------------------------------------ bind


async def test_bind_sets_the_node_once_and_moves_the_pod_between_indexes(store: Store) -> None:
    created = await store.create(pod("p"))
    assert [p.metadata.name for p in (await store.list(Pod, node=""))[0]] == ["p"]
    bound = await store.bind(created, "n1")
    assert bound.spec.node_name == "n1"
    assert bound.metadata.generation == 1
    assert (await store.list(Pod, node="_"))[0] == []
    assert [p.metadata.name for p in (await store.list(Pod, node="n1"))[0]] == ["p"]
    assert await store.redis.sismember(node_index_key("n1"), "podbus:obj:pod:default:p")
    with pytest.raises(Conflict, match="already assigned"):
        await store.bind(bound, "n2")
    with pytest.raises(Conflict):
        await store.bind(created, "n2")  # stale resourceVersion


async def test_an_update_cannot_rebind_a_bound_pod(store: Store) -> None:
    bound = await store.bind(await store.create(pod("p")), "n1")
    bound.spec.node_name = "n2"
    with pytest.raises(Invalid, match="nodeName"):
        await store.update(bound)
    bound.spec.node_name = ""
    with pytest.raises(Invalid):
        await store.update(bound)


# ------------------------------------------------------------------ batches


async def test_batch_forms_report_each_items_result(store: Store) -> None:
    await store.create(pod("taken"))
    results = await store.create_many([pod("a"), pod("taken"), pod("b")])
    assert isinstance(results[0], Pod) and isinstance(results[2], Pod)
    assert isinstance(results[1], AlreadyExists)
    a, b = results[0], results[2]
    assert isinstance(a, Pod) and isinstance(b, Pod)

    a.metadata.labels["v"] = "2"
    stale = msgspec.structs.replace(
        b, metadata=msgspec.structs.replace(b.metadata, resource_version="1")
    )
    updated = await store.update_many([a, stale, pod("ghost")])
    assert isinstance(updated[0], Pod) and updated[0].metadata.labels == {"v": "2"}
    assert isinstance(updated[1], Conflict)
    assert isinstance(updated[2], NotFound)

    a2 = updated[0]
    statuses = await store.update_status_many(
        [msgspec.structs.replace(a2, status=PodStatus(phase="Running")), b]
    )
    assert [s.status.phase for s in statuses if isinstance(s, Pod)] == ["Running", ""]

    bound = await store.bind_many(
        [("default", "a", "n1", None), ("default", "b", "n2", "1"), ("default", "zz", "n1", None)]
    )
    assert isinstance(bound[0], Pod) and bound[0].spec.node_name == "n1"
    assert isinstance(bound[1], Conflict)
    assert isinstance(bound[2], NotFound)


async def test_large_batches_are_split_and_all_applied(store: Store) -> None:
    results = await store.create_many([pod(f"p{i}") for i in range(2500)])
    assert all(isinstance(r, Pod) for r in results)
    assert len({r.metadata.resource_version for r in results if isinstance(r, Pod)}) == 2500
    objs, rv = await store.list(Pod, "default")
    assert len(objs) == 2500 and rv == max(int(o.metadata.resource_version) for o in objs)


# ------------------------------------------------------------------ list


async def test_list_filters_by_namespace_selector_and_node(store: Store) -> None:
    await store.create_many(
        [
            pod("a", "dev", app="web", tier="front"),
            pod("b", "dev", app="db"),
            pod("c", "prod", node="n1", app="web"),
            pod("d", "prod", node="n2", app="web", tier="front"),
        ]
    )
    await store.create(Node(metadata=ObjectMeta(name="n1")))

    def names(objs: list[Pod]) -> list[str]:
        return [o.metadata.name for o in objs]

    assert names((await store.list(Pod))[0]) == ["a", "b", "c", "d"]
    assert names((await store.list(Pod, "dev"))[0]) == ["a", "b"]
    web = LabelSelector(match_labels={"app": "web"})
    assert names((await store.list(Pod, selector=web))[0]) == ["a", "c", "d"]
    front = LabelSelector(
        match_expressions=[LabelSelectorRequirement(key="tier", operator="Exists")]
    )
    assert names((await store.list(Pod, "prod", selector=front))[0]) == ["d"]
    assert names((await store.list(Pod, node="n1"))[0]) == ["c"]
    assert names((await store.list(Pod, "dev", node=""))[0]) == ["a", "b"]
    assert names((await store.list(Pod, "dev", node="n1"))[0]) == []
    nodes, rv = await store.list("nodes")
    assert [n.metadata.name for n in nodes] == ["n1"]
    assert rv == int(nodes[0].metadata.resource_version)


async def test_list_returns_the_resource_version_of_its_snapshot(store: Store) -> None:
    _, empty_rv = await store.list(Pod)
    created = await store.create_many([pod("a"), pod("b")])
    objs, rv = await store.list(Pod)
    assert rv == max(int(o.metadata.resource_version) for o in objs) > empty_rv
    assert objs == sorted(created, key=lambda o: o.metadata.name)  # type: ignore[union-attr]


# ------------------------------------------------------------------ scripts


async def test_scripts_are_loaded_again_when_redis_forgot_them(store: Store) -> None:
    await store.create(pod("a"))
    await store.redis.script_flush()
    await store.create(pod("b"))
    assert len((await store.list(Pod))[0]) == 2


async def test_store_errors_carry_kind_namespace_and_name(store: Store) -> None:
    await store.create(pod("p"))
    with pytest.raises(StoreError) as info:
        await store.create(pod("p"))
    assert (info.value.kind, info.value.namespace, info.value.name) == ("Pod", "default", "p")


# ------------------------------------------------------------------ watch events


async def test_watch_events_follow_each_commit_on_the_right_subjects(
    redis_url: str, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)
    received: list[tuple[str, WatchEvent]] = []
    checked_after_commit: list[bool] = []
    client = aioredis.Redis.from_url(redis_url)

    async def on_msg(msg: Msg) -> None:
        event = msgspec.msgpack.decode(msg.data, type=WatchEvent)
        received.append((msg.subject, event))
        # Published after commit: the store already holds at least this version.
        stored_rv = int(await client.get("podbus:rv") or 0)
        checked_after_commit.append(stored_rv >= event.resource_version)

    await nc.subscribe("podbus.watch.>", cb=on_msg)
    await nc.flush()
    store = await Store.connect(redis_url, publish=nc.publish)
    try:
        created = await store.create(pod("p"))
        await store.create(deployment("api"))
        bound = await store.bind(created, "n1")
        running = await store.update_status(
            msgspec.structs.replace(bound, status=PodStatus(phase="Running"))
        )
        await store.delete(Pod, "default", "p")
        await store.remove(Pod, "default", "p")
        await store.create_many([pod("x"), pod("y")])
        await wait_for(lambda: len(received) >= 9, message="9 watch events")
    finally:
        await store.close()
        await nc.close()
        await client.aclose()

    seen = [(s, e.type, e.kind) for s, e in received]
    assert seen[:7] == [
        ("podbus.watch.pod._.default.p", "ADDED", "Pod"),
        ("podbus.watch.deployment.default.api", "ADDED", "Deployment"),
        ("podbus.watch.pod._.default.p", "MODIFIED", "Pod"),  # leaves the scheduler's queue
        ("podbus.watch.pod.n1.default.p", "MODIFIED", "Pod"),  # arrives at the node
        ("podbus.watch.pod.n1.default.p", "MODIFIED", "Pod"),  # status
        ("podbus.watch.pod.n1.default.p", "MODIFIED", "Pod"),  # graceful delete
        ("podbus.watch.pod.n1.default.p", "DELETED", "Pod"),
    ]
    assert sorted(s for s, _ in received[7:]) == [
        "podbus.watch.pod._.default.x",
        "podbus.watch.pod._.default.y",
    ]
    assert all(checked_after_commit)
    rvs = [e.resource_version for _, e in received[:7]]
    assert rvs == sorted(rvs) and rvs[0] == int(created.metadata.resource_version)
    status_event = msgspec.msgpack.decode(received[4][1].object, type=Pod)
    assert status_event == running
    deleted = msgspec.msgpack.decode(received[6][1].object, type=Pod)
    assert isinstance(deleted, Pod) and deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.resource_version == str(received[6][1].resource_version)


async def test_a_failing_publish_does_not_fail_the_committed_write(redis_url: str) -> None:
    async def broken(subject: str, payload: bytes) -> None:
        raise ConnectionError("bus down")

    store = await Store.connect(redis_url, publish=broken)
    try:
        created = await store.create(pod("p"))
        assert await store.get(Pod, "default", "p") == created
    finally:
        await store.close()
