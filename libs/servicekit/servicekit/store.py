"""The object store: podmodel KubeObjects in Redis, every write a
compare-and-set in one Lua script, a watch event published after each commit.

Owns the storage layout (key names, how an object is split into stored parts
and put back together) and the Store API every service calls. It does not
validate or default objects (the workload-controller's API does that) and it
does not own the NATS connection: it is handed a `publish` callable.

Layout
------
- `podbus:obj:<kind>:<ns>:<name>`  one HASH per object (kind in lower case)
- `podbus:idx:<kind>`               SET of the object keys of a kind
- `podbus:idx:<kind>:ns:<ns>`       SET per kind and namespace (namespaced kinds)
- `podbus:idx:pod:node:<node|_>`    SET of pod keys per node; `_` = unbound
- `podbus:rv`                       the global resourceVersion counter

Why a hash of parts rather than one msgpack value: a Lua script cannot cheaply
decode our msgpack, yet every write has to compare and keep parts of the
stored object (status is never taken from an update, generation moves only
when the spec bytes change, uid and creationTimestamp are immutable, binding
sets spec.nodeName server-side). So Python encodes each part as its own
msgpack map and Lua compares and replaces parts as opaque strings:

    v  resourceVersion (decimal)     g  generation (decimal)
    R  top-level fields other than metadata/spec/status (apiVersion, kind, ...)
    M  metadata written by clients (name, labels, annotations, owners, finalizers)
    I  metadata set on create (uid, creationTimestamp)
    D  metadata set by deletion (deletionTimestamp, deletionGracePeriodSeconds)
    P  spec (for pods without nodeName: binding changes `n`, not `P`)
    T  status
    n  pods: node name or `_`; other kinds: ""
    f  "1" if metadata.finalizers, z "1" if a pod is Succeeded/Failed,
    e  pods' terminationGracePeriodSeconds, x the pending deletion's grace,
    u  uid (for uid preconditions)

A read (one HMGET, or one Lua call for a list) fetches v..n and `assemble`
splices the maps into the complete msgpack object, resourceVersion and
generation included, which is decoded once; the same bytes are the watch
event's `object`. `generation` bumps when P's bytes change (P is encoded with
deterministic key order so equal specs give equal bytes).

Writes are batches: `create_many`, `update_many`, `update_status_many`,
`bind_many` run one Lua call per 1,000 objects (chunks go out concurrently,
so a batch costs one round trip); the single forms are batches of one.

Watch events: after the script returns, each committed change is published
as a podmodel.codec.WatchEvent on podmodel.subjects.watch(kind, ns, name,
node). A pod whose node changes (bind, or an update that binds) is published
MODIFIED on both the old subject (`_`) and the new node's subject, so the
scheduler sees it leave its queue and the node-agent sees it arrive. A
failing publish is logged, not raised: the write has committed, and
informers' resyncs repair a lost event.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

import msgspec
import redis.asyncio as aioredis
from podmodel import subjects
from podmodel.codec import EventType, WatchEvent
from podmodel.meta import KubeObject, ObjectMeta
from podmodel.registry import canonical_kind, kind_type
from podmodel.selector import LabelSelector, selector_matches

from servicekit import store_scripts

log = logging.getLogger(__name__)

T = TypeVar("T", bound=KubeObject)

Publish = Callable[[str, bytes], Awaitable[None]]
OnResult = Callable[[int, "T | StoreError"], None]

PREFIX = "podbus"
RV_KEY = f"{PREFIX}:rv"
NODE_INDEX_PREFIX = f"{PREFIX}:idx:pod:node:"
UNBOUND = subjects.UNBOUND  # "_": the node token of an unbound pod
CHUNK = 1000  # operations per Lua call
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
GENERATE_NAME_ATTEMPTS = 8
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet


# ------------------------------------------------------------------ errors


class StoreError(Exception):
    """A store operation failed; `reason` and `code` follow Kubernetes' Status."""

    reason = "InternalError"
    code = 500

    def __init__(self, message: str, *, kind: str = "", namespace: str = "", name: str = ""):
        super().__init__(message)
        self.kind = kind
        self.namespace = namespace
        self.name = name


class NotFound(StoreError):
    reason = "NotFound"
    code = 404


class AlreadyExists(StoreError):
    reason = "AlreadyExists"
    code = 409


class Conflict(StoreError):
    """The object changed since the caller read it (or a precondition failed):
    read it again and retry."""

    reason = "Conflict"
    code = 409


class Invalid(StoreError):
    reason = "Invalid"
    code = 422


def _describe(kind: str, namespace: str, name: str) -> str:
    return f'{kind.lower()}s "{namespace}/{name}"' if namespace else f'{kind.lower()}s "{name}"'


def error_from_reply(reply: bytes, kind: str, namespace: str, name: str) -> StoreError:
    """The exception for a script's error string (NotFound, Conflict:why, ...)."""
    text = reply.decode()
    code, _, why = text.partition(":")
    what = _describe(kind, namespace, name)
    ids = {"kind": kind, "namespace": namespace, "name": name}
    if code == "NotFound":
        return NotFound(f"{what} not found", **ids)
    if code == "AlreadyExists":
        return AlreadyExists(f"{what} already exists", **ids)
    if code == "Conflict":
        return Conflict(
            f"Operation cannot be fulfilled on {what}: {why}; "
            "please apply your changes to the latest version and try again",
            **ids,
        )
    if code == "Invalid":
        return Invalid(f"{what} is invalid: {why}", **ids)
    return StoreError(f"{what}: {text}", **ids)


# ------------------------------------------------------------------ keys (pure)


def kind_segment(kind: str) -> str:
    """The kind as it appears in keys and subjects: canonical, lower case."""
    return (canonical_kind(kind) or kind).lower()


def object_key(kind: str, namespace: str, name: str) -> str:
    return f"{PREFIX}:obj:{kind_segment(kind)}:{namespace}:{name}"


def kind_index_key(kind: str) -> str:
    return f"{PREFIX}:idx:{kind_segment(kind)}"


def namespace_index_key(kind: str, namespace: str) -> str:
    """The per-namespace index, or "" for cluster-scoped objects (no namespace)."""
    return f"{PREFIX}:idx:{kind_segment(kind)}:ns:{namespace}" if namespace else ""


def node_token(node: str | None) -> str:
    """A pod's node as stored and indexed: the name, or `_` when unbound."""
    return node if node and node != UNBOUND else UNBOUND


def node_index_key(node: str | None) -> str:
    return NODE_INDEX_PREFIX + node_token(node)


def event_subjects(
    kind: str, namespace: str, name: str, node: str | None = None, old_node: str | None = None
) -> list[str]:
    """Where a change is published: the object's watch subject, and for a pod
    that moved between nodes (unbound -> bound) also the subject it left."""
    seg = kind_segment(kind)
    new = subjects.watch(seg, namespace, name, node=_unbound_to_empty(node))
    if seg == "pod" and old_node is not None and node_token(old_node) != node_token(node):
        return [subjects.watch(seg, namespace, name, node=_unbound_to_empty(old_node)), new]
    return [new]


def _unbound_to_empty(node: str | None) -> str:
    return "" if not node or node == UNBOUND else node


# ------------------------------------------------------------------ parts (pure)

_ENC = msgspec.msgpack.Encoder()
_DETERMINISTIC = msgspec.msgpack.Encoder(order="deterministic")
_META_DECODER = msgspec.msgpack.Decoder(ObjectMeta)


def _key(name: str) -> bytes:
    return _ENC.encode(name)


_K_METADATA = _key("metadata")
_K_SPEC = _key("spec")
_K_STATUS = _key("status")
_K_NODE_NAME = _key("nodeName")
_K_RV = _key("resourceVersion")
_K_GENERATION = _key("generation")
_I_HEAD = b"\x82" + _key("uid")
_K_CREATED = _key("creationTimestamp")
_EMPTY_MAP = b"\x80"
_NODEFAULT: Any = msgspec.NODEFAULT


@dataclass(frozen=True)
class KindLayout:
    """How objects of one registered type are split into parts."""

    cls: type[KubeObject]
    kind: str
    segment: str
    is_pod: bool
    has_spec: bool
    has_status: bool
    rest: tuple[tuple[str, bytes, Any], ...]  # (attribute, encoded key, default)
    decoder: msgspec.msgpack.Decoder[Any]

    def decode(self, body: bytes) -> KubeObject:
        return cast(KubeObject, self.decoder.decode(body))


_LAYOUTS: dict[type[KubeObject], KindLayout] = {}


def layout_of(cls: type[KubeObject]) -> KindLayout:
    found = _LAYOUTS.get(cls)
    if found is not None:
        return found
    rest: list[tuple[str, bytes, Any]] = []
    names = set()
    for f in msgspec.structs.fields(cls):
        names.add(f.name)
        if f.name in ("metadata", "spec", "status"):
            continue
        if f.default is not _NODEFAULT:
            default = f.default
        elif f.default_factory is not _NODEFAULT:
            default = f.default_factory()
        else:
            default = _NODEFAULT
        if f.name in ("api_version", "kind"):
            default = _NODEFAULT  # always written: filled from the class
        rest.append((f.name, _key(f.encode_name), default))
    layout = KindLayout(
        cls=cls,
        kind=cls.KIND,
        segment=cls.KIND.lower(),
        is_pod=cls.KIND == "Pod",
        has_spec="spec" in names,
        has_status="status" in names,
        rest=tuple(rest),
        decoder=msgspec.msgpack.Decoder(cls),
    )
    _LAYOUTS[cls] = layout
    return layout


def layout_for_kind(kind: str | type[KubeObject]) -> KindLayout:
    if isinstance(kind, type):
        return layout_of(kind)
    cls = kind_type(kind)
    if cls is None:
        raise StoreError(f"unknown kind {kind!r}", kind=kind)
    return layout_of(cls)


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    if n < 0x10000:
        return b"\xde" + n.to_bytes(2, "big")
    return b"\xdf" + n.to_bytes(4, "big")


def _split_map(data: bytes) -> tuple[int, memoryview]:
    """(entry count, entries) of a msgpack map."""
    view = memoryview(data)
    head = data[0]
    if 0x80 <= head <= 0x8F:
        return head & 0x0F, view[1:]
    if head == 0xDE:
        return int.from_bytes(data[1:3], "big"), view[3:]
    if head == 0xDF:
        return int.from_bytes(data[1:5], "big"), view[5:]
    raise StoreError(f"stored part is not a msgpack map (first byte {head:#x})")


def encode_rest(obj: KubeObject, layout: KindLayout) -> bytes:
    """R: the top-level fields besides metadata, spec and status."""
    out = []
    for attr, key, default in layout.rest:
        value = getattr(obj, attr)
        if value is None or (default is not _NODEFAULT and value == default):
            continue
        out.append(key)
        out.append(_ENC.encode(value))
    return _map_header(len(out) // 2) + b"".join(out)


def encode_user_meta(meta: ObjectMeta, name: str | None = None) -> bytes:
    """M: metadata minus what the store owns (uid, resourceVersion, generation,
    creationTimestamp, deletion fields), which are kept from the stored object."""
    user = msgspec.structs.replace(
        meta,
        uid="",
        resource_version="",
        generation=0,
        creation_timestamp=None,
        deletion_timestamp=None,
        deletion_grace_period_seconds=None,
    )
    if name is not None:
        user.name = name
    return _ENC.encode(user)


def encode_identity_meta(uid: str, created: bytes) -> bytes:
    """I: uid and creationTimestamp (`created` already msgpack-encoded)."""
    return _I_HEAD + _ENC.encode(uid) + _K_CREATED + created


def encode_spec_part(obj: KubeObject) -> bytes:
    """P: the spec with deterministic key order; a pod's without nodeName (the
    binding lives in `n`). Empty for kinds without a spec."""
    spec = getattr(obj, "spec", None)
    if spec is None:
        return b""
    if obj.kind == "Pod" and spec.node_name:
        spec = msgspec.structs.replace(spec, node_name="")
    return _DETERMINISTIC.encode(spec)


def encode_status_part(obj: KubeObject) -> bytes:
    status = getattr(obj, "status", None)
    return b"" if status is None else _ENC.encode(status)


def spec_changed(old: KubeObject, new: KubeObject) -> bool:
    """Whether an update from `old` to `new` moves metadata.generation: the
    encoded specs differ. Binding (a pod's nodeName) is not a spec change."""
    return encode_spec_part(old) != encode_spec_part(new)


def pod_flags(obj: KubeObject) -> tuple[str, str, str]:
    """(n, z, e) hash fields: node token, terminal phase, termination grace.
    All empty for kinds other than Pod."""
    if obj.kind != "Pod":
        return "", "", ""
    spec = getattr(obj, "spec", None)
    status = getattr(obj, "status", None)
    node = node_token(spec.node_name if spec is not None else "")
    terminal = "1" if status is not None and status.phase in TERMINAL_PHASES else "0"
    grace = spec.termination_grace_period_seconds if spec is not None else None
    return node, terminal, str(30 if grace is None else max(0, grace))


def assemble(snapshot: Sequence[bytes | None]) -> bytes:
    """The complete msgpack object from the stored parts (v, g, R, M, I, D,
    P, T, n), resourceVersion and generation included."""
    v, g, r, m, i, d, p, t, n = (x or b"" for x in snapshot)
    mn, me = _split_map(m or _EMPTY_MAP)
    inn, ie = _split_map(i or _EMPTY_MAP)
    dn, de = _split_map(d) if d else (0, memoryview(b""))
    rn, re = _split_map(r or _EMPTY_MAP)
    out: list[bytes | memoryview] = [
        _map_header(rn + 1 + (1 if p else 0) + (1 if t else 0)),
        re,
        _K_METADATA,
        _map_header(mn + inn + dn + 2),
        me,
        ie,
        de,
        _K_RV,
        _ENC.encode(v.decode()),
        _K_GENERATION,
        _ENC.encode(int(g or b"0")),
    ]
    if p:
        out.append(_K_SPEC)
        if n and n != b"_":
            pn, pe = _split_map(p)
            out += [_map_header(pn + 1), pe, _K_NODE_NAME, _ENC.encode(n.decode())]
        else:
            out.append(p)
    if t:
        out.append(_K_STATUS)
        out.append(t)
    return b"".join(out)


def _lua_str(item: str | bytes) -> bytes:
    """One msgpack str holding `item`'s bytes. Redis' Lua cmsgpack (6.2)
    does not read the msgpack bin types, so bytes travel as str."""
    data = item.encode() if isinstance(item, str) else item
    n = len(data)
    if n < 32:
        return bytes((0xA0 | n,)) + data
    if n < 0x100:
        return b"\xd9" + bytes((n,)) + data
    if n < 0x10000:
        return b"\xda" + n.to_bytes(2, "big") + data
    return b"\xdb" + n.to_bytes(4, "big") + data


#: msgpack str headers for lengths below 256 (the usual key, part and flag).
_STR_HEADS = [bytes((0xA0 | n,)) for n in range(32)] + [
    b"\xd9" + bytes((n,)) for n in range(32, 256)
]


def lua_payload(items: Sequence[str | bytes]) -> bytes:
    """A msgpack array of strings for the write scripts' ARGV[3] (what
    `_lua_str` makes of each item, written without intermediate copies)."""
    n = len(items)
    head = (
        bytes((0x90 | n,))
        if n < 16
        else (b"\xdc" + n.to_bytes(2, "big") if n < 0x10000 else b"\xdd" + n.to_bytes(4, "big"))
    )
    out: list[bytes] = [head]
    heads = _STR_HEADS
    for item in items:
        data = item.encode() if isinstance(item, str) else item
        size = len(data)
        out.append(heads[size] if size < 256 else _lua_str_head(size))
        out.append(data)
    return b"".join(out)


def _lua_str_head(n: int) -> bytes:
    if n < 0x10000:
        return b"\xda" + n.to_bytes(2, "big")
    return b"\xdb" + n.to_bytes(4, "big")


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


_UUID_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def new_uids(n: int) -> builtins.list[str]:
    """`n` random (version 4) UUIDs as strings, from one read of the OS's
    random source: `str(uuid.uuid4())` makes one system call per object, a
    noticeable part of a create batch's CPU."""
    raw = os.urandom(16 * n).hex()
    out = []
    for i in range(0, 32 * n, 32):
        h = raw[i : i + 32]
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:]}")
    return out


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def encode_event(event_type: EventType, kind: str, rv: int, body: bytes) -> bytes:
    return _ENC.encode(
        WatchEvent(type=event_type, kind=kind, resource_version=rv, object=msgspec.Raw(body))
    )


# ------------------------------------------------------------------ the store


@dataclass
class _Op:
    """One operation of a batch, with what is needed to read its reply."""

    layout: KindLayout
    namespace: str
    name: str
    keys: tuple[str, str, str]
    args: list[str | bytes]


@dataclass
class _Change:
    event_type: EventType
    layout: KindLayout
    namespace: str
    name: str
    rv: int
    body: bytes
    node: str
    old_node: str | None


class Store:
    """Objects in Redis; see the module docstring for the layout and rules.

    Objects given to writes are not modified; results are new objects (sharing
    unchanged sub-objects with the input)."""

    def __init__(self, client: aioredis.Redis, *, publish: Publish | None = None) -> None:
        self.redis = client
        self.publish = publish
        self._create = client.register_script(store_scripts.CREATE)
        self._update = client.register_script(store_scripts.UPDATE)
        self._update_status = client.register_script(store_scripts.UPDATE_STATUS)
        self._delete = client.register_script(store_scripts.DELETE)
        self._bind = client.register_script(store_scripts.BIND)
        self._list = client.register_script(store_scripts.LIST)
        self._owns_client = False

    @classmethod
    async def connect(cls, url: str, *, publish: Publish | None = None) -> Store:
        client = aioredis.Redis.from_url(url)
        await client.ping()
        store = cls(client, publish=publish)
        store._owns_client = True
        return store

    async def close(self) -> None:
        if self._owns_client:
            await self.redis.aclose()

    # -------------------------------------------------------------- reads

    @overload
    async def get(self, kind: type[T], namespace: str, name: str) -> T | None: ...
    @overload
    async def get(self, kind: str, namespace: str, name: str) -> KubeObject | None: ...
    async def get(
        self, kind: str | type[KubeObject], namespace: str, name: str
    ) -> KubeObject | None:
        layout = layout_for_kind(kind)
        key = object_key(layout.kind, namespace, name)
        snapshot = cast(
            "builtins.list[bytes | None]",
            await self.redis.hmget(key, builtins.list(store_scripts.SNAPSHOT_FIELDS)),
        )
        if snapshot[0] is None:
            return None
        return layout.decode(assemble(snapshot))

    async def get_many(
        self, keys: Sequence[tuple[str | type[KubeObject], str, str]]
    ) -> builtins.list[KubeObject | None]:
        """Several objects, each by (kind, namespace, name), in one round
        trip; None where there is none."""
        if not keys:
            return []
        layouts = [layout_for_kind(kind) for kind, _ns, _name in keys]
        pipe = self.redis.pipeline(transaction=False)
        fields = builtins.list(store_scripts.SNAPSHOT_FIELDS)
        for layout, (_kind, namespace, name) in zip(layouts, keys, strict=True):
            pipe.hmget(object_key(layout.kind, namespace, name), fields)
        replies = await pipe.execute()
        return [
            layout.decode(assemble(snapshot)) if snapshot[0] is not None else None
            for layout, snapshot in zip(layouts, replies, strict=True)
        ]

    @overload
    async def list(
        self,
        kind: type[T],
        namespace: str | None = None,
        *,
        selector: LabelSelector | None = None,
        node: str | None = None,
    ) -> tuple[builtins.list[T], int]: ...
    @overload
    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        selector: LabelSelector | None = None,
        node: str | None = None,
    ) -> tuple[builtins.list[KubeObject], int]: ...
    async def list(
        self,
        kind: str | type[KubeObject],
        namespace: str | None = None,
        *,
        selector: LabelSelector | None = None,
        node: str | None = None,
    ) -> tuple[builtins.list[Any], int]:
        """Objects of a kind (optionally in one namespace, matching a label
        selector, pods on one node: "" or "_" for unbound ones) and the
        store's resourceVersion at the moment of the list, read atomically."""
        layout = layout_for_kind(kind)
        sets = []
        if namespace:
            sets.append(namespace_index_key(layout.kind, namespace))
        if node is not None:
            if not layout.is_pod:
                raise Invalid("only pods can be listed by node", kind=layout.kind)
            sets.append(node_index_key(node))
        if not sets:
            sets.append(kind_index_key(layout.kind))
        reply = await self._list(keys=[RV_KEY, *sets])
        rv = int(reply[0])
        width = len(store_scripts.SNAPSHOT_FIELDS)
        objects: builtins.list[KubeObject] = []
        for start in range(1, len(reply), width):
            snapshot = reply[start : start + width]
            if selector is not None:
                meta = _META_DECODER.decode(snapshot[3])
                if not selector_matches(selector, meta.labels):
                    continue
            objects.append(layout.decode(assemble(snapshot)))
        objects.sort(key=lambda o: (o.metadata.namespace, o.metadata.name))
        return objects, rv

    # -------------------------------------------------------------- create

    async def create(self, obj: T) -> T:
        return _one(await self.create_many([obj]))

    async def create_many(
        self, objs: Sequence[T], *, on_result: OnResult[T] | None = None
    ) -> builtins.list[T | StoreError]:
        """Create objects: uid, creationTimestamp, generation 1 and a
        resourceVersion are assigned; a name is generated from
        metadata.generateName when the name is empty. One result per input:
        the stored object or the error (AlreadyExists, Invalid).

        `on_result(index, result)` is called as soon as an object's result
        is final: for a created object after the commit and just before its
        watch event is published. A server answering many requests resolves
        them there, so their replies leave in the same socket write as the
        events (which still go first)."""
        results: builtins.list[T | StoreError] = [cast(StoreError, None)] * len(objs)
        pending = list(range(len(objs)))
        for attempt in range(GENERATE_NAME_ATTEMPTS):
            pending = await self._create_round(objs, pending, results, on_result)
            if not pending:
                break
            if attempt == GENERATE_NAME_ATTEMPTS - 1:
                for i in pending:
                    meta = objs[i].metadata
                    results[i] = AlreadyExists(
                        f"could not generate a free name from {meta.generate_name!r}",
                        kind=objs[i].kind,
                        namespace=meta.namespace,
                    )
                    if on_result is not None:
                        on_result(i, results[i])
        return results

    async def _create_round(
        self,
        objs: Sequence[T],
        indexes: builtins.list[int],
        results: builtins.list[T | StoreError],
        on_result: OnResult[T] | None = None,
    ) -> builtins.list[int]:
        """One attempt for `indexes`; returns those to retry (a generated name
        that was taken)."""
        now = time.time()
        created = rfc3339(now)
        created_enc = _ENC.encode(created)
        ops: builtins.list[_Op] = []
        todo: builtins.list[tuple[int, str, str]] = []  # (index, name, uid)
        uids = new_uids(len(indexes))
        for i, uid in zip(indexes, uids, strict=True):
            obj = objs[i]
            meta = obj.metadata
            layout = layout_of(type(obj))
            name = meta.name
            if not name:
                if not meta.generate_name:
                    results[i] = Invalid(
                        "metadata.name: Required value: name or generateName is required",
                        kind=obj.kind,
                        namespace=meta.namespace,
                    )
                    if on_result is not None:
                        on_result(i, results[i])
                    continue
                name = generated_name(meta.generate_name)
            n, z, e = pod_flags(obj)
            args: builtins.list[str | bytes] = [
                encode_rest(obj, layout),
                encode_user_meta(meta, name if name != meta.name else None),
                encode_identity_meta(uid, created_enc),
                encode_spec_part(obj),
                encode_status_part(obj),
                n,
                "1" if meta.finalizers else "0",
                z,
                e,
                uid,
            ]
            ops.append(self._op(layout, meta.namespace, name, args))
            todo.append((i, name, uid))
        replies = await self._run(self._create, ops)
        retry: builtins.list[int] = []
        changes: builtins.list[_Change] = []
        for (i, name, uid), op, reply in zip(todo, ops, replies, strict=True):
            obj = objs[i]
            if isinstance(reply, bytes):
                err = error_from_reply(reply, op.layout.kind, op.namespace, name)
                if isinstance(err, AlreadyExists) and not obj.metadata.name:
                    retry.append(i)
                else:
                    results[i] = err
                    if on_result is not None:
                        on_result(i, err)
                continue
            rv = int(reply)
            meta = msgspec.structs.replace(
                obj.metadata,
                name=name,
                uid=uid,
                creation_timestamp=created,
                generation=1,
                resource_version=str(rv),
                deletion_timestamp=None,
                deletion_grace_period_seconds=None,
            )
            results[i] = msgspec.structs.replace(obj, metadata=meta)
            if on_result is not None:
                on_result(i, results[i])
            if self.publish is not None:
                # The created object is at hand: encoding it whole is half the
                # cost of assembling the stored parts, for the same content.
                node = cast(str, op.args[5])
                changes.append(
                    _Change(
                        "ADDED",
                        op.layout,
                        op.namespace,
                        name,
                        rv,
                        _ENC.encode(results[i]),
                        node,
                        None,
                    )
                )
        await self._publish(changes)
        return retry

    # -------------------------------------------------------------- update

    async def update(self, obj: T, expected_rv: str | None = None) -> T:
        return _one(await self.update_many([obj], [expected_rv]))

    async def update_many(
        self, objs: Sequence[T], expected_rvs: Sequence[str | None] | None = None
    ) -> builtins.list[T | StoreError]:
        """Replace spec and metadata (not status, uid, creationTimestamp or the
        deletion fields) if the stored resourceVersion is the expected one
        (default: each object's own; "" means unconditional). generation moves
        when the spec changed. A pod's nodeName may only go from unset to set.
        An object being deleted whose last finalizer is removed (and whose
        grace period is over) is removed: its result is the last state, and a
        DELETED event is published."""
        ops = []
        for i, obj in enumerate(objs):
            meta = obj.metadata
            layout = layout_of(type(obj))
            expected = expected_rvs[i] if expected_rvs is not None else None
            if expected is None:
                expected = meta.resource_version
            n, _z, e = pod_flags(obj)
            ops.append(
                self._op(
                    layout,
                    meta.namespace,
                    meta.name,
                    [
                        expected,
                        meta.uid,
                        encode_rest(obj, layout),
                        encode_user_meta(meta),
                        encode_spec_part(obj),
                        n,
                        "1" if meta.finalizers else "0",
                        e,
                    ],
                )
            )
        return cast("builtins.list[T | StoreError]", await self._write(self._update, ops))

    async def update_status(self, obj: T, expected_rv: str | None = None) -> T:
        return _one(await self.update_status_many([obj], [expected_rv]))

    async def update_status_many(
        self, objs: Sequence[T], expected_rvs: Sequence[str | None] | None = None
    ) -> builtins.list[T | StoreError]:
        """Replace only the status, with the same compare-and-set rule as update."""
        ops = []
        for i, obj in enumerate(objs):
            meta = obj.metadata
            layout = layout_of(type(obj))
            expected = expected_rvs[i] if expected_rvs is not None else None
            if expected is None:
                expected = meta.resource_version
            _n, z, _e = pod_flags(obj)
            ops.append(
                self._op(
                    layout,
                    meta.namespace,
                    meta.name,
                    [expected, meta.uid, encode_status_part(obj), z],
                )
            )
        return cast("builtins.list[T | StoreError]", await self._write(self._update_status, ops))

    # -------------------------------------------------------------- delete

    async def delete(
        self,
        kind: str | type[KubeObject],
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        expected_rv: str | None = None,
    ) -> KubeObject | None:
        """Delete an object. A pod bound to a node and not finished, with a
        grace period > 0 (default: its terminationGracePeriodSeconds), is only
        marked (deletionTimestamp = now + grace, deletionGracePeriodSeconds):
        the node-agent stops it and then calls `remove`. An object with
        finalizers is marked until they are gone. Returns the marked object,
        or None when it was removed at once. A repeated delete may shorten the
        grace period; otherwise it changes nothing."""
        grace = "" if grace_period_seconds is None else str(max(0, grace_period_seconds))
        return await self._delete_one(kind, namespace, name, expected_rv or "", grace)

    async def remove(
        self,
        kind: str | type[KubeObject],
        namespace: str,
        name: str,
        expected_rv: str | None = None,
    ) -> KubeObject | None:
        """Remove at once (what the node-agent calls when a deleted pod has
        stopped). Finalizers still hold the object, which is then returned
        marked; None when it is gone."""
        return await self._delete_one(kind, namespace, name, expected_rv or "", "0")

    async def delete_many(
        self,
        deletions: Sequence[tuple[str | type[KubeObject], str, str, int | None, str | None]],
    ) -> builtins.list[KubeObject | StoreError | None]:
        """`delete` for many objects in one round trip: (kind, namespace,
        name, grace period or None, expected resourceVersion or None). One
        result each: the marked object, None when removed, or the error."""
        ops = []
        for kind, namespace, name, grace, expected in deletions:
            layout = layout_for_kind(kind)
            grace_arg = "" if grace is None else str(max(0, grace))
            ops.append(self._op(layout, namespace, name, [expected or "", grace_arg]))
        return await self._write(self._delete, ops, deleted_as_none=True)

    async def _delete_one(
        self, kind: str | type[KubeObject], namespace: str, name: str, expected: str, grace: str
    ) -> KubeObject | None:
        layout = layout_for_kind(kind)
        result = _one(
            await self._write(
                self._delete,
                [self._op(layout, namespace, name, [expected, grace])],
                deleted_as_none=True,
            )
        )
        return result

    # -------------------------------------------------------------- bind

    async def bind(self, pod: T, node_name: str, expected_rv: str | None = None) -> T:
        """Set spec.nodeName if the pod is still unbound (compare-and-set on
        the expected resourceVersion, default the pod's own)."""
        meta = pod.metadata
        rv = meta.resource_version if expected_rv is None else expected_rv
        result = _one(await self.bind_many([(meta.namespace, meta.name, node_name, rv)]))
        return cast(T, result)

    async def bind_many(
        self,
        bindings: Sequence[tuple[str, str, str, str | None]],
        *,
        fence: tuple[str, int] | None = None,
    ) -> builtins.list[KubeObject | StoreError]:
        """Bind pods: (namespace, name, node, expected resourceVersion or None
        for unconditional). Conflict if a pod is already bound or changed.
        `fence` (token key, token): bind only while the key still holds that
        token (a leader's term, see servicekit.leader), else all Conflict."""
        cls = kind_type("Pod")
        if cls is None:
            raise StoreError("kind Pod is not registered")
        layout = layout_of(cls)
        ops = []
        for ns, name, node, rv in bindings:
            if not node or node == UNBOUND:
                raise Invalid("a binding needs a node name", kind="Pod", namespace=ns, name=name)
            ops.append(self._op(layout, ns, name, [rv or "", node]))
        extra = [fence[0], str(fence[1])] if fence is not None else []
        return await self._write(self._bind, ops, extra_args=extra)

    # -------------------------------------------------------------- plumbing

    @staticmethod
    def _op(layout: KindLayout, ns: str, name: str, args: builtins.list[str | bytes]) -> _Op:
        seg = layout.segment  # the same as kind_segment(kind), without the registry lookup
        keys = (
            f"{PREFIX}:obj:{seg}:{ns}:{name}",
            f"{PREFIX}:idx:{seg}",
            f"{PREFIX}:idx:{seg}:ns:{ns}" if ns else "",
        )
        return _Op(layout, ns, name, keys, args)

    async def _run(
        self, script: Any, ops: Sequence[_Op], extra_args: Sequence[str] = ()
    ) -> builtins.list[Any]:
        """Run a write script over `ops`, CHUNK at a time, chunks concurrently
        (`extra_args` follow the payload: ARGV[4]...)."""
        if not ops:
            return []
        now = str(int(time.time()))

        async def call(chunk: Sequence[_Op]) -> builtins.list[Any]:
            items: builtins.list[str | bytes] = []
            for op in chunk:
                items.extend(op.keys)
                items.extend(op.args)
            payload = lua_payload(items)
            return cast(
                "builtins.list[Any]",
                await script(keys=[RV_KEY], args=[NODE_INDEX_PREFIX, now, payload, *extra_args]),
            )

        if len(ops) <= CHUNK:
            return await call(ops)
        parts = await asyncio.gather(*(call(ops[i : i + CHUNK]) for i in range(0, len(ops), CHUNK)))
        return [reply for part in parts for reply in part]

    async def _write(
        self,
        script: Any,
        ops: Sequence[_Op],
        *,
        deleted_as_none: bool = False,
        extra_args: Sequence[str] = (),
    ) -> builtins.list[Any]:
        """Run a snapshot-returning script, publish the changes, and return the
        resulting objects (None for removed ones when `deleted_as_none`)."""
        replies = await self._run(script, ops, extra_args)
        results: builtins.list[Any] = []
        changes: builtins.list[_Change] = []
        for op, reply in zip(ops, replies, strict=True):
            if isinstance(reply, bytes):
                results.append(error_from_reply(reply, op.layout.kind, op.namespace, op.name))
                continue
            code = reply[0]
            snapshot = reply[1:10]
            body = assemble(snapshot)
            obj = op.layout.decode(body)
            results.append(None if code == b"D" and deleted_as_none else obj)
            if code == b"N":
                continue
            node = (snapshot[8] or b"").decode()
            old_node = (reply[10] or b"").decode()
            changes.append(
                _Change(
                    "DELETED" if code == b"D" else "MODIFIED",
                    op.layout,
                    op.namespace,
                    op.name,
                    int(snapshot[0]),
                    body,
                    node,
                    old_node,
                )
            )
        await self._publish(changes)
        return results

    async def _publish(self, changes: Sequence[_Change]) -> None:
        if self.publish is None:
            return
        for ch in changes:
            payload = encode_event(ch.event_type, ch.layout.kind, ch.rv, ch.body)
            node = ch.node if ch.layout.is_pod else None
            old = ch.old_node if ch.layout.is_pod else None
            for subject in event_subjects(ch.layout.kind, ch.namespace, ch.name, node, old):
                try:
                    await self.publish(subject, payload)
                except Exception as exc:  # the write committed; resync repairs a lost event
                    log.warning("publishing %s failed: %s", subject, exc)


def _one(results: Sequence[Any]) -> Any:
    """The single result of a batch of one, raising its error."""
    result = results[0]
    if isinstance(result, StoreError):
        raise result
    return result
