"""The probe manager with scripted handlers and a hand-driven scheduler:
assignment diffs, startup gating across probes, transitions, heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from podmodel.node_api import ExecRequest, ExecResponse
from podmodel.pod import ContainerPort, ExecAction, HTTPGetAction, Probe, TCPSocketAction
from podmodel.probing import ProbeAssignment, ProbeAssignmentSet, ProbeKey, ProbeReport, ProbeType

from services.prober.handlers.exec import ExecRunner
from services.prober.logic.thresholds import Outcome
from services.prober.manager import ProbeManager, RunProbe, build_run
from services.prober.scheduler import ProbeScheduler

NOW = 1_000_000.0
STARTED = "1970-01-12T13:46:40Z"  # NOW - 0 s
OK = Outcome("success")
BAD = Outcome("failure", "HTTP probe failed with statuscode: 500")


class HandScheduler(ProbeScheduler):
    """Records what the manager asks for; the test fires jobs itself."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[Hashable, Callable[[], Coroutine[Any, Any, None] | None]] = {}
        self.delays: dict[Hashable, float | None] = {}
        self.reschedules: list[tuple[Hashable, float]] = []
        self.adds = 0

    def add(self, key: Hashable, period: float, job: Any, *, delay: float | None = None) -> None:
        self.adds += 1
        self.jobs[key] = job
        self.delays[key] = delay

    def remove(self, key: Hashable) -> None:
        self.jobs.pop(key, None)

    def reschedule(self, key: Hashable, delay: float) -> None:
        self.reschedules.append((key, delay))

    async def fire(self, key: Hashable) -> bool:
        coro = self.jobs[key]()
        if coro is None:
            return False
        await coro
        return True


class Script:
    """Scripted outcomes per probe key (the last one repeats)."""

    def __init__(self) -> None:
        self.outcomes: dict[ProbeKey, list[Outcome]] = {}
        self.calls: dict[ProbeKey, int] = {}

    def build(self, assignment: ProbeAssignment, exec_runner: ExecRunner | None) -> RunProbe:
        key = assignment.key

        async def run() -> Outcome:
            self.calls[key] = self.calls.get(key, 0) + 1
            queue = self.outcomes.get(key, [OK])
            return queue.pop(0) if len(queue) > 1 else queue[0]

        return run


def probe_assignment(
    probe_type: ProbeType,
    *,
    container_id: str = "c1",
    started: bool = False,
    initial_delay: int = 0,
    failure_threshold: int = 1,
) -> ProbeAssignment:
    return ProbeAssignment(
        pod_uid="u1",
        namespace="default",
        pod_name="web",
        container_name="app",
        container_id=container_id,
        probe_type=probe_type,
        probe=Probe(
            tcp_socket=TCPSocketAction(port=80),
            initial_delay_seconds=initial_delay,
            failure_threshold=failure_threshold,
        ),
        pod_ip="10.0.0.5",
        started_at=STARTED,
        started=started,
    )


def key(probe_type: ProbeType) -> ProbeKey:
    return ("u1", "app", probe_type)


class Setup:
    def __init__(self, *, monotonic: float = 0.0) -> None:
        self.reports: list[ProbeReport] = []
        self.scheduler = HandScheduler()
        self.script = Script()
        self.mono = monotonic
        self.manager = ProbeManager(
            "n1",
            self.reports.append,
            scheduler=self.scheduler,
            clock=lambda: NOW + 100,
            monotonic=lambda: self.mono,
            run_builder=self.script.build,
        )

    def apply(self, *probes: ProbeAssignment, generation: int = 1) -> None:
        self.manager.apply(
            ProbeAssignmentSet(node="n1", generation=generation, probes=list(probes))
        )

    async def published(self) -> list[tuple[str, str]]:
        await asyncio.sleep(0)  # the report is flushed at the end of the loop turn
        out: list[tuple[str, str]] = [
            (r.probe_type, r.result) for report in self.reports for r in report.results
        ]
        self.reports.clear()
        return out


async def test_transitions_of_one_turn_go_out_in_one_report() -> None:
    s = Setup()
    s.apply(probe_assignment("readiness", started=True), probe_assignment("liveness", started=True))
    await s.scheduler.fire(key("readiness"))
    await s.scheduler.fire(key("liveness"))
    await asyncio.sleep(0)
    assert len(s.reports) == 1
    assert {(r.probe_type, r.result) for r in s.reports[0].results} == {
        ("readiness", "success"),
        ("liveness", "success"),
    }
    assert s.reports[0].generation == 1 and not s.reports[0].heartbeat


async def test_startup_gates_the_other_probes_until_it_passes() -> None:
    s = Setup()
    s.apply(
        probe_assignment("startup"), probe_assignment("liveness"), probe_assignment("readiness")
    )
    s.script.outcomes[key("startup")] = [BAD, OK]
    assert not await s.scheduler.fire(key("liveness"))
    assert not await s.scheduler.fire(key("readiness"))
    assert await s.scheduler.fire(key("startup"))  # failureThreshold 1
    assert await s.published() == [("startup", "failure")]
    # A failed startup probe holds until the next container attempt.
    assert not await s.scheduler.fire(key("startup"))
    s.apply(
        probe_assignment("startup", container_id="c2"),
        probe_assignment("liveness", container_id="c2"),
        probe_assignment("readiness", container_id="c2"),
        generation=2,
    )
    assert await s.scheduler.fire(key("startup"))
    assert await s.published() == [("startup", "success")]
    # Passing startup runs the others at once and ungates them.
    assert {k for k, _ in s.scheduler.reschedules} >= {key("liveness"), key("readiness")}
    assert await s.scheduler.fire(key("liveness"))
    assert await s.scheduler.fire(key("readiness"))
    assert not await s.scheduler.fire(key("startup"))  # done for this attempt


async def test_node_agent_started_flag_ungates_after_a_prober_restart() -> None:
    s = Setup()
    s.apply(probe_assignment("startup", started=True), probe_assignment("liveness", started=True))
    assert await s.scheduler.fire(key("liveness"))
    assert not await s.scheduler.fire(key("startup"))


async def test_unchanged_probes_keep_their_state_across_assignments() -> None:
    s = Setup()
    s.apply(probe_assignment("readiness", started=True))
    await s.scheduler.fire(key("readiness"))
    assert await s.published() == [("readiness", "success")]
    s.apply(probe_assignment("readiness", started=True), generation=2)
    assert s.scheduler.adds == 1
    state = s.manager.state(key("readiness"))
    assert state is not None and state.result == "success"
    await s.scheduler.fire(key("readiness"))
    assert await s.published() == []  # no transition, nothing sent


async def test_new_container_attempt_resets_and_probes_soon() -> None:
    s = Setup()
    s.apply(probe_assignment("liveness", started=True))
    s.script.outcomes[key("liveness")] = [BAD]
    await s.scheduler.fire(key("liveness"))
    assert await s.published() == [("liveness", "failure")]
    assert not await s.scheduler.fire(key("liveness"))  # on hold
    s.apply(probe_assignment("liveness", started=True, container_id="c2"), generation=2)
    assert s.scheduler.reschedules == [(key("liveness"), 0.0)]
    s.script.outcomes[key("liveness")] = [OK]
    assert await s.scheduler.fire(key("liveness"))
    await asyncio.sleep(0)
    assert [(r.container_id, r.result) for r in s.reports[0].results] == [("c2", "success")]


async def test_changed_probe_spec_restarts_the_worker() -> None:
    s = Setup()
    s.apply(probe_assignment("readiness", started=True))
    s.apply(probe_assignment("readiness", started=True, failure_threshold=5), generation=2)
    assert s.scheduler.adds == 2
    state = s.manager.state(key("readiness"))
    assert state is not None and state.failure_threshold == 5


async def test_removed_probes_stop() -> None:
    s = Setup()
    s.apply(probe_assignment("readiness"), probe_assignment("liveness"))
    s.apply(probe_assignment("readiness"), generation=2)
    assert set(s.scheduler.jobs) == {key("readiness")}
    assert len(s.manager) == 1


async def test_first_runs_jittered_after_start_then_as_soon_as_allowed() -> None:
    s = Setup(monotonic=0.0)
    s.apply(probe_assignment("readiness", initial_delay=300))
    assert s.scheduler.delays[key("readiness")] is None  # spread over the period
    s.mono = 60.0  # later than one period after start
    s.apply(
        probe_assignment("readiness", initial_delay=300),
        probe_assignment("liveness", initial_delay=300),
    )
    # started NOW, clock NOW + 100: 200 s of initial delay left
    assert s.scheduler.delays[key("liveness")] == 200.0


async def test_result_of_a_replaced_container_is_dropped() -> None:
    s = Setup()
    gate = asyncio.Event()

    def build(assignment: ProbeAssignment, exec_runner: ExecRunner | None) -> RunProbe:
        async def run() -> Outcome:
            await gate.wait()
            return BAD

        return run

    s.manager._build_run = build
    s.apply(probe_assignment("readiness", started=True))
    running = asyncio.ensure_future(s.scheduler.fire(key("readiness")))
    await asyncio.sleep(0)
    s.apply(probe_assignment("readiness", started=True, container_id="c2"), generation=2)
    gate.set()
    await running
    assert await s.published() == []


async def test_heartbeat_reports_current_states_with_initial_values() -> None:
    s = Setup()
    s.apply(probe_assignment("readiness"), probe_assignment("liveness", started=True))
    report = s.manager.heartbeat()
    assert report.heartbeat
    assert {(r.probe_type, r.result) for r in report.results} == {
        ("readiness", "failure"),
        ("liveness", "success"),
    }


def named(probe: Probe) -> ProbeAssignment:
    return ProbeAssignment(
        pod_uid="u1",
        namespace="default",
        pod_name="web",
        container_name="app",
        container_id="c1",
        probe_type="liveness",
        probe=probe,
        pod_ip="10.0.0.5",
        ports=[ContainerPort(name="http", container_port=8080)],
    )


async def test_unknown_named_port_makes_errored_runs() -> None:
    run = build_run(named(Probe(http_get=HTTPGetAction(port="metrics"))), None)
    assert await run() == Outcome("unknown", 'port "metrics" not found')


async def test_exec_probe_goes_through_the_exec_runner() -> None:
    requests: list[ExecRequest] = []

    async def runner(request: ExecRequest) -> ExecResponse:
        requests.append(request)
        return ExecResponse(
            exit_code=1, stderr="cat: can't open '/tmp/healthy': No such file or directory\n"
        )

    probe = Probe(exec=ExecAction(command=["cat", "/tmp/healthy"]), timeout_seconds=2)
    outcome = await build_run(named(probe), runner)()
    assert outcome == Outcome(
        "failure", "cat: can't open '/tmp/healthy': No such file or directory\n"
    )
    assert requests[0].command == ["cat", "/tmp/healthy"]
    assert (requests[0].pod, requests[0].container, requests[0].timeout_s) == ("web", "app", 2.0)
    assert (await build_run(named(probe), None)()).result == "unknown"


async def test_exec_timeouts_and_errors() -> None:
    async def timed_out(request: ExecRequest) -> ExecResponse:
        return ExecResponse(exit_code=-1, timed_out=True)

    async def refused(request: ExecRequest) -> ExecResponse:
        return ExecResponse(error="container not running")

    probe = Probe(exec=ExecAction(command=["sh", "-c", "sleep 5"]))
    assert (
        await build_run(named(probe), timed_out)()
    ).message == 'command "sh -c sleep 5" timed out'
    assert await build_run(named(probe), refused)() == Outcome("unknown", "container not running")
