"""Pod traces: the root context in the annotation, child spans in that trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from podmodel.meta import ObjectMeta
from podmodel.pod import Pod
from servicekit.telemetry import (
    TRACEPARENT_ANNOTATION,
    LocalSpanRecorder,
    exporter_configured,
    new_root_traceparent,
    start_pod_span,
)


def test_exporter_follows_the_standard_variables() -> None:
    assert not exporter_configured({})
    assert exporter_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"})
    assert not exporter_configured(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert not exporter_configured({"OTEL_TRACES_EXPORTER": "none"})


def test_tracing_off_gives_no_traceparent_and_no_span() -> None:
    pod = Pod(metadata=ObjectMeta(name="web", namespace="default"))
    assert new_root_traceparent(pod) == ""
    with start_pod_span(pod, "scheduled") as span:
        assert span is None


def test_pod_spans_join_the_pod_trace() -> None:
    recorder = LocalSpanRecorder()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    pod = Pod(metadata=ObjectMeta(name="web", namespace="default", uid="u1"))
    traceparent = new_root_traceparent(pod, tracer_provider=provider)
    assert traceparent.startswith("00-")
    pod.metadata.annotations[TRACEPARENT_ANNOTATION] = traceparent
    with start_pod_span(pod, "scheduled", tracer_provider=provider, attributes={"node": "n1"}):
        pass
    spans = recorder.trace_of(traceparent)
    assert [s.name for s in spans] == ["pod default/web", "scheduled"]
    root, child = spans
    assert child.parent is not None and root.context is not None
    assert child.parent.span_id == root.context.span_id
    assert child.attributes is not None and child.attributes["k8s.pod.uid"] == "u1"
