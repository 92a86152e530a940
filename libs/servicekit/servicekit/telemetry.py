"""Tracing: the provider from the standard OTEL_* variables, W3C trace context
in message headers, and spans inside a pod's own trace.

One trace per pod: its root span is opened (and at once closed) when the pod
object is created, and its context is kept in the pod annotation
TRACEPARENT_ANNOTATION (defined here, not in podmodel: only I/O code reads
it). Every service opens its spans for that pod with that context as parent,
so Jaeger shows the pod's whole life as one trace.

podbus spans come from the provider installed here (`setup_tracing` from the
environment, or `use_provider` in tests and tools), never from whatever the
global OpenTelemetry provider happens to be. With no exporter configured
nothing is installed: `enabled()` is False, the bus skips span creation and
header injection, the helpers return at once, so tracing off costs one
boolean check per message.

This module does no network I/O itself (the OTLP exporter does, on its own
thread) and knows nothing of NATS: headers are plain dicts.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from podmodel.meta import KubeObject

log = logging.getLogger("podbus.telemetry")

TRACEPARENT_ANNOTATION = "podbus.io/traceparent"
TRACER_NAME = "podbus"

# The annotation holds a W3C traceparent whatever OTEL_PROPAGATORS says;
# message headers follow the configured propagators (default: tracecontext).
_annotation_propagator = TraceContextTextMapPropagator()

_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()
_enabled = False
_global_set = False


def enabled() -> bool:
    """Whether podbus records spans in this process."""
    return _enabled


@contextmanager
def untraced() -> Iterator[None]:
    """Work done inside is not traced, nor is what it causes in other services:
    an unsampled parent makes the (parent-based) sampler drop every child, and
    the traceparent sent on the bus says "not sampled". For routine traffic,
    such as a probe run every period, that would otherwise open a new trace
    each time."""
    if not _enabled:
        yield
        return
    parent = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=int.from_bytes(os.urandom(16), "big") or 1,
            span_id=int.from_bytes(os.urandom(8), "big") or 1,
            is_remote=False,
            trace_flags=trace.TraceFlags(0),
        )
    )
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        yield
    finally:
        otel_context.detach(token)


def tracer() -> trace.Tracer:
    """podbus's tracer: the installed provider's, else a no-op tracer."""
    return _tracer


def use_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Make `provider` the source of podbus spans (None turns tracing off).

    Does not touch OpenTelemetry's global provider, so tests can install an
    in-memory provider and remove it afterwards. Returns the previous one."""
    global _provider, _tracer, _enabled
    previous = _provider
    _provider = provider
    _enabled = provider is not None
    _tracer = provider.get_tracer(TRACER_NAME) if provider else trace.NoOpTracer()
    return previous


def trace_exporters(env: Mapping[str, str] | None = None) -> list[str]:
    """Exporter names the OTEL_* variables ask for ("otlp", "console").

    None when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none; without
    OTEL_TRACES_EXPORTER, "otlp" only when an OTLP endpoint is set (unlike the
    SDK's default, an unconfigured service exports nothing)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    if names:
        return [] if "none" in names else names
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return ["otlp"]
    return []


def exporter_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for an exporter."""
    return bool(trace_exporters(env))


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol == "grpc":
        try:
            import importlib

            grpc = importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
            exporter: SpanExporter = grpc.OTLPSpanExporter()
            return exporter
        except ImportError:
            log.warning("OTLP gRPC exporter not installed (extra 'otlp'); using OTLP/HTTP")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def setup_tracing(
    service_name: str,
    instance: str | None = None,
    *,
    extra_exporters: Sequence[SpanExporter] = (),
    set_global: bool = True,
) -> TracerProvider | None:
    """Install a TracerProvider when the environment configures an exporter
    (or `extra_exporters` are given, e.g. a LocalSpanRecorder, or
    PODBUS_SPANS_DIR / OTEL_TRACES_EXPORTER=podbus-local ask for local span
    files, see SpanFileExporter); else None and tracing stays off.

    service.name is OTEL_SERVICE_NAME or `service_name`; OTEL_RESOURCE_ATTRIBUTES
    and OTEL_TRACES_SAMPLER are honoured by the SDK. Remote exporters run
    behind a BatchSpanProcessor, in-process ones behind a SimpleSpanProcessor.
    `set_global` also makes it OpenTelemetry's global provider (once per
    process), so libraries instrumented with the plain API join the traces."""
    global _global_set
    env = os.environ
    names = trace_exporters(env)
    spans_dir = spans_dir_from_env(env)
    if not names and not extra_exporters and not spans_dir:
        use_provider(None)
        return None
    attributes: dict[str, Any] = {
        "service.name": env.get("OTEL_SERVICE_NAME") or service_name,
        "service.namespace": "podbus",
    }
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        if name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(env)))
        elif name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif name == LOCAL_EXPORTER:
            pass  # the span files below
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported; ignored", name)
    if spans_dir:
        # Off the services' threads, in batches: a pod's spans reach the file
        # within half a second.
        file_exporter = SpanFileExporter(spans_dir, str(attributes["service.name"]), instance)
        provider.add_span_processor(BatchSpanProcessor(file_exporter, schedule_delay_millis=500))
    for exporter in extra_exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_provider(provider)
    if set_global and not _global_set:
        trace.set_tracer_provider(provider)
        _global_set = True
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the installed provider (the runner calls this last)."""
    provider = use_provider(None)
    if provider is not None:
        provider.shutdown()


# ------------------------------------------------------------ headers


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (traceparent / tracestate) to `headers`;
    nothing when tracing is off. Returns `headers`."""
    if _enabled:
        propagate.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by message headers (empty if none)."""
    if not headers:
        return otel_context.Context()
    return propagate.extract(headers, context=otel_context.Context())


# ------------------------------------------------------------ pod traces


def pod_context(obj: KubeObject) -> otel_context.Context | None:
    """The trace context stored on the object, if any."""
    value = obj.metadata.annotations.get(TRACEPARENT_ANNOTATION)
    if not value:
        return None
    return _annotation_propagator.extract({"traceparent": value}, context=otel_context.Context())


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


def _tracer_for(tracer_provider: trace.TracerProvider | None) -> trace.Tracer:
    if tracer_provider is not None:
        return tracer_provider.get_tracer(TRACER_NAME)
    return _tracer


def new_root_traceparent(
    obj: KubeObject,
    tracer_provider: trace.TracerProvider | None = None,
    *,
    links: Sequence[str] = (),
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> str:
    """Open and close the root span `pod <ns>/<name>` (or `name`); return its
    traceparent for the annotation ("" when tracing is off, at the cost of one
    check). `links`: traceparents of related traces (a pod's rollout or Job
    run), added as OpenTelemetry links."""
    if not _enabled and tracer_provider is None:
        return ""
    meta = obj.metadata
    span_links = []
    for parent in links:
        ctx = _annotation_propagator.extract(
            {"traceparent": parent}, context=otel_context.Context()
        )
        span_context = trace.get_current_span(ctx).get_span_context()
        if span_context.is_valid:
            span_links.append(Link(span_context))
    span = _tracer_for(tracer_provider).start_span(
        name or f"pod {meta.namespace}/{meta.name}",
        context=otel_context.Context(),  # a new trace, whatever is current
        attributes={**pod_attributes(obj), **(attributes or {})},
        links=span_links,
    )
    span.end()
    carrier: dict[str, str] = {}
    _annotation_propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


class _NoSpan(AbstractContextManager[Span]):
    """What start_pod_span returns with tracing off: one shared object whose
    block gets the invalid span (no generator, no context switch)."""

    def __enter__(self) -> Span:
        return trace.INVALID_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()


def start_pod_span(
    obj: KubeObject,
    name: str,
    *,
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    tracer_provider: trace.TracerProvider | None = None,
    start_time: int | None = None,
) -> AbstractContextManager[Span]:
    """A span inside the object's own trace (parent: the root span from the
    annotation), current for the block, with the k8s.* attributes.

    The span that was current (a request's consumer span, say) becomes a link,
    so the work stays findable from both traces. Without the annotation the
    span is a child of the current span. With tracing off it yields the
    invalid non-recording span, so `span.set_attribute(...)` needs no check,
    at the cost of one check (about 0.1 us). `start_time` (ns since the
    epoch) back-dates the span to cover work that began before it was known
    which trace it belongs to (a batched store write, say)."""
    if not _enabled and tracer_provider is None:
        return _NO_SPAN
    return _pod_span(obj, name, attributes, kind, tracer_provider, start_time)


@contextmanager
def _pod_span(
    obj: KubeObject,
    name: str,
    attributes: Mapping[str, Any] | None,
    kind: SpanKind,
    tracer_provider: trace.TracerProvider | None,
    start_time: int | None = None,
) -> Iterator[Span]:
    parent = pod_context(obj)
    links: list[Link] = []
    if parent is not None:
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            links.append(Link(current))
    with _tracer_for(tracer_provider).start_as_current_span(
        name,
        context=parent,
        kind=kind,
        links=links,
        attributes={**pod_attributes(obj), **(attributes or {})},
        start_time=start_time,
    ) as span:
        yield span


def traceparent_ids(traceparent: str) -> tuple[int, int] | None:
    """(trace id, span id) of a traceparent string, None if malformed."""
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        return int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None


# ------------------------------------------------------------ local spans


class LocalSpanRecorder(SpanExporter):
    """Keeps the spans of the last `max_traces` traces in memory, queryable by
    trace id, so that `podbus up` can show a pod's trace without Jaeger.

    Safe to feed from a BatchSpanProcessor's thread. `span_record` turns a
    span into plain values for sending over the bus."""

    def __init__(self, max_traces: int = 1000) -> None:
        self.max_traces = max_traces
        self._traces: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                if span.context is None:
                    continue
                trace_id = span.context.trace_id
                self._traces.setdefault(trace_id, []).append(span)
                self._traces.move_to_end(trace_id)
            while len(self._traces) > self.max_traces:
                self._traces.popitem(last=False)
        return SpanExportResult.SUCCESS

    def trace(self, trace_id: int | str) -> list[ReadableSpan]:
        """The spans of one trace (id as int or 32 hex digits), by start time."""
        if isinstance(trace_id, str):
            try:
                trace_id = int(trace_id, 16)
            except ValueError:
                return []
        with self._lock:
            spans = list(self._traces.get(trace_id, []))
        return sorted(spans, key=lambda s: s.start_time or 0)

    def trace_of(self, traceparent: str) -> list[ReadableSpan]:
        ids = traceparent_ids(traceparent)
        return self.trace(ids[0]) if ids else []

    def trace_ids(self) -> list[str]:
        """Trace ids held, oldest first, as hex."""
        with self._lock:
            return [f"{t:032x}" for t in self._traces]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._traces.clear()


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A span as plain values (hex ids, ns timestamps), for `podctl trace`."""
    ctx = span.context
    parent = span.parent
    resource = span.resource.attributes if span.resource else {}
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_id": f"{parent.span_id:016x}" if parent else "",
        "kind": span.kind.name,
        "service": str(resource.get("service.name", "")),
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or 0,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


# ------------------------------------------------------------ local span files

SPANS_DIR_ENV = "PODBUS_SPANS_DIR"
LOCAL_EXPORTER = "podbus-local"
DEFAULT_SPAN_FILE_BYTES = 4 * 1024 * 1024


def spans_dir_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """Where this process keeps its spans as JSON lines: PODBUS_SPANS_DIR, or
    with OTEL_TRACES_EXPORTER=podbus-local and no directory, a `podbus-spans`
    directory under the temporary directory. None: no local span files."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    directory = env.get(SPANS_DIR_ENV, "").strip()
    if directory:
        return directory
    if LOCAL_EXPORTER in trace_exporters(env):
        import tempfile

        return os.path.join(tempfile.gettempdir(), "podbus-spans")
    return None


def span_json_record(span: ReadableSpan) -> dict[str, Any]:
    """`span_record` plus what a waterfall shows besides: events (name, time,
    attributes), links (trace and span id) and the service instance."""
    record = span_record(span)
    resource = span.resource.attributes if span.resource else {}
    record["instance"] = str(resource.get("service.instance.id", ""))
    record["status_message"] = span.status.description or ""
    record["events"] = [
        {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
        for e in span.events
    ]
    record["links"] = [
        {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
        for link in span.links
        if link.context is not None
    ]
    return record


class SpanFileExporter(SpanExporter):
    """Appends finished spans, one JSON object a line, to
    `<directory>/<service>-<instance>.jsonl`, so that `podctl trace` can draw a
    pod's trace on the embedded default without Jaeger.

    Bounded: when the file passes `max_bytes` it becomes `<name>.1.jsonl`
    (replacing the previous one) and a new file starts, so one process keeps
    at most about twice `max_bytes`. Meant to run behind a BatchSpanProcessor
    (setup_tracing does that), so the services' own threads never write to
    disk. A write that fails is logged once and the spans are dropped:
    tracing never stops a service."""

    def __init__(
        self,
        directory: str,
        service: str,
        instance: str | None = None,
        *,
        max_bytes: int = DEFAULT_SPAN_FILE_BYTES,
    ) -> None:
        stem = "-".join(part for part in (service, instance or str(os.getpid())) if part)
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        self.path = os.path.join(directory, f"{stem}.jsonl")
        self.rotated_path = os.path.join(directory, f"{stem}.1.jsonl")
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._failed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        import json

        lines = "".join(
            json.dumps(span_json_record(s), separators=(",", ":"), default=str) + "\n"
            for s in spans
        )
        data = lines.encode()
        with self._lock:
            try:
                os.makedirs(self.directory, exist_ok=True)
                try:
                    size = os.path.getsize(self.path)
                except OSError:
                    size = 0
                if size and size + len(data) > self.max_bytes:
                    os.replace(self.path, self.rotated_path)
                with open(self.path, "ab") as f:
                    f.write(data)
            except OSError as exc:
                if not self._failed:
                    log.warning("cannot write spans to %s: %s (dropping spans)", self.path, exc)
                    self._failed = True
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        return None


def read_span_files(directory: str, trace_id: str) -> list[dict[str, Any]]:
    """Every span record of one trace (32 hex digits) in a span directory's
    JSON-lines files (current and rotated), by start time. Lines that do not
    decode (a write cut short) are skipped."""
    import glob
    import json

    trace_id = trace_id.lower()
    needle = trace_id  # cheap pre-filter before decoding a line
    records: list[dict[str, Any]] = []
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if needle not in line:
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and record.get("trace_id") == trace_id:
                        records.append(record)
        except OSError:
            continue
    records.sort(key=lambda r: (r.get("start_ns", 0), r.get("end_ns", 0)))
    return records
