"""One pod worker per pod: serialises everything the node-agent does to
that pod (kubelet's podWorkers + syncPod).

A worker loops: observe the pod in the runtime -> `compute_pod_actions` ->
hand the generated status to the status manager -> perform the actions ->
sleep until `requeue_at`, the runtime's next change, or a wake-up (a spec
or deletion change from the informer, a runtime event). It never writes
status itself and never runs two passes at once.

The pod the pure functions see is the informer's copy with the status
manager's latest status for it (kubelet reads its own status cache, not
the API's lagging copy), so our own status writes coming back on the
watch do not wake the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from podmodel.pod import ContainerKind, Pod
from servicekit.store import Conflict, Store

from services.node_agent.logic.actions import PodActions, compute_pod_actions
from services.node_agent.logic.backoff import CrashBackoff
from services.node_agent.logic.container_status import WaitingReason
from services.node_agent.logic.records import ContainerRecord
from services.node_agent.logic.status_merge import generate_pod_status
from services.node_agent.runtime import Observation, Runtime, StartError
from services.node_agent.status_manager import StatusManager

log = logging.getLogger(__name__)

#: how soon a container whose creation failed (image absent, bad config) is tried again
START_RETRY_SECONDS = 1.0
#: how soon a pass that raised is tried again
PASS_RETRY_SECONDS = 1.0
#: a worker with nothing scheduled still looks again this often (repairs anything missed)
IDLE_RESYNC_SECONDS = 60.0


def _wakes(old: Pod, new: Pod) -> bool:
    """Changes that need a new pass: not our own status writes."""
    a, b = old.metadata, new.metadata
    return (
        a.deletion_timestamp != b.deletion_timestamp
        or a.deletion_grace_period_seconds != b.deletion_grace_period_seconds
        or a.generation != b.generation
        or a.annotations != b.annotations
        or old.spec != new.spec
    )


class PodWorker:
    """Drives one pod (one uid) until it is removed."""

    def __init__(
        self,
        pod: Pod,
        *,
        runtime: Runtime,
        backoff: CrashBackoff,
        status: StatusManager,
        store: Store,
        host_ips: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pod = pod
        self.uid = pod.metadata.uid
        self.runtime = runtime
        self.backoff = backoff
        self.status = status
        self.store = store
        self.host_ips = host_ips
        self.clock = clock
        self.done = False
        self._removed = False
        self._wake = asyncio.Event()
        self._waiting: dict[str, WaitingReason] = {}
        self._killing: set[str] = set()  # container ids being stopped
        self._retry_at: float | None = None

    # -------------------------------------------------------------- from the agent

    def update(self, pod: Pod) -> None:
        """A newer copy of the pod from the informer."""
        old, self.pod = self.pod, pod
        self.status.observe_rv(pod)
        if _wakes(old, pod):
            self._wake.set()

    def removed(self) -> None:
        """The pod object is gone from the store (or replaced): stop at once."""
        self._removed = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # -------------------------------------------------------------- the loop

    async def run(self) -> None:
        try:
            await self.runtime.adopt(self.pod)
            while True:
                try:
                    if await self._pass():
                        return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Redis down, a runtime error: log and try the pass again.
                    log.exception("pod worker %s/%s: pass failed", *self._key())
                    await self._wait_wake(PASS_RETRY_SECONDS)
        finally:
            self.done = True

    def _key(self) -> tuple[str, str]:
        return (self.pod.metadata.namespace, self.pod.metadata.name)

    def _view(self) -> Pod:
        return msgspec.structs.replace(self.pod, status=self.status.status_of(self.pod))

    async def _pass(self) -> bool:
        """One pass; True when the worker is finished."""
        self._wake.clear()
        pod = self._view()
        obs = await self.runtime.observe(pod)
        if self._removed:
            await self._kill_everything(pod, obs)
            return True
        now = self.clock()
        actions = compute_pod_actions(
            pod, obs.records, now, self.backoff, sandbox=obs.sandbox, probes=obs.probes
        )
        new_status = generate_pod_status(
            pod,
            obs.records,
            now=now,
            sandbox=obs.sandbox,
            probes=obs.probes,
            waiting=self._waiting,
            actions=actions,
            host_ips=self.host_ips,
        )
        self.status.set(self.pod, new_status)
        if actions.delete_pod:
            await self._remove(pod)
            return True
        if await self._perform(pod, obs, actions, now):
            return False  # look again at once: what we did changed things
        await self._sleep(actions, obs)
        return False

    async def _sleep(self, actions: PodActions, obs: Observation) -> None:
        times = [t for t in (actions.requeue_at, obs.next_change_at, self._retry_at) if t]
        wake_at = min(times) if times else self.clock() + IDLE_RESYNC_SECONDS
        await self._wait_wake(max(wake_at - self.clock(), 0.0) + 0.001)

    async def _wait_wake(self, seconds: float) -> None:
        """Sleep until woken or `seconds` passed. asyncio.timeout, not
        wait_for: on Python 3.11 wait_for can swallow a cancellation that
        races with the wake-up, and the worker would never stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    # -------------------------------------------------------------- actions

    def _container(self, pod: Pod, name: str) -> Any:
        for group in (pod.spec.init_containers, pod.spec.containers):
            for c in group:
                if c.name == name:
                    return c
        for e in pod.spec.ephemeral_containers:
            if e.name == name:
                return e
        return None

    async def _perform(self, pod: Pod, obs: Observation, actions: PodActions, now: float) -> bool:
        """Run this pass's actions; True when anything was done."""
        did = False
        by_name = {r.name: r for r in obs.records}
        for kill in actions.kill:
            record = by_name.get(kill.name)
            if record is None or record.container_id in self._killing:
                continue
            if any(
                (w := by_name.get(name)) is not None and w.could_be_running
                for name in kill.wait_for
            ):
                continue  # sidecars stop after the containers they serve
            self._killing.add(record.container_id)
            await self.runtime.stop_container(
                pod, record, kill.grace_seconds, pre_stop=kill.run_pre_stop
            )
            did = True
        if actions.create_sandbox:
            await self.runtime.prepare_sandbox(pod)
            did = True
        self._retry_at = None
        for start in (*actions.start_init, *actions.start_ephemeral, *actions.start):
            did = (
                await self._start(
                    pod, by_name.get(start.name), start.name, now, start.previous_finished_at
                )
                or did
            )
        return did

    async def _start(
        self,
        pod: Pod,
        previous: ContainerRecord | None,
        name: str,
        now: float,
        previous_finished_at: float | None,
    ) -> bool:
        container = self._container(pod, name)
        if container is None:
            return False
        kind: ContainerKind = (
            "init"
            if any(c.name == name for c in pod.spec.init_containers)
            else "ephemeral"
            if any(e.name == name for e in pod.spec.ephemeral_containers)
            else "app"
        )
        try:
            await self.runtime.start_container(pod, container, kind, previous)
        except StartError as exc:
            self._waiting[name] = exc.waiting
            self._retry_at = now + START_RETRY_SECONDS
            return False
        if previous_finished_at is not None:
            self.backoff.record_restart(self.uid, name, previous_finished_at, now)
        self._waiting.pop(name, None)
        return True

    async def _kill_everything(self, pod: Pod, obs: Observation) -> None:
        """The object is gone without us: stop what runs, no status."""
        for record in obs.records:
            if record.could_be_running:
                await self.runtime.stop_container(pod, record, 0, pre_stop=False)
        await self.runtime.remove_pod(self.uid)
        self.backoff.forget_pod(self.uid)
        self.status.forget(pod)

    async def _remove(self, pod: Pod) -> None:
        """A deleted pod has stopped: write its final status, remove it."""
        await self.status.flushed(pod)
        ns, name = self._key()
        for _attempt in range(5):
            current = await self.store.get(Pod, ns, name)
            if current is None or current.metadata.uid != self.uid:
                break
            try:
                await self.store.remove(Pod, ns, name, current.metadata.resource_version)
                break
            except Conflict:
                continue  # a write slipped in between: read again
        self.status.forget(pod)
        await self.runtime.remove_pod(self.uid)
        self.backoff.forget_pod(self.uid)
