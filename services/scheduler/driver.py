"""The scheduler's I/O: informers feed the snapshot and the queue; while
this instance leads, the scheduling loop pops pods, runs `schedule_one`,
assumes the winner and binds in batches; outcomes are written back.

Flow of one pod:

    informer (unbound pod) -> SchedulingQueue.add
    loop: pop -> schedule_one -> snapshot.assume_pod (the next cycle already
          sees the reservation) -> bind batch
    bind batch: one Store.bind_many (one Lua call per 1,000 pods), a
          compare-and-set on each pod (still unbound, same resourceVersion),
          fenced by the leader's token; runs while the loop schedules the
          next batch (at most MAX_BINDS_IN_FLIGHT batches in flight)
    success: Scheduled event; conflict or error: the reservation is
          forgotten and the pod goes to the back-off queue (1 s doubling)
    unschedulable: parked until a relevant cluster event; PodScheduled=False
          with kubectl's message and a FailedScheduling event (batched)
    preemption: victims deleted gracefully, status.nominatedNodeName set

Informers: one for pods (`podbus.watch.pod.*.*.*`: the unbound `_` subjects
feed the queue, node subjects the accounting of bound pods) and one for
nodes. They run in every instance, so a standby has a warm cache and takes
over within one lease TTL plus one poll. The token of the leader's term is
checked inside the bind script (servicekit.store `fence`), so an instance
whose term ended cannot bind anything, and the compare-and-set makes a
second binding of a pod impossible anyway.

Spans (servicekit.telemetry, in each pod's trace from its
podbus.io/traceparent annotation): scheduler.queued, scheduler.filtered,
scheduler.scored, scheduler.bound, scheduler.unschedulable. With tracing
off the cost is one boolean check per pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from podmodel.event import Event
from podmodel.node import Node
from podmodel.pod import Pod
from servicekit import telemetry
from servicekit.informer import Informer
from servicekit.leader import token_key
from servicekit.store import Conflict, Store, StoreError, rfc3339

from services.scheduler.cluster_snapshot import ClusterSnapshot
from services.scheduler.framework import Profile
from services.scheduler.outcomes import (
    REASON_FAILED_SCHEDULING,
    REASON_PREEMPTED,
    REASON_SCHEDULED,
    EventAggregator,
    PendingEvent,
    accounting_change,
    node_change_matters,
    preempted_message,
    schedulable_change,
    scheduled_message,
    scheduled_status,
    unschedulable_status,
    wants_scheduling,
    with_nominated_node,
)
from services.scheduler.plugins import default_profile
from services.scheduler.pod_info import PodInfo
from services.scheduler.queue import (
    ClusterEvent,
    QueuedPodInfo,
    SchedulingQueue,
    node_update_events,
)
from services.scheduler.scheduling_cycle import ScheduleResult, schedule_one

log = logging.getLogger("podbus.scheduler")

LEASE_NAME = "scheduler"
BIND_BATCH = 1000
"""Pods per bind batch (one Lua call)."""
MAX_BINDS_IN_FLIGHT = 2
SLICE_S = 0.02
"""How long the loop schedules before it hands a batch to the binder and
lets the informers run."""
FLUSH_EVERY_S = 1.0
"""kube-scheduler flushes back-offs and stale unschedulable pods every second."""
WRITE_BATCH = 1000
MAX_CONFLICT_READS = 100


@dataclass
class _Bind:
    q: QueuedPodInfo
    pi: PodInfo
    node: str
    result: ScheduleResult
    started_ns: int = 0


@dataclass
class Stats:
    """Counters for the health reply and the benchmark."""

    attempts: int = 0
    bound: int = 0
    bind_conflicts: int = 0
    bind_errors: int = 0
    unschedulable: int = 0
    preemptions: int = 0
    bind_batches: int = 0
    status_writes: int = 0
    events_written: int = 0


@dataclass
class _Writes:
    """Status updates and events waiting for the writer task."""

    statuses: dict[str, Pod] = field(default_factory=dict)
    events: list[PendingEvent] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.statuses or self.events or self.deletes)


class Scheduler:
    """One scheduler instance: informers always, scheduling while leading."""

    def __init__(
        self,
        store: Store,
        nc: NATS,
        *,
        instance: str = "scheduler",
        profile: Profile | None = None,
        rng: random.Random | None = None,
        lease_name: str = LEASE_NAME,
        clock: Callable[[], float] = time.monotonic,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        resync_s: float = 300.0,
    ) -> None:
        self.store = store
        self.nc = nc
        self.instance = instance
        self.profile = profile or default_profile()
        self.rng = rng or random.Random()
        self.clock = clock
        self.fence_key = token_key(lease_name)
        self.snapshot = ClusterSnapshot()
        self.queue = SchedulingQueue(initial_backoff=initial_backoff, max_backoff=max_backoff)
        self.events = EventAggregator(instance)
        self.stats = Stats()
        self.token: int | None = None
        self._wake = asyncio.Event()
        self._writes = _Writes()
        self._writes_ready = asyncio.Event()
        self._queued_wall: dict[str, int] = {}  # pod key -> enqueue time (ns), tracing only
        self._bad_pods: set[str] = set()
        self.pods: Informer[Pod] = Informer(
            store,
            nc,
            Pod,
            resync_s=resync_s,
            on_add=self._on_pod_add,
            on_update=self._on_pod_update,
            on_delete=self._on_pod_delete,
        )
        self.nodes: Informer[Node] = Informer(
            store,
            nc,
            Node,
            resync_s=resync_s,
            on_add=self._on_node_add,
            on_update=self._on_node_update,
            on_delete=self._on_node_delete,
        )

    # -------------------------------------------------------------- informers

    async def run_informers(self) -> None:
        """Keep the caches in step (nodes first, so the first pods listed
        land on known nodes). Runs until cancelled, leading or not."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.nodes.run(), name="scheduler:nodes")
            await self.nodes.wait_synced()
            tg.create_task(self.pods.run(), name="scheduler:pods")

    async def wait_synced(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self.nodes.wait_synced()
            await self.pods.wait_synced()

    def _event(self, event: ClusterEvent) -> None:
        if self.queue.on_event(event, self.clock()):
            self._wake.set()

    def _on_node_add(self, node: Node) -> None:
        self.snapshot.add_node(node)
        self._event(ClusterEvent.NODE_ADD)

    def _on_node_update(self, old: Node, new: Node) -> None:
        if not node_change_matters(old, new):
            return
        self.snapshot.update_node(new)
        for event in node_update_events(old, new):
            self._event(event)

    def _on_node_delete(self, node: Node) -> None:
        self.snapshot.remove_node(node.metadata.name)
        self._event(ClusterEvent.NODE_DELETE)

    def _info(self, pod: Pod) -> PodInfo | None:
        """PodInfo.of, or None (logged once per pod) for a pod whose spec
        cannot be read (an unparsable quantity that skipped validation)."""
        try:
            return PodInfo.of(pod)
        except (ValueError, TypeError, KeyError) as exc:
            key = f"{pod.metadata.namespace}/{pod.metadata.name}"
            if key not in self._bad_pods:
                self._bad_pods.add(key)
                log.warning("pod %s: cannot be scheduled or accounted: %s", key, exc)
            return None

    def _enqueue(self, pod: Pod) -> None:
        pi = self._info(pod)
        if pi is None:
            return
        self._nominated(pi)
        self.queue.add(pi, self.clock())
        if telemetry.enabled():
            self._queued_wall.setdefault(pi.key, time.time_ns())
        self._wake.set()

    def _nominated(self, pi: PodInfo) -> None:
        """Nominations survive a leader change through status.nominatedNodeName."""
        if pi.nominated_node_name and self.snapshot.nominated_node_of(pi.key) is None:
            self.snapshot.nominate(pi, pi.nominated_node_name)

    def _on_pod_add(self, pod: Pod) -> None:
        if pod.spec.node_name:
            self._account(pod)
            self._event(ClusterEvent.ASSIGNED_POD_ADD)
        elif wants_scheduling(pod):
            self._enqueue(pod)

    def _on_pod_update(self, old: Pod, new: Pod) -> None:
        if new.spec.node_name:
            key = f"{new.metadata.namespace}/{new.metadata.name}"
            if not old.spec.node_name:
                self.queue.delete(key)  # bound (by us, or by someone else)
                self._queued_wall.pop(key, None)
                self._account(new)
                self._event(ClusterEvent.ASSIGNED_POD_ADD)
            elif accounting_change(old, new) and (pi := self._info(new)) is not None:
                self.snapshot.update_pod(pi)
                if old.metadata.labels != new.metadata.labels:
                    self._event(ClusterEvent.ASSIGNED_POD_LABEL)
            return
        if not wants_scheduling(new):
            self._forget_unbound(new)
            return
        pi = self._info(new)
        if pi is None:
            self._forget_unbound(new)
        elif schedulable_change(old, new):
            self._nominated(pi)
            self.queue.update(pi, self.clock())
            self._wake.set()
        elif not self.queue.refresh(pi):
            self._enqueue(new)

    def _on_pod_delete(self, pod: Pod) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        if pod.spec.node_name or key in self.snapshot.pods:
            self.snapshot.remove_pod(key)
            self._event(ClusterEvent.ASSIGNED_POD_DELETE)
        if not pod.spec.node_name:
            self._forget_unbound(pod)

    def _forget_unbound(self, pod: Pod) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.queue.delete(key)
        self.snapshot.clear_nomination(key)
        self._queued_wall.pop(key, None)
        self._bad_pods.discard(key)
        self.events.forget_pod(pod.metadata.namespace, pod.metadata.name)

    def _account(self, pod: Pod) -> None:
        """A bound pod observed: confirm our reservation cheaply, or account it."""
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        snap = self.snapshot
        assumed = snap.pods.get(key) if snap.is_assumed(key) else None
        if assumed is not None and assumed.node_name == pod.spec.node_name:
            snap.assumed.discard(key)  # the reservation becomes the real thing
            return
        pi = self._info(pod)
        if pi is not None:
            snap.add_pod(pi)

    # -------------------------------------------------------------- leading

    async def lead(self, token: int) -> None:
        """The leader's work (servicekit.leader calls it with the term's
        token): schedule until cancelled."""
        self.token = token
        log.info("scheduler %s leads (token %d)", self.instance, token)
        try:
            await self.wait_synced()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._writer(), name="scheduler:writer")
                await self._loop(tg)
        finally:
            self.token = None
            self._stop_leading()

    def _stop_leading(self) -> None:
        """Drop what only the leader knew: reservations and in-flight pods
        go back to the queue; the informers will say what really landed."""
        for key in list(self.snapshot.assumed):
            self.snapshot.forget_pod(key)
        self.queue.requeue_in_flight(self.clock())
        self._writes = _Writes()

    async def _loop(self, tg: asyncio.TaskGroup) -> None:
        binds_free = asyncio.Semaphore(MAX_BINDS_IN_FLIGHT)
        next_flush = self.clock() + FLUSH_EVERY_S
        while True:
            now = self.clock()
            if now >= next_flush:
                self.queue.flush(now)
                next_flush = now + FLUSH_EVERY_S
            batch = self._schedule_slice(now)
            if batch:
                await binds_free.acquire()
                tg.create_task(self._bind(batch, binds_free), name="scheduler:bind")
                await asyncio.sleep(0)
                continue
            if self.queue.active_count:
                await asyncio.sleep(0)
                continue
            wake = self.queue.next_wakeup()
            timeout = min(next_flush, wake if wake is not None else next_flush) - self.clock()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._wake.wait()

    def _schedule_slice(self, now: float) -> list[_Bind]:
        """Schedule pods for up to SLICE_S or BIND_BATCH pods; the pods to bind."""
        batch: list[_Bind] = []
        end = time.perf_counter() + SLICE_S
        queue, snap, rng, profile = self.queue, self.snapshot, self.rng, self.profile
        tracing = telemetry.enabled()
        while len(batch) < BIND_BATCH:
            q = queue.pop(now)
            if q is None:
                break
            self.stats.attempts += 1
            pi = q.pod_info
            started = time.time_ns() if tracing else 0
            result = schedule_one(snap, pi, rng, profile)
            if tracing:
                self._trace_cycle(q, result, started)
            if result.node_name is not None:
                snap.assume_pod(pi, result.node_name)
                batch.append(
                    _Bind(q, pi, result.node_name, result, time.time_ns() if tracing else 0)
                )
            else:
                self._unschedulable(q, result, now)
            if time.perf_counter() >= end:
                break
        return batch

    # -------------------------------------------------------------- binding

    async def _bind(self, batch: list[_Bind], done: asyncio.Semaphore) -> None:
        try:
            token = self.token
            fence = (self.fence_key, token) if token else None  # 0: no election (tests)
            bindings = [
                (b.pi.namespace, b.pi.name, b.node, b.pi.pod.metadata.resource_version)
                for b in batch
            ]
            self.stats.bind_batches += 1
            try:
                results: Sequence[Any] = await self.store.bind_many(bindings, fence=fence)
            except Exception as exc:  # Redis unreachable: every binding failed
                log.warning("binding %d pods failed: %s", len(batch), exc)
                results = [StoreError(str(exc))] * len(batch)
            now = self.clock()
            now_s = rfc3339(time.time())
            now_ns = time.time_ns()
            tracing = telemetry.enabled()
            conflicts: list[PodInfo] = []
            for b, res in zip(batch, results, strict=True):
                key = b.pi.key
                if isinstance(res, StoreError):
                    self.snapshot.forget_pod(key)
                    if isinstance(res, Conflict):
                        self.stats.bind_conflicts += 1
                        conflicts.append(b.pi)
                    else:
                        self.stats.bind_errors += 1
                    log.debug("binding %s to %s failed: %s", key, b.node, res)
                    self.queue.add_backoff(b.q, now)
                    if tracing:
                        self._trace_bind(b, str(res))
                    continue
                self.stats.bound += 1
                self.queue.done(key)
                if isinstance(res, Pod) and (fixed := scheduled_status(res, now_s)) is not None:
                    self._writes.statuses[key] = fixed
                self._writes.events.append(
                    self.events.record(
                        b.pi.pod,
                        REASON_SCHEDULED,
                        scheduled_message(b.pi.pod, b.node),
                        now_s,
                        now_ns,
                    )
                )
                if tracing:
                    self._trace_bind(b, "")
            self._writes_ready.set()
            self._wake.set()
            if conflicts:
                await self._refresh_conflicted(conflicts)
        finally:
            done.release()

    async def _refresh_conflicted(self, pods: list[PodInfo]) -> None:
        """A conflict means our copy is stale, and its watch event may be lost
        (a leader that died between its bind and the publish): read the pods
        again and feed them through the informer, so a pod bound meanwhile
        leaves the queue now rather than at the next resync. Many conflicts
        (a fenced batch): list everything again instead."""
        if len(pods) > MAX_CONFLICT_READS:
            self.pods.relist()
            return
        try:
            fresh = await asyncio.gather(*(self.store.get(Pod, p.namespace, p.name) for p in pods))
        except Exception as exc:
            log.info("re-reading %d conflicted pods failed: %s", len(pods), exc)
            return
        for pod in fresh:
            if pod is not None:
                rv = pod.metadata.resource_version
                self.pods.apply_event("MODIFIED", pod, int(rv) if rv.isdigit() else 0)
        await self.pods.dispatch()

    # -------------------------------------------------------------- failures

    def _unschedulable(self, q: QueuedPodInfo, result: ScheduleResult, now: float) -> None:
        self.stats.unschedulable += 1
        pi = q.pod_info
        plugins = result.diagnosis.unschedulable_plugins if result.evaluated_nodes else frozenset()
        nominated: str | None = None
        pre = result.preemption
        if pre is not None and pre.node_name is not None:
            self.stats.preemptions += 1
            nominated = pre.node_name
            self.snapshot.nominate(pi, pre.node_name)
            self._preempt(pi, pre.node_name, pre.victims, pre.clear_nominations)
        self.queue.add_unschedulable(q, plugins, now)
        now_s = rfc3339(time.time())
        status = unschedulable_status(pi.pod, result.message, now_s, nominated)
        if status is not None:
            self._writes.statuses[pi.key] = status
        self._writes.events.append(
            self.events.record(
                pi.pod, REASON_FAILED_SCHEDULING, result.message, now_s, time.time_ns(), "Warning"
            )
        )
        self._writes_ready.set()

    def _preempt(
        self, pi: PodInfo, node: str, victims: Sequence[PodInfo], clear: Sequence[PodInfo]
    ) -> None:
        now_s = rfc3339(time.time())
        for v in victims:
            self._writes.deletes.append((v.namespace, v.name))
            self._writes.events.append(
                self.events.record(
                    v.pod, REASON_PREEMPTED, preempted_message(pi.pod, node), now_s, time.time_ns()
                )
            )
        for other in clear:
            self.snapshot.clear_nomination(other.key)
            cleared = with_nominated_node(other.pod, "")
            if cleared is not None:
                self._writes.statuses[other.key] = cleared

    # -------------------------------------------------------------- writer

    async def _writer(self) -> None:
        """Write statuses, events and preemption deletes in batches, off the
        scheduling path. A failed write is logged; the next attempt of the
        pod writes again."""
        while True:
            await self._writes_ready.wait()
            self._writes_ready.clear()
            writes, self._writes = self._writes, _Writes()
            try:
                await self._flush(writes)
            except Exception as exc:
                log.warning("writing scheduling outcomes failed: %s", exc)

    async def _flush(self, writes: _Writes) -> None:
        if writes.deletes:
            for ns, name in writes.deletes:
                try:
                    await self.store.delete("Pod", ns, name)  # grace: the pod's own period
                except StoreError as exc:
                    log.info("preemption: deleting %s/%s: %s", ns, name, exc)
        if writes.statuses:
            pods = list(writes.statuses.values())
            for i in range(0, len(pods), WRITE_BATCH):
                chunk = pods[i : i + WRITE_BATCH]
                results = await self.store.update_status_many(chunk)
                for res in results:
                    if isinstance(res, Pod):
                        self.stats.status_writes += 1
                        if not res.spec.node_name and (pi := self._info(res)) is not None:
                            self.queue.refresh(pi)
        if writes.events:
            await self._write_events(writes.events)

    async def _write_events(self, pending: list[PendingEvent]) -> None:
        new = [p.event for p in pending if p.created]
        old = [p.event for p in pending if not p.created]
        for i in range(0, len(new), WRITE_BATCH):
            created = await self.store.create_many(new[i : i + WRITE_BATCH])
            for res in created:
                if isinstance(res, Event):
                    self.stats.events_written += 1
                    self.events.stored(res)
        if old:
            updated = await self.store.update_many(old)
            for ev, res in zip(old, updated, strict=True):
                if isinstance(res, Event):
                    self.stats.events_written += 1
                    self.events.stored(res)
                else:
                    self.events.forget(ev)

    # -------------------------------------------------------------- tracing

    def _trace_cycle(self, q: QueuedPodInfo, result: ScheduleResult, started_ns: int) -> None:
        pod = q.pod_info.pod
        tracer = telemetry.tracer()
        parent = telemetry.pod_context(pod)
        attrs = telemetry.pod_attributes(pod)
        end_ns = time.time_ns()
        queued_ns = self._queued_wall.pop(q.key, started_ns)
        span = tracer.start_span(
            "scheduler.queued",
            context=parent,
            start_time=min(queued_ns, started_ns),
            attributes={**attrs, "scheduler.attempts": q.attempts},
        )
        span.end(end_time=started_ns)
        filtered: dict[str, Any] = {
            **attrs,
            "scheduler.nodes.evaluated": result.evaluated_nodes,
            "scheduler.nodes.feasible": result.feasible_nodes,
        }
        for plugin, passed in result.passed_per_plugin().items():
            filtered[f"scheduler.filter.{plugin}.passed"] = passed
        span = tracer.start_span(
            "scheduler.filtered", context=parent, start_time=started_ns, attributes=filtered
        )
        span.end(end_time=end_ns)
        if result.node_name is not None:
            scored: dict[str, Any] = {
                **attrs,
                "scheduler.node": result.node_name,
                "scheduler.score": result.total_score,
            }
            for plugin, score in result.scores.items():
                scored[f"scheduler.score.{plugin}"] = score
            span = tracer.start_span(
                "scheduler.scored", context=parent, start_time=end_ns, attributes=scored
            )
            span.end(end_time=end_ns)
        else:
            span = tracer.start_span(
                "scheduler.unschedulable",
                context=parent,
                start_time=end_ns,
                attributes={**attrs, "scheduler.reason": result.message},
            )
            span.set_status(Status(StatusCode.ERROR, result.message))
            span.end(end_time=end_ns)

    def _trace_bind(self, b: _Bind, error: str) -> None:
        pod = b.pi.pod
        span = telemetry.tracer().start_span(
            "scheduler.bound",
            context=telemetry.pod_context(pod),
            start_time=b.started_ns or None,
            attributes={**telemetry.pod_attributes(pod), "k8s.node.name": b.node},
            kind=trace.SpanKind.CLIENT,
        )
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
            span.set_attribute("scheduler.requeued", True)
        span.end()

    # -------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        return {
            "leader": self.token is not None,
            "token": self.token,
            "nodes": self.snapshot.num_nodes,
            "queue.active": self.queue.active_count,
            "queue.backoff": self.queue.backoff_count,
            "queue.unschedulable": self.queue.unschedulable_count,
            "assumed": len(self.snapshot.assumed),
            "bound": self.stats.bound,
            "bind_conflicts": self.stats.bind_conflicts,
            "unschedulable": self.stats.unschedulable,
            "preemptions": self.stats.preemptions,
            "status_writes": self.stats.status_writes,
            "events_written": self.stats.events_written,
        }
