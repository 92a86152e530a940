"""Tracing set-up from OTEL_* variables, header propagation, and pod traces:
the root context in the annotation, child spans in that trace.

Every test that turns tracing on does it with its own provider through the
`recorder` fixture (use_provider), never the global one, and turns it off
again, so other tests keep tracing off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from podmodel.meta import ObjectMeta
from podmodel.pod import Pod, PodSpec
from servicekit import telemetry
from servicekit.telemetry import (
    TRACEPARENT_ANNOTATION,
    LocalSpanRecorder,
    exporter_configured,
    extract_context,
    inject_headers,
    new_root_traceparent,
    pod_context,
    setup_tracing,
    span_record,
    start_pod_span,
    trace_exporters,
)

OTEL_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
)


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def recorder() -> Iterator[LocalSpanRecorder]:
    """Tracing on, into an in-memory recorder, for this test only."""
    rec = LocalSpanRecorder()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(rec))
    previous = telemetry.use_provider(provider)
    try:
        yield rec
    finally:
        telemetry.use_provider(previous)
        provider.shutdown()


def make_pod(uid: str = "u1", node: str = "") -> Pod:
    return Pod(
        metadata=ObjectMeta(name="web", namespace="default", uid=uid),
        spec=PodSpec(node_name=node),
    )


def test_exporter_follows_the_standard_variables() -> None:
    assert not exporter_configured({})
    assert exporter_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"})
    assert not exporter_configured(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert not exporter_configured({"OTEL_TRACES_EXPORTER": "none"})
    assert trace_exporters({"OTEL_TRACES_EXPORTER": "otlp, console"}) == ["otlp", "console"]
    assert trace_exporters({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://j:4318/v1/traces"}) == [
        "otlp"
    ]


def test_setup_without_exporter_leaves_tracing_off(no_otel_env: None) -> None:
    assert setup_tracing("scheduler", "i1") is None
    assert not telemetry.enabled()
    headers: dict[str, str] = {}
    inject_headers(headers)
    assert headers == {}


def test_setup_with_endpoint_names_the_service(
    no_otel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = setup_tracing("scheduler", "i1", set_global=False)
    try:
        assert provider is not None and telemetry.enabled()
        attributes = provider.resource.attributes
        assert attributes["service.name"] == "scheduler"
        assert attributes["service.instance.id"] == "i1"
    finally:
        telemetry.shutdown_tracing()
    assert not telemetry.enabled()

    monkeypatch.setenv("OTEL_SERVICE_NAME", "sched-blue")
    provider = setup_tracing("scheduler", set_global=False)
    try:
        assert provider is not None
        assert provider.resource.attributes["service.name"] == "sched-blue"
    finally:
        telemetry.shutdown_tracing()


def test_sdk_disabled_wins_over_endpoint(
    no_otel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert setup_tracing("scheduler", set_global=False) is None
    assert not telemetry.enabled()


def test_tracing_off_gives_no_traceparent_and_a_non_recording_span() -> None:
    pod = make_pod()
    assert new_root_traceparent(pod) == ""
    with start_pod_span(pod, "scheduled") as span:
        assert not span.is_recording()
        span.set_attribute("works", True)  # no check needed by callers


def test_pod_spans_join_the_pod_trace(recorder: LocalSpanRecorder) -> None:
    pod = make_pod(node="n1")
    traceparent = new_root_traceparent(pod)
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, len(trace_id), len(span_id)) == ("00", 32, 16)
    assert int(flags, 16) & 1  # sampled
    pod.metadata.annotations[TRACEPARENT_ANNOTATION] = traceparent
    with start_pod_span(pod, "scheduled", attributes={"podbus.node": "n1"}) as span:
        assert span.is_recording()
    spans = recorder.trace_of(traceparent)
    assert [s.name for s in spans] == ["pod default/web", "scheduled"]
    root, child = spans
    assert child.parent is not None and root.context is not None
    assert child.parent.span_id == root.context.span_id
    assert child.attributes is not None
    assert child.attributes["k8s.pod.uid"] == "u1"
    assert child.attributes["k8s.node.name"] == "n1"
    assert child.attributes["podbus.node"] == "n1"


def test_pod_span_links_the_request_it_ran_in(recorder: LocalSpanRecorder) -> None:
    pod = make_pod()
    traceparent = new_root_traceparent(pod)
    pod.metadata.annotations[TRACEPARENT_ANNOTATION] = traceparent
    tracer = telemetry.tracer()
    with (
        tracer.start_as_current_span("process podbus.api.apply", kind=SpanKind.CONSUMER) as req,
        start_pod_span(pod, "admitted"),
    ):
        pass
    root, admitted = recorder.trace_of(traceparent)
    assert admitted.name == "admitted" and admitted.parent is not None
    assert root.context is not None and admitted.parent.span_id == root.context.span_id
    assert [link.context.span_id for link in admitted.links] == [req.get_span_context().span_id]


def test_pod_without_annotation_has_no_context() -> None:
    assert pod_context(make_pod()) is None


def test_headers_carry_the_current_span(recorder: LocalSpanRecorder) -> None:
    with telemetry.tracer().start_as_current_span("publish x") as span:
        headers = inject_headers({})
    assert headers["traceparent"].split("-")[1] == f"{span.get_span_context().trace_id:032x}"
    ctx = extract_context(headers)
    assert trace.get_current_span(ctx).get_span_context().span_id == (
        span.get_span_context().span_id
    )
    assert not trace.get_current_span(extract_context(None)).get_span_context().is_valid


def test_recorder_keeps_the_last_traces_only(recorder: LocalSpanRecorder) -> None:
    recorder.max_traces = 3
    ids = []
    for i in range(5):
        with telemetry.tracer().start_as_current_span(f"t{i}") as span:
            ids.append(f"{span.get_span_context().trace_id:032x}")
    assert recorder.trace_ids() == ids[2:]
    assert recorder.trace(ids[0]) == []
    record = span_record(recorder.trace(ids[4])[0])
    assert record["name"] == "t4" and record["trace_id"] == ids[4] and record["parent_id"] == ""


def test_untraced_work_records_nothing_and_says_not_sampled(recorder: LocalSpanRecorder) -> None:
    with telemetry.untraced(), telemetry.tracer().start_as_current_span("probe exec request"):
        headers = inject_headers({})
    assert headers["traceparent"].endswith("-00")
    with telemetry.tracer().start_as_current_span(
        "the consumer side", context=extract_context(headers)
    ):
        pass
    with telemetry.tracer().start_as_current_span("traced as usual"):
        pass
    names = [s.name for tid in recorder.trace_ids() for s in recorder.trace(tid)]
    assert names == ["traced as usual"]
