"""Local span files (PODBUS_SPANS_DIR): what `podbus up` keeps so that
`podctl trace` works without Jaeger. Spans go to JSON lines per service,
bounded by rotation, and come back by trace id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from podmodel.meta import ObjectMeta
from podmodel.pod import Pod, PodSpec
from servicekit import telemetry
from servicekit.telemetry import (
    TRACEPARENT_ANNOTATION,
    SpanFileExporter,
    new_root_traceparent,
    read_span_files,
    setup_tracing,
    shutdown_tracing,
    spans_dir_from_env,
    start_pod_span,
    traceparent_ids,
)

OTEL_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "PODBUS_SPANS_DIR",
)


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def file_tracing(tmp_path: Path) -> Iterator[Path]:
    """Tracing on for this test only, into span files under tmp_path."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SpanFileExporter(str(tmp_path), "sched", "a")))
    previous = telemetry.use_provider(provider)
    try:
        yield tmp_path
    finally:
        telemetry.use_provider(previous)
        provider.shutdown()


def make_pod(name: str = "web") -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace="default", uid="u-" + name), spec=PodSpec())


def annotated(pod: Pod) -> Pod:
    pod.metadata.annotations[TRACEPARENT_ANNOTATION] = new_root_traceparent(pod)
    return pod


def test_spans_dir_comes_from_the_environment() -> None:
    assert spans_dir_from_env({}) is None
    assert spans_dir_from_env({"PODBUS_SPANS_DIR": "/x/spans"}) == "/x/spans"
    assert spans_dir_from_env({"OTEL_TRACES_EXPORTER": "podbus-local"}) is not None
    assert spans_dir_from_env({"PODBUS_SPANS_DIR": "/x", "OTEL_SDK_DISABLED": "true"}) is None


def test_pod_spans_come_back_by_trace_id_with_events(file_tracing: Path) -> None:
    web, other = annotated(make_pod("web")), annotated(make_pod("other"))
    with start_pod_span(web, "scheduler.bound", attributes={"k8s.node.name": "n1"}) as span:
        span.add_event("retry", {"reason": "conflict"})
    with start_pod_span(other, "scheduler.bound"):
        pass
    ids = traceparent_ids(web.metadata.annotations[TRACEPARENT_ANNOTATION])
    assert ids is not None
    records = read_span_files(str(file_tracing), f"{ids[0]:032x}")
    assert [r["name"] for r in records] == ["pod default/web", "scheduler.bound"]
    root, bound = records
    assert bound["parent_id"] == root["span_id"] == f"{ids[1]:016x}"
    assert bound["attributes"]["k8s.node.name"] == "n1"
    assert bound["events"][0]["name"] == "retry"
    assert bound["events"][0]["attributes"] == {"reason": "conflict"}
    assert bound["start_ns"] <= bound["end_ns"]
    assert (file_tracing / "sched-a.jsonl").exists()


def test_span_files_rotate_at_the_size_cap(tmp_path: Path) -> None:
    exporter = SpanFileExporter(str(tmp_path), "node-agent", "n1", max_bytes=2000)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for i in range(100):
        tracer.start_span(f"span-{i}").end()
    provider.shutdown()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["node-agent-n1.1.jsonl", "node-agent-n1.jsonl"]
    assert all((tmp_path / f).stat().st_size <= 2000 for f in files)
    last = (tmp_path / "node-agent-n1.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["name"] == "span-99"


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    good = {"name": "a", "trace_id": "0" * 31 + "1", "start_ns": 1}
    (tmp_path / "x.jsonl").write_text(
        json.dumps(good, separators=(",", ":")) + '\n{"trace_id":"' + "0" * 31 + "1"
    )
    assert [r["name"] for r in read_span_files(str(tmp_path), "0" * 31 + "1")] == ["a"]


def test_an_unwritable_directory_drops_spans_without_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    exporter = SpanFileExporter(str(blocker / "sub"), "svc")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("s").end()
    provider.shutdown()


def test_setup_tracing_with_only_a_spans_dir_writes_files(
    no_otel_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODBUS_SPANS_DIR", str(tmp_path))
    provider = setup_tracing("prober", "p1", set_global=False)
    try:
        assert provider is not None and telemetry.enabled()
        pod = annotated(make_pod())
        with start_pod_span(pod, "prober.transition"):
            pass
    finally:
        shutdown_tracing()  # flushes the batch processor
    assert not telemetry.enabled()
    lines = (tmp_path / "prober-p1.jsonl").read_text().splitlines()
    names = sorted(json.loads(line)["name"] for line in lines)
    assert names == ["pod default/web", "prober.transition"]
    assert {json.loads(line)["service"] for line in lines} == {"prober"}


def test_nothing_is_installed_without_variables(no_otel_env: None) -> None:
    assert setup_tracing("prober", "p1", set_global=False) is None
    assert not telemetry.enabled()
