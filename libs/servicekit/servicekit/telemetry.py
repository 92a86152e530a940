"""Tracing: the provider from the standard OTEL_* variables, and spans inside
a pod's own trace.

One trace per pod: its root context lives in the pod annotation
TRACEPARENT_ANNOTATION, written when the pod is created; every service opens
its spans with that context as parent. With no exporter configured no SDK
provider is installed, OpenTelemetry's API stays a no-op and the helpers here
return at once, so tracing off costs nothing measurable.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from podmodel.meta import KubeObject

TRACEPARENT_ANNOTATION = "podbus.io/traceparent"
TRACER_NAME = "podbus"

_propagator = TraceContextTextMapPropagator()
_enabled = False


def enabled() -> bool:
    return _enabled


def exporter_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for an exporter."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_TRACES_EXPORTER", "").lower() == "otlp"
    )


def setup_tracing(
    service_name: str,
    instance: str | None = None,
    *,
    extra_exporters: Sequence[SpanExporter] = (),
) -> TracerProvider | None:
    """Install a TracerProvider when an exporter is configured (or given)."""
    global _enabled
    if not exporter_configured() and not extra_exporters:
        return None
    attributes: dict[str, Any] = {
        "service.name": os.environ.get("OTEL_SERVICE_NAME", service_name),
        "service.namespace": "podbus",
    }
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter_configured():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    for exporter in extra_exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _enabled = True
    return provider


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    if _enabled:
        _propagator.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    return _propagator.extract(dict(headers or {}))


def pod_context(obj: KubeObject) -> otel_context.Context | None:
    """The trace context stored on the object, if any."""
    value = obj.metadata.annotations.get(TRACEPARENT_ANNOTATION)
    if not value:
        return None
    return _propagator.extract({"traceparent": value})


def pod_attributes(obj: KubeObject) -> dict[str, str]:
    meta = obj.metadata
    attributes = {
        "k8s.pod.name": meta.name,
        "k8s.namespace.name": meta.namespace,
        "k8s.pod.uid": meta.uid,
    }
    spec = getattr(obj, "spec", None)
    node = getattr(spec, "node_name", None)
    if node:
        attributes["k8s.node.name"] = node
    return attributes


def new_root_traceparent(
    obj: KubeObject, tracer_provider: trace.TracerProvider | None = None
) -> str:
    """Open and close the root span `pod <ns>/<name>`; return its traceparent
    for the annotation ("" when tracing is off)."""
    if not _enabled and tracer_provider is None:
        return ""
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
    meta = obj.metadata
    with tracer.start_as_current_span(
        f"pod {meta.namespace}/{meta.name}",
        context=otel_context.Context(),
        attributes=pod_attributes(obj),
    ) as span:
        carrier: dict[str, str] = {}
        _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


@contextmanager
def start_pod_span(
    obj: KubeObject,
    name: str,
    *,
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[Span | None]:
    """A span inside the object's own trace; yields None when tracing is off."""
    if not _enabled and tracer_provider is None:
        yield None
        return
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
    parent = pod_context(obj)
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes={**pod_attributes(obj), **(attributes or {})}
    ) as span:
        yield span


class LocalSpanRecorder(SpanExporter):
    """Keeps the spans of the last `max_traces` traces in memory, so that
    `podbus up` can show a pod's trace without Jaeger."""

    def __init__(self, max_traces: int = 1000) -> None:
        self.max_traces = max_traces
        self._traces: OrderedDict[int, list[ReadableSpan]] = OrderedDict()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            if span.context is None:
                continue
            trace_id = span.context.trace_id
            self._traces.setdefault(trace_id, []).append(span)
            self._traces.move_to_end(trace_id)
        while len(self._traces) > self.max_traces:
            self._traces.popitem(last=False)
        return SpanExportResult.SUCCESS

    def trace(self, trace_id: int) -> list[ReadableSpan]:
        return sorted(self._traces.get(trace_id, []), key=lambda s: s.start_time or 0)

    def trace_of(self, traceparent: str) -> list[ReadableSpan]:
        parts = traceparent.split("-")
        return self.trace(int(parts[1], 16)) if len(parts) == 4 else []

    def shutdown(self) -> None:
        self._traces.clear()
