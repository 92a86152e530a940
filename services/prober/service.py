"""The prober service of one node: the bus around `ProbeManager`.

- subscribes to `probe_assign(node)`: every ProbeAssignmentSet replaces the
  running probes (the manager keeps the state of unchanged ones);
- sends a `ProbeSyncRequest` on `probe_sync(node)` once subscribed, so the
  node-agent publishes its full assignment again (the prober keeps nothing
  the node-agent cannot give it again), and again every `sync_s` until the
  first assignment arrives (the node-agent may start later);
- publishes `ProbeReport`s on `probe_result(node)`: transitions as they
  happen (batched per loop turn by the manager), plus a heartbeat with the
  state of every probe every `heartbeat_s` seconds, and at once when the
  assignment's generation goes back (the node-agent restarted and lost the
  results it had);
- exec probes are `ExecRequest`s to the node-agent on `node_exec(node)`;
- one span `prober.transition` in the pod's trace per transition (the
  traceparent comes with the assignment), with the probe type, result and
  message as attributes; none for the runs that change nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from nats.aio.msg import Msg
from podmodel.meta import ObjectMeta
from podmodel.node_api import ExecRequest, ExecResponse
from podmodel.pod import Pod
from podmodel.probing import ProbeAssignmentSet, ProbeReport, ProbeSyncRequest
from podmodel.subjects import node_exec, probe_assign, probe_result, probe_sync
from servicekit import telemetry
from servicekit.bus import Bus
from servicekit.telemetry import TRACEPARENT_ANNOTATION, start_pod_span

from services.prober.handlers.exec import REPLY_GRACE
from services.prober.manager import ProbeManager

log = logging.getLogger(__name__)

#: reports waiting to be published beyond this are dropped (NATS is away);
#: the next heartbeat carries the state again
MAX_QUEUED_REPORTS = 1000


@dataclass(frozen=True)
class ProberConfig:
    node: str
    heartbeat_s: float = 30.0
    sync_s: float = 5.0


class ProberService:
    """One node's prober on a Bus; `start()` then `run()` until cancelled."""

    def __init__(self, config: ProberConfig, bus: Bus) -> None:
        self.config = config
        self.bus = bus
        self.node = config.node
        self.manager = ProbeManager(config.node, self._queue_report, exec_runner=self._exec)
        self._reports: asyncio.Queue[ProbeReport] = asyncio.Queue(MAX_QUEUED_REPORTS)
        self.assigned = asyncio.Event()
        self.reports_sent = 0

    # -------------------------------------------------------------- manager callbacks

    def _queue_report(self, report: ProbeReport) -> None:
        if not report.heartbeat:
            self._spans(report)
        try:
            self._reports.put_nowait(report)
        except asyncio.QueueFull:
            log.warning("probe report dropped: %d reports waiting", self._reports.qsize())

    def _spans(self, report: ProbeReport) -> None:
        if not telemetry.enabled():
            return
        for result in report.results:
            assignment = self.manager.assignment(
                (result.pod_uid, result.container_name, result.probe_type)
            )
            traceparent = assignment.traceparent if assignment is not None else ""
            pod = Pod(
                metadata=ObjectMeta(
                    name=result.pod_name,
                    namespace=result.namespace,
                    uid=result.pod_uid,
                    annotations={TRACEPARENT_ANNOTATION: traceparent} if traceparent else {},
                )
            )
            with start_pod_span(
                pod,
                "prober.transition",
                attributes={
                    "k8s.container.name": result.container_name,
                    "podbus.probe.type": result.probe_type,
                    "podbus.probe.result": result.result,
                    "podbus.probe.message": result.message,
                    "k8s.node.name": self.node,
                },
            ):
                pass

    async def _exec(self, request: ExecRequest) -> ExecResponse:
        # Probe runs are not traced (only transitions are): an unsampled
        # parent keeps the request's messaging spans, here and at the
        # node-agent, from opening a new trace every period.
        with telemetry.untraced():
            reply: ExecResponse = await self.bus.request(
                node_exec(self.node),
                request,
                ExecResponse,
                timeout=request.timeout_s + REPLY_GRACE,
            )
        return reply

    # -------------------------------------------------------------- bus

    async def _on_assign(self, assignments: ProbeAssignmentSet, _msg: Msg) -> None:
        if assignments.node != self.node:
            log.warning(
                "assignment for node %s on %s's subject ignored", assignments.node, self.node
            )
            return
        restarted = self.assigned.is_set() and assignments.generation <= self.manager.generation
        diff = self.manager.apply(assignments)
        self.assigned.set()
        if restarted:
            # The node-agent restarted (its generations start again at 1) and
            # lost the results: give it the current state now rather than at
            # the next heartbeat, since only transitions are reported.
            self._queue_report(self.manager.heartbeat())
        if diff.added or diff.removed or diff.replaced:
            log.info(
                "assignment %d: %d probes (+%d -%d ~%d)",
                assignments.generation,
                len(self.manager),
                len(diff.added),
                len(diff.removed),
                len(diff.replaced),
            )

    async def start(self) -> None:
        """Subscribe; the sync request goes out from `run()`."""
        await self.bus.subscribe(probe_assign(self.node), self._on_assign, type=ProbeAssignmentSet)
        await self.bus.nc.flush()

    async def _sync(self) -> None:
        while not self.assigned.is_set():
            try:
                await self.bus.publish(probe_sync(self.node), ProbeSyncRequest(node=self.node))
            except Exception as exc:
                log.warning("probe sync request not sent: %s", exc)
            try:
                async with asyncio.timeout(self.config.sync_s):
                    await self.assigned.wait()
            except TimeoutError:
                continue

    async def _send_reports(self) -> None:
        while True:
            report = await self._reports.get()
            try:
                await self.bus.publish(probe_result(self.node), report)
                self.reports_sent += 1
            except Exception as exc:
                log.warning("probe report not published: %s", exc)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            if len(self.manager):
                self._queue_report(self.manager.heartbeat())

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._send_reports(), name="prober reports")
                group.create_task(self._sync(), name="prober sync")
                group.create_task(self._heartbeats(), name="prober heartbeats")
        finally:
            await self.manager.close()
