"""The workload-controller's desired-state intake over NATS: request-reply
handlers for podbus.api.apply/get/list/delete in queue group
"workload-controller". The rules live in api.py; this module only moves bytes
between the bus and the store.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from typing import Any

import msgspec
from nats.aio.msg import Msg
from podmodel import subjects
from podmodel.api import (
    ApplyReply,
    ApplyRequest,
    DeleteRequest,
    EphemeralRequest,
    GetRequest,
    ListReply,
    ListRequest,
    RollbackReply,
    RollbackRequest,
)
from podmodel.codec import ErrorReply, FieldError, decode_raw, encode, to_builtins
from podmodel.config import ConfigMap, Secret
from podmodel.defaults import job_selector_defaults
from podmodel.meta import KubeObject, Model
from podmodel.pod import Pod
from podmodel.selector import parse_selector
from podmodel.subjects import STREAM_DESIRED
from podmodel.workloads import Deployment, Job, ReplicaSet
from servicekit.bus import ApiError, Bus, wants_json
from servicekit.runner import ServiceContext
from servicekit.store import AlreadyExists, Store, StoreError
from servicekit.telemetry import TRACEPARENT_ANNOTATION, new_root_traceparent, start_pod_span

from services.workload_controller.api import (
    prepare_object,
    validate_config_update,
    validate_ephemeral_update,
    validate_pod_update,
)
from services.workload_controller.deletion import delete_with_policy
from services.workload_controller.logic.actions import UpdateObject
from services.workload_controller.logic.deployment import (
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    RollbackError,
    plan_rollback,
)

log = logging.getLogger(__name__)


def invalid(kind: str, name: str, problems: list[FieldError]) -> ApiError:
    """The 422 reply that lists every invalid field."""
    return ApiError(
        ErrorReply(
            error=f"{kind} {name!r} is invalid", reason="Invalid", code=422, details=problems
        )
    )


QUEUE = "workload-controller"

#: The cyclic GC's first-generation threshold in an intake process (Python's
#: default is 700 allocations).
GC_YOUNG_THRESHOLD = 20_000

#: Annotations the controllers (not clients) write: an apply that does not
#: mention them keeps them, as a three-way merge would.
CONTROLLER_ANNOTATIONS = (TRACEPARENT_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION)


def open_trace(obj: KubeObject) -> None:
    """A Pod's trace (or a Job's run trace, which its pods link to) starts
    when the object is created: the root span's context goes into the
    podbus.io/traceparent annotation before the create."""
    if TRACEPARENT_ANNOTATION in obj.metadata.annotations:
        return
    if isinstance(obj, Pod):
        traceparent = new_root_traceparent(obj)
    elif isinstance(obj, Job):
        meta = obj.metadata
        traceparent = new_root_traceparent(
            obj,
            name=f"job {meta.namespace}/{meta.name}",
            attributes={"k8s.job.name": meta.name},
        )
    else:
        return
    if traceparent:
        obj.metadata.annotations = {**obj.metadata.annotations, TRACEPARENT_ANNOTATION: traceparent}


def _store_error(exc: StoreError) -> ApiError:
    reason = type(exc).__name__
    code = {"NotFound": 404, "AlreadyExists": 409, "Conflict": 409, "Invalid": 422}.get(reason, 400)
    return ApiError(ErrorReply(error=str(exc), reason=reason, code=code))


class ApplyReplyWire(Model):
    """podmodel.api.ApplyReply on the wire, with the object already encoded."""

    object: msgspec.Raw
    warnings: list[str] = []
    created: bool = False


class CreateBatcher:
    """Creates from concurrent requests, sent as one `create_many` (one Lua
    call, one round trip) per batch: while a batch is in flight the next
    one gathers, so under load each Redis round trip carries many creates
    and when idle a create goes out at once. A create fails alone (its own
    StoreError), never its batch neighbours."""

    def __init__(self, store: Store, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._waiting: list[tuple[KubeObject, asyncio.Future[KubeObject]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def create(self, obj: KubeObject) -> KubeObject:
        future: asyncio.Future[KubeObject] = asyncio.get_running_loop().create_future()
        self._waiting.append((obj, future))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Send batches until nothing waits (the batcher's own task, started
        when a create finds it idle; requests wait for their futures)."""
        try:
            await self._send_batches()
        finally:
            self._sender = None
            for _obj, future in self._waiting:  # cancelled mid-way: fail, never hang
                if not future.done():
                    future.set_exception(StoreError("create batcher stopped"))
            self._waiting.clear()

    async def _send_batches(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                results = await self.store.create_many(
                    [obj for obj, _ in batch], on_result=functools.partial(_resolve, batch)
                )
            except Exception as exc:
                for _obj, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_obj, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, StoreError):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            await asyncio.sleep(0)  # let the requests that arrived meanwhile join


def _resolve(
    batch: list[tuple[KubeObject, asyncio.Future[KubeObject]]],
    index: int,
    result: KubeObject | StoreError,
) -> None:
    """Settle one request of a create batch. The store calls it before the
    batch's watch events are published: the waiting requests resume first,
    and their replies leave in the same write to NATS as the events (after
    them), one socket write per batch instead of two."""
    future = batch[index][1]
    if future.done():
        return
    if isinstance(result, StoreError):
        future.set_exception(result)
    else:
        future.set_result(result)


class Intake:
    """Handlers bound to one store; each turns a request into a reply or ApiError."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.creates = CreateBatcher(store)

    async def apply(self, req: ApplyRequest, msg: Msg) -> ApplyReplyWire:
        """podbus.api.apply. The reply carries the stored object encoded once,
        straight from its struct, in the caller's format (no detour through
        builtins: a fifth of an apply's CPU)."""
        obj, warnings, created = await self.apply_object(req.object, dry_run=req.dry_run)
        return ApplyReplyWire(
            object=msgspec.Raw(encode(obj, json=wants_json(msg))),
            warnings=warnings,
            created=created,
        )

    async def apply_raw(self, raw: Any, *, dry_run: bool = False) -> ApplyReply:
        """Create or update one object from its raw (decoded) form; the
        reply with the object as builtins (the desired stream, tests)."""
        obj, warnings, created = await self.apply_object(raw, dry_run=dry_run)
        return ApplyReply(object=to_builtins(obj), warnings=warnings, created=created)

    async def _create(self, obj: KubeObject) -> KubeObject | None:
        """Create `obj` with its trace opened; None if the name exists (the
        object is left as it came, without a new trace annotation)."""
        had_trace = TRACEPARENT_ANNOTATION in obj.metadata.annotations
        open_trace(obj)
        traced = not had_trace and TRACEPARENT_ANNOTATION in obj.metadata.annotations
        if traced and isinstance(obj, Pod):
            with start_pod_span(obj, "workload-controller.admitted", attributes={"owner": ""}):
                pass
        try:
            stored = await self.creates.create(obj)
        except AlreadyExists:
            if traced:
                obj.metadata.annotations = {
                    k: v for k, v in obj.metadata.annotations.items() if k != TRACEPARENT_ANNOTATION
                }
            return None
        if isinstance(stored, Job) and not stored.spec.manual_selector:
            # The selector and pod labels name the uid, known only now.
            # Unconditional: the Job controller may already have written the
            # status (the update keeps it), and nothing else knows the Job yet.
            job_selector_defaults(stored)
            stored = await self.store.update(stored, expected_rv="")
        if traced and isinstance(stored, Pod):
            with start_pod_span(stored, "workload-controller.created", attributes={"owner": ""}):
                pass
        return stored

    async def apply_object(
        self, raw: Any, *, dry_run: bool = False
    ) -> tuple[KubeObject, list[str], bool]:
        """Create or update one object from its raw (decoded) form: the
        stored (or, dry run, the prepared) object, warnings, and whether it
        was created.

        A create is tried first (most applies of a new name are creates, and
        the store refuses a second object of a name atomically); only when
        the name exists is the object read and updated."""
        prepared = prepare_object(raw)
        if isinstance(prepared, ErrorReply):
            log.warning("apply rejected: %s", prepared.error)
            raise ApiError(prepared)
        obj, warnings = prepared
        meta = obj.metadata
        try:
            for _attempt in range(3):
                if dry_run:
                    existing = await self.store.get(obj.KIND, meta.namespace, meta.name)
                    if existing is None:
                        return obj, warnings, True
                else:
                    stored = await self._create(obj)
                    if stored is not None:
                        return stored, warnings, True
                    existing = await self.store.get(obj.KIND, meta.namespace, meta.name)
                if existing is not None:
                    break
            else:
                raise ApiError(
                    ErrorReply(
                        error=f"{obj.KIND} {meta.namespace}/{meta.name}: created and deleted "
                        "concurrently; try again",
                        reason="Conflict",
                        code=409,
                    )
                )
            kept = {
                k: v
                for k in CONTROLLER_ANNOTATIONS
                if k not in meta.annotations and (v := existing.metadata.annotations.get(k))
            }
            if kept:
                meta.annotations = {**meta.annotations, **kept}
            problems: list[FieldError] = []
            if isinstance(obj, Pod) and isinstance(existing, Pod):
                problems = validate_pod_update(obj.spec, existing.spec)
            elif isinstance(obj, ConfigMap | Secret) and type(existing) is type(obj):
                problems = validate_config_update(obj, existing)
            if problems:
                raise invalid(obj.KIND, meta.name, problems)
            if dry_run:
                return obj, warnings, False
            stored = await self.store.update(obj)
        except StoreError as exc:
            raise _store_error(exc) from exc
        return stored, warnings, False

    async def get(self, req: GetRequest, msg: Msg) -> Any:
        try:
            obj = await self.store.get(req.kind, req.namespace, req.name)
        except StoreError as exc:
            raise _store_error(exc) from exc
        if obj is None:
            raise ApiError(
                ErrorReply(
                    error=f"{req.kind} {req.namespace}/{req.name} not found",
                    reason="NotFound",
                    code=404,
                )
            )
        return to_builtins(obj)

    async def list(self, req: ListRequest, msg: Msg) -> ListReply:
        try:
            selector = parse_selector(req.label_selector) if req.label_selector else None
        except ValueError as exc:
            raise ApiError(ErrorReply(error=f"labelSelector: {exc}")) from exc
        try:
            items, rv = await self.store.list(
                req.kind, req.namespace, selector=selector, node=req.node
            )
        except StoreError as exc:
            raise _store_error(exc) from exc
        return ListReply(items=[to_builtins(o) for o in items], resource_version=str(rv))

    async def delete(self, req: DeleteRequest, msg: Msg) -> Any:
        """Delete with propagationPolicy (Background, Foreground, Orphan):
        see deletion.py. A bound pod is marked and the node-agent finishes
        it; an unbound pod goes at once. Replies with the marked object, or
        {} when it is gone."""
        try:
            obj = await delete_with_policy(
                self.store,
                req.kind,
                req.namespace,
                req.name,
                policy=req.propagation_policy,
                grace_period_seconds=req.grace_period_seconds,
            )
        except StoreError as exc:
            raise _store_error(exc) from exc
        return to_builtins(obj) if obj is not None else {}

    async def rollback(self, req: RollbackRequest, msg: Msg) -> RollbackReply:
        """`rollout undo`: copy an old ReplicaSet's template back into the
        Deployment (compare-and-set); the controller rolls it out as a new
        revision."""
        try:
            d = await self.store.get(Deployment, req.namespace, req.name)
            if d is None:
                raise ApiError(
                    ErrorReply(
                        error=f"Deployment {req.namespace}/{req.name} not found",
                        reason="NotFound",
                        code=404,
                    )
                )
            rss, _ = await self.store.list(ReplicaSet, req.namespace)
            try:
                outcome = plan_rollback(d, rss, req.to_revision)
            except RollbackError as exc:
                raise ApiError(ErrorReply(error=str(exc), reason="BadRequest")) from exc
            stored: KubeObject = d
            for action in outcome.actions:
                if isinstance(action, UpdateObject):
                    stored = await self.store.update(action.obj)
        except StoreError as exc:
            raise _store_error(exc) from exc
        return RollbackReply(message=outcome.message, object=to_builtins(stored))


async def add_ephemeral(store: Store, req: EphemeralRequest) -> Any:
    """Add ephemeral containers to a pod (the whole list, or one `container`
    appended to the existing ones); only additions are allowed."""
    try:
        pod = await store.get(Pod, req.namespace, req.name)
        if pod is None:
            raise ApiError(
                ErrorReply(
                    error=f"Pod {req.namespace}/{req.name} not found", reason="NotFound", code=404
                )
            )
        wanted = list(req.ephemeral_containers)
        if req.container is not None:
            wanted = [*pod.spec.ephemeral_containers, req.container]
        problems = validate_ephemeral_update(pod, wanted)
        if problems:
            raise invalid("Pod", req.name, problems)
        pod.spec.ephemeral_containers = wanted
        return to_builtins(await store.update(pod))
    except StoreError as exc:
        raise _store_error(exc) from exc


async def apply_desired(bus: Bus, intake: Intake, msg: Msg) -> None:
    """One fire-and-forget message from PODBUS_DESIRED: applied like a request;
    a rejection (or a body that disagrees with its subject) is published on
    podbus.rejected.<kind>.<ns>.<name>. Undecodable bytes raise DecodeError,
    which the bus terminates with a log line."""
    raw = decode_raw(msg.data)
    kind = raw.get("kind") if isinstance(raw, dict) else None
    meta = raw.get("metadata") if isinstance(raw, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    namespace = (meta.get("namespace") if isinstance(meta, dict) else None) or "default"
    if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(namespace, str):
        log.warning("desired message on %s lacks kind/metadata.name; dropped", msg.subject)
        return
    error: ErrorReply | None = None
    if subjects.desired(kind, namespace, name) != msg.subject:
        error = ErrorReply(error=f"subject {msg.subject} does not match {kind} {namespace}/{name}")
    else:
        try:
            await intake.apply_raw(raw)
        except ApiError as exc:
            error = exc.reply
    if error is not None:
        log.warning("desired %s rejected: %s", msg.subject, error.error)
        await bus.publish_raw(subjects.rejected(kind, namespace, name), encode(error, json=True))


def tune_gc() -> None:
    """An apply allocates a few hundred short-lived objects (decoded maps,
    structs, futures) while the informers keep every object of the cluster
    alive: with Python's default thresholds the collector runs every few
    applies and keeps re-scanning the caches, about a quarter of the
    intake's CPU. Everything alive at start-up is frozen (never scanned
    again) and young collections run 30 times less often; garbage cycles
    are still collected."""
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, _young), middle, old)


async def serve_intake(ctx: ServiceContext, store: Store) -> Intake:
    """Subscribe every API handler in the shared queue group."""
    tune_gc()
    intake = Intake(store)
    bus = ctx.bus
    await bus.serve(subjects.API_APPLY, intake.apply, request_type=ApplyRequest, queue=QUEUE)
    await bus.serve(subjects.API_GET, intake.get, request_type=GetRequest, queue=QUEUE)
    await bus.serve(subjects.API_LIST, intake.list, request_type=ListRequest, queue=QUEUE)
    await bus.serve(subjects.API_DELETE, intake.delete, request_type=DeleteRequest, queue=QUEUE)
    await bus.serve(
        subjects.API_ROLLBACK, intake.rollback, request_type=RollbackRequest, queue=QUEUE
    )

    async def ephemeral(req: EphemeralRequest, msg: Msg) -> Any:
        return await add_ephemeral(store, req)

    await bus.serve(subjects.API_EPHEMERAL, ephemeral, request_type=EphemeralRequest, queue=QUEUE)
    await bus.ensure_streams()

    async def on_desired(msg: Msg) -> None:
        await apply_desired(bus, intake, msg)

    ctx.spawn(
        bus.durable_consumer(
            STREAM_DESIRED, QUEUE, "podbus.desired.>", on_desired, stop=ctx.stopping
        ),
        "desired-intake",
    )
    return intake
