"""The controllers' driver: informers in, pure plans, actions out.

Owns one leadership term of the workload-controller's reconcilers
(ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob, garbage
collector, node lifecycle, event expiry). `Controllers.run()` is the leader's work: it is
started by servicekit.leader when this instance wins the lease and
cancelled when the lease is lost, so every term starts from fresh caches.

- Informers (pods, ReplicaSets, Deployments, StatefulSets, DaemonSets,
  Jobs, CronJobs, Nodes)
  keep caches and indexes (dependents by controller uid, orphans by
  namespace, pods by node); their handlers only enqueue keys.
- One level-triggered WorkQueue keyed by owner (kind, namespace, name);
  `workers` tasks take keys, read the current objects from the caches, call
  the plan with `now`, and hand its actions to the Actuator, which writes
  them in batches. A failed batch requeues the key with back-off; a plan's
  Requeue becomes a delayed add.
- The node-lifecycle key is synced every `node_monitor_period_s` (and on
  node changes) with the node-agents' leases (`podbus:lease:node:<name>`,
  epoch seconds) read in one MGET. The garbage collector runs over one
  snapshot of every cache, coalesced, on deletions and periodically.

Timings that tests shorten are in ControllerConfig, with Kubernetes'
defaults.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from nats.aio.client import Client as NATS
from podmodel.meta import KubeObject, controller_of
from podmodel.node import Node
from podmodel.pod import Pod
from podmodel.selector import selector_matches
from podmodel.workloads import CronJob, DaemonSet, Deployment, Job, ReplicaSet, StatefulSet
from servicekit.informer import Informer, rv_of
from servicekit.store import Store

from services.workload_controller.actuator import ActionFailed, Actuator, now_utc
from services.workload_controller.logic.cronjob import plan_cronjob
from services.workload_controller.logic.daemonset import plan_daemonset
from services.workload_controller.logic.deployment import plan_deployment
from services.workload_controller.logic.events import EventCorrelator
from services.workload_controller.logic.gc import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    plan_garbage_collection,
)
from services.workload_controller.logic.job import JobTuning, plan_job
from services.workload_controller.logic.node_lifecycle import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    NodeLifecycleTuning,
    plan_node_lifecycle,
)
from services.workload_controller.logic.replicaset import ReplicaSetTuning, plan_replicaset
from services.workload_controller.logic.statefulset import plan_statefulset
from services.workload_controller.workqueue import WorkQueue

log = logging.getLogger(__name__)

NODE_LEASE_PREFIX = "podbus:lease:node:"  # written by the node-agents (contract)

Key = tuple[str, str, str]
ObjKey = tuple[str, str]
NODE_LIFECYCLE: Key = ("NodeLifecycle", "", "")
GARBAGE_COLLECTOR: Key = ("GarbageCollector", "", "")
EVENT_EXPIRY: Key = ("EventExpiry", "", "")
POD_OWNER_KINDS = ("ReplicaSet", "StatefulSet", "DaemonSet", "Job")


@dataclass(frozen=True)
class ControllerConfig:
    """Timings and sizes. Defaults are Kubernetes' (node grace 40 s, monitor
    5 s, 300 s eviction toleration from the pods' default tolerations, Job
    back-off 10 s doubling to 6 min, events kept 1 h, burst 500, slow start
    1); tests shorten the timings, benchmarks raise the sizes."""

    node_grace_period_s: float = 40.0
    node_monitor_period_s: float = 5.0
    pod_eviction_toleration_s: float | None = None
    job_backoff_base_s: float = 10.0
    job_backoff_max_s: float = 360.0
    event_ttl_s: float = 3600.0
    burst_replicas: int = 500
    slow_start_initial_batch: int = 1
    workers: int = 4
    resync_s: float = 30.0
    gc_period_s: float = 20.0


class OwnerIndex:
    """Objects of one kind by controller uid, and orphans by namespace."""

    def __init__(self) -> None:
        self.by_owner: dict[str, set[ObjKey]] = {}
        self.orphans: dict[str, set[ObjKey]] = {}

    def add(self, obj: KubeObject) -> None:
        key = (obj.metadata.namespace, obj.metadata.name)
        ref = controller_of(obj.metadata)
        if ref is None:
            self.orphans.setdefault(obj.metadata.namespace, set()).add(key)
        else:
            self.by_owner.setdefault(ref.uid, set()).add(key)

    def remove(self, obj: KubeObject) -> None:
        key = (obj.metadata.namespace, obj.metadata.name)
        ref = controller_of(obj.metadata)
        bucket = (
            self.orphans.get(obj.metadata.namespace) if ref is None else self.by_owner.get(ref.uid)
        )
        if bucket is not None:
            bucket.discard(key)

    def candidates(self, owner: KubeObject) -> set[ObjKey]:
        """Keys owned by `owner` plus its namespace's orphans."""
        return self.by_owner.get(owner.metadata.uid, set()) | self.orphans.get(
            owner.metadata.namespace, set()
        )


class Controllers:
    """One leadership term of every controller (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        nc: NATS,
        config: ControllerConfig | None = None,
        *,
        instance: str = "",
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.store = store
        self.nc = nc
        self.config = config or ControllerConfig()
        self.rng = rng or random.Random()
        self.clock = clock
        cfg = self.config
        self.rs_tuning = ReplicaSetTuning(
            burst_replicas=cfg.burst_replicas,
            slow_start_initial_batch=cfg.slow_start_initial_batch,
        )
        self.job_tuning = JobTuning(
            backoff_base_s=cfg.job_backoff_base_s, backoff_max_s=cfg.job_backoff_max_s
        )
        self.node_tuning = NodeLifecycleTuning(
            grace_period_s=cfg.node_grace_period_s,
            toleration_cap_s=cfg.pod_eviction_toleration_s,
        )
        self.queue: WorkQueue[Key] = WorkQueue()
        self.pod_index = OwnerIndex()
        self.rs_index = OwnerIndex()
        self.pods_by_node: dict[str, set[ObjKey]] = {}
        self.pods = self._informer(Pod)
        self.replica_sets = self._informer(ReplicaSet)
        self.deployments = self._informer(Deployment)
        self.stateful_sets = self._informer(StatefulSet)
        self.daemon_sets = self._informer(DaemonSet)
        self.jobs = self._informer(Job)
        self.cron_jobs = self._informer(CronJob)
        self.nodes = self._informer(Node)
        self._by_kind: dict[str, Informer[Any]] = {
            "Pod": self.pods,
            "ReplicaSet": self.replica_sets,
            "Deployment": self.deployments,
            "StatefulSet": self.stateful_sets,
            "DaemonSet": self.daemon_sets,
            "Job": self.jobs,
            "CronJob": self.cron_jobs,
            "Node": self.nodes,
        }
        self._dirty_informers: set[str] = set()
        self.correlator = EventCorrelator(
            "workload-controller", instance, ttl_s=self.config.event_ttl_s
        )
        self.actuator = Actuator(
            store,
            self,
            self.correlator,
            slow_start_initial_batch=cfg.slow_start_initial_batch,
            clock=clock,
        )
        self.syncs = 0
        self.ready = asyncio.Event()
        self._wire_handlers()

    def _informer(self, kind: type[Any]) -> Informer[Any]:
        return Informer(self.store, self.nc, kind, resync_s=self.config.resync_s)

    # ------------------------------------------------------------ cache (for the actuator)

    def lookup(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        informer = self._by_kind.get(kind)
        return informer.get(namespace, name) if informer is not None else None

    def observe(self, obj: KubeObject, *, deleted: bool = False) -> None:
        """Feed our own write into the cache (see actuator.py)."""
        kind = obj.kind or obj.KIND
        informer = self._by_kind.get(kind)
        if informer is None:
            return
        if deleted:
            informer.apply_event("DELETED", obj, rv_of(obj) + 1)
        else:
            informer.apply_event("MODIFIED", obj, rv_of(obj))
        self._dirty_informers.add(kind)

    async def flush(self) -> None:
        dirty, self._dirty_informers = self._dirty_informers, set()
        for kind in dirty:
            await self._by_kind[kind].dispatch()

    # ------------------------------------------------------------ event handlers

    def _wire_handlers(self) -> None:
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )
        self.replica_sets.add_handlers(
            on_add=self._rs_added, on_update=self._rs_updated, on_delete=self._rs_deleted
        )
        for kind, informer in (
            ("Deployment", self.deployments),
            ("StatefulSet", self.stateful_sets),
            ("DaemonSet", self.daemon_sets),
            ("Job", self.jobs),
            ("CronJob", self.cron_jobs),
        ):
            informer.add_handlers(
                on_add=self._owner_handler(kind),
                on_update=self._owner_update_handler(kind),
                on_delete=self._owner_deleted_handler(kind),
            )
        self.nodes.add_handlers(
            on_add=self._node_added_or_deleted,
            on_update=self._node_updated,
            on_delete=self._node_added_or_deleted,
        )

    def _kick_gc(self) -> None:
        self.queue.add_after(GARBAGE_COLLECTOR, 0.05)

    def _enqueue_pod_owner(self, pod: Pod) -> None:
        ref = controller_of(pod.metadata)
        ns = pod.metadata.namespace
        if ref is not None:
            if ref.kind in POD_OWNER_KINDS:
                self.queue.add((ref.kind, ns, ref.name))
            return
        if pod.metadata.deletion_timestamp is not None:
            return
        labels = pod.metadata.labels
        for kind, informer in (
            ("ReplicaSet", self.replica_sets),
            ("StatefulSet", self.stateful_sets),
            ("DaemonSet", self.daemon_sets),
            ("Job", self.jobs),
        ):
            for owner in informer.cache.values():
                if owner.metadata.namespace == ns and selector_matches(owner.spec.selector, labels):
                    self.queue.add((kind, ns, owner.metadata.name))

    def _index_pod(self, pod: Pod) -> None:
        self.pod_index.add(pod)
        if pod.spec.node_name:
            self.pods_by_node.setdefault(pod.spec.node_name, set()).add(
                (pod.metadata.namespace, pod.metadata.name)
            )

    def _unindex_pod(self, pod: Pod) -> None:
        self.pod_index.remove(pod)
        if pod.spec.node_name:
            bucket = self.pods_by_node.get(pod.spec.node_name)
            if bucket is not None:
                bucket.discard((pod.metadata.namespace, pod.metadata.name))

    def _pod_added(self, pod: Pod) -> None:
        self._index_pod(pod)
        self._enqueue_pod_owner(pod)
        if pod.metadata.owner_references and self._owner_missing(pod):
            self._kick_gc()

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        self._unindex_pod(old)
        self._index_pod(new)
        self._enqueue_pod_owner(new)
        if controller_of(old.metadata) != controller_of(new.metadata):
            self._enqueue_pod_owner(old)

    def _pod_deleted(self, pod: Pod) -> None:
        self._unindex_pod(pod)
        self._enqueue_pod_owner(pod)
        ref = controller_of(pod.metadata)
        if ref is not None and ref.kind == "ReplicaSet":
            rs = self.replica_sets.get(pod.metadata.namespace, ref.name)
            if rs is not None:
                self._enqueue_rs_owner(rs)  # Recreate waits for old pods to go
        if pod.metadata.owner_references:
            self._kick_gc()

    def _owner_missing(self, obj: KubeObject) -> bool:
        for ref in obj.metadata.owner_references:
            owner = self.lookup(ref.kind, obj.metadata.namespace, ref.name)
            if owner is None or owner.metadata.uid != ref.uid:
                return True
        return False

    def _enqueue_rs_owner(self, rs: ReplicaSet) -> None:
        ref = controller_of(rs.metadata)
        ns = rs.metadata.namespace
        if ref is not None:
            if ref.kind == "Deployment":
                self.queue.add(("Deployment", ns, ref.name))
            return
        for d in self.deployments.cache.values():
            if d.metadata.namespace == ns and selector_matches(d.spec.selector, rs.metadata.labels):
                self.queue.add(("Deployment", ns, d.metadata.name))

    def _rs_added(self, rs: ReplicaSet) -> None:
        self.rs_index.add(rs)
        self.queue.add(("ReplicaSet", rs.metadata.namespace, rs.metadata.name))
        self._enqueue_rs_owner(rs)
        if rs.metadata.owner_references and self._owner_missing(rs):
            self._kick_gc()

    def _rs_updated(self, old: ReplicaSet, new: ReplicaSet) -> None:
        self.rs_index.remove(old)
        self.rs_index.add(new)
        self.queue.add(("ReplicaSet", new.metadata.namespace, new.metadata.name))
        self._enqueue_rs_owner(new)
        if controller_of(old.metadata) != controller_of(new.metadata):
            self._enqueue_rs_owner(old)
        if _deleting_with_finalizers(new):
            self._kick_gc()

    def _rs_deleted(self, rs: ReplicaSet) -> None:
        self.rs_index.remove(rs)
        self.queue.add(("ReplicaSet", rs.metadata.namespace, rs.metadata.name))
        self._enqueue_rs_owner(rs)
        self._kick_gc()

    def _owner_handler(self, kind: str) -> Callable[[KubeObject], None]:
        def added(obj: KubeObject) -> None:
            self.queue.add((kind, obj.metadata.namespace, obj.metadata.name))
            self._enqueue_cron_owner(obj)

        return added

    def _owner_update_handler(self, kind: str) -> Callable[[KubeObject, KubeObject], None]:
        def updated(old: KubeObject, new: KubeObject) -> None:
            self.queue.add((kind, new.metadata.namespace, new.metadata.name))
            self._enqueue_cron_owner(new)
            if _deleting_with_finalizers(new):
                self._kick_gc()

        return updated

    def _owner_deleted_handler(self, kind: str) -> Callable[[KubeObject], None]:
        def deleted(obj: KubeObject) -> None:
            self.queue.add((kind, obj.metadata.namespace, obj.metadata.name))
            self._enqueue_cron_owner(obj)
            self._kick_gc()

        return deleted

    def _enqueue_cron_owner(self, obj: KubeObject) -> None:
        """A Job of a CronJob changed: its CronJob counts it."""
        ref = controller_of(obj.metadata)
        if isinstance(obj, Job) and ref is not None and ref.kind == "CronJob":
            self.queue.add(("CronJob", obj.metadata.namespace, ref.name))

    def _node_added_or_deleted(self, node: Node) -> None:
        self.queue.add(NODE_LIFECYCLE)
        self._enqueue_daemon_sets()

    def _node_updated(self, old: Node, new: Node) -> None:
        if old.spec.taints != new.spec.taints or old.status.conditions != new.status.conditions:
            self.queue.add(NODE_LIFECYCLE)
        if old.spec.taints != new.spec.taints or old.metadata.labels != new.metadata.labels:
            self._enqueue_daemon_sets()  # which nodes should run a daemon pod

    def _enqueue_daemon_sets(self) -> None:
        for ds in self.daemon_sets.cache.values():
            self.queue.add(("DaemonSet", ds.metadata.namespace, ds.metadata.name))

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        """Start informers, wait for their first lists, then work until
        cancelled (the end of the leadership term)."""
        async with asyncio.TaskGroup() as group:
            for kind, informer in self._by_kind.items():
                group.create_task(informer.run(), name=f"informer:{kind}")
            for informer in self._by_kind.values():
                await informer.wait_synced()
            for informer in self._by_kind.values():
                for obj in informer.items():
                    self._enqueue_initial(obj)
            self.queue.add(NODE_LIFECYCLE)
            self.queue.add(GARBAGE_COLLECTOR)
            self.queue.add(EVENT_EXPIRY)
            for i in range(max(1, self.config.workers)):
                group.create_task(self._worker(), name=f"worker:{i}")
            self.ready.set()
            log.info("controllers running (%d workers)", self.config.workers)

    def _enqueue_initial(self, obj: KubeObject) -> None:
        kind = obj.kind or obj.KIND
        if kind in ("ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
            self.queue.add((kind, obj.metadata.namespace, obj.metadata.name))

    async def _worker(self) -> None:
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # A library below swallowed our cancellation (redis-py can,
                # when it lands mid-command): honour it here.
                raise asyncio.CancelledError
            key = await self.queue.get()
            try:
                delay = await self.sync(key)
            except asyncio.CancelledError:
                raise
            except ActionFailed as exc:
                log.info("%s %s/%s: %s; retrying", key[0], key[1], key[2], exc)
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("%s %s/%s: sync failed", *key)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
                if delay is not None:
                    self.queue.add_after(key, delay)
            finally:
                self.queue.done(key)

    async def sync(self, key: Key) -> float | None:
        """Run one key's plan and perform its actions; the Requeue delay."""
        self.syncs += 1
        kind, ns, name = key
        now = self.clock()
        if kind == "ReplicaSet":
            rs = self.replica_sets.get(ns, name)
            if rs is None:
                return None
            pods = self._pods_for(self.pod_index.candidates(rs))
            return await self.actuator.perform(
                plan_replicaset(rs, pods, now, self.rng, self.rs_tuning)
            )
        if kind == "Deployment":
            d = self.deployments.get(ns, name)
            if d is None:
                return None
            rss = [
                rs
                for k in self.rs_index.candidates(d)
                if (rs := self.replica_sets.cache.get(k)) is not None
            ]
            pod_keys: set[ObjKey] = set()
            for rs in rss:
                pod_keys |= self.pod_index.by_owner.get(rs.metadata.uid, set())
            return await self.actuator.perform(
                plan_deployment(d, rss, self._pods_for(pod_keys), now)
            )
        if kind == "StatefulSet":
            sts = self.stateful_sets.get(ns, name)
            if sts is None:
                return None
            pods = self._pods_for(self.pod_index.candidates(sts))
            revisions = await self.actuator.revisions(ns, sts.metadata.uid)
            claims = await self.actuator.claim_nodes(ns)
            return await self.actuator.perform(
                plan_statefulset(sts, pods, revisions, dict(claims), now)
            )
        if kind == "DaemonSet":
            ds = self.daemon_sets.get(ns, name)
            if ds is None:
                return None
            pods = self._pods_for(self.pod_index.candidates(ds))
            return await self.actuator.perform(
                plan_daemonset(ds, self.nodes.items(), pods, now, self.rng)
            )
        if kind == "CronJob":
            cj = self.cron_jobs.get(ns, name)
            if cj is None:
                return None
            uid = cj.metadata.uid
            jobs = [
                j
                for j in self.jobs.cache.values()
                if j.metadata.namespace == ns
                and any(r.uid == uid for r in j.metadata.owner_references)
            ]
            return await self.actuator.perform(plan_cronjob(cj, jobs, now))
        if kind == "Job":
            job = self.jobs.get(ns, name)
            if job is None or (job.spec.selector is None and not job.spec.manual_selector):
                return None  # the API gives a new Job its uid selector right after the create
            pods = self._pods_for(self.pod_index.candidates(job))
            return await self.actuator.perform(plan_job(job, pods, now, self.rng, self.job_tuning))
        if key == NODE_LIFECYCLE:
            await self._sync_node_lifecycle(now)
            return None
        if key == GARBAGE_COLLECTOR:
            await self._sync_gc()
            return self.config.gc_period_s
        if key == EVENT_EXPIRY:
            await self.actuator.expire_events(self.config.event_ttl_s)
            return max(1.0, min(60.0, self.config.event_ttl_s / 4))
        log.warning("unknown work key %r", key)
        return None

    def _pods_for(self, keys: Iterable[ObjKey]) -> list[Pod]:
        cache = self.pods.cache
        return [p for k in keys if (p := cache.get(k)) is not None]

    async def _sync_node_lifecycle(self, now: datetime) -> None:
        nodes = self.nodes.items()
        leases: dict[str, datetime] = {}
        if nodes:
            names = [n.metadata.name for n in nodes]
            values = await self.store.redis.mget([NODE_LEASE_PREFIX + n for n in names])
            for name, value in zip(names, values, strict=True):
                if value is None:
                    continue
                try:
                    leases[name] = datetime.fromtimestamp(float(value), UTC)
                except (TypeError, ValueError):
                    log.warning("node %s: unreadable lease %r", name, value)
        suspect: set[ObjKey] = set()
        grace = self.config.node_grace_period_s
        for node in nodes:
            name = node.metadata.name
            renewed = leases.get(name)
            ready = node.status.condition("Ready")
            stale = renewed is None or (now - renewed).total_seconds() > grace
            tainted = any(t.key in (TAINT_UNREACHABLE, TAINT_NOT_READY) for t in node.spec.taints)
            if stale or tainted or ready is None or ready.status != "True":
                suspect |= self.pods_by_node.get(name, set())
        actions = plan_node_lifecycle(
            nodes,
            cast("dict[str, str | datetime]", leases),
            self._pods_for(suspect),
            now,
            self.node_tuning,
        )
        delay = await self.actuator.perform(actions)
        period = self.config.node_monitor_period_s
        self.queue.add_after(NODE_LIFECYCLE, period if delay is None else min(delay, period))

    async def _sync_gc(self) -> None:
        # Nodes are in the snapshot as owners: a static pod's mirror is owned
        # by its Node, and must not look orphaned.
        snapshot: list[KubeObject] = []
        for informer in self._by_kind.values():
            snapshot.extend(informer.cache.values())
        actions = plan_garbage_collection(snapshot)
        if actions:
            log.debug("garbage collector: %s", actions)
        await self.actuator.perform(actions)


def _deleting_with_finalizers(obj: KubeObject) -> bool:
    meta = obj.metadata
    return meta.deletion_timestamp is not None and bool(
        {FOREGROUND_FINALIZER, ORPHAN_FINALIZER} & set(meta.finalizers)
    )


async def lead(
    store: Store,
    nc: NATS,
    config: ControllerConfig,
    *,
    instance: str,
    started: Callable[[Controllers], Any] | None = None,
) -> None:
    """The leader's work for one term: run the controllers until cancelled."""
    controllers = Controllers(store, nc, config, instance=instance)
    if started is not None:
        started(controllers)
    await controllers.run()
