"""Performing a plan's actions against the store, in batches.

Owns the driver side of the contract written in logic/actions.py:

- consecutive actions of one type go out as one batch, one Redis round trip
  (`create_many`, `update_many`, `update_status_many`, `delete_many`); pod
  creates go in slow-start batches (1, 2, 4, ... from the configured
  initial size), stopping at the first batch with a failure;
- the first failing batch ends the run: the caller requeues the object
  with back-off, and the next sync plans again from fresh state;
- every successful write is fed straight back into the informer cache
  (`Cache.observe`), so the next sync sees the pods it just created even
  before their watch events arrive (what Kubernetes' expectations are for);
- an object written twice in one run (a metadata patch, then its status)
  has its resourceVersion carried from the first write to the second, since
  the only change between them is our own;
- events are recorded through the EventCorrelator and written once at the
  end of a run (creates and count updates, batched);
- each created pod gets the root span of its trace (annotation
  podbus.io/traceparent, linked to its owner's rollout or run trace), and
  spans `workload-controller.admitted` / `.created` with attribute `owner`.

Revisions of StatefulSets and the node of each per-ordinal claim live in
Redis hashes (`podbus:wc:revisions:<ns>`, `podbus:wc:claims:<ns>`), cached
here; they survive a controller restart or failover.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
from podmodel.defaults import job_selector_defaults
from podmodel.event import Event
from podmodel.meta import KubeObject, OwnerReference, controller_of
from podmodel.pod import Pod, PodTemplateSpec
from podmodel.registry import is_namespaced
from podmodel.workloads import Job, ReplicaSet
from servicekit.store import Conflict, NotFound, Store, StoreError
from servicekit.telemetry import TRACEPARENT_ANNOTATION, new_root_traceparent, start_pod_span

from services.workload_controller.deletion import delete_with_policy
from services.workload_controller.intake import open_trace
from services.workload_controller.logic.actions import (
    Action,
    CreateObject,
    CreatePod,
    DeleteObject,
    DeletePod,
    DeleteRevision,
    EmitEvent,
    PatchMetadata,
    RecordClaimNode,
    Requeue,
    SaveRevision,
    UpdateObject,
    UpdateStatus,
    slow_start_batches,
)
from services.workload_controller.logic.deployment import REVISION_ANNOTATION
from services.workload_controller.logic.events import EventCorrelator
from services.workload_controller.logic.snapshots import clone
from services.workload_controller.logic.statefulset import StoredRevision

log = logging.getLogger(__name__)

REVISIONS_PREFIX = "podbus:wc:revisions:"
CLAIMS_PREFIX = "podbus:wc:claims:"


class ActionFailed(Exception):
    """A batch failed; the object is synced again with back-off."""


class Cache(Protocol):
    """What the actuator needs from the informer caches."""

    def lookup(self, kind: str, namespace: str, name: str) -> KubeObject | None: ...

    def observe(self, obj: KubeObject, *, deleted: bool = False) -> None: ...

    async def flush(self) -> None: ...


class _StoredRevision(msgspec.Struct):
    owner_uid: str
    name: str
    revision: int
    template: bytes  # msgpack of the PodTemplateSpec


def now_utc() -> datetime:
    return datetime.now(UTC)


class Actuator:
    """Performs action lists for the controllers of one leadership term."""

    def __init__(
        self,
        store: Store,
        cache: Cache,
        correlator: EventCorrelator,
        *,
        slow_start_initial_batch: int = 1,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.store = store
        self.cache = cache
        self.correlator = correlator
        self.initial_batch = slow_start_initial_batch
        self.clock = clock
        self._revisions: dict[str, dict[str, _StoredRevision]] = {}
        self._claims: dict[str, dict[str, str]] = {}
        self.created_pods = 0

    # ------------------------------------------------------------ run

    async def perform(self, actions: Sequence[Action]) -> float | None:
        """Perform `actions`; returns the soonest Requeue delay, if any.
        Raises ActionFailed after the first failing batch (events of what
        succeeded are still written)."""
        requeues: list[float] = []
        events: list[EmitEvent] = []
        chained: dict[tuple[str, str, str, str], str] = {}
        try:
            await self._perform_all(actions, events, chained, requeues)
        except ActionFailed:
            await self._wrap_up(events)
            raise
        await self._wrap_up(events)
        return min(requeues) if requeues else None

    async def _wrap_up(self, events: list[EmitEvent]) -> None:
        """Dispatch our own writes to the caches' handlers and write the
        events of what succeeded (not on cancellation: a cancelled Redis
        call must not be followed by more calls on the way out)."""
        await self.cache.flush()
        if events:
            await self.write_events(events)

    async def _perform_all(
        self,
        actions: Sequence[Action],
        events: list[EmitEvent],
        chained: dict[tuple[str, str, str, str], str],
        requeues: list[float],
    ) -> None:
        i = 0
        while i < len(actions):
            kind = type(actions[i])
            j = i
            while j < len(actions) and type(actions[j]) is kind:
                j += 1
            group = actions[i:j]
            i = j
            if kind is Requeue:
                requeues.extend(a.after_s for a in group if isinstance(a, Requeue))
            elif kind is EmitEvent:
                events.extend(a for a in group if isinstance(a, EmitEvent))
            else:
                await self._perform_group(kind, group, events, chained)

    async def _perform_group(
        self,
        kind: type,
        group: Sequence[Action],
        events: list[EmitEvent],
        chained: dict[tuple[str, str, str, str], str],
    ) -> None:
        if kind is CreatePod:
            await self._create_pods([a for a in group if isinstance(a, CreatePod)], events)
        elif kind is DeletePod:
            await self._delete_pods([a for a in group if isinstance(a, DeletePod)], events)
        elif kind is CreateObject:
            await self._create_objects([a.obj for a in group if isinstance(a, CreateObject)])
        elif kind is UpdateObject:
            objs = [a.obj for a in group if isinstance(a, UpdateObject)]
            await self._update(objs, chained, status=False)
        elif kind is UpdateStatus:
            objs = [a.obj for a in group if isinstance(a, UpdateStatus)]
            await self._update(objs, chained, status=True)
        elif kind is DeleteObject:
            await self._delete_objects([a for a in group if isinstance(a, DeleteObject)])
        elif kind is PatchMetadata:
            for a in group:
                if isinstance(a, PatchMetadata):
                    await self._patch(a, chained)
        elif kind is SaveRevision:
            await self._save_revisions([a for a in group if isinstance(a, SaveRevision)])
        elif kind is DeleteRevision:
            await self._delete_revisions([a for a in group if isinstance(a, DeleteRevision)])
        elif kind is RecordClaimNode:
            await self._record_claims([a for a in group if isinstance(a, RecordClaimNode)])
        else:  # pragma: no cover - every Action type is handled above
            raise ActionFailed(f"unknown action {kind.__name__}")

    # ------------------------------------------------------------ pods

    def _owner_traceparent(self, obj: KubeObject) -> str:
        ref = controller_of(obj.metadata)
        if ref is None:
            return ""
        owner = self.cache.lookup(ref.kind, obj.metadata.namespace, ref.name)
        if owner is None or owner.metadata.uid != ref.uid:
            return ""
        return owner.metadata.annotations.get(TRACEPARENT_ANNOTATION, "")

    def _with_root_span(self, pod: Pod) -> Pod:
        """Open the pod's trace (linked to its owner's) before the create."""
        owner_tp = self._owner_traceparent(pod)
        traceparent = new_root_traceparent(pod, links=(owner_tp,) if owner_tp else ())
        if traceparent:
            pod.metadata.annotations = {
                **pod.metadata.annotations,
                TRACEPARENT_ANNOTATION: traceparent,
            }
            ref = controller_of(pod.metadata)
            owner = f"{ref.kind}/{ref.name}" if ref else ""
            with start_pod_span(pod, "workload-controller.admitted", attributes={"owner": owner}):
                pass
        return pod

    async def _create_pods(self, creates: list[CreatePod], events: list[EmitEvent]) -> None:
        for batch in slow_start_batches(creates, self.initial_batch):
            pods = [self._with_root_span(a.pod) for a in batch]
            written_from = time.time_ns()
            results = await self.store.create_many(pods)
            failed: list[StoreError] = []
            for action, result in zip(batch, results, strict=True):
                if isinstance(result, StoreError):
                    failed.append(result)
                    continue
                self.created_pods += 1
                self.cache.observe(result)
                if result.metadata.annotations.get(TRACEPARENT_ANNOTATION):
                    ref = controller_of(result.metadata)
                    with start_pod_span(
                        result,
                        "workload-controller.created",
                        attributes={"owner": f"{ref.kind}/{ref.name}" if ref else ""},
                        start_time=written_from,
                    ):
                        pass
                if action.event is not None:
                    events.append(action.event)
            if failed:
                raise ActionFailed(f"creating pods failed: {failed[0]}")

    async def _delete_pods(self, deletes: list[DeletePod], events: list[EmitEvent]) -> None:
        todo: list[DeletePod] = []
        for a in deletes:
            current = self.cache.lookup("Pod", a.namespace, a.name)
            if current is not None and a.uid and current.metadata.uid != a.uid:
                continue  # a newer pod of the same name: not ours to delete
            todo.append(a)
        results = await self.store.delete_many(
            [("Pod", a.namespace, a.name, None, None) for a in todo]
        )
        failed: list[StoreError] = []
        for action, result in zip(todo, results, strict=True):
            if isinstance(result, NotFound):
                continue
            if isinstance(result, StoreError):
                failed.append(result)
                continue
            self._observe_deletion("Pod", action.namespace, action.name, result)
            if action.event is not None:
                events.append(action.event)
        if failed:
            raise ActionFailed(f"deleting pods failed: {failed[0]}")

    def _forget_if_gone(self, a: PatchMetadata, current: KubeObject | None) -> None:
        """The store no longer has that incarnation: drop it from the cache
        too, in case its DELETED event was dropped as not newer than a
        write we fed in ourselves."""
        if current is not None and current.metadata.uid == a.uid:
            return
        cached = self.cache.lookup(a.kind, a.namespace, a.name)
        if cached is not None and cached.metadata.uid == a.uid:
            self.cache.observe(cached, deleted=True)

    async def _observe_write(self, result: KubeObject) -> None:
        """Feed an update's result to the cache. Removing the last finalizer
        of an object being deleted removes it, and the store then returns its
        last state: ask the store, or the cache would keep a ghost (and drop
        the DELETED event as not newer)."""
        meta = result.metadata
        if meta.deletion_timestamp is not None and not meta.finalizers:
            kind = result.kind or result.KIND
            if await self.store.get(kind, meta.namespace, meta.name) is None:
                self.cache.observe(result, deleted=True)
                return
        self.cache.observe(result)

    def _observe_deletion(
        self, kind: str, namespace: str, name: str, result: KubeObject | None
    ) -> None:
        if result is not None:
            self.cache.observe(result)
            return
        cached = self.cache.lookup(kind, namespace, name)
        if cached is not None:
            self.cache.observe(cached, deleted=True)

    # ------------------------------------------------------------ objects

    async def _create_objects(self, objs: list[KubeObject]) -> None:
        prepared = []
        for obj in objs:
            if isinstance(obj, ReplicaSet):
                obj = self._with_rollout_trace(obj)
            elif isinstance(obj, Job):
                open_trace(obj)  # a Job run is a trace of its own, as at the intake
            prepared.append(obj)
        results = await self.store.create_many(prepared)
        for result in results:
            if isinstance(result, StoreError):
                raise ActionFailed(f"create failed: {result}")
            if isinstance(result, Job) and not result.spec.manual_selector:
                # a CronJob's Job: its selector names its uid, known only now
                job_selector_defaults(result)
                result = await self.store.update(result, expected_rv="")
            self.cache.observe(result)

    def _with_rollout_trace(self, rs: ReplicaSet) -> ReplicaSet:
        """A Deployment's new ReplicaSet is a rollout: a trace of its own,
        which its pods' root spans link to."""
        ref = controller_of(rs.metadata)
        if ref is None or ref.kind != "Deployment":
            return rs
        revision = rs.metadata.annotations.get(REVISION_ANNOTATION, "")
        traceparent = new_root_traceparent(
            rs,
            name=f"rollout {rs.metadata.namespace}/{ref.name} revision {revision}",
            attributes={"k8s.deployment.name": ref.name, "revision": revision},
        )
        if traceparent:
            rs.metadata.annotations = {
                **rs.metadata.annotations,
                TRACEPARENT_ANNOTATION: traceparent,
            }
        return rs

    async def _update(
        self,
        objs: list[KubeObject],
        chained: dict[tuple[str, str, str, str], str],
        *,
        status: bool,
    ) -> None:
        expected: list[str | None] = []
        for obj in objs:
            meta = obj.metadata
            key = (obj.kind or obj.KIND, meta.namespace, meta.name, meta.resource_version)
            expected.append(chained.get(key))
        if status:
            results = await self.store.update_status_many(objs, expected)
        else:
            results = await self.store.update_many(objs, expected)
        failed: list[StoreError] = []
        for obj, result in zip(objs, results, strict=True):
            if isinstance(result, NotFound):
                continue  # deleted meanwhile: its DELETED event ends its syncs
            if isinstance(result, StoreError):
                failed.append(result)
                continue
            meta = obj.metadata
            chained[(obj.kind or obj.KIND, meta.namespace, meta.name, meta.resource_version)] = (
                result.metadata.resource_version
            )
            await self._observe_write(result)
        if failed:
            raise ActionFailed(f"update failed: {failed[0]}")

    async def _owner_absent(self, namespace: str, ref: OwnerReference) -> bool:
        """Kubernetes' live read before deleting a dependent: the owner must
        really be gone (or replaced by a new incarnation)."""
        if not is_namespaced(ref.kind):
            namespace = ""  # a Node owns its static pods' mirrors
        try:
            current = await self.store.get(ref.kind, namespace, ref.name)
        except StoreError:
            return False
        return current is None or current.metadata.uid != ref.uid

    async def _delete_objects(self, deletes: list[DeleteObject]) -> None:
        absent: dict[tuple[str, str, str], bool] = {}
        confirmed: list[DeleteObject] = []
        for a in deletes:
            ok = True
            for ref in a.verify_absent:
                key = (a.namespace, ref.kind, ref.uid)
                if key not in absent:
                    absent[key] = await self._owner_absent(a.namespace, ref)
                ok = ok and absent[key]
            if ok:
                confirmed.append(a)
        # Pods in the Background (the bulk of any clean-up) go in one batch.
        pods = [a for a in confirmed if a.kind == "Pod"]
        others = [a for a in confirmed if a.kind != "Pod"]
        if pods:
            fresh = [
                a
                for a in pods
                if (cur := self.cache.lookup("Pod", a.namespace, a.name)) is None
                or not a.uid
                or cur.metadata.uid == a.uid
            ]
            results = await self.store.delete_many(
                [("Pod", a.namespace, a.name, None, None) for a in fresh]
            )
            for a, result in zip(fresh, results, strict=True):
                if isinstance(result, NotFound):
                    continue
                if isinstance(result, StoreError):
                    raise ActionFailed(f"deleting pod {a.namespace}/{a.name} failed: {result}")
                self._observe_deletion("Pod", a.namespace, a.name, result)
        for a in others:
            try:
                result = await delete_with_policy(
                    self.store,
                    a.kind,
                    a.namespace,
                    a.name,
                    policy=a.propagation_policy,
                    uid=a.uid,
                )
            except NotFound:
                continue
            except StoreError as exc:
                raise ActionFailed(f"deleting {a.kind} {a.namespace}/{a.name}: {exc}") from exc
            self._observe_deletion(a.kind, a.namespace, a.name, result)

    async def _patch(
        self, a: PatchMetadata, chained: dict[tuple[str, str, str, str], str], attempts: int = 4
    ) -> None:
        current = self.cache.lookup(a.kind, a.namespace, a.name)
        for attempt in range(attempts):
            if current is None or current.metadata.uid != a.uid:
                if attempt == 0:
                    current = await self.store.get(a.kind, a.namespace, a.name)
                    if current is not None and current.metadata.uid == a.uid:
                        continue
                self._forget_if_gone(a, current)
                return  # gone or replaced: nothing to patch
            patched = patch_metadata(current, a)
            if patched is None:
                return
            try:
                result = await self.store.update(patched)
            except Conflict:
                current = await self.store.get(a.kind, a.namespace, a.name)
                continue
            except NotFound:
                self._forget_if_gone(a, None)
                return
            except StoreError as exc:
                raise ActionFailed(f"patching {a.kind} {a.namespace}/{a.name}: {exc}") from exc
            key = (a.kind, a.namespace, a.name, current.metadata.resource_version)
            chained[key] = result.metadata.resource_version
            await self._observe_write(result)
            return
        raise ActionFailed(f"patching {a.kind} {a.namespace}/{a.name}: conflicts")

    # ------------------------------------------------------------ revisions, claims

    async def revisions(self, namespace: str, owner_uid: str) -> dict[str, StoredRevision]:
        """A StatefulSet's saved revisions by name."""
        stored = await self._load_revisions(namespace)
        template_decoder = msgspec.msgpack.Decoder(PodTemplateSpec)
        return {
            name: StoredRevision(
                name=rev.name, revision=rev.revision, template=template_decoder.decode(rev.template)
            )
            for name, rev in stored.items()
            if rev.owner_uid == owner_uid
        }

    async def _load_revisions(self, namespace: str) -> dict[str, _StoredRevision]:
        cached = self._revisions.get(namespace)
        if cached is not None:
            return cached
        raw = await self.store.redis.hgetall(REVISIONS_PREFIX + namespace)
        decoder = msgspec.msgpack.Decoder(_StoredRevision)
        loaded = {
            (k.decode() if isinstance(k, bytes) else k): decoder.decode(
                v if isinstance(v, bytes) else v.encode()
            )
            for k, v in raw.items()
        }
        self._revisions[namespace] = loaded
        return loaded

    async def _save_revisions(self, saves: list[SaveRevision]) -> None:
        pipe = self.store.redis.pipeline(transaction=False)
        for a in saves:
            ns = a.owner.namespace
            rev = _StoredRevision(
                owner_uid=a.owner.uid,
                name=a.name,
                revision=a.revision,
                template=msgspec.msgpack.encode(a.template),
            )
            (await self._load_revisions(ns))[a.name] = rev
            pipe.hset(REVISIONS_PREFIX + ns, a.name, msgspec.msgpack.encode(rev))
        await pipe.execute()

    async def _delete_revisions(self, deletes: list[DeleteRevision]) -> None:
        pipe = self.store.redis.pipeline(transaction=False)
        for a in deletes:
            (await self._load_revisions(a.namespace)).pop(a.name, None)
            pipe.hdel(REVISIONS_PREFIX + a.namespace, a.name)
        await pipe.execute()

    async def claim_nodes(self, namespace: str) -> dict[str, str]:
        """Claim name -> node holding its volume, for one namespace."""
        cached = self._claims.get(namespace)
        if cached is None:
            raw = await self.store.redis.hgetall(CLAIMS_PREFIX + namespace)
            cached = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in raw.items()
            }
            self._claims[namespace] = cached
        return cached

    async def _record_claims(self, records: list[RecordClaimNode]) -> None:
        pipe = self.store.redis.pipeline(transaction=False)
        for a in records:
            (await self.claim_nodes(a.namespace))[a.claim_name] = a.node_name
            pipe.hset(CLAIMS_PREFIX + a.namespace, a.claim_name, a.node_name)
        await pipe.execute()

    # ------------------------------------------------------------ events

    async def write_events(self, emits: Sequence[EmitEvent]) -> None:
        """Record events (deduplicated with a count); failures are logged:
        an event is never worth failing a sync for."""
        writes = self.correlator.record_all(emits, self.clock())
        creates = [w.event for w in writes if w.created]
        updates = [w.event for w in writes if not w.created]
        try:
            results: list[Any] = []
            if creates:
                results.extend(await self.store.create_many(creates))
            if updates:
                results.extend(await self.store.update_many(updates, [""] * len(updates)))
        except Exception as exc:
            log.warning("writing %d events failed: %s", len(writes), exc)
            return
        for result in results:
            if isinstance(result, StoreError) and not isinstance(result, NotFound):
                log.debug("event write: %s", result)

    async def expire_events(self, ttl_s: float) -> int:
        """Delete Event records last seen more than `ttl_s` ago (this term's
        and any left by an earlier leader)."""
        now = self.clock()
        self.correlator.expire(now)
        events, _rv = await self.store.list(Event)
        old: list[tuple[str | type[KubeObject], str, str, int | None, str | None]] = []
        for ev in events:
            stamp = ev.last_timestamp or ev.metadata.creation_timestamp
            try:
                last = datetime.fromisoformat(stamp) if stamp else None
            except ValueError:
                last = None
            if last is None:
                continue
            if last.tzinfo is None:
                last = last.replace(tzinfo=UTC)
            if (now - last).total_seconds() >= ttl_s:
                old.append(("Event", ev.metadata.namespace, ev.metadata.name, None, None))
        if old:
            await self.store.delete_many(old)
        return len(old)


def patch_metadata(obj: KubeObject, a: PatchMetadata) -> KubeObject | None:
    """`obj` with the merge patch applied (a copy), or None when the patch
    changes nothing (or would add a second controller)."""
    meta = obj.metadata
    labels = dict(meta.labels)
    labels.update(a.set_labels)
    for k in a.remove_labels:
        labels.pop(k, None)
    annotations = dict(meta.annotations)
    annotations.update(a.set_annotations)
    for k in a.remove_annotations:
        annotations.pop(k, None)
    owners = [r for r in meta.owner_references if r.uid not in a.remove_owner_uids]
    if a.add_owner_reference is not None:
        if controller_of(meta) is not None:
            return None
        owners = [r for r in owners if r.uid != a.add_owner_reference.uid]
        owners.append(a.add_owner_reference)
    finalizers = [f for f in meta.finalizers if f not in a.remove_finalizers]
    if (
        labels == meta.labels
        and annotations == meta.annotations
        and owners == meta.owner_references
        and finalizers == meta.finalizers
    ):
        return None
    patched = clone(obj)
    patched.metadata.labels = labels
    patched.metadata.annotations = annotations
    patched.metadata.owner_references = owners
    patched.metadata.finalizers = finalizers
    return patched


async def gather_limited(coros: Sequence[Any], limit: int = 16) -> list[Any]:
    """Run coroutines with at most `limit` at once (for rare per-object work)."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))
