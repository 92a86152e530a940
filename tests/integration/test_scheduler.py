"""The scheduler service against real nats-server and redis-server: binding
with Scheduled events, the unschedulable status and FailedScheduling event,
back-off, retry when a node is added, binding conflicts (re-queued, never
bound twice), preemption end to end, fencing, and leader failover between
two real scheduler processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import msgspec
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import StatusCode
from podmodel.event import Event
from podmodel.meta import ObjectMeta
from podmodel.node import Node, NodeSpec, NodeStatus, Taint
from podmodel.pod import Container, Pod, PodSpec, ResourceRequirements
from servicekit import telemetry
from servicekit.leader import LeaderElection, token_key
from servicekit.store import Conflict, Store
from servicekit.telemetry import (
    TRACEPARENT_ANNOTATION,
    LocalSpanRecorder,
    new_root_traceparent,
    traceparent_ids,
)

from services.scheduler.driver import LEASE_NAME, Scheduler
from tests.conftest import stop_tasks, wait_for

HOSTNAME = "kubernetes.io/hostname"


def make_node(name: str, cpu: str = "4", taints: list[Taint] | None = None) -> Node:
    alloc = {"cpu": cpu, "memory": "32Gi", "pods": "110"}
    return Node(
        metadata=ObjectMeta(name=name, labels={HOSTNAME: name}),
        spec=NodeSpec(taints=taints or []),
        status=NodeStatus(capacity=dict(alloc), allocatable=alloc),
    )


def make_pod(
    name: str, cpu: str = "100m", priority: int = 0, labels: dict[str, str] | None = None
) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace="default", labels=labels or {}),
        spec=PodSpec(
            containers=[
                Container(
                    name="c",
                    image="busybox",
                    resources=ResourceRequirements(requests={"cpu": cpu, "memory": "64Mi"}),
                )
            ],
            priority=priority,
            termination_grace_period_seconds=30,
        ),
    )


class BindWatcher:
    """Counts, from the watch subjects, on which nodes each pod appeared:
    a pod bound twice would appear on two node subjects (or twice)."""

    def __init__(self) -> None:
        self.binds: dict[str, list[str]] = defaultdict(list)

    async def start(self, nc: NATS) -> None:
        async def on_msg(msg: Any) -> None:
            # podbus.watch.pod.<node>.<ns>.<name>
            parts = msg.subject.split(".")
            node, key = parts[3], f"{parts[4]}/{parts[5]}"
            if node != "_":
                event = msgspec.msgpack.decode(msg.data)
                if event.get("type") == "MODIFIED" and node not in self.binds[key]:
                    self.binds[key].append(node)

        await nc.subscribe("podbus.watch.pod.*.*.*", cb=on_msg)
        await nc.flush()


@pytest_asyncio.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest_asyncio.fixture
async def store(redis_url: str, nc: NATS) -> AsyncIterator[Store]:
    s = await Store.connect(redis_url, publish=nc.publish)
    yield s
    await s.close()


@contextlib.asynccontextmanager
async def scheduler(
    nats_url: str,
    redis_url: str,
    *,
    instance: str = "s1",
    ttl: float = 2.0,
    wrap_store: Callable[[Store], Store] | None = None,
    **options: Any,
) -> AsyncIterator[Scheduler]:
    """An in-process scheduler instance with its own connections and election."""
    client = await nats.connect(nats_url)
    s = await Store.connect(redis_url, publish=client.publish)
    if wrap_store is not None:
        s = wrap_store(s)
    sched = Scheduler(s, client, instance=instance, **options)
    election = LeaderElection(s.redis, LEASE_NAME, instance, ttl_s=ttl)
    tasks = [
        asyncio.create_task(sched.run_informers()),
        asyncio.create_task(election.run(sched.lead)),
    ]
    try:
        await sched.wait_synced(timeout=10)
        yield sched
    finally:
        await stop_tasks(tasks)
        await s.close()
        await client.close()


async def pod_of(store: Store, name: str) -> Pod | None:
    return await store.get(Pod, "default", name)


async def bound_node(store: Store, name: str) -> str:
    p = await pod_of(store, name)
    return p.spec.node_name if p is not None else ""


async def events_for(store: Store, name: str) -> list[Event]:
    events, _ = await store.list(Event, "default")
    return [e for e in events if e.involved_object.name == name]


async def test_pods_are_bound_once_with_a_scheduled_event(
    nats_url: str, redis_url: str, store: Store, nc: NATS
) -> None:
    watcher = BindWatcher()
    await watcher.start(nc)
    await store.create_many([make_node("node-a"), make_node("node-b")])
    async with scheduler(nats_url, redis_url) as sched:
        await store.create_many([make_pod(f"web-{i}") for i in range(20)])

        async def all_bound() -> bool:
            return all([await bound_node(store, f"web-{i}") for i in range(20)])

        await wait_for(all_bound, message="20 pods bound")
        node = await bound_node(store, "web-1")
        await wait_for(lambda: events_for(store, "web-1"), message="Scheduled event of web-1")
        (event,) = await events_for(store, "web-1")
        assert event.reason == "Scheduled"
        assert event.message == f"Successfully assigned default/web-1 to {node}"
        assert sched.stats.bound == 20
    await wait_for(lambda: len(watcher.binds) == 20, message="20 binds observed")
    assert all(len(nodes) == 1 for nodes in watcher.binds.values())


async def test_unschedulable_pod_gets_condition_and_failed_scheduling_event(
    nats_url: str, redis_url: str, store: Store
) -> None:
    gpu = Taint(key="dedicated", value="gpu", effect="NoSchedule")
    await store.create_many(
        [make_node("a", cpu="1"), make_node("b", cpu="1"), make_node("gpu", cpu="8", taints=[gpu])]
    )
    async with scheduler(nats_url, redis_url):
        await store.create(make_pod("web-1", cpu="2"))

        async def condition() -> Any:
            p = await pod_of(store, "web-1")
            return p is not None and p.status.condition("PodScheduled")

        cond = await wait_for(condition, message="PodScheduled condition")
        assert cond.status == "False"
        assert cond.reason == "Unschedulable"
        assert cond.message.startswith(
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
            "2 Insufficient cpu."
        )
        events = await wait_for(lambda: events_for(store, "web-1"), message="event")
        assert events[0].reason == "FailedScheduling"
        assert events[0].type == "Warning"
        assert events[0].message == cond.message
        assert await bound_node(store, "web-1") == ""


async def test_an_unreadable_pod_is_logged_and_others_go_on(
    nats_url: str, redis_url: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await store.create(make_node("a"))
    async with scheduler(nats_url, redis_url):
        await store.create(make_pod("bad", cpu="lots"))  # the store does not validate
        await store.create(make_pod("good"))
        assert await wait_for(lambda: bound_node(store, "good")) == "a"
        assert await bound_node(store, "bad") == ""
    assert "pod default/bad: cannot be scheduled" in caplog.text


async def test_parked_pod_is_retried_when_a_node_is_added(
    nats_url: str, redis_url: str, store: Store
) -> None:
    await store.create(make_node("small", cpu="1"))
    async with scheduler(nats_url, redis_url) as sched:
        await store.create(make_pod("big", cpu="2"))
        await wait_for(
            lambda: sched.queue.where("default/big") == "unschedulable", message="big parked"
        )
        await store.create(make_node("large", cpu="8"))
        # Parked pods otherwise wait up to 5 minutes: the node's arrival moves it.
        assert await wait_for(lambda: bound_node(store, "big"), timeout=5) == "large"

        async def scheduled_true() -> bool:
            p = await pod_of(store, "big")
            cond = p.status.condition("PodScheduled") if p is not None else None
            return cond is not None and cond.status == "True"

        await wait_for(scheduled_true, message="PodScheduled=True replaces Unschedulable")


async def test_retry_waits_out_the_backoff(nats_url: str, redis_url: str, store: Store) -> None:
    await store.create(make_node("small", cpu="1"))
    # A 4 s first back-off (1 s in production) keeps the test's window wide
    # on a loaded machine; the doubling itself is unit-tested.
    async with scheduler(nats_url, redis_url, initial_backoff=4.0) as sched:
        await store.create(make_pod("big", cpu="2"))
        await wait_for(lambda: sched.queue.where("default/big") == "unschedulable")
        q = next(q for q in sched.queue.pending() if q.key == "default/big")
        assert q.attempts == 1
        await store.create(make_node("large", cpu="8"))
        # The first back-off has not run out yet: the pod waits in backoffQ.
        await wait_for(lambda: sched.queue.where("default/big") == "backoff", timeout=3)
        assert await bound_node(store, "big") == ""
        assert await wait_for(lambda: bound_node(store, "big"), timeout=10) == "large"


class ChangeBeforeBind:
    """Wraps a Store: before the first bind of `name`, another writer
    changes the pod (or binds it elsewhere), so the scheduler's
    compare-and-set meets a newer version."""

    def __init__(self, inner: Store, other: Store, name: str, bind_to: str = "") -> None:
        self._inner = inner
        self._other = other
        self._name = name
        self._bind_to = bind_to
        self.fired = False

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    async def bind_many(self, bindings: Any, **kw: Any) -> Any:
        if not self.fired and any(b[1] == self._name for b in bindings):
            self.fired = True
            pod = await self._other.get(Pod, "default", self._name)
            assert pod is not None
            if self._bind_to:
                await self._other.bind(pod, self._bind_to)
            else:
                pod.metadata.labels["changed"] = "yes"
                await self._other.update(pod)
        return await self._inner.bind_many(bindings, **kw)


async def test_pod_changed_between_cycle_and_bind_is_requeued_and_bound_once(
    nats_url: str, redis_url: str, store: Store, nc: NATS
) -> None:
    watcher = BindWatcher()
    await watcher.start(nc)
    await store.create_many([make_node("a"), make_node("b")])
    wrapper: list[ChangeBeforeBind] = []

    def wrap(inner: Store) -> Store:
        wrapper.append(ChangeBeforeBind(inner, store, "web-1"))
        return wrapper[0]  # type: ignore[return-value]

    async with scheduler(nats_url, redis_url, wrap_store=wrap) as sched:
        await store.create(make_pod("web-1"))
        await wait_for(lambda: bound_node(store, "web-1"), timeout=5, message="web-1 bound")
        assert wrapper[0].fired
        assert sched.stats.bind_conflicts == 1
        p = await pod_of(store, "web-1")
        assert p is not None and p.metadata.labels == {"changed": "yes"}
    await wait_for(lambda: "default/web-1" in watcher.binds)
    assert len(watcher.binds["default/web-1"]) == 1


async def test_pod_bound_by_someone_else_is_not_bound_again(
    nats_url: str, redis_url: str, store: Store, nc: NATS
) -> None:
    watcher = BindWatcher()
    await watcher.start(nc)
    await store.create_many([make_node("a"), make_node("b")])
    wrapper: list[ChangeBeforeBind] = []

    def wrap(inner: Store) -> Store:
        wrapper.append(ChangeBeforeBind(inner, store, "web-1", bind_to="b"))
        return wrapper[0]  # type: ignore[return-value]

    async with scheduler(nats_url, redis_url, wrap_store=wrap) as sched:
        await store.create(make_pod("web-1"))
        await wait_for(lambda: sched.stats.bind_conflicts == 1, message="a conflict")
        await wait_for(lambda: sched.queue.where("default/web-1") is None, message="dropped")
        await wait_for(lambda: "default/b" not in sched.snapshot.assumed)
        assert sched.snapshot.pods["default/web-1"].node_name == "b"
    assert await bound_node(store, "web-1") == "b"
    assert watcher.binds["default/web-1"] == ["b"]


async def test_binding_whose_event_was_lost_is_learnt_from_the_conflict(
    nats_url: str, redis_url: str, store: Store
) -> None:
    """A leader that died between its bind and the publish: the pod is bound
    in Redis, but no watch event says so. The next binder's conflict makes
    it re-read the pod instead of retrying until the next resync."""
    await store.create_many([make_node("a"), make_node("b")])
    silent = await Store.connect(redis_url)  # publishes nothing
    wrapper: list[ChangeBeforeBind] = []

    def wrap(inner: Store) -> Store:
        wrapper.append(ChangeBeforeBind(inner, silent, "web-1", bind_to="b"))
        return wrapper[0]  # type: ignore[return-value]

    try:
        async with scheduler(nats_url, redis_url, wrap_store=wrap) as sched:
            await store.create(make_pod("web-1"))
            await wait_for(lambda: sched.stats.bind_conflicts == 1, message="a conflict")
            await wait_for(
                lambda: sched.queue.where("default/web-1") is None, timeout=3, message="dropped"
            )
            pi = sched.snapshot.pods["default/web-1"]
            assert pi.node_name == "b" and not sched.snapshot.is_assumed("default/web-1")
            assert sched.stats.bind_conflicts == 1
    finally:
        await silent.close()


async def test_preemption_evicts_gracefully_and_nominates(
    nats_url: str, redis_url: str, store: Store
) -> None:
    await store.create(make_node("only", cpu="1"))
    async with scheduler(nats_url, redis_url):
        await store.create(make_pod("low", cpu="800m", priority=1))
        assert await wait_for(lambda: bound_node(store, "low")) == "only"
        await store.create(make_pod("high", cpu="800m", priority=1000))

        async def victim_marked() -> bool:
            p = await pod_of(store, "low")
            return p is not None and p.metadata.deletion_timestamp is not None

        await wait_for(victim_marked, message="victim marked for graceful deletion")
        victim = await pod_of(store, "low")
        assert victim is not None and victim.metadata.deletion_grace_period_seconds == 30

        async def nominated() -> str:
            p = await pod_of(store, "high")
            return p.status.nominated_node_name if p is not None else ""

        assert await wait_for(nominated, message="nominatedNodeName") == "only"
        assert await bound_node(store, "high") == ""
        # Play the node-agent: the victim stopped, so it is removed.
        await store.remove("Pod", "default", "low")
        assert await wait_for(lambda: bound_node(store, "high"), timeout=5) == "only"
        reasons = {e.reason for e in await events_for(store, "low")}
        assert "Preempted" in reasons


async def test_a_stale_leader_token_cannot_bind(redis_url: str, store: Store) -> None:
    await store.create(make_node("a"))
    pod = await store.create(make_pod("p"))
    await store.redis.set(token_key(LEASE_NAME), "7")
    (stale,) = await store.bind_many(
        [("default", "p", "a", pod.metadata.resource_version)], fence=(token_key(LEASE_NAME), 6)
    )
    assert isinstance(stale, Conflict)
    assert "fenced" in str(stale)
    (ok,) = await store.bind_many(
        [("default", "p", "a", pod.metadata.resource_version)], fence=(token_key(LEASE_NAME), 7)
    )
    assert isinstance(ok, Pod) and ok.spec.node_name == "a"


# ------------------------------------------------------------------ failover


def _spawn(nats_url: str, redis_url: str, instance: str, ttl: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PODBUS_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.scheduler",
            "--nats-url",
            nats_url,
            "--redis-url",
            redis_url,
            "--instance",
            instance,
            "--lease-ttl",
            str(ttl),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _health(nc: NATS, instance: str) -> dict[str, Any] | None:
    try:
        msg = await nc.request(f"podbus.health.scheduler.{instance}", b"", timeout=0.5)
    except Exception:
        return None
    reply: dict[str, Any] = msgspec.json.decode(msg.data)
    return reply


@pytest.mark.timeout(90)
async def test_standby_takes_over_within_one_lease_ttl_and_binds_nothing_twice(
    nats_url: str, redis_url: str, store: Store, nc: NATS
) -> None:
    ttl = 2.0
    watcher = BindWatcher()
    await watcher.start(nc)
    await store.create_many([make_node(f"n{i}") for i in range(4)])
    procs = {name: _spawn(nats_url, redis_url, name, ttl) for name in ("sa", "sb")}
    try:

        async def leader() -> str | None:
            for name in procs:
                h = await _health(nc, name)
                if h and h["details"].get("leader"):
                    return name
            return None

        first = await wait_for(leader, timeout=30, message="a leader")
        await store.create_many([make_pod(f"a-{i}") for i in range(50)])
        await wait_for(lambda: sum(1 for k in watcher.binds if "/a-" in k) == 50, timeout=20)

        standby = next(n for n in procs if n != first)
        await wait_for(lambda: _health(nc, standby), timeout=30, message="standby up")
        procs[first].send_signal(signal.SIGKILL)  # a crash: the lease is not released
        procs[first].wait(timeout=10)
        killed = asyncio.get_running_loop().time()
        await store.create_many([make_pod(f"b-{i}") for i in range(50)])
        await wait_for(lambda: sum(1 for k in watcher.binds if "/b-" in k) == 50, timeout=30)
        # Taken over and bound within one TTL plus the standby's poll (ttl/5)
        # plus slack for a loaded machine.
        took = asyncio.get_running_loop().time() - killed
        assert took < ttl + ttl / 5 + 3.0, took
        h = await _health(nc, standby)
        assert h is not None and h["details"]["leader"]
        assert all(len(nodes) == 1 for nodes in watcher.binds.values())
        pods, _ = await store.list(Pod, "default")
        assert len(pods) == 100 and all(p.spec.node_name for p in pods)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ------------------------------------------------------------------ tracing


@pytest.fixture
def recorder() -> Iterator[LocalSpanRecorder]:
    rec = LocalSpanRecorder()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(rec))
    previous = telemetry.use_provider(provider)
    try:
        yield rec
    finally:
        telemetry.use_provider(previous)


def _traced(p: Pod) -> Pod:
    p.metadata.annotations[TRACEPARENT_ANNOTATION] = new_root_traceparent(p)
    return p


async def test_spans_in_the_pods_trace(
    nats_url: str, redis_url: str, store: Store, recorder: LocalSpanRecorder
) -> None:
    await store.create_many([make_node("a", cpu="1"), make_node("b", cpu="4")])
    async with scheduler(nats_url, redis_url):
        ok = await store.create(_traced(make_pod("ok", cpu="2")))
        stuck = await store.create(_traced(make_pod("stuck", cpu="16")))
        await wait_for(lambda: bound_node(store, "ok"))
        ok_tp = ok.metadata.annotations[TRACEPARENT_ANNOTATION]
        stuck_tp = stuck.metadata.annotations[TRACEPARENT_ANNOTATION]

        def names(tp: str) -> set[str]:
            return {s.name for s in recorder.trace_of(tp)}

        await wait_for(lambda: "scheduler.bound" in names(ok_tp), message="bound span")
        await wait_for(lambda: "scheduler.unschedulable" in names(stuck_tp))
    spans = {s.name: s for s in recorder.trace_of(ok_tp)}
    assert {"scheduler.queued", "scheduler.filtered", "scheduler.scored"} <= set(spans)
    filtered = spans["scheduler.filtered"].attributes or {}
    assert filtered["scheduler.filter.NodeResourcesFit.passed"] == 1
    assert filtered["scheduler.nodes.evaluated"] == 2
    scored = spans["scheduler.scored"].attributes or {}
    assert scored["scheduler.node"] == "b"
    assert "scheduler.score" in scored
    assert (spans["scheduler.bound"].attributes or {})["k8s.node.name"] == "b"
    root_ids = traceparent_ids(ok_tp)
    assert root_ids is not None
    assert spans["scheduler.bound"].parent is not None
    assert spans["scheduler.bound"].parent.span_id == root_ids[1]
    unsched = {s.name: s for s in recorder.trace_of(stuck_tp)}["scheduler.unschedulable"]
    assert "Insufficient cpu" in str((unsched.attributes or {})["scheduler.reason"])
    assert unsched.status.status_code == StatusCode.ERROR
