"""Whole pod lifecycles driven through the pure API alone: actions, the
simulated container model, records and the status, stepped through time by
a tiny in-test driver. Checks that the pieces compose the way the real pod
worker will use them (init order, sidecar start and stop order, back-off
timing, graceful deletion)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from podmodel.pod import Pod

from services.node_agent.logic.actions import compute_pod_actions, stop_grace
from services.node_agent.logic.backoff import BackoffConfig, CrashBackoff
from services.node_agent.logic.records import (
    ContainerRecord,
    ProbeResults,
    SandboxRecord,
    new_attempt,
)
from services.node_agent.logic.simulated_behaviour import SimulatedRun, parse_behaviour
from services.node_agent.logic.status_merge import generate_pod_status
from tests.unit.node_agent.builders import container, make_pod, sidecar

STEP = 0.25


@dataclass
class Walk:
    """A pod on a pretend node: one SimulatedRun per container."""

    pod: Pod
    backoff: CrashBackoff = field(default_factory=CrashBackoff)
    t: float = 0.0
    sandbox: SandboxRecord | None = None
    runs: dict[str, tuple[SimulatedRun, ContainerRecord]] = field(default_factory=dict)
    stopping: dict[str, tuple[float, int, tuple[str, ...]]] = field(default_factory=dict)
    signalled: set[str] = field(default_factory=set)  # container ids sent a stop
    log: list[tuple[float, str, str]] = field(default_factory=list)
    removed: bool = False

    def record(self, name: str) -> ContainerRecord:
        run, base = self.runs[name]
        now = run.state_at(self.t)
        if now.state == "exited":
            started = base.started(now.started_at) if now.started_at is not None else base
            return started.exited(now.exit_code or 0, now.finished_at or self.t, reason=now.reason)
        if now.state == "running":
            return base.started(run.started_at)
        return base

    def step(self) -> None:
        records = [self.record(n) for n in self.runs]
        if any(r.state == "created" for r in records):
            return  # the pod worker is still inside a start call
        probes = ProbeResults(
            startup={r.container_id: self.runs[r.name][0].probe("startup", self.t) for r in records}
        )
        actions = compute_pod_actions(
            self.pod, records, self.t, self.backoff, sandbox=self.sandbox, probes=probes
        )
        self.pod.status = generate_pod_status(
            self.pod, records, now=self.t, sandbox=self.sandbox, probes=probes, actions=actions
        )
        if actions.delete_pod:
            self.removed = True
            return
        for kill in actions.kill:
            # One kill per attempt: the plan repeats until the container exits.
            if self.runs[kill.name][1].container_id not in self.signalled:
                self.signalled.add(self.runs[kill.name][1].container_id)
                self.stopping[kill.name] = (self.t, kill.grace_seconds, kill.wait_for)
        for name, (began, grace, wait_for) in list(self.stopping.items()):
            if all(self.record(w).state == "exited" for w in wait_for if w in self.runs):
                run, base = self.runs[name]
                self.runs[name] = (run.stop(self.t, stop_grace(grace, self.t - began)), base)
                self.log.append((self.t, "stop", name))
                del self.stopping[name]
        if actions.create_sandbox:
            self.sandbox = SandboxRecord(ready=True, pod_ips=("10.0.0.9",))
        for start in (*actions.start_init, *actions.start_ephemeral, *actions.start):
            if start.previous_finished_at is not None:
                self.backoff.record_restart(
                    self.pod.metadata.uid, start.name, start.previous_finished_at, self.t
                )
            previous = self.record(start.name) if start.name in self.runs else None
            kind = start.kind
            c = self.pod.spec.container(start.name)
            assert c is not None
            behaviour = parse_behaviour(
                self.pod.metadata.annotations,
                start.name,
                kind,
                sidecar=c.restart_policy == "Always",
            )
            attempt = new_attempt(
                previous, start.name, container_id=f"sim://{start.name}/{self.t}", at=self.t
            )
            self.runs[start.name] = (
                SimulatedRun(behaviour, attempt.restart_count, self.t),
                attempt,
            )
            self.log.append((self.t, "start", start.name))

    def run_until(self, end: float) -> None:
        while self.t <= end and not self.removed:
            self.step()
            self.t = round(self.t + STEP, 6)

    def events(self, kind: str) -> list[str]:
        return [name for _, k, name in self.log if k == kind]


def test_job_with_init_and_sidecar_runs_in_order_and_succeeds() -> None:
    pod = make_pod(
        [container("main")],
        init=[container("setup"), sidecar("proxy", startup_probe=None), sidecar("logs")],
        restart_policy="Never",
    )
    pod.metadata.annotations = {
        "sim.podbus.io/exit-after": "2s",
        "sim.podbus.io/setup.exit-after": "1s",
        "sim.podbus.io/proxy.start-delay": "0.5s",
    }
    walk = Walk(pod)
    walk.run_until(10)
    assert walk.events("start") == ["setup", "proxy", "logs", "main"]
    assert walk.events("stop") == ["logs", "proxy"]
    assert pod.status.phase == "Succeeded"
    ready = pod.status.condition("Ready")
    assert ready is not None and ready.reason == "PodCompleted"
    times = {name: t for t, kind, name in walk.log if kind == "start"}
    assert times["setup"] < times["proxy"] < times["logs"] < times["main"]
    assert times["logs"] - times["proxy"] >= 0.5  # waited until proxy was started


def test_crash_loop_restarts_follow_the_back_off() -> None:
    pod = make_pod([container("app")])
    pod.metadata.annotations = {"sim.podbus.io/exit-after": "0", "sim.podbus.io/exit-code": "1"}
    walk = Walk(pod, backoff=CrashBackoff(BackoffConfig(initial=1, cap=4, reset_after=60)))
    walk.run_until(20)
    starts = [t for t, kind, _ in walk.log if kind == "start"]
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(starts)]
    # First restart at once (one step), then 1, 2, 4, 4 ... seconds of back-off.
    assert gaps[:6] == [0.25, 1.0, 2.0, 4.0, 4.0, 4.0]
    status = pod.status.container_statuses[0]
    assert status.restart_count == len(starts) - 1
    assert pod.status.phase == "Running"


def test_deletion_stops_main_then_sidecars_in_reverse_and_removes_the_pod() -> None:
    pod = make_pod([container("web")], init=[sidecar("a"), sidecar("b")])
    pod.metadata.annotations = {
        "sim.podbus.io/stop-delay": "1s",
        "sim.podbus.io/a.stop-delay": "0.5s",
        "sim.podbus.io/b.stop-delay": "0.5s",
    }
    walk = Walk(pod)
    walk.run_until(3)
    assert pod.status.phase == "Running"
    pod.metadata.deletion_timestamp = "1970-01-01T00:00:33Z"
    pod.metadata.deletion_grace_period_seconds = 30
    walk.run_until(20)
    assert walk.removed
    stops = [(t, name) for t, kind, name in walk.log if kind == "stop"]
    assert [name for _, name in stops] == ["web", "b", "a"]
    assert stops[1][0] - stops[0][0] >= 1.0  # b waited for web to exit
    assert pod.status.phase == "Succeeded"  # all exited 0 on SIGTERM
