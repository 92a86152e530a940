"""The node-agent of one node: an informer on the pods bound to it
(`podbus.watch.pod.<node>.>`), one pod worker per pod, and deletion
handling (a pod with deletionTimestamp runs its termination plan, then its
worker removes the object). The status manager and the NATS/Redis clients
are handed in, so hollow nodes share them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS
from podmodel.pod import Pod
from servicekit.informer import Informer
from servicekit.store import Store

from services.node_agent.logic.backoff import BackoffConfig, CrashBackoff
from services.node_agent.pod_worker import PodWorker
from services.node_agent.runtime import Runtime
from services.node_agent.status_manager import StatusManager

log = logging.getLogger(__name__)

#: how long stopping waits for the pod workers to end
STOP_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class AgentConfig:
    """Per-node settings of the engine (tests shorten the timings)."""

    node_name: str
    host_ips: tuple[str, ...] = ("127.0.0.1",)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    resync_s: float = 30.0


class NodeAgent:
    """Runs the pods bound to one node; `run()` until cancelled."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        store: Store,
        nc: NATS,
        runtime: Runtime,
        status: StatusManager,
    ) -> None:
        self.config = config
        self.store = store
        self.runtime = runtime
        self.status = status
        self.backoff = CrashBackoff(config.backoff)
        self.workers: dict[str, tuple[PodWorker, asyncio.Task[None]]] = {}  # by uid
        self._by_key: dict[tuple[str, str], str] = {}
        runtime.on_change = self._on_runtime_change
        self.informer: Informer[Pod] = Informer(
            store,
            nc,
            Pod,
            node=config.node_name,
            resync_s=config.resync_s,
            on_add=self._on_add,
            on_update=self._on_update,
            on_delete=self._on_delete,
        )

    async def run(self) -> None:
        informer = asyncio.create_task(
            self.informer.run(), name=f"informer {self.config.node_name}"
        )
        try:
            await asyncio.wait([informer])
            informer.result()
        finally:
            # Cancel until it has ended: on Python 3.11 an asyncio.wait_for
            # inside the informer can swallow one cancellation.
            while not informer.done():
                informer.cancel()
                await asyncio.wait([informer], timeout=0.2)
            # Containers keep running when the agent stops (as with kubelet);
            # a restarted agent adopts them.
            tasks = [task for _w, task in self.workers.values()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS)
            self.workers.clear()

    # -------------------------------------------------------------- informer

    def _on_add(self, pod: Pod) -> None:
        self._ensure(pod)

    def _on_update(self, old: Pod, new: Pod) -> None:
        self._ensure(new)

    def _on_delete(self, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        uid = self._by_key.pop(key, None)
        entry = self.workers.get(uid or "")
        if entry is not None:
            entry[0].removed()

    def _on_runtime_change(self, uid: str) -> None:
        entry = self.workers.get(uid)
        if entry is not None:
            entry[0].wake()

    def _ensure(self, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        uid = pod.metadata.uid
        old_uid = self._by_key.get(key)
        if old_uid is not None and old_uid != uid:
            old = self.workers.get(old_uid)
            if old is not None:
                old[0].removed()  # replaced under the same name
        self._by_key[key] = uid
        entry = self.workers.get(uid)
        if entry is not None:
            entry[0].update(pod)
            return
        worker = PodWorker(
            pod,
            runtime=self.runtime,
            backoff=self.backoff,
            status=self.status,
            store=self.store,
            host_ips=self.config.host_ips,
        )
        task = asyncio.create_task(worker.run(), name=f"pod-worker {key[0]}/{key[1]}")
        self.workers[uid] = (worker, task)
        task.add_done_callback(functools.partial(self._finished, uid, key))

    def _finished(self, uid: str, key: tuple[str, str], _task: asyncio.Task[None]) -> None:
        self.workers.pop(uid, None)
        if self._by_key.get(key) == uid:
            del self._by_key[key]
