"""The status manager: the only writer of pod status on a node-agent (or on
every hollow node of one process: one instance serves them all).

Pod workers hand it the status they computed (`set`); it keeps the latest
per pod, skips it when writing would change nothing the node-agent owns
(`status_equal_for_write`), and writes what is pending in batches with
`Store.update_status_many` (one Lua call per 1,000 pods), so many pods
changing at once cost one round trip, not one per container event.

Writes are compare-and-set on the resourceVersion last seen for the pod
(from the informer or from our own previous write). A conflict is retried
from fresh state: the pod is read again and our status is written over it
with the other writers' conditions (PodScheduled, ...) taken from the fresh
copy. A pod that is gone, or was replaced (another uid), is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from podmodel.pod import Condition, Pod, PodStatus
from servicekit.store import Conflict, NotFound, Store

from services.node_agent.logic.phase import KUBELET_CONDITIONS
from services.node_agent.logic.status_merge import status_equal_for_write

log = logging.getLogger(__name__)

Key = tuple[str, str]


def _rv(value: str) -> int:
    return int(value) if value.isdigit() else 0


class StatusManager:
    """Coalesces pod status writes; run `run()` as a task."""

    def __init__(self, store: Store, *, batch_window: float = 0.02) -> None:
        self.store = store
        self.batch_window = batch_window
        self._pending: dict[Key, Pod] = {}
        self._latest: dict[Key, PodStatus] = {}  # what we last sent (or know)
        self._rv: dict[Key, str] = {}
        self._uid: dict[Key, str] = {}
        self._kick = asyncio.Event()
        self._inflight: set[Key] = set()
        self._cycle = asyncio.Event()  # set (and replaced) after every batch
        self.writes = 0  # objects written (for tests and benchmarks)
        self.batches = 0

    # -------------------------------------------------------------- API

    def status_of(self, pod: Pod) -> PodStatus:
        """The freshest status of the pod we know: our own latest when it
        is for this uid, else the stored one."""
        key = (pod.metadata.namespace, pod.metadata.name)
        if self._uid.get(key) == pod.metadata.uid and key in self._latest:
            return self._latest[key]
        return pod.status

    def observe_rv(self, pod: Pod) -> None:
        """Note the resourceVersion of a pod seen on the watch."""
        key = (pod.metadata.namespace, pod.metadata.name)
        if self._uid.get(key, pod.metadata.uid) != pod.metadata.uid:
            self.forget(pod)
        self._uid[key] = pod.metadata.uid
        if _rv(pod.metadata.resource_version) > _rv(self._rv.get(key, "")):
            self._rv[key] = pod.metadata.resource_version

    def set(self, pod: Pod, status: PodStatus) -> bool:
        """Queue `status` for the pod unless it changes nothing. True when
        queued."""
        self.observe_rv(pod)
        key = (pod.metadata.namespace, pod.metadata.name)
        if status_equal_for_write(self.status_of(pod), status):
            return False
        self._latest[key] = status
        self._pending[key] = pod
        self._kick.set()
        return True

    def forget(self, pod: Pod) -> None:
        """Drop everything about a pod that is gone."""
        key = (pod.metadata.namespace, pod.metadata.name)
        self._pending.pop(key, None)
        self._latest.pop(key, None)
        self._rv.pop(key, None)
        self._uid.pop(key, None)

    async def flushed(self, pod: Pod) -> None:
        """Wait until the pod's queued status (if any) has been written."""
        key = (pod.metadata.namespace, pod.metadata.name)
        while key in self._pending or key in self._inflight:
            await self._cycle.wait()

    def _end_cycle(self) -> None:
        self._cycle.set()
        self._cycle = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self._kick.wait()
            await asyncio.sleep(self.batch_window)
            self._kick.clear()
            try:
                await self.flush()
            except Exception as exc:  # Redis down: keep the statuses, retry
                log.warning("status write failed: %s", exc)
                self._kick.set()
                await asyncio.sleep(0.5)

    async def flush(self) -> None:
        """Write everything pending now."""
        while self._pending:
            batch = self._pending
            self._pending = {}
            keys = list(batch)
            self._inflight = set(keys)
            objs = []
            rvs: list[str | None] = []
            for key in keys:
                pod = batch[key]
                objs.append(msgspec.structs.replace(pod, status=self._latest[key]))
                rvs.append(self._rv.get(key) or pod.metadata.resource_version)
            try:
                results = await self.store.update_status_many(objs, rvs)
            except Exception:
                for key in keys:
                    self._pending.setdefault(key, batch[key])
                self._inflight = set()
                raise
            self.batches += 1
            conflicts = []
            for key, pod, result in zip(keys, objs, results, strict=True):
                if isinstance(result, Conflict):
                    conflicts.append((key, pod))
                elif isinstance(result, NotFound):
                    self.forget(pod)
                elif isinstance(result, Exception):
                    log.warning("status of %s/%s not written: %s", *key, result)
                else:
                    self.writes += 1
                    if key not in self._pending and self._uid.get(key) == pod.metadata.uid:
                        self._rv[key] = result.metadata.resource_version
            for key, pod in conflicts:
                await self._refresh(key, pod)
            self._inflight = set()
            self._end_cycle()

    async def _refresh(self, key: Key, ours: Pod) -> None:
        fresh = await self.store.get(Pod, *key)
        if fresh is None or fresh.metadata.uid != ours.metadata.uid:
            self.forget(ours)
            return
        self._rv[key] = fresh.metadata.resource_version
        if key in self._pending:
            return  # a newer status is queued; it uses the fresh version
        status = self._latest.get(key, ours.status)
        others = [c for c in fresh.status.conditions if c.type not in KUBELET_CONDITIONS]
        mine = [c for c in status.conditions if c.type in KUBELET_CONDITIONS]
        merged = msgspec.structs.replace(status, conditions=_ordered(others + mine))
        self._latest[key] = merged
        self._pending[key] = fresh
        with contextlib.suppress(RuntimeError):
            self._kick.set()


def _ordered(conditions: list[Condition]) -> list[Condition]:
    order = {t: i for i, t in enumerate(KUBELET_CONDITIONS)}
    return sorted(conditions, key=lambda c: order.get(c.type, len(order)))
