"""Informer: a local cache of one kind kept in step with the store, with
add / update / delete handlers.

Owns the list-then-watch protocol every service relies on:

1. subscribe to the kind's watch subject (core NATS) and flush, so that the
   server holds the subscription before anything is read;
2. list from the Store, which returns the store's resourceVersion at the
   moment of the list; diff the list against the cache and fire handlers;
3. apply the events buffered meanwhile and the live ones, dropping any event
   at or below the cached object's resourceVersion, or for an object not in
   the cache, at or below the last list's resourceVersion or the last
   deletion seen for that name (so a late, stale event cannot resurrect a
   deleted object);
4. list again and diff after a NATS reconnect (detected from the client's
   reconnect counter, or when the caller calls `relist()`), when the event
   buffer overflowed, and every `resync_s` seconds, so a lost message delays
   convergence but never breaks it.

A filter (namespace, label selector, node for pods) applies to the list and
to events: an object that stops matching (a pod bound away from the
scheduler's unbound queue) leaves the cache with on_delete.

Failures never end `run()`: a store that is down is logged once and retried
with back-off; a handler that raises is logged. This module does not own the
NATS connection (it is passed in) and does not decide anything: handlers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from podmodel import subjects
from podmodel.codec import WatchEvent
from podmodel.meta import KubeObject
from podmodel.selector import LabelSelector, selector_matches

from servicekit.store import Store, layout_of, node_token

log = logging.getLogger(__name__)

T = TypeVar("T", bound=KubeObject)
Key = tuple[str, str]

_EVENT_DECODER = msgspec.msgpack.Decoder(WatchEvent)


def rv_of(obj: KubeObject) -> int:
    """An object's resourceVersion as a number (0 when unset)."""
    rv = obj.metadata.resource_version
    return int(rv) if rv.isdigit() else 0


def key_of(obj: KubeObject) -> Key:
    return (obj.metadata.namespace, obj.metadata.name)


def watch_subject(kind: str, namespace: str | None = None, node: str | None = None) -> str:
    """The subject pattern that carries a kind's events, narrowed to one
    namespace and, for pods, one node ("" or "_" for unbound pods)."""
    seg = kind.lower()
    ns = subjects.token(namespace) if namespace else "*"
    if seg == "pod":
        nd = subjects.token(node_token(node)) if node is not None else "*"
        return f"{subjects.PREFIX}.watch.pod.{nd}.{ns}.*"
    return f"{subjects.PREFIX}.watch.{seg}.{ns}.*"


@dataclass
class Handlers(Generic[T]):
    on_add: Callable[[T], Any] | None = None
    on_update: Callable[[T, T], Any] | None = None
    on_delete: Callable[[T], Any] | None = None


class Informer(Generic[T]):
    """A cache of one kind: `cache[(namespace, name)]`. Run `run()` in the
    service's task group; `wait_synced()` returns after the first list."""

    def __init__(
        self,
        store: Store,
        nc: NATS,
        kind: type[T],
        *,
        namespace: str | None = None,
        selector: LabelSelector | None = None,
        node: str | None = None,
        subject: str | None = None,
        resync_s: float = 30.0,
        on_add: Callable[[T], Any] | None = None,
        on_update: Callable[[T, T], Any] | None = None,
        on_delete: Callable[[T], Any] | None = None,
        max_buffer: int = 100_000,
        retry_max_s: float = 5.0,
    ) -> None:
        self.store = store
        self.nc = nc
        self.kind = kind
        self.namespace = namespace
        self.selector = selector
        self.node = node
        self.layout = layout_of(kind)
        if node is not None and not self.layout.is_pod:
            raise ValueError("a node filter applies to pods only")
        self.subject = subject or watch_subject(kind.KIND, namespace, node)
        self.resync_s = resync_s
        self.retry_max_s = retry_max_s
        self.cache: dict[Key, T] = {}
        self.list_rv = 0
        self._handlers: list[Handlers[T]] = []
        if on_add or on_update or on_delete:
            self.add_handlers(on_add=on_add, on_update=on_update, on_delete=on_delete)
        self._tombstones: dict[Key, int] = {}  # highest rv seen for keys not cached
        self._pending: list[tuple[str, T | None, T]] = []  # handler calls to make
        self._queue: asyncio.Queue[Msg] = asyncio.Queue(max_buffer)
        self._kick = asyncio.Event()
        self._synced = asyncio.Event()
        self._need_list = True
        self._retry_at = 0.0
        self._retry_s = 0.0
        self._next_resync = 0.0
        self._reconnects_seen = 0
        self._store_down = False

    # -------------------------------------------------------------- API

    def add_handlers(
        self,
        *,
        on_add: Callable[[T], Any] | None = None,
        on_update: Callable[[T, T], Any] | None = None,
        on_delete: Callable[[T], Any] | None = None,
    ) -> None:
        """Register handlers (sync or async callables), called in the
        informer's task, in registration order."""
        self._handlers.append(Handlers(on_add, on_update, on_delete))

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Return once the first list has been applied; TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    def relist(self) -> None:
        """List again soon (e.g. from a NATS reconnected callback)."""
        self._need_list = True
        self._retry_at = 0.0
        self._kick.set()

    def get(self, namespace: str, name: str) -> T | None:
        return self.cache.get((namespace, name))

    def items(self) -> list[T]:
        return list(self.cache.values())

    async def run(self) -> None:
        """Subscribe, list, and keep the cache in step until cancelled."""
        loop = asyncio.get_running_loop()
        sub = await self.nc.subscribe(self.subject, cb=self._on_msg)
        self._reconnects_seen = self._reconnects()
        try:
            await self.nc.flush()
            me = asyncio.current_task()
            while True:
                if me is not None and me.cancelling():
                    # A cancellation swallowed below (a timeout expiring with
                    # it, or a client library) must still end the loop.
                    raise asyncio.CancelledError
                now = loop.time()
                if self._reconnects() != self._reconnects_seen:
                    self._reconnects_seen = self._reconnects()
                    log.info("%s informer: NATS reconnected, listing again", self.kind.KIND)
                    await self._flush_quietly()
                    self._need_list = True
                    self._retry_at = 0.0
                if self.synced and now >= self._next_resync:
                    self._need_list = True
                if self._need_list and now >= self._retry_at:
                    await self._list()
                    continue
                self._kick.clear()
                if self.synced:
                    while not self._queue.empty():
                        self._apply_msg(self._queue.get_nowait())
                        await self.dispatch()
                wake = self._retry_at if self._need_list else self._next_resync
                timeout = min(max(wake - loop.time(), 0.0), 0.5)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow
                # a cancellation that races with the kick.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._kick.wait()
        finally:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # connection already closed
                log.debug("unsubscribe failed: %s", exc)

    # -------------------------------------------------------------- internals

    def _reconnects(self) -> int:
        return int(self.nc.stats.get("reconnects", 0))

    async def _flush_quietly(self) -> None:
        try:
            await self.nc.flush(timeout=2)
        except Exception as exc:
            log.debug("flush after reconnect failed: %s", exc)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            # Dropping is safe: the next list repairs whatever was lost.
            if not self._need_list:
                log.warning("%s informer: event buffer full, will list again", self.kind.KIND)
            self._need_list = True
        self._kick.set()

    def _matches(self, obj: T) -> bool:
        if self.namespace and obj.metadata.namespace != self.namespace:
            return False
        if self.selector is not None and not selector_matches(self.selector, obj.metadata.labels):
            return False
        if self.node is not None:
            spec = getattr(obj, "spec", None)
            if node_token(getattr(spec, "node_name", "")) != node_token(self.node):
                return False
        return True

    async def _list(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            objs, rv = await self.store.list(
                self.kind, self.namespace, selector=self.selector, node=self.node
            )
        except Exception as exc:
            self._retry_s = min(self.retry_max_s, max(0.1, self._retry_s * 2))
            self._retry_at = loop.time() + self._retry_s
            if not self._store_down:
                log.warning(
                    "%s informer: listing failed (%s); retrying with back-off",
                    self.kind.KIND,
                    exc,
                )
                self._store_down = True
            return
        if self._store_down:
            log.info("%s informer: store reachable again", self.kind.KIND)
            self._store_down = False
        self._retry_s = 0.0
        self._need_list = False
        self._next_resync = loop.time() + self.resync_s
        self.apply_list(objs, rv)
        self._synced.set()
        await self.dispatch()

    def apply_list(self, objs: list[T], list_rv: int) -> None:
        """Bring the cache to the listed state, keeping anything newer that
        arrived by event after the list's snapshot. Queues the handler calls
        (`dispatch` makes them); no I/O."""
        seen: set[Key] = set()
        for obj in objs:
            key = key_of(obj)
            seen.add(key)
            rv = rv_of(obj)
            old = self.cache.get(key)
            if old is None:
                if self._tombstones.get(key, 0) > rv:
                    continue  # deleted (or moved away) after the snapshot
                self.cache[key] = obj
                self._tombstones.pop(key, None)
                self._pending.append(("add", None, obj))
            elif rv > rv_of(old):
                self.cache[key] = obj
                self._pending.append(("update", old, obj))
        for key, old in list(self.cache.items()):
            if key not in seen and rv_of(old) <= list_rv:
                del self.cache[key]
                self._tombstones[key] = list_rv
                self._pending.append(("delete", None, old))
        self.list_rv = list_rv
        self._tombstones = {k: v for k, v in self._tombstones.items() if v > list_rv}

    def _apply_msg(self, msg: Msg) -> None:
        try:
            event = _EVENT_DECODER.decode(msg.data)
            if event.kind != self.kind.KIND:
                return
            obj = self.layout.decoder.decode(event.object)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning(
                "%s informer: undecodable event on %s: %s", self.kind.KIND, msg.subject, exc
            )
            return
        self.apply_event(event.type, obj, event.resource_version)

    def apply_event(self, event_type: str, obj: T, rv: int) -> None:
        """Apply one watch event to the cache. Queues the handler calls
        (`dispatch` makes them); no I/O."""
        key = key_of(obj)
        old = self.cache.get(key)
        if old is not None:
            if rv <= rv_of(old):
                return
        elif rv <= self.list_rv or rv <= self._tombstones.get(key, 0):
            return
        if event_type == "DELETED" or not self._matches(obj):
            self._tombstones[key] = rv
            if old is not None:
                del self.cache[key]
                self._pending.append(("delete", None, obj))
            return
        self.cache[key] = obj
        self._tombstones.pop(key, None)
        if old is None:
            self._pending.append(("add", None, obj))
        else:
            self._pending.append(("update", old, obj))

    async def dispatch(self) -> None:
        """Call the handlers for every change applied so far, in order."""
        pending, self._pending = self._pending, []
        for what, old, obj in pending:
            for h in self._handlers:
                if what == "add" and h.on_add is not None:
                    await _call(h.on_add, obj)
                elif what == "update" and h.on_update is not None and old is not None:
                    await _call(h.on_update, old, obj)
                elif what == "delete" and h.on_delete is not None:
                    await _call(h.on_delete, obj)


async def _call(handler: Callable[..., Any], *args: Any) -> None:
    """Call a sync or async handler; an exception is logged, never raised."""
    try:
        result = handler(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("informer handler %r failed", handler)
