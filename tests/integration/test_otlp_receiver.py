"""The test OTLP/HTTP receiver decodes what the real OTLP/HTTP exporter sends
(protobuf, plain and gzip), and what podbus's own set-up from OTEL_* sends;
its Jaeger-shaped query answer is what `podctl trace` draws."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context
from podmodel.meta import ObjectMeta
from podmodel.pod import Pod, PodSpec
from servicekit import telemetry
from servicekit.telemetry import (
    TRACEPARENT_ANNOTATION,
    new_root_traceparent,
    setup_tracing,
    shutdown_tracing,
    start_pod_span,
)

from clients.podctl.trace_view import fetch_jaeger, run_trace
from tests.otlp_receiver import OtlpReceiver


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_real_exporter_spans_arrive_decoded(
    receiver: OtlpReceiver, compression: Compression
) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces", compression=compression)
    provider = TracerProvider(resource=Resource.create({"service.name": "svc-a"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("podbus")
    other = tracer.start_span("elsewhere")
    other.end()
    with tracer.start_as_current_span("parent", kind=SpanKind.PRODUCER) as parent:
        parent.set_attribute("messaging.system", "nats")
        parent.set_attribute("count", 3)
        parent.set_attribute("ratio", 0.5)
        parent.set_attribute("ok", True)
        parent.set_attribute("names", ["a", "b"])
        parent.add_event("retry", {"reason": "conflict"})
        child = tracer.start_span(
            "child",
            context=set_span_in_context(parent),
            links=[Link(other.get_span_context())],
        )
        child.set_status(Status(StatusCode.ERROR, "boom"))
        child.end()
    provider.shutdown()
    spans = {s.name: s for s in receiver.spans()}
    assert set(spans) == {"elsewhere", "parent", "child"}
    p, c = spans["parent"], spans["child"]
    assert p.kind == "PRODUCER" and p.service == "svc-a" and p.scope == "podbus"
    assert p.attributes == {
        "messaging.system": "nats",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "names": ["a", "b"],
    }
    assert [(e.name, e.attributes) for e in p.events] == [("retry", {"reason": "conflict"})]
    assert c.parent_id == p.span_id and c.trace_id == p.trace_id and c.status == "ERROR"
    ctx = other.get_span_context()
    assert c.links == [(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")]
    assert p.start_ns <= c.start_ns <= c.end_ns <= p.end_ns
    assert receiver.requests >= 3 and receiver.bad_requests == 0


def test_garbage_is_refused(receiver: OtlpReceiver) -> None:
    request = urllib.request.Request(
        f"{receiver.url}/v1/traces",
        data=b"\xff\xff\xff not protobuf",
        headers={"Content-Type": "application/x-protobuf"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400 and receiver.bad_requests == 1 and receiver.spans() == []


def test_podbus_setup_from_otel_variables_reaches_the_receiver(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "PODBUS_SPANS_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    pod = Pod(metadata=ObjectMeta(name="web", namespace="default", uid="u1"), spec=PodSpec())
    assert setup_tracing("scheduler", "s1", set_global=False) is not None
    try:
        pod.metadata.annotations[TRACEPARENT_ANNOTATION] = new_root_traceparent(pod)
        with start_pod_span(pod, "scheduler.bound", attributes={"k8s.node.name": "n1"}) as span:
            span.add_event("bound")
    finally:
        shutdown_tracing()  # flushes the batch processor
    assert not telemetry.enabled()
    trace_id = pod.metadata.annotations[TRACEPARENT_ANNOTATION].split("-")[1]
    spans = receiver.spans(trace_id=trace_id)
    assert [s.name for s in spans] == ["pod default/web", "scheduler.bound"]
    assert spans[1].parent_id == spans[0].span_id
    assert spans[1].resource["service.instance.id"] == "s1"
    assert {s.service for s in spans} == {"scheduler"}

    # The Jaeger-shaped answer draws as podctl trace would draw Jaeger's.
    drawn = fetch_jaeger(receiver.url, trace_id)
    assert [s.name for s in sorted(drawn, key=lambda s: s.start_ns)] == [
        "pod default/web",
        "scheduler.bound",
    ]
    out = io.StringIO()
    pod_obj = {
        "metadata": {
            "name": "web",
            "namespace": "default",
            "annotations": dict(pod.metadata.annotations),
        }
    }
    assert run_trace(pod_obj, jaeger_url=receiver.url, spans_dir=None, out=out, width=120) == 0
    assert "scheduler.bound" in out.getvalue() and "node n1" in out.getvalue()
    assert fetch_jaeger(receiver.url, "0" * 31 + "1") == []
