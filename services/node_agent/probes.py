"""The node-agent's side of the probe protocol (podmodel.probing) for one
node: it tells the prober which probes to run and keeps what it reports.

- Pod workers hand in each pod's probes (`set_pod`) after every pass; when
  the set of any pod changed, the FULL ProbeAssignmentSet of the node is
  published on `probe_assign(node)` with the next generation, coalesced over
  `window` seconds (a burst of container starts costs one message).
- A `ProbeSyncRequest` on `probe_sync(node)` (a prober started) publishes
  the full set at once.
- `ProbeReport`s on `probe_result(node)` go into a `ProbeResultsBook` and
  are handed to `on_result` (the agent wakes the pod's worker and records
  Unhealthy events).

Where the results come from is the agent's choice (`AgentConfig.probes`):
with "prober" the book is the only source; with "runtime" (hollow nodes)
the simulated runtime evaluates probes itself and this link stays off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from podmodel.codec import DecodeError, decode, encode
from podmodel.pod import Pod
from podmodel.probing import (
    ProbeAssignment,
    ProbeAssignmentSet,
    ProbeReport,
    ProbeResult,
    ProbeSyncRequest,
)
from podmodel.subjects import probe_assign, probe_result, probe_sync

from services.node_agent.logic.probe_assignment import ProbeResultsBook
from services.node_agent.logic.records import ProbeResults

log = logging.getLogger(__name__)

OnResult = Callable[[ProbeResult, bool], None]
"""(result, heartbeat): called for every result of a report."""


class ProbeLink:
    """Assignments out, results in, for one node; `run()` until cancelled."""

    def __init__(
        self, node: str, nc: NATS, *, on_result: OnResult | None = None, window: float = 0.05
    ) -> None:
        self.node = node
        self.nc = nc
        self.on_result = on_result
        self.window = window
        self.book = ProbeResultsBook()
        self.generation = 0
        self.published = 0
        self._by_pod: dict[str, list[ProbeAssignment]] = {}
        self._dirty = asyncio.Event()
        self._subs: list[Subscription] = []
        self.ready = asyncio.Event()
        #: set by the agent once its pods are known (informer synced and the
        #: workers had a first pass): no half assignment goes out before
        self.pods_known = asyncio.Event()

    # -------------------------------------------------------------- workers

    def set_pod(self, uid: str, assignments: list[ProbeAssignment]) -> None:
        """The probes of one pod now (empty: none)."""
        current = self._by_pod.get(uid)
        if current == assignments or (current is None and not assignments):
            return
        if assignments:
            self._by_pod[uid] = assignments
        else:
            self._by_pod.pop(uid, None)
        self._dirty.set()

    def seed(self, pod: Pod) -> None:
        """Results a restarted agent takes from the pod's stored status for
        the attempts still running (ready -> readiness Success, started ->
        startup Success), so adopting a pod does not flap it unready until
        the prober reports again."""
        for status in (*pod.status.init_container_statuses, *pod.status.container_statuses):
            if status.state.running is None or not status.container_id:
                continue
            for probe_type, value in (("readiness", status.ready), ("startup", status.started)):
                if value:
                    self.book.record(
                        ProbeResult(
                            pod_uid=pod.metadata.uid,
                            namespace=pod.metadata.namespace,
                            pod_name=pod.metadata.name,
                            container_name=status.name,
                            container_id=status.container_id,
                            probe_type=probe_type,  # type: ignore[arg-type]
                            result="success",
                        )
                    )

    def results(self, uid: str) -> ProbeResults:
        return self.book.results(uid)

    def forget(self, uid: str) -> None:
        self.book.forget(uid)
        self.set_pod(uid, [])

    def assignment_set(self) -> ProbeAssignmentSet:
        probes = [a for group in self._by_pod.values() for a in group]
        return ProbeAssignmentSet(node=self.node, generation=self.generation, probes=probes)

    # -------------------------------------------------------------- bus

    async def publish_now(self) -> None:
        self._dirty.clear()
        self.generation += 1
        await self.nc.publish(probe_assign(self.node), encode(self.assignment_set()))
        self.published += 1

    async def _on_sync(self, msg: Msg) -> None:
        try:
            decode(msg.data, ProbeSyncRequest)
        except DecodeError as exc:
            log.warning("bad probe sync request on %s: %s", msg.subject, exc)
            return
        if self.pods_known.is_set():
            await self.publish_now()
        else:
            self._dirty.set()  # the first publish follows soon

    async def _on_report(self, msg: Msg) -> None:
        try:
            report = decode(msg.data, ProbeReport)
        except DecodeError as exc:
            log.warning("bad probe report on %s: %s", msg.subject, exc)
            return
        for result in report.results:
            changed = self.book.record(result)
            if self.on_result is not None and (changed or not report.heartbeat):
                try:
                    self.on_result(result, report.heartbeat)
                except Exception:
                    log.exception("probe result of %s/%s", result.namespace, result.pod_name)

    async def run(self) -> None:
        self._subs = [
            await self.nc.subscribe(probe_result(self.node), cb=self._on_report),
            await self.nc.subscribe(probe_sync(self.node), cb=self._on_sync),
        ]
        self.ready.set()
        try:
            await self.pods_known.wait()
            await asyncio.sleep(self.window)
            await self.publish_now()  # a prober that is already up takes it
            while True:
                await self._dirty.wait()
                await asyncio.sleep(self.window)
                try:
                    await self.publish_now()
                except Exception as exc:  # NATS reconnecting: try again
                    log.warning("probe assignment of %s not published: %s", self.node, exc)
                    self._dirty.set()
                    await asyncio.sleep(0.5)
        finally:
            for sub in self._subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            self._subs = []
