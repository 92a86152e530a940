"""The prober service with a node-agent (simulated runtime, `probes=prober`)
against real NATS and Redis: liveness through HTTP against a local server
restarts the container with the kubelet's events; readiness follows the
server; exec probes run through the node-agent's exec subject; a prober
that starts after the node-agent asks for the assignment again; the
service process runs its probes on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from podmodel.codec import decode, encode
from podmodel.event import Event
from podmodel.manifest import load_manifests
from podmodel.pod import ExecAction, HTTPGetAction, Pod, Probe, TCPSocketAction
from podmodel.probing import ProbeAssignment, ProbeAssignmentSet, ProbeReport
from podmodel.subjects import probe_assign, probe_result
from servicekit import telemetry
from servicekit.bus import Bus
from servicekit.runner import HealthReply, uvloop_factory
from servicekit.telemetry import LocalSpanRecorder

from services.prober.service import ProberConfig, ProberService
from tests.conftest import stop_tasks, wait_for
from tests.integration.node_agent_harness import make_pod, running_agent
from tests.k8s_examples import EXAMPLES

ROOT = str(Path(__file__).resolve().parents[2])


class StatusServer:
    """A local HTTP server answering every request with `self.status`."""

    def __init__(self) -> None:
        self.status = 200
        self.hits = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            self.hits += 1
            body = b"ok" if self.status < 400 else b"boom"
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> StatusServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def in_process_prober(nats_url: str, node: str = "n1") -> AsyncIterator[ProberService]:
    bus = await Bus.connect(nats_url, "prober-test")
    service = ProberService(ProberConfig(node=node, heartbeat_s=60.0, sync_s=0.5), bus)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        await stop_tasks([task])
        await bus.close()


def http_probe(port: int, **kw: int) -> Probe:
    return Probe(
        http_get=HTTPGetAction(path="/healthz", port=port, host="127.0.0.1"),
        period_seconds=1,
        **kw,
    )


async def pod_events(h, name: str) -> list[Event]:  # type: ignore[no-untyped-def]
    events, _rv = await h.store.list(Event, "default")
    return [e for e in events if e.involved_object.name == name]


async def test_liveness_failure_restarts_the_container_with_kubelet_events(
    nats_url: str, redis_url: str
) -> None:
    async with (
        StatusServer() as server,
        running_agent(nats_url, redis_url, probes="prober") as h,
        in_process_prober(nats_url),
    ):
        pod = make_pod("live", "app")
        pod.spec.containers[0].liveness_probe = http_probe(server.port, failure_threshold=2)
        pod.spec.containers[0].readiness_probe = http_probe(server.port, failure_threshold=1)
        await h.store.create(pod)

        async def ready() -> bool:
            p = await h.pod("live")
            return (
                p is not None
                and bool(p.status.container_statuses)
                and bool(p.status.container_statuses[0].ready)
            )

        await wait_for(ready, 15, message="ready through the prober's readiness probe")
        server.status = 500

        async def restarted() -> Pod | None:
            p = await h.pod("live")
            if p is None or not p.status.container_statuses:
                return None
            return p if p.status.container_statuses[0].restart_count >= 1 else None

        server_fixed = False

        async def restarted_then_fixed() -> Pod | None:
            nonlocal server_fixed
            p = await restarted()
            if p is not None and not server_fixed:
                server.status = 200  # let it live after the first restart
                server_fixed = True
            return p

        p = await wait_for(restarted_then_fixed, 20, message="restart after liveness failure")
        last = p.status.container_statuses[0].last_state.terminated
        assert last is not None

        async def events_written() -> list[Event] | None:
            events = await pod_events(h, "live")
            reasons = {e.reason for e in events}
            restarted = any(e.reason == "Started" and e.count >= 2 for e in events)
            wanted = {"Unhealthy", "Killing", "Started", "Created"} <= reasons
            return events if wanted and restarted else None

        events = await wait_for(events_written, 10, message="Unhealthy and Killing events")
        unhealthy = {e.message for e in events if e.reason == "Unhealthy"}
        assert "Liveness probe failed: HTTP probe failed with statuscode: 500" in unhealthy
        assert "Readiness probe failed: HTTP probe failed with statuscode: 500" in unhealthy
        killing = [e for e in events if e.reason == "Killing"]
        assert killing[0].message == "Container app failed liveness probe, will be restarted"
        assert killing[0].involved_object.field_path == "spec.containers{app}"
        assert killing[0].source.component == "kubelet" and killing[0].type == "Normal"
        started = [e for e in events if e.reason == "Started"]
        assert started[0].message == "Started container app" and started[0].count >= 2

        # Healthy again: the new attempt turns ready through the prober.
        await wait_for(ready, 15, message="ready again after the restart")


async def test_exec_probe_runs_through_the_node_agent(nats_url: str, redis_url: str) -> None:
    async with (
        running_agent(nats_url, redis_url, probes="prober") as h,
        in_process_prober(nats_url) as prober,
    ):
        pod = make_pod("execp", "app")
        pod.spec.containers[0].readiness_probe = Probe(
            exec=ExecAction(command=["cat", "/tmp/healthy"]), period_seconds=1
        )
        await h.store.create(pod)

        async def ready() -> bool:
            p = await h.pod("execp")
            return bool(p and p.status.container_statuses and p.status.container_statuses[0].ready)

        await wait_for(ready, 15, message="ready by an exec probe")
        stored = await h.pod("execp")
        assert stored is not None
        state = prober.manager.state((stored.metadata.uid, "app", "readiness"))
        assert state is not None and state.result == "success"


async def test_prober_started_later_asks_for_the_assignment(nats_url: str, redis_url: str) -> None:
    async with StatusServer() as server, running_agent(nats_url, redis_url, probes="prober") as h:
        pod = make_pod("late", "app")
        pod.spec.containers[0].readiness_probe = http_probe(server.port)
        await h.store.create(pod)

        async def running() -> bool:
            p = await h.pod("late")
            return bool(p and p.status.phase == "Running")

        await wait_for(running, 10, message="running")
        p = await h.pod("late")
        assert p is not None and not p.status.container_statuses[0].ready  # nobody probes yet
        async with in_process_prober(nats_url) as prober:
            await wait_for(lambda: len(prober.manager) == 1, 10, message="assignment after sync")

            async def ready() -> bool:
                p = await h.pod("late")
                return bool(p and p.status.container_statuses[0].ready)

            await wait_for(ready, 15, message="ready once the prober runs")


async def test_prober_process_probes_for_the_node_agent_and_stops_on_sigterm(
    nats_url: str, redis_url: str
) -> None:
    async with StatusServer() as server, running_agent(nats_url, redis_url, probes="prober") as h:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.prober",
            "--node",
            "n1",
            "--instance",
            "t",
            env={**os.environ, "NATS_URL": nats_url, "PYTHONPATH": ROOT},
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            pod = make_pod("proc", "app")
            pod.spec.containers[0].readiness_probe = http_probe(server.port)
            await h.store.create(pod)

            async def ready() -> bool:
                p = await h.pod("proc")
                return bool(
                    p and p.status.container_statuses and p.status.container_statuses[0].ready
                )

            await wait_for(ready, 20, message="ready through the prober process")
            assert server.hits >= 1
            reply = await Bus(h.nc).request("podbus.health.prober.t", {}, HealthReply, timeout=2)
            assert reply.details["probes"] == 1 and reply.details["node"] == "n1"
            # the service runs on uvloop where it is installed (a runtime dependency)
            assert reply.details["loop"] == ("uvloop" if uvloop_factory() else "asyncio")
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                rc = await proc.wait()
            assert rc == 0, (await proc.stderr.read()).decode() if proc.stderr else rc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_restarted_node_agent_keeps_readiness_and_follows_the_prober(
    nats_url: str, redis_url: str
) -> None:
    async with StatusServer() as server, in_process_prober(nats_url):
        pod = make_pod("keep", "app")
        pod.spec.containers[0].readiness_probe = http_probe(server.port, failure_threshold=1)

        async def ready(h) -> str | None:  # type: ignore[no-untyped-def]
            p = await h.pod("keep")
            if p and p.status.container_statuses and p.status.container_statuses[0].ready:
                return p.status.container_statuses[0].container_id
            return None

        async with running_agent(nats_url, redis_url, probes="prober") as h:
            await h.store.create(pod)
            first = await wait_for(lambda: ready(h), 15, message="ready under the first agent")
        async with running_agent(nats_url, redis_url, probes="prober") as h2:
            seen = await h2.record_events("keep")
            link = h2.agent.probe_link
            assert link is not None
            await wait_for(lambda: link.assignment_set().probes, 10, message="a first pass")
            worker = h2.agent.worker_of("default", "keep")
            assert worker is not None
            view = h2.status.status_of(worker.pod)
            assert view.container_statuses[0].ready  # seeded: no flap to unready
            assert view.container_statuses[0].container_id == first  # adopted, not restarted
            server.status = 503  # the prober (never restarted) reports the change

            async def unready() -> bool:
                return await ready(h2) is None

            await wait_for(unready, 10, message="unready through the prober after the restart")
            assert all(p.status.container_statuses[0].ready is False for _t, p in seen), (
                "readiness flapped"
            )


async def test_exec_liveness_example_restarts_when_the_file_is_gone(
    nats_url: str, redis_url: str
) -> None:
    """k8s-examples/exec-liveness.yaml (Kubernetes' documentation: restarted
    after about 35 s) with shortened timings: the simulated container's exec
    fails from 2 s on, as `cat /tmp/healthy` after the `rm`."""
    text = (EXAMPLES / "exec-liveness.yaml").read_text()
    [pod] = load_manifests(text, source="exec-liveness.yaml").objects
    assert isinstance(pod, Pod)
    pod.spec.node_name = "n1"
    probe = pod.spec.containers[0].liveness_probe
    assert probe is not None and probe.exec is not None
    probe.initial_delay_seconds, probe.period_seconds = 1, 1
    pod.metadata.annotations["sim.podbus.io/exec-fails-after"] = "2s"
    async with (
        running_agent(nats_url, redis_url, probes="prober") as h,
        in_process_prober(nats_url),
    ):
        await h.store.create(pod)

        async def restarted() -> Pod | None:
            p = await h.pod("liveness-exec")
            cs = p.status.container_statuses if p else []
            return p if cs and cs[0].restart_count >= 1 else None

        await wait_for(restarted, 20, message="restart after the exec liveness probe failed")

        async def events() -> list[Event] | None:
            found = await pod_events(h, "liveness-exec")
            return found if {"Unhealthy", "Killing"} <= {e.reason for e in found} else None

        found = await wait_for(events, 10, message="Unhealthy and Killing events")
        unhealthy = next(e for e in found if e.reason == "Unhealthy")
        assert unhealthy.message == (
            "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n"
        )
        killing = next(e for e in found if e.reason == "Killing")
        assert killing.message == "Container liveness failed liveness probe, will be restarted"


def assignment_set(generation: int, port: int, node: str = "n1") -> ProbeAssignmentSet:
    return ProbeAssignmentSet(
        node=node,
        generation=generation,
        probes=[
            ProbeAssignment(
                pod_uid="u1",
                namespace="default",
                pod_name="p",
                container_name="app",
                probe_type="readiness",
                probe=Probe(
                    tcp_socket=TCPSocketAction(port=port, host="127.0.0.1"), period_seconds=1
                ),
                container_id="c1",
                started_at="2026-01-01T00:00:00Z",
                traceparent=TRACEPARENT,
            )
        ],
    )


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_transitions_are_reported_with_spans_and_a_restarted_agent_gets_a_heartbeat(
    nats_url: str,
) -> None:
    # A node of its own: a node-agent another test left on "n1" would answer
    # this prober's sync request with its own (newer) assignments.
    node = "n-transitions"
    rec = LocalSpanRecorder()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(rec))
    previous = telemetry.use_provider(provider)
    nc = await nats.connect(nats_url)
    try:
        reports: list[ProbeReport] = []

        async def on_report(msg: Msg) -> None:
            reports.append(decode(msg.data, ProbeReport))

        await nc.subscribe(probe_result(node), cb=on_report)
        async with StatusServer() as server, in_process_prober(nats_url, node) as prober:
            await nc.publish(probe_assign(node), encode(assignment_set(5, server.port, node)))

            def transition() -> bool:
                return any(
                    not r.heartbeat and r.results and r.results[0].result == "success"
                    for r in reports
                )

            await wait_for(transition, 10, message="readiness success reported")
            assert prober.manager.generation == 5
            spans = [s for s in rec.trace_of(TRACEPARENT) if s.name == "prober.transition"]
            assert spans, rec.trace_ids()
            attrs = spans[0].attributes or {}
            assert attrs["podbus.probe.type"] == "readiness"
            assert attrs["podbus.probe.result"] == "success"
            assert attrs["k8s.container.name"] == "app"

            # The node-agent restarted: its generations start again.
            await nc.publish(probe_assign(node), encode(assignment_set(1, server.port, node)))

            def heartbeat() -> ProbeReport | None:
                return next((r for r in reports if r.heartbeat), None)

            beat = await wait_for(heartbeat, 5, message="state sent to the restarted agent")
            assert [(r.container_id, r.result) for r in beat.results] == [("c1", "success")]
            assert len(spans) == len(
                [s for s in rec.trace_of(TRACEPARENT) if s.name == "prober.transition"]
            )  # no span for a heartbeat
    finally:
        telemetry.use_provider(previous)
        await nc.close()


async def test_startup_probe_gates_readiness_and_its_failure_restarts(
    nats_url: str, redis_url: str
) -> None:
    async with (
        StatusServer() as startup_server,
        StatusServer() as ready_server,
        running_agent(nats_url, redis_url, probes="prober") as h,
        in_process_prober(nats_url),
    ):
        startup_server.status = 500
        pod = make_pod("gated", "app")
        app = pod.spec.containers[0]
        app.startup_probe = http_probe(startup_server.port, failure_threshold=4)
        app.readiness_probe = http_probe(ready_server.port)
        await h.store.create(pod)

        async def status() -> tuple[bool, bool, int] | None:
            p = await h.pod("gated")
            if p is None or not p.status.container_statuses:
                return None
            cs = p.status.container_statuses[0]
            return bool(cs.started), bool(cs.ready), cs.restart_count

        await wait_for(lambda: startup_server.hits >= 2, 10, message="startup probe running")
        assert ready_server.hits == 0  # readiness waits for the startup probe
        assert await status() == (False, False, 0)

        # Four failures in a row kill the container; it is restarted.
        async def restarted() -> bool:
            got = await status()
            return got is not None and got[2] >= 1

        await wait_for(restarted, 15, message="restart after the startup probe failed")
        startup_server.status = 200

        async def started_and_ready() -> bool:
            got = await status()
            return got is not None and got[:2] == (True, True)

        await wait_for(started_and_ready, 15, message="started, then ready")
        assert ready_server.hits >= 1
        found = await pod_events(h, "gated")
        assert any(
            e.reason == "Unhealthy"
            and e.message == "Startup probe failed: HTTP probe failed with statuscode: 500"
            for e in found
        )
        assert any(
            e.reason == "Killing"
            and e.message == "Container app failed startup probe, will be restarted"
            for e in found
        )
