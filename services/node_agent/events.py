"""Writes the node-agent's pod events (logic.events) to the store in
batches: `emit` only queues; `run()` writes what is queued every `window`
seconds with one `create_many` and one `update_many` (unconditional: the
agent is the only writer of its own event records), so a thousand pods
starting at once cost a few round trips, not four per container.

One recorder serves every node of a process (hollow nodes); each node has
its own book (its source host). Failures are logged and dropped: an event
is information, never state anything depends on. Records past their TTL
(or evicted from a full book) are deleted from the store once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from podmodel.event import Event, ObjectReference
from servicekit.store import NotFound, Store

from services.node_agent.logic.events import PodEventBook

log = logging.getLogger(__name__)

#: queued writes beyond this are dropped (the store is down for long)
MAX_QUEUED = 50_000
#: how often records past their TTL are looked for (and deleted)
EXPIRE_EVERY_SECONDS = 60.0
DELETE_CHUNK = 100


class EventRecorder:
    """Queues and batches Event writes; run `run()` as a task."""

    def __init__(
        self,
        store: Store,
        *,
        window: float = 0.2,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.window = window
        self.enabled = enabled
        self.clock = clock
        self._books: dict[str, PodEventBook] = {}
        self._queue: dict[str, tuple[Event, bool]] = {}  # by name: (latest, created)
        self._kick = asyncio.Event()
        self.written = 0
        self.dropped = 0
        self.deleted = 0

    def book(self, node: str) -> PodEventBook:
        found = self._books.get(node)
        if found is None:
            found = self._books[node] = PodEventBook(node)
        return found

    def emit(
        self, node: str, involved: ObjectReference, type_: str, reason: str, message: str
    ) -> None:
        if not self.enabled:
            return
        write = self.book(node).record(involved, type_, reason, message, self.clock())
        name = write.event.metadata.name
        earlier = self._queue.get(name)
        created = write.created or (earlier is not None and earlier[1])
        if earlier is None and len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            return
        self._queue[name] = (write.event, created)
        self._kick.set()

    def forget_pod(self, node: str, uid: str) -> None:
        book = self._books.get(node)
        if book is not None:
            book.forget_pod(uid)

    async def flush(self) -> None:
        if not self._queue:
            return
        batch, self._queue = self._queue, {}
        creates = [e for e, created in batch.values() if created]
        updates = [e for e, created in batch.values() if not created]
        if creates:
            results = await self.store.create_many(creates)
            for result in results:
                if isinstance(result, Exception):
                    log.debug("event not created: %s", result)
                else:
                    self.written += 1
        if updates:
            results = await self.store.update_many(updates, [""] * len(updates))
            missing = [e for e, r in zip(updates, results, strict=True) if isinstance(r, NotFound)]
            self.written += sum(1 for r in results if not isinstance(r, Exception))
            if missing:  # expired or deleted meanwhile: write it anew
                await self.store.create_many(missing)
                self.written += len(missing)

    async def run(self) -> None:
        last_expire = self.clock()
        while True:
            await self._kick.wait()
            await asyncio.sleep(self.window)
            self._kick.clear()
            try:
                await self.flush()
            except Exception as exc:
                log.warning("events not written: %s", exc)
            now = self.clock()
            if now - last_expire > EXPIRE_EVERY_SECONDS:
                last_expire = now
                gone = [e for book in self._books.values() for e in book.expire(now)]
                try:
                    await self.delete(gone)
                except Exception as exc:
                    log.warning("expired events not deleted: %s", exc)

    async def delete(self, events: list[Event]) -> None:
        """Remove expired events from the store, a chunk at a time."""
        for start in range(0, len(events), DELETE_CHUNK):
            chunk = events[start : start + DELETE_CHUNK]
            await asyncio.gather(
                *(self.store.remove(Event, e.metadata.namespace, e.metadata.name) for e in chunk),
                return_exceptions=True,
            )
            self.deleted += len(chunk)
