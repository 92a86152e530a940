"""One trace per pod, end to end: the four services run as processes, as a
deployment runs them, exporting over OTLP/HTTP (the standard OTEL_*
variables) to a real receiver that decodes the protobuf
(tests/otlp_receiver.py). A pod with an init container, a readiness probe and
a liveness probe that fails once (simulated runtime, probes run by the prober
through the node-agent's exec) must leave exactly one trace, with spans from
the workload-controller, scheduler, node-agent and prober, in the order of the
pod's life and all hanging off the root span the annotation names.

Set PODBUS_TRACE_OUT=<file> to keep the waterfall `podctl trace` draws of it
(the README's example comes from there)."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from podmodel.pod import Pod
from servicekit.store import Store
from servicekit.telemetry import TRACEPARENT_ANNOTATION

from clients.podctl.client import PodbusClient
from clients.podctl.connection import Connection
from clients.podctl.trace_view import run_trace
from tests.conftest import wait_for
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

ROOT = Path(__file__).resolve().parents[2]
NODE = "trace-n1"
SERVICES = {"workload-controller", "scheduler", "node-agent", "prober"}

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "traced",
        "namespace": "default",
        "annotations": {
            # The probes' command fails from 4 s into a run: the readiness
            # probe has passed by then, the liveness probe fails once and the
            # container restarts; the next failure would wait out the back-off.
            "sim.podbus.io/app.exec-fails-after": "4s",
        },
    },
    "spec": {
        "initContainers": [{"name": "setup", "image": "busybox"}],
        "containers": [
            {
                "name": "app",
                "image": "busybox",
                "readinessProbe": {
                    "exec": {"command": ["cat", "/tmp/ready"]},
                    "periodSeconds": 1,
                },
                "livenessProbe": {
                    "exec": {"command": ["cat", "/tmp/healthy"]},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                },
            }
        ],
        "terminationGracePeriodSeconds": 1,
    },
}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture
def spans_dir(tmp_path: Path) -> Path:
    return tmp_path / "spans"


@pytest.fixture
def services(
    nats_url: str, redis_url: str, receiver: OtlpReceiver, spans_dir: Path
) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PODBUS_", "OTEL_"))}
    env.update(
        PODBUS_LOG_LEVEL="WARNING",
        PODBUS_SPANS_DIR=str(spans_dir),  # and local span files, as under `podbus up`
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="200",  # spans reach the receiver within 0.2 s
    )
    urls = ["--nats-url", nats_url, "--redis-url", redis_url]
    commands = [
        ["-m", "services.workload_controller", *urls, "--leader-ttl", "3"],
        ["-m", "services.scheduler", *urls, "--lease-ttl", "3"],
        [
            "-m",
            "services.node_agent",
            "--name",
            NODE,
            "--runtime",
            "simulated",
            "--probes",
            "prober",
            "--backoff-initial",
            "60",
            *urls,
        ],
        ["-m", "services.prober", "--node", NODE, *urls],
    ]
    procs = [
        subprocess.Popen([sys.executable, *cmd], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        for cmd in commands
    ]
    try:
        yield
    finally:
        for p in procs:
            p.terminate()  # SIGTERM: each flushes its spans on the way out
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
async def client(nats_url: str, services: None) -> AsyncIterator[PodbusClient]:
    async with PodbusClient.connect(Connection(server=nats_url, source="test")) as c:
        yield c


async def apply_when_ready(client: PodbusClient) -> None:
    async def applied() -> bool:
        try:
            await client.apply(POD)
        except Exception:
            return False  # the intake is still starting
        return True

    await wait_for(applied, timeout=30, interval=0.3, message="the pod applied")


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def first(spans: list[ReceivedSpan], name: str, **attributes: Any) -> ReceivedSpan:
    found = [
        s
        for s in by_name(spans, name)
        if all(s.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert found, f"no {name} span with {attributes} among {sorted({s.name for s in spans})}"
    return found[0]


async def test_pod_life_is_one_trace_across_four_services(
    client: PodbusClient, receiver: OtlpReceiver, redis_url: str, nats_url: str, spans_dir: Path
) -> None:
    await apply_when_ready(client)
    store = await Store.connect(redis_url)
    try:

        async def restarted() -> Pod | None:
            pod = await store.get(Pod, "default", "traced")
            statuses = pod.status.container_statuses if pod else []
            return pod if statuses and statuses[0].restart_count >= 1 else None

        try:
            pod = await wait_for(restarted, timeout=60, interval=0.3, message="a liveness restart")
        except AssertionError as exc:
            last = await store.get(Pod, "default", "traced")
            seen = sorted({(s.service, s.name) for s in receiver.spans()})
            raise AssertionError(f"{exc}; pod: {last!r}; spans: {seen}") from None
    finally:
        await store.close()
    traceparent = pod.metadata.annotations.get(TRACEPARENT_ANNOTATION, "")
    assert traceparent, "the pod has no traceparent annotation"
    trace_id = traceparent.split("-")[1]
    uid = pod.metadata.uid

    def trace_has_restart() -> bool:
        spans = receiver.spans(trace_id=trace_id)
        liveness_failed = any(
            s.name == "prober.transition"
            and s.attributes.get("podbus.probe.type") == "liveness"
            and s.attributes.get("podbus.probe.result") == "failure"
            for s in spans
        )
        return liveness_failed and any(s.name == "node-agent.restart" for s in spans)

    await wait_for(trace_has_restart, timeout=20, interval=0.2, message="restart span exported")
    spans = receiver.spans(trace_id=trace_id)

    # One trace per pod: every span naming the pod is in the annotation's trace.
    about_pod = receiver.spans(where=lambda s: s.attributes.get("k8s.pod.uid") == uid)
    assert {s.trace_id for s in about_pod} == {trace_id}
    assert [s.trace_id for s in by_name(receiver.spans(), "pod default/traced")] == [trace_id]

    # Parentage: one root, the span the annotation names; everything else
    # hangs off a span of the same trace.
    roots = [s for s in spans if not s.parent_id]
    assert [r.name for r in roots] == ["pod default/traced"]
    root = roots[0]
    assert root.span_id == traceparent.split("-")[2]
    ids = {s.span_id for s in spans}
    assert all(s.parent_id in ids for s in spans if s is not root)
    for s in spans:
        if s is not root and s.name.split(".")[0] in {n.replace("_", "-") for n in SERVICES}:
            assert s.parent_id == root.span_id, f"{s.name} is not a child of the pod's root"
    for s in spans:
        if "k8s.pod.uid" in s.attributes:
            assert s.attributes["k8s.pod.name"] == "traced"
            assert s.attributes["k8s.namespace.name"] == "default"

    # Spans from all four services.
    assert {s.service for s in spans} >= SERVICES, {s.service for s in spans}

    # The order of the pod's life.
    admitted = first(spans, "workload-controller.admitted")
    created = first(spans, "workload-controller.created")
    # The node may register after the first attempt (unschedulable, queued
    # again): the attempt that found it is the one in the pod's life line.
    filtered = first(spans, "scheduler.filtered", **{"scheduler.nodes.feasible": 1})
    queued = [q for q in by_name(spans, "scheduler.queued") if q.start_ns <= filtered.start_ns][-1]
    scored = first(spans, "scheduler.scored", **{"scheduler.node": NODE})
    bound = first(spans, "scheduler.bound", **{"k8s.node.name": NODE})
    sandbox = first(spans, "node-agent.sandbox")
    init = first(spans, "node-agent.init-container", **{"k8s.container.name": "setup"})
    started = first(spans, "node-agent.container.started", **{"k8s.container.name": "app"})
    ready_probe = first(
        spans,
        "prober.transition",
        **{"podbus.probe.type": "readiness", "podbus.probe.result": "success"},
    )
    ready = first(spans, "node-agent.ready")
    liveness_failed = first(
        spans,
        "prober.transition",
        **{"podbus.probe.type": "liveness", "podbus.probe.result": "failure"},
    )
    restart = first(spans, "node-agent.restart", **{"k8s.container.name": "app"})
    life = [
        root,
        admitted,
        queued,
        filtered,
        scored,
        bound,
        sandbox,
        init,
        started,
        ready_probe,
        ready,
        liveness_failed,
        restart,
    ]
    starts = [s.start_ns for s in life]
    assert starts == sorted(starts), [
        (s.name, s.start_ns - root.start_ns) for s in sorted(life, key=lambda s: s.start_ns)
    ]
    # `created` is opened once the store has the pod, by when the scheduler
    # may already have queued and even bound it: it only follows admission.
    assert admitted.start_ns <= created.start_ns
    assert restart.attributes.get("podbus.restart.count") == 1
    assert restart.attributes.get("podbus.restart.reason")
    assert bound.kind == "CLIENT"

    # Messaging spans follow OpenTelemetry's conventions: the API request that
    # created the pod is a CONSUMER span the admission links to; the prober's
    # transition reports are PRODUCER spans. The exec requests of routine
    # probe runs are not traced at all (only transitions are), so they open
    # no trace every period.
    everything = receiver.spans()
    by_ids = {(s.trace_id, s.span_id): s for s in everything}
    linked = [by_ids[link] for link in admitted.links if link in by_ids]
    assert [(s.kind, s.service) for s in linked] == [("CONSUMER", "workload-controller")]
    assert linked[0].attributes["messaging.system"] == "nats"
    assert linked[0].attributes["messaging.destination.name"] == "podbus.api.apply"
    exec_requests = [
        s
        for s in everything
        if s.attributes.get("messaging.destination.name") == f"podbus.node.{NODE}.exec"
    ]
    assert not exec_requests, "probe runs' exec requests should not be traced"
    reports = [
        s
        for s in everything
        if s.kind == "PRODUCER" and s.service == "prober" and s.name.endswith(".result")
    ]
    assert reports, "the prober's transition reports are PRODUCER spans"
    assert all(
        s.attributes.get("messaging.system") == "nats"
        and s.attributes.get("messaging.destination.name") == f"podbus.probe.{NODE}.result"
        for s in reports
    )

    # `podctl trace` draws it from the (Jaeger-shaped) query answer.
    out = io.StringIO()
    pod_obj = {
        "metadata": {
            "name": "traced",
            "namespace": "default",
            "annotations": {TRACEPARENT_ANNOTATION: traceparent},
        }
    }
    assert run_trace(pod_obj, jaeger_url=receiver.url, spans_dir=None, out=out, width=150) == 0
    drawing = out.getvalue()
    assert "node-agent.restart" in drawing and "prober.transition" in drawing

    # `podctl trace` as a user runs it, from the local span files.
    env = {k: v for k, v in os.environ.items() if k not in ("JAEGER_URL", "PODBUS_SPANS_DIR")}
    env["PODBUS_SPANS_DIR"] = str(spans_dir)
    cli = [sys.executable, "-m", "clients.podctl.cli", "trace", "traced", "--server", nats_url]

    async def drawn_locally() -> str | None:
        proc = await asyncio.create_subprocess_exec(
            *cli, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, _err = await proc.communicate()
        text = out.decode()
        return text if proc.returncode == 0 and "node-agent.restart" in text else None

    local = await wait_for(drawn_locally, timeout=20, interval=0.5, message="podctl trace (local)")
    assert f"trace {trace_id}" in local and "4 services" in local

    if os.environ.get("PODBUS_TRACE_OUT"):
        await asyncio.to_thread(Path(os.environ["PODBUS_TRACE_OUT"]).write_text, drawing)
