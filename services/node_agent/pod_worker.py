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

Around the pure decisions the worker reports to its host (the NodeAgent,
`WorkerHost`): the pod's probes for the prober after every pass, the
kubelet's events (Pulled, Created, Started, Killing, BackOff, Failed), and
spans in the pod's trace (`node-agent.sandbox`, `node-agent.init-container`
per finished init container, `node-agent.container.started`,
`node-agent.ready`, `node-agent.restart` with its reason,
`node-agent.terminated`), from the facts of `logic.transitions`.

A static pod (from the manifest directory) has no store object of its own:
its worker keeps its status itself and writes it to the mirror pod when
there is one (`set_mirror`); removing it removes the mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from podmodel.pod import ContainerKind, Pod, PodStatus, is_sidecar
from podmodel.probing import ProbeAssignment
from servicekit.store import Conflict, Store
from servicekit.telemetry import TRACEPARENT_ANNOTATION, start_pod_span

from services.node_agent.hooks import run_handler
from services.node_agent.logic import events as ev
from services.node_agent.logic.actions import (
    PodActions,
    compute_pod_actions,
    container_grace_seconds,
)
from services.node_agent.logic.backoff import CrashBackoff
from services.node_agent.logic.config_refs import (
    EMPTY_CONFIG,
    PodConfig,
    has_refreshed_volumes,
)
from services.node_agent.logic.container_status import POST_START_HOOK_ERROR, WaitingReason
from services.node_agent.logic.phase import is_terminal
from services.node_agent.logic.probe_assignment import pod_probe_assignments
from services.node_agent.logic.records import ContainerRecord, ProbeResults
from services.node_agent.logic.status_merge import generate_pod_status
from services.node_agent.logic.transitions import (
    Seen,
    container_facts,
    pod_ready,
    seen_of,
)
from services.node_agent.runtime import Observation, Runtime, StartError
from services.node_agent.status_manager import StatusManager

log = logging.getLogger(__name__)

#: how soon a container whose creation failed (image absent, bad config) is tried again
START_RETRY_SECONDS = 1.0
#: how soon a pass that raised is tried again
PASS_RETRY_SECONDS = 1.0
#: a worker with nothing scheduled still looks again this often (repairs anything missed)
IDLE_RESYNC_SECONDS = 60.0
#: configMap / secret / downwardAPI volumes are brought up to date at most this
#: often (and at each idle resync, so a changed ConfigMap shows within a minute,
#: as kubelet's sync period makes it); a change of the pod's labels or
#: annotations at once
VOLUME_REFRESH_SECONDS = 5.0


class WorkerHost(Protocol):
    """What a pod worker reports to, and asks of, its node-agent."""

    def probe_results(self, uid: str, from_runtime: ProbeResults) -> ProbeResults:
        """The probe results the decisions use (the runtime's or the prober's)."""
        ...

    def set_probes(self, uid: str, assignments: list[ProbeAssignment]) -> None:
        """The probes the prober must run for this pod now."""
        ...

    def emit(self, pod: Pod, type_: str, reason: str, message: str, path: str = "") -> None:
        """Record a Kubernetes event about the pod."""
        ...

    def pod_gone(self, uid: str) -> None:
        """The worker ended: forget the pod."""
        ...

    async def config_objects(self, pod: Pod) -> PodConfig:
        """The ConfigMaps and Secrets the pod names (EMPTY_CONFIG: none)."""
        ...


class NullHost:
    """A host that keeps the runtime's probe results and records nothing."""

    def probe_results(self, uid: str, from_runtime: ProbeResults) -> ProbeResults:
        return from_runtime

    def set_probes(self, uid: str, assignments: list[ProbeAssignment]) -> None:
        return None

    def emit(self, pod: Pod, type_: str, reason: str, message: str, path: str = "") -> None:
        return None

    def pod_gone(self, uid: str) -> None:
        return None

    async def config_objects(self, pod: Pod) -> PodConfig:
        return EMPTY_CONFIG


def _wakes(old: Pod, new: Pod) -> bool:
    """Changes that need a new pass: not our own status writes."""
    a, b = old.metadata, new.metadata
    return (
        a.deletion_timestamp != b.deletion_timestamp
        or a.deletion_grace_period_seconds != b.deletion_grace_period_seconds
        or a.generation != b.generation
        or a.annotations != b.annotations
        or a.labels != b.labels  # downwardAPI volumes show them
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
        host: WorkerHost | None = None,
        static: bool = False,
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
        self.host: WorkerHost = host or NullHost()
        self.static = static
        self.mirror: Pod | None = None  # a static pod's store object
        self._own_status = pod.status  # a static pod's status (no object of its own)
        self._seen: Seen = {}
        self._ready = pod_ready(pod.status.conditions)
        self._terminal = is_terminal(pod.status.phase)
        self._kill_reasons: dict[str, str] = {}  # container -> why it was killed
        self._backoff_reported: dict[str, float] = {}
        self._eviction_reported = False
        self._pod_ip = ""
        self._volumes_due = 0.0
        self._volumes_meta: tuple[dict[str, str], dict[str, str]] | None = None
        self.first_pass = asyncio.Event()  # set once a pass reported its status and probes

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

    def config_changed(self) -> None:
        """A ConfigMap or Secret the pod names changed: a waiting start is
        retried and the volumes are refreshed at the next pass."""
        self._volumes_due = 0.0
        self._wake.set()

    def set_mirror(self, mirror: Pod | None) -> None:
        """A static pod's mirror in the store (None: there is none now)."""
        self.mirror = mirror
        if mirror is not None:
            self.status.observe_rv(mirror)
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
            self.host.pod_gone(self.uid)

    def _key(self) -> tuple[str, str]:
        return (self.pod.metadata.namespace, self.pod.metadata.name)

    def _view(self) -> Pod:
        if self.static:
            return msgspec.structs.replace(self.pod, status=self._own_status)
        return msgspec.structs.replace(self.pod, status=self.status.status_of(self.pod))

    def _set_status(self, status: PodStatus) -> None:
        if not self.static:
            self.status.set(self.pod, status)
            return
        self._own_status = status
        if self.mirror is not None and self.mirror.metadata.deletion_timestamp is None:
            self.status.set(self.mirror, status)

    async def _pass(self) -> bool:
        """One pass; True when the worker is finished."""
        self._wake.clear()
        pod = self._view()
        obs = await self.runtime.observe(pod)
        if self._removed:
            await self._kill_everything(pod, obs)
            return True
        now = self.clock()
        probes = self.host.probe_results(self.uid, obs.probes)
        actions = compute_pod_actions(
            pod,
            obs.records,
            now,
            self.backoff,
            sandbox=obs.sandbox,
            probes=probes,
            evict=obs.evict,
        )
        new_status = generate_pod_status(
            pod,
            obs.records,
            now=now,
            sandbox=obs.sandbox,
            probes=probes,
            waiting=self._waiting,
            actions=actions,
            host_ips=self.host_ips,
        )
        self._set_status(new_status)
        viewed = msgspec.structs.replace(pod, status=new_status)
        self._report(viewed, obs, actions)
        self.host.set_probes(
            self.uid,
            pod_probe_assignments(
                viewed,
                obs.records,
                obs.sandbox,
                traceparent=pod.metadata.annotations.get(TRACEPARENT_ANNOTATION, ""),
            ),
        )
        self.first_pass.set()
        if actions.delete_pod:
            await self._remove(pod)
            return True
        if await self._perform(pod, obs, actions, now):
            return False  # look again at once: what we did changed things
        await self._refresh_volumes(pod, obs)
        await self._sleep(actions, obs)
        return False

    async def _refresh_volumes(self, pod: Pod, obs: Observation) -> None:
        """kubelet's periodic remount: the files of configMap, secret and
        downwardAPI volumes follow their sources while the pod runs."""
        if (
            not self.runtime.writes_volume_files
            or obs.sandbox is None
            or pod.metadata.deletion_timestamp is not None
            or self._terminal
            or not has_refreshed_volumes(pod)
        ):
            return
        meta = (pod.metadata.labels, pod.metadata.annotations)
        now = self.clock()
        if now < self._volumes_due and meta == self._volumes_meta:
            return
        self._volumes_due = now + VOLUME_REFRESH_SECONDS
        self._volumes_meta = meta
        await self.runtime.refresh_volumes(pod, await self.host.config_objects(pod))

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
            if kill.restart:
                self._kill_reasons[kill.name] = kill.reason
            self.host.emit(
                pod, ev.NORMAL, ev.KILLING, kill.message, ev.field_path(kill.kind, kill.name)
            )
            await self.runtime.stop_container(
                pod, record, kill.grace_seconds, pre_stop=kill.run_pre_stop
            )
            did = True
        if obs.sandbox is not None:
            self._pod_ip = obs.sandbox.pod_ip
        if actions.create_sandbox:
            with start_pod_span(pod, "node-agent.sandbox") as span:
                sandbox = await self.runtime.prepare_sandbox(pod)
                self._pod_ip = sandbox.pod_ip
                span.set_attribute("podbus.sandbox.attempt", sandbox.attempt)
                span.set_attribute("k8s.pod.ip", sandbox.pod_ip)
            did = True
        self._retry_at = None
        starts = (*actions.start_init, *actions.start_ephemeral, *actions.start)
        config = await self.host.config_objects(pod) if starts else EMPTY_CONFIG
        for start in starts:
            did = (
                await self._start(
                    pod,
                    by_name.get(start.name),
                    start.name,
                    now,
                    start.previous_finished_at,
                    config,
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
        config: PodConfig = EMPTY_CONFIG,
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
        path = ev.field_path(kind, name)
        try:
            record = await self.runtime.start_container(pod, container, kind, previous, config)
        except StartError as exc:
            if self._waiting.get(name) != exc.waiting:
                self.host.emit(pod, ev.WARNING, exc.waiting.reason, exc.waiting.message, path)
            self._waiting[name] = exc.waiting
            self._retry_at = now + START_RETRY_SECONDS
            return False
        if previous_finished_at is not None:
            self.backoff.record_restart(self.uid, name, previous_finished_at, now)
            reason = self._kill_reasons.pop(name, "") or (
                previous.reason if previous is not None and previous.reason else ""
            )
            if not reason and previous is not None:
                reason = "Completed" if previous.exit_code == 0 else "Error"
            with start_pod_span(
                pod,
                "node-agent.restart",
                attributes={
                    "k8s.container.name": name,
                    "podbus.restart.reason": reason,
                    "podbus.restart.count": (previous.restart_count + 1) if previous else 1,
                },
            ):
                pass
        self._waiting.pop(name, None)
        self.host.emit(pod, ev.NORMAL, ev.PULLED, ev.pulled_message(container.image), path)
        self.host.emit(pod, ev.NORMAL, ev.CREATED, f"Created container {name}", path)
        if kind != "ephemeral" and (kind == "app" or is_sidecar(container)):
            await self._post_start(pod, container, kind, record, path)
        return True

    async def _post_start(
        self, pod: Pod, container: Any, kind: ContainerKind, record: ContainerRecord, path: str
    ) -> None:
        """Run the postStart hook; on failure kill the container (kubelet:
        FailedPostStartHook event, Killing with that message, then the
        container waits with PostStartHookError until it is restarted)."""
        handler = container.lifecycle.post_start if container.lifecycle else None
        if handler is None:
            return
        failure = await run_handler(self.runtime, pod, container, record, handler, self._pod_ip)
        if failure is None:
            return
        self.host.emit(pod, ev.WARNING, ev.FAILED_POST_START_HOOK, "PostStartHook failed", path)
        self.host.emit(pod, ev.NORMAL, ev.KILLING, ev.FAILED_POST_START_HOOK, path)
        self._waiting[container.name] = WaitingReason(reason=POST_START_HOOK_ERROR, message=failure)
        self._kill_reasons[container.name] = ev.FAILED_POST_START_HOOK
        self._killing.add(record.container_id)
        grace = container_grace_seconds(pod, container, "Unknown")
        pre_stop = grace > 0 and container.lifecycle.pre_stop is not None
        await self.runtime.stop_container(pod, record, grace, pre_stop=pre_stop)

    # -------------------------------------------------------------- reports

    def _report(self, pod: Pod, obs: Observation, actions: PodActions) -> None:
        """Events and spans for what changed since the last pass."""
        for fact in container_facts(pod, self._seen, obs.records):
            record = fact.record
            name = record.name
            attrs: dict[str, Any] = {
                "k8s.container.name": name,
                "podbus.container.kind": fact.kind,
                "podbus.container.id": record.container_id,
                "k8s.container.restart_count": record.restart_count,
            }
            if fact.fact == "started":
                self.host.emit(
                    pod,
                    ev.NORMAL,
                    ev.STARTED,
                    f"Started container {name}",
                    ev.field_path(fact.kind, name),
                )
                if fact.kind != "init" or self._is_sidecar(pod, name):
                    with start_pod_span(pod, "node-agent.container.started", attributes=attrs):
                        pass
            elif fact.kind == "init" and not self._is_sidecar(pod, name):
                attrs["podbus.container.exit_code"] = record.exit_code or 0
                attrs["podbus.container.reason"] = record.reason or (
                    "Completed" if record.exit_code == 0 else "Error"
                )
                with start_pod_span(pod, "node-agent.init-container", attributes=attrs):
                    pass
        self._seen = seen_of(obs.records)
        for wait in actions.backoff:
            if self._backoff_reported.get(wait.name) != wait.until:
                self._backoff_reported[wait.name] = wait.until
                self.host.emit(
                    pod,
                    ev.WARNING,
                    ev.BACK_OFF,
                    f"Back-off restarting failed container {wait.name} in pod "
                    f"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})",
                    ev.field_path(wait.kind, wait.name),
                )
        if actions.kill_reason == "Evicted" and not self._eviction_reported:
            self._eviction_reported = True
            self.host.emit(pod, ev.WARNING, ev.EVICTED, actions.phase_message, "")
        ready = pod_ready(pod.status.conditions)
        if ready and not self._ready:
            with start_pod_span(pod, "node-agent.ready"):
                pass
        self._ready = ready
        terminal = is_terminal(pod.status.phase)
        if terminal and not self._terminal:
            self._terminated_span(pod, pod.status.phase, pod.status.reason)
        self._terminal = terminal

    def _terminated_span(self, pod: Pod, phase: str, reason: str) -> None:
        with start_pod_span(
            pod,
            "node-agent.terminated",
            attributes={"podbus.pod.phase": phase, "podbus.pod.reason": reason},
        ):
            pass

    @staticmethod
    def _is_sidecar(pod: Pod, name: str) -> bool:
        return any(
            c.name == name and c.restart_policy == "Always" for c in pod.spec.init_containers
        )

    async def _kill_everything(self, pod: Pod, obs: Observation) -> None:
        """The object is gone without us: stop what runs, no status."""
        for record in obs.records:
            if record.could_be_running:
                await self.runtime.stop_container(pod, record, 0, pre_stop=False)
        await self.runtime.remove_pod(self.uid)
        self.backoff.forget_pod(self.uid)
        if not self.static:
            self.status.forget(pod)

    async def _remove(self, pod: Pod) -> None:
        """A deleted pod has stopped: write its final status, remove it
        (a static pod: its mirror)."""
        if not self._terminal:
            self._terminated_span(pod, "Deleted", "")
            self._terminal = True
        target = self.mirror if self.static else pod
        if target is not None:
            await self.status.flushed(target)
        store_uid = self.mirror.metadata.uid if self.mirror is not None else self.uid
        ns, name = self._key()
        for _attempt in range(5):
            if self.static and self.mirror is None:
                break
            current = await self.store.get(Pod, ns, name)
            if current is None or current.metadata.uid != store_uid:
                break
            try:
                await self.store.remove(Pod, ns, name, current.metadata.resource_version)
                break
            except Conflict:
                continue  # a write slipped in between: read again
        self.status.forget(target or pod)
        await self.runtime.remove_pod(self.uid)
        self.backoff.forget_pod(self.uid)
