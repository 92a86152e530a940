"""The prober's engine: turns probe assignments into scheduled probe
workers, runs them through the handlers, and reports transitions.

Like the kubelet's prober manager (pkg/kubelet/prober/prober_manager.go):
one worker per (pod uid, container, probe type), living across container
attempts; a new container id resets the worker's result. It differs in
timing: after the prober starts, first runs are spread over one period
(kubelet does the same); probes added later, and new container attempts,
run as soon as their initial delay allows; when a startup probe passes, the
container's other probes run at once.

Transitions are batched per event-loop turn into one `ProbeReport` and
handed to `publish`; `heartbeat()` builds the slow full-state report. The
bus wiring (assign/sync/result subjects, exec requests) is the service's
job: this module takes plain callables, so it runs without NATS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from podmodel.node_api import ExecRequest
from podmodel.probing import ProbeAssignment, ProbeAssignmentSet, ProbeKey, ProbeReport, ProbeResult

from services.prober.handlers.exec import ExecRunner, probe_exec
from services.prober.handlers.grpc import probe_grpc
from services.prober.handlers.http import probe_http
from services.prober.handlers.tcp import probe_tcp
from services.prober.logic.assignment import AssignmentDiff, diff_assignment, epoch_seconds
from services.prober.logic.http1 import probe_target, request_template
from services.prober.logic.ports import PortError, resolve_port
from services.prober.logic.thresholds import (
    Gate,
    Outcome,
    ProbeState,
    Transition,
    container_started,
)
from services.prober.scheduler import ProbeScheduler

RunProbe = Callable[[], Awaitable[Outcome]]
Publish = Callable[[ProbeReport], None]
RunBuilder = Callable[[ProbeAssignment, "ExecRunner | None"], RunProbe]


def _errored(message: str) -> RunProbe:
    outcome = Outcome("unknown", message)

    async def run() -> Outcome:
        return outcome

    return run


def build_run(assignment: ProbeAssignment, exec_runner: ExecRunner | None) -> RunProbe:
    """The handler call for one probe, with its target resolved once (per
    assignment, not per run). A probe that cannot be run gives `unknown`
    outcomes with the kubelet's reason."""
    probe = assignment.probe
    timeout = float(probe.timeout_seconds)
    try:
        if probe.exec is not None:
            if exec_runner is None:
                return _errored("exec probes need the node-agent's exec service")
            runner = exec_runner
            request = ExecRequest(
                namespace=assignment.namespace,
                pod=assignment.pod_name,
                container=assignment.container_name,
                command=list(probe.exec.command),
                timeout_s=timeout,
                container_id=assignment.container_id,
            )
            return lambda: probe_exec(runner, request)
        if probe.tcp_socket is not None:
            tcp = probe.tcp_socket
            host = tcp.host or assignment.pod_ip
            port = resolve_port(tcp.port, assignment.ports)
            if not host:
                return _errored("pod has no IP address yet")
            return lambda: probe_tcp(host, port, timeout)
        if probe.http_get is not None:
            action = probe.http_get
            host = action.host or assignment.pod_ip
            port = resolve_port(action.port, assignment.ports)
            if not host:
                return _errored("pod has no IP address yet")
            target = probe_target(action.scheme, host, port, action.path)
            template = request_template(action.http_headers)
            return lambda: probe_http(target, template, timeout)
        if probe.grpc is not None:
            grpc = probe.grpc
            host = assignment.pod_ip
            port = resolve_port(grpc.port, assignment.ports)
            if not host:
                return _errored("pod has no IP address yet")
            service = grpc.service or ""
            return lambda: probe_grpc(host, port, service, timeout)
    except PortError as exc:
        return _errored(str(exc))
    return _errored(
        f"missing probe handler for {assignment.namespace}/{assignment.pod_name}:{assignment.container_name}"
    )


class _Worker:
    """One probe of one container: its assignment, state and handler."""

    __slots__ = ("assignment", "manager", "retired", "run", "state")

    def __init__(self, manager: ProbeManager, assignment: ProbeAssignment, run: RunProbe) -> None:
        self.manager = manager
        self.assignment = assignment
        self.run = run
        self.retired = False
        self.state = ProbeState.for_probe(assignment.probe_type, assignment.probe)
        self.state.observe_container(assignment.container_id, epoch_seconds(assignment.started_at))

    def fire(self) -> Coroutine[Any, Any, None] | None:
        """The scheduler's job: a probe run, or None if gated."""
        manager = self.manager
        if self.state.gate(manager.clock(), manager.is_started(self)) is not Gate.RUN:
            return None
        return self._probe()

    async def _probe(self) -> None:
        state = self.state
        container_id = state.container_id
        outcome = await self.run()
        if self.retired or state.container_id != container_id:
            return  # the worker or the container changed under the run
        transition = state.record(outcome)
        if transition is not None:
            self.manager.emit(self, transition)


class ProbeManager:
    """All probe workers of one node."""

    def __init__(
        self,
        node: str,
        publish: Publish,
        *,
        scheduler: ProbeScheduler | None = None,
        exec_runner: ExecRunner | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        run_builder: RunBuilder | None = None,
    ) -> None:
        self.node = node
        self.publish = publish
        self.scheduler = scheduler if scheduler is not None else ProbeScheduler()
        self.exec_runner = exec_runner
        self.clock = clock
        self._monotonic = monotonic
        self._build_run: RunBuilder = run_builder or build_run
        self._born = monotonic()
        self.generation = 0
        self._workers: dict[ProbeKey, _Worker] = {}
        self._pending: list[ProbeResult] = []
        self._flush_handle: asyncio.Handle | None = None

    def __len__(self) -> int:
        return len(self._workers)

    def assignment(self, key: ProbeKey) -> ProbeAssignment | None:
        """The assignment a probe runs under now."""
        worker = self._workers.get(key)
        return worker.assignment if worker else None

    def state(self, key: ProbeKey) -> ProbeState | None:
        worker = self._workers.get(key)
        return worker.state if worker else None

    def apply(self, assignments: ProbeAssignmentSet) -> AssignmentDiff:
        """Take a full assignment: start, stop, replace or update workers."""
        running = {key: w.assignment for key, w in self._workers.items()}
        diff = diff_assignment(running, assignments)
        for key in diff.removed:
            self._stop(key)
        for assignment in diff.replaced:
            self._stop(assignment.key)
            self._start(assignment)
        for assignment in diff.added:
            self._start(assignment)
        for assignment in diff.kept:
            self._update(assignment)
        self.generation = assignments.generation
        return diff

    async def close(self) -> None:
        for key in list(self._workers):
            self._stop(key)
        await self.scheduler.close()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()

    def is_started(self, worker: _Worker) -> bool:
        assignment = worker.assignment
        startup = self._workers.get((assignment.pod_uid, assignment.container_name, "startup"))
        return container_started(
            startup is not None, assignment.started, startup.state if startup else None
        )

    def heartbeat(self) -> ProbeReport:
        """The current result of every probe with a container."""
        results = []
        for worker in self._workers.values():
            state = worker.state
            if state.container_id:
                run = state.run_length if state.last_run == state.result else 0
                results.append(
                    self._result(worker, state.result, state.message, state.warning, run)
                )
        return ProbeReport(
            node=self.node, generation=self.generation, heartbeat=True, results=results
        )

    def emit(self, worker: _Worker, transition: Transition) -> None:
        self._pending.append(
            self._result(
                worker,
                transition.result,
                transition.message,
                transition.warning,
                transition.consecutive,
            )
        )
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        if worker.assignment.probe_type == "startup" and transition.result == "success":
            self._run_gated_soon(worker.assignment)

    def _result(
        self, worker: _Worker, result: Any, message: str, warning: bool, consecutive: int
    ) -> ProbeResult:
        a = worker.assignment
        return ProbeResult(
            pod_uid=a.pod_uid,
            namespace=a.namespace,
            pod_name=a.pod_name,
            container_name=a.container_name,
            container_id=worker.state.container_id,
            probe_type=a.probe_type,
            result=result,
            message=message,
            warning=warning,
            consecutive=consecutive,
        )

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._pending:
            return
        results, self._pending = self._pending, []
        self.publish(
            ProbeReport(
                node=self.node, generation=self.generation, heartbeat=False, results=results
            )
        )

    def _start(self, assignment: ProbeAssignment) -> None:
        worker = _Worker(self, assignment, self._build_run(assignment, self.exec_runner))
        self._workers[assignment.key] = worker
        period = float(assignment.probe.period_seconds)
        delay: float | None
        if self._monotonic() - self._born < period:
            delay = None  # just started: spread the first runs over a period
        else:
            delay = self._until_allowed(worker.state)
        self.scheduler.add(assignment.key, period, worker.fire, delay=delay)

    def _stop(self, key: ProbeKey) -> None:
        worker = self._workers.pop(key, None)
        if worker is not None:
            worker.retired = True
            self.scheduler.remove(key)

    def _update(self, assignment: ProbeAssignment) -> None:
        worker = self._workers[assignment.key]
        old = worker.assignment
        worker.assignment = assignment
        if (old.pod_ip, old.ports) != (assignment.pod_ip, assignment.ports) or (
            old.container_id != assignment.container_id
        ):
            worker.run = self._build_run(assignment, self.exec_runner)
        if worker.state.observe_container(
            assignment.container_id, epoch_seconds(assignment.started_at)
        ):
            self.scheduler.reschedule(assignment.key, self._until_allowed(worker.state))

    def _until_allowed(self, state: ProbeState) -> float:
        """Seconds until the initial delay of the current attempt is over."""
        if state.started_at is None:
            return 0.0
        return max(0.0, state.started_at + state.initial_delay - self.clock())

    def _run_gated_soon(self, startup: ProbeAssignment) -> None:
        for key in (
            (startup.pod_uid, startup.container_name, "liveness"),
            (startup.pod_uid, startup.container_name, "readiness"),
        ):
            worker = self._workers.get(key)
            if worker is not None:
                self.scheduler.reschedule(key, self._until_allowed(worker.state))
