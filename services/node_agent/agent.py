"""The node-agent of one node: an informer on the pods bound to it
(`podbus.watch.pod.<node>.>`), one pod worker per pod, and deletion
handling (a pod with deletionTimestamp runs its termination plan, then its
worker removes the object). The status manager, the event recorder and the
NATS/Redis clients are handed in, so hollow nodes share them.

Besides the workers, per node:
- probes (`AgentConfig.probes`): "prober" publishes the node's probe
  assignments to the prober service and takes its results (`ProbeLink`);
  "runtime" uses the probe outcomes the runtime reports itself (the
  simulated runtime's annotations; hollow nodes have no prober);
- request-reply on `podbus.node.<node>.exec` (ExecRequest -> ExecResponse)
  and `podbus.node.<node>.logs` (LogsRequest -> LogsReply, or a stream of
  them ended by an empty message with header LOGS_END_HEADER when
  `follow`), served from the runtime's exec and logs; interactive sessions
  on `podbus.node.<node>.attach` (attach.py);
- static pods from `static_pod_dir` (`StaticPodSource`), their mirror pods
  being the store objects the informer shows (never run as pods themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from podmodel.codec import DecodeError, encode
from podmodel.config import ConfigMap, Secret
from podmodel.meta import KubeObject
from podmodel.node_api import (
    LOGS_END_HEADER,
    ExecRequest,
    ExecResponse,
    LogsReply,
    LogsRequest,
)
from podmodel.pod import Pod
from podmodel.probing import ProbeAssignment, ProbeResult
from podmodel.subjects import node_exec, node_logs, untoken, watch_kind
from servicekit.bus import Bus, decode_payload, wants_json
from servicekit.informer import Informer
from servicekit.store import Store

from services.node_agent.attach import AttachServer
from services.node_agent.events import EventRecorder
from services.node_agent.logic import events as ev
from services.node_agent.logic.backoff import BackoffConfig, CrashBackoff
from services.node_agent.logic.config_refs import EMPTY_CONFIG, PodConfig, referenced
from services.node_agent.logic.logs import LogsError, default_container, stamp_lines, tail
from services.node_agent.logic.probe_assignment import unhealthy_message
from services.node_agent.logic.records import ProbeResults
from services.node_agent.logic.static_pods import CONFIG_MIRROR, RESCAN_SECONDS, is_mirror_pod
from services.node_agent.logic.timefmt import rfc3339
from services.node_agent.logic.transitions import container_kind
from services.node_agent.pod_worker import PodWorker
from services.node_agent.probes import ProbeLink
from services.node_agent.runtime import Runtime
from services.node_agent.static_pods import StaticPodSource
from services.node_agent.status_manager import StatusManager

log = logging.getLogger(__name__)

#: how long stopping waits for the pod workers to end
STOP_TIMEOUT_SECONDS = 5.0
#: longest wait for the workers' first passes before the first probe assignment
FIRST_ASSIGNMENT_WAIT_SECONDS = 2.0
#: a followed log stream looks for new output this often
FOLLOW_POLL_SECONDS = 0.25
#: largest chunk of log output in one message (NATS' default max is 1 MiB)
LOGS_CHUNK_BYTES = 256 * 1024

ProbeSource = Literal["runtime", "prober"]


@dataclass(frozen=True)
class AgentConfig:
    """Per-node settings of the engine (tests shorten the timings)."""

    node_name: str
    host_ips: tuple[str, ...] = ("127.0.0.1",)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    resync_s: float = 30.0
    probes: ProbeSource = "runtime"
    static_pod_dir: str = ""
    static_rescan_s: float = RESCAN_SECONDS
    serve_node_api: bool = True


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
        events: EventRecorder | None = None,
    ) -> None:
        self.config = config
        self.node = config.node_name
        self.store = store
        self.nc = nc
        self.runtime = runtime
        self.status = status
        self.events = events
        self.backoff = CrashBackoff(config.backoff)
        self.workers: dict[str, tuple[PodWorker, asyncio.Task[None]]] = {}  # by uid
        self._by_key: dict[tuple[str, str], str] = {}
        self._static_waiting: dict[tuple[str, str], Pod] = {}  # replaced: start when old ends
        runtime.on_change = self._on_runtime_change
        self.probe_link: ProbeLink | None = (
            ProbeLink(config.node_name, nc, on_result=self._on_probe_result)
            if config.probes == "prober"
            else None
        )
        self.static: StaticPodSource | None = (
            StaticPodSource(
                config.node_name,
                config.static_pod_dir,
                store,
                self,
                rescan_s=config.static_rescan_s,
            )
            if config.static_pod_dir
            else None
        )
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
        self._subs: list[Subscription] = []
        self._streams: set[asyncio.Task[None]] = set()
        self.node_api_ready = asyncio.Event()
        self.attach: AttachServer | None = None

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.informer.run(), name=f"informer {self.node}")]
        if self.probe_link is not None:
            tasks.append(asyncio.create_task(self.probe_link.run(), name=f"probes {self.node}"))
        try:
            for kind in ("configmap", "secret"):
                self._subs.append(
                    await self.nc.subscribe(watch_kind(kind), cb=self._on_config_event)
                )
            if self.config.serve_node_api:
                await self._serve_node_api()
            if self.static is not None or self.probe_link is not None:
                await self.informer.wait_synced()
            if self.probe_link is not None:
                # The listed pods' workers make their first pass (so their
                # probes are known) before the first assignment goes out.
                passes = [w.first_pass.wait() for w, _t in self.workers.values()]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FIRST_ASSIGNMENT_WAIT_SECONDS):
                        await asyncio.gather(*passes)
                self.probe_link.pods_known.set()
            if self.static is not None:
                tasks.append(asyncio.create_task(self.static.run(), name=f"static {self.node}"))
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            # Cancel until ended: on Python 3.11 an asyncio.wait_for inside
            # the informer can swallow one cancellation.
            while not all(t.done() for t in tasks):
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=0.2)
            for sub in self._subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            for stream in list(self._streams):
                stream.cancel()
            if self.attach is not None:
                await self.attach.close()  # interactive commands end with the agent
            # Containers keep running when the agent stops (as with kubelet);
            # a restarted agent adopts them.
            workers = [task for _w, task in self.workers.values()]
            for task in workers:
                task.cancel()
            if workers:
                await asyncio.wait(workers, timeout=STOP_TIMEOUT_SECONDS)
            self.workers.clear()

    # -------------------------------------------------------------- informer

    def _on_add(self, pod: Pod) -> None:
        if is_mirror_pod(pod):
            if self.static is not None:
                self.static.mirror_seen(pod)
            return
        self._ensure(pod)

    def _on_update(self, old: Pod, new: Pod) -> None:
        self._on_add(new)

    def _on_delete(self, pod: Pod) -> None:
        if is_mirror_pod(pod):
            if self.static is not None:
                self.static.mirror_gone(pod)
            return
        key = (pod.metadata.namespace, pod.metadata.name)
        uid = self._by_key.get(key)
        if uid != pod.metadata.uid:
            return
        del self._by_key[key]
        entry = self.workers.get(uid)
        if entry is not None:
            entry[0].removed()

    def _on_runtime_change(self, uid: str) -> None:
        entry = self.workers.get(uid)
        if entry is not None:
            entry[0].wake()

    def _ensure(self, pod: Pod, *, static: bool = False) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        uid = pod.metadata.uid
        old_uid = self._by_key.get(key)
        if old_uid is not None and old_uid != uid:
            old = self.workers.get(old_uid)
            if old is not None:
                if old[0].static and not static:
                    return  # a static pod owns this name; the store's copy is its mirror
                old[0].removed()  # replaced under the same name
        self._by_key[key] = uid
        entry = self.workers.get(uid)
        if entry is not None:
            entry[0].update(pod)
            return
        if self.probe_link is not None:
            self.probe_link.seed(pod)
        worker = PodWorker(
            pod,
            runtime=self.runtime,
            backoff=self.backoff,
            status=self.status,
            store=self.store,
            host_ips=self.config.host_ips,
            host=self,
            static=static,
        )
        task = asyncio.create_task(worker.run(), name=f"pod-worker {key[0]}/{key[1]}")
        self.workers[uid] = (worker, task)
        task.add_done_callback(functools.partial(self._finished, uid, key))

    def _finished(self, uid: str, key: tuple[str, str], _task: asyncio.Task[None]) -> None:
        self.workers.pop(uid, None)
        if self._by_key.get(key) == uid:
            del self._by_key[key]
        waiting = self._static_waiting.pop(key, None)
        if waiting is not None:
            self._ensure(waiting, static=True)
            if self.static is not None:
                mirror = self.static.mirrors.get(key)
                if mirror is not None:
                    self.set_mirror(waiting.metadata.uid, mirror)

    def worker_of(self, namespace: str, name: str) -> PodWorker | None:
        uid = self._by_key.get((namespace, name))
        entry = self.workers.get(uid or "")
        return entry[0] if entry is not None else None

    # -------------------------------------------------------------- static pods (StaticHost)

    def start_static(self, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        mirror = self.static.mirrors.get(key) if self.static is not None else None
        if (
            mirror is not None
            and mirror.metadata.annotations.get(CONFIG_MIRROR) == pod.metadata.uid
        ):
            # A restarted agent: the mirror holds what ran, so the runtime
            # adopts it instead of starting the containers a second time.
            pod = msgspec.structs.replace(pod, status=mirror.status)
        old_uid = self._by_key.get(key)
        if old_uid is not None and old_uid != pod.metadata.uid and old_uid in self.workers:
            # The old version is still stopping: start the new one after it.
            self._static_waiting[key] = pod
            return
        self._ensure(pod, static=True)

    def stop_static(self, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        self._static_waiting.pop(key, None)
        entry = self.workers.get(pod.metadata.uid)
        if entry is None:
            return
        worker = entry[0]
        if worker.pod.metadata.deletion_timestamp is not None:
            return
        meta = msgspec.structs.replace(
            worker.pod.metadata,
            deletion_timestamp=rfc3339(time.time()),
            deletion_grace_period_seconds=worker.pod.spec.termination_grace_period_seconds,
        )
        worker.update(msgspec.structs.replace(worker.pod, metadata=meta))

    def set_mirror(self, static_uid: str, mirror: Pod | None) -> None:
        entry = self.workers.get(static_uid)
        if entry is not None and entry[0].pod.metadata.deletion_timestamp is None:
            entry[0].set_mirror(mirror)
        elif entry is not None and mirror is not None:
            entry[0].set_mirror(mirror)  # stopping: it removes this mirror at the end

    # -------------------------------------------------------------- WorkerHost

    def probe_results(self, uid: str, from_runtime: ProbeResults) -> ProbeResults:
        if self.probe_link is None:
            return from_runtime
        return self.probe_link.results(uid)

    def set_probes(self, uid: str, assignments: list[ProbeAssignment]) -> None:
        if self.probe_link is not None:
            self.probe_link.set_pod(uid, assignments)
            self.probe_link.book.keep_only(uid, (a.container_id for a in assignments))

    def emit(self, pod: Pod, type_: str, reason: str, message: str, path: str = "") -> None:
        if self.events is not None:
            self.events.emit(self.node, ev.pod_reference(pod, path), type_, reason, message)

    def pod_gone(self, uid: str) -> None:
        if self.probe_link is not None:
            self.probe_link.forget(uid)

    async def _on_config_event(self, msg: Msg) -> None:
        """podbus.watch.<configmap|secret>.<ns>.<name>: wake the workers of
        the pods that name it (the subject says which; the object is not
        read here)."""
        parts = msg.subject.split(".")
        if len(parts) != 5:
            return
        kind, ns, name = parts[2], untoken(parts[3]), untoken(parts[4])
        for worker, _task in self.workers.values():
            pod = worker.pod
            if pod.metadata.namespace != ns:
                continue
            cms, secrets = referenced(pod)
            if name in (cms if kind == "configmap" else secrets):
                worker.config_changed()

    async def config_objects(self, pod: Pod) -> PodConfig:
        """Read at each start pass, as the kubelet reads them when it makes
        a container: a ConfigMap changed since shows at the next restart."""
        cm_names, secret_names = referenced(pod)
        if not cm_names and not secret_names:
            return EMPTY_CONFIG
        ns = pod.metadata.namespace
        keys: list[tuple[str | type[KubeObject], str, str]] = [
            *((ConfigMap, ns, n) for n in sorted(cm_names)),
            *((Secret, ns, n) for n in sorted(secret_names)),
        ]
        found = await self.store.get_many(keys)
        cms: dict[str, dict[str, bytes]] = {}
        secrets: dict[str, dict[str, bytes]] = {}
        for obj in found:
            if isinstance(obj, ConfigMap):
                cms[obj.metadata.name] = obj.values()
            elif isinstance(obj, Secret):
                secrets[obj.metadata.name] = obj.values()
        return PodConfig(config_maps=cms, secrets=secrets)

    def _on_probe_result(self, result: ProbeResult, heartbeat: bool) -> None:
        entry = self.workers.get(result.pod_uid)
        if entry is None:
            return
        worker = entry[0]
        worker.wake()
        if heartbeat:
            return
        path = ev.field_path(
            container_kind(worker.pod, result.container_name), result.container_name
        )
        if result.result in ("failure", "unknown"):
            # the kubelet records every failed run: a transition after
            # failureThreshold failures counts them all (`Unhealthy (x3 over 12s)`)
            runs = result.consecutive if result.result == "failure" else 1
            for _ in range(max(1, runs)):
                self.emit(worker.pod, ev.WARNING, ev.UNHEALTHY, unhealthy_message(result), path)
        elif result.warning:
            self.emit(
                worker.pod,
                ev.WARNING,
                ev.PROBE_WARNING,
                f"{result.probe_type.capitalize()} probe warning: {result.message}",
                path,
            )

    # -------------------------------------------------------------- exec and logs

    async def _serve_node_api(self) -> None:
        bus = Bus(self.nc)
        self._subs.append(
            await bus.serve(node_exec(self.node), self._exec, request_type=ExecRequest)
        )
        self._subs.append(await self.nc.subscribe(node_logs(self.node), cb=self._on_logs))
        self.attach = AttachServer(self.node, self.nc, self.runtime, self._pod_named)
        await self.attach.start(bus)
        self.node_api_ready.set()

    def _pod_named(self, namespace: str, name: str) -> Pod | None:
        worker = self.worker_of(namespace, name)
        return worker.pod if worker is not None else None

    async def _exec(self, req: ExecRequest, _msg: Msg) -> ExecResponse:
        worker = self.worker_of(req.namespace, req.pod)
        if worker is None:
            return ExecResponse(
                exit_code=-1, error=f'pod "{req.namespace}/{req.pod}" not found on node {self.node}'
            )
        pod = worker.pod
        obs = await self.runtime.observe(pod)
        record = next((r for r in obs.records if r.name == req.container), None)
        if record is None or record.state != "running":
            return ExecResponse(
                exit_code=-1,
                error=f'container "{req.container}" in pod "{req.namespace}/{req.pod}" is not running',
            )
        if req.container_id and record.container_id != req.container_id:
            return ExecResponse(
                exit_code=-1,
                error=f'container "{req.container}" is now {record.container_id}, not {req.container_id}',
            )
        try:
            async with asyncio.timeout(max(req.timeout_s, 0.001)):
                result = await self.runtime.exec(pod, req.container, list(req.command))
        except TimeoutError:
            return ExecResponse(exit_code=-1, timed_out=True)
        return ExecResponse(
            exit_code=result.exit_code,
            stdout=result.stdout.decode(errors="replace"),
            stderr=result.stderr.decode(errors="replace"),
        )

    async def _on_logs(self, msg: Msg) -> None:
        if not msg.reply:
            return
        json = wants_json(msg)
        try:
            req = decode_payload(msg.data, msg.headers, LogsRequest)
        except DecodeError as exc:
            log.warning("bad logs request on %s: %s", msg.subject, exc)
            await self._logs_reply(msg.reply, LogsReply(error=f"bad request: {exc}"), json)
            return
        if not req.follow:
            try:
                data, _running = await self._read_logs(req)
            except LogsError as exc:
                await self._logs_reply(msg.reply, LogsReply(error=str(exc)), json)
                return
            await self._logs_reply(msg.reply, LogsReply(data=data.decode(errors="replace")), json)
            return
        task = asyncio.create_task(self._follow(req, msg.reply, json), name="logs-follow")
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _logs_reply(self, subject: str, reply: LogsReply, json: bool) -> None:
        with contextlib.suppress(Exception):
            await self.nc.publish(subject, encode(reply, json=json))

    async def _read_logs(self, req: LogsRequest, *, whole: bool = False) -> tuple[bytes, bool]:
        """(output, container still running). `whole`: neither tail nor
        timestamps (the follow loop shapes chunks itself)."""
        worker = self.worker_of(req.namespace, req.pod)
        if worker is None:
            raise LogsError(
                f'pods "{req.pod}" not found in namespace {req.namespace} on {self.node}'
            )
        pod = worker.pod
        name = default_container(pod, req.container)
        obs = await self.runtime.observe(pod)
        record = next((r for r in obs.records if r.name == name), None)
        if req.previous:
            if record is None or record.previous is None:
                raise LogsError(
                    f'previous terminated container "{name}" in pod "{req.pod}" not found'
                )
            attempt = record.previous
        else:
            if record is None:
                raise LogsError(f'container "{name}" in pod "{req.pod}" is waiting to start')
            attempt = record
        running = not req.previous and attempt.state == "running"
        timed = getattr(self.runtime, "logs_timestamped", None)
        if req.timestamps and not whole and timed is not None:
            # Optional runtime extension: [(epoch seconds, line bytes), ...].
            lines = await timed(pod, name, previous=req.previous)
            if req.tail_lines >= 0:
                lines = lines[len(lines) - req.tail_lines :] if req.tail_lines else []
            return b"".join(stamp_lines(line, at) for at, line in lines), running
        data = await self.runtime.logs(pod, name, previous=req.previous)
        if whole:
            return data, running
        data = tail(data, req.tail_lines)
        if req.timestamps:
            data = stamp_lines(data, attempt.started_at or attempt.created_at or time.time())
        return data, running

    async def _follow(self, req: LogsRequest, reply: str, json: bool) -> None:
        end_headers = {LOGS_END_HEADER: "1"}
        try:
            async with asyncio.timeout(req.follow_timeout_s):
                try:
                    data, running = await self._read_logs(req, whole=True)
                    first, _running = await self._read_logs(req)
                except LogsError as exc:
                    await self._logs_reply(reply, LogsReply(error=str(exc)), json)
                    return
                sent = len(data)
                await self._send_chunks(reply, first, json)
                while running:
                    await asyncio.sleep(FOLLOW_POLL_SECONDS)
                    try:
                        data, running = await self._read_logs(req, whole=True)
                    except LogsError:
                        break
                    if len(data) < sent:
                        sent = 0  # a new attempt: its output from the start
                    fresh = data[sent:]
                    sent = len(data)
                    if req.timestamps:
                        fresh = stamp_lines(fresh, time.time())
                    await self._send_chunks(reply, fresh, json)
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(Exception):
                await self.nc.publish(reply, b"", headers=end_headers)

    async def _send_chunks(self, reply: str, data: bytes, json: bool) -> None:
        for start in range(0, len(data), LOGS_CHUNK_BYTES):
            chunk = data[start : start + LOGS_CHUNK_BYTES]
            await self._logs_reply(reply, LogsReply(data=chunk.decode(errors="replace")), json)
