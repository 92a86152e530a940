"""A real OTLP/HTTP trace receiver for tests: `POST /v1/traces` with an
ExportTraceServiceRequest (protobuf, optionally gzip), decoded with
opentelemetry-proto, spans kept for assertions.

It also answers `GET /api/traces/<trace id>` in the shape of Jaeger's query
API, so `podctl trace` (clients.podctl.trace_view) can be pointed at it as if
it were Jaeger.

Runs an http.server in a daemon thread; use it as a context manager:

    with OtlpReceiver() as receiver:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
        ...
        receiver.spans(trace_id=...)
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    Span.SPAN_KIND_INTERNAL: "INTERNAL",
    Span.SPAN_KIND_SERVER: "SERVER",
    Span.SPAN_KIND_CLIENT: "CLIENT",
    Span.SPAN_KIND_PRODUCER: "PRODUCER",
    Span.SPAN_KIND_CONSUMER: "CONSUMER",
}
_STATUS = {
    Status.STATUS_CODE_UNSET: "UNSET",
    Status.STATUS_CODE_OK: "OK",
    Status.STATUS_CODE_ERROR: "ERROR",
}


def any_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = any_value(kv.value)
    return out


@dataclass
class ReceivedEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass
class ReceivedSpan:
    """One decoded span (ids as lowercase hex, times in ns)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    service: str
    scope: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[ReceivedEvent] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


def decode_request(body: bytes) -> list[ReceivedSpan]:
    """Every span of an ExportTraceServiceRequest; DecodeError if it is not one."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=_KINDS.get(s.kind, str(s.kind)),
                        service=str(resource.get("service.name", "")),
                        scope=scope_spans.scope.name,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        status=_STATUS.get(s.status.code, str(s.status.code)),
                        attributes=attributes(s.attributes),
                        resource=resource,
                        events=[
                            ReceivedEvent(e.name, e.time_unix_nano, attributes(e.attributes))
                            for e in s.events
                        ],
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                    )
                )
    return spans


def _jaeger_tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, int):
        kind = "int64"
    elif isinstance(value, float):
        kind = "float64"
    else:
        kind = "string"
        value = value if isinstance(value, str) else json.dumps(value)
    return {"key": key, "type": kind, "value": value}


def jaeger_document(spans: list[ReceivedSpan]) -> dict[str, Any]:
    """The spans of one trace as Jaeger's query API returns them
    (`GET /api/traces/<id>`): microseconds, tags, logs, processes."""
    if not spans:
        return {"data": [], "errors": [{"code": 404, "msg": "trace not found"}]}
    processes: dict[str, dict[str, Any]] = {}
    process_ids: dict[tuple[str, str], str] = {}
    out = []
    for s in spans:
        key = (s.service, str(s.resource.get("service.instance.id", "")))
        if key not in process_ids:
            process_ids[key] = f"p{len(process_ids) + 1}"
            processes[process_ids[key]] = {
                "serviceName": s.service,
                "tags": [_jaeger_tag(k, v) for k, v in s.resource.items() if k != "service.name"],
            }
        references = []
        if s.parent_id:
            references.append({"refType": "CHILD_OF", "traceID": s.trace_id, "spanID": s.parent_id})
        references += [
            {"refType": "FOLLOWS_FROM", "traceID": t, "spanID": sid} for t, sid in s.links
        ]
        tags = [_jaeger_tag(k, v) for k, v in s.attributes.items()]
        if s.kind not in ("INTERNAL", "UNSPECIFIED"):
            tags.append(_jaeger_tag("span.kind", s.kind.lower()))
        if s.status != "UNSET":
            tags.append(_jaeger_tag("otel.status_code", s.status))
        if s.status == "ERROR":
            tags.append(_jaeger_tag("error", True))
        out.append(
            {
                "traceID": s.trace_id,
                "spanID": s.span_id,
                "operationName": s.name,
                "references": references,
                "startTime": s.start_ns // 1000,
                "duration": (s.end_ns - s.start_ns) // 1000,
                "tags": tags,
                "logs": [
                    {
                        "timestamp": e.time_ns // 1000,
                        "fields": [_jaeger_tag("event", e.name)]
                        + [_jaeger_tag(k, v) for k, v in e.attributes.items()],
                    }
                    for e in s.events
                ],
                "processID": process_ids[key],
                "warnings": None,
            }
        )
    return {
        "data": [{"traceID": spans[0].trace_id, "spans": out, "processes": processes}],
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }


class OtlpReceiver:
    """OTLP/HTTP on 127.0.0.1 (a free port); `url` is the base for
    OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.requests = 0
        self.bad_requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/traces":
                    self._reply(404, b"", "text/plain")
                    return
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    spans = decode_request(body)
                except (DecodeError, OSError, zlib.error) as exc:
                    with receiver._lock:
                        receiver.bad_requests += 1
                    self._reply(400, str(exc).encode(), "text/plain")
                    return
                with receiver._lock:
                    receiver.requests += 1
                    receiver._spans.extend(spans)
                self._reply(
                    200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"
                )

            def do_GET(self) -> None:
                prefix = "/api/traces/"
                if not self.path.startswith(prefix):
                    self._reply(404, b"", "text/plain")
                    return
                trace_id = self.path[len(prefix) :].split("?")[0].lower()
                document = jaeger_document(receiver.spans(trace_id=trace_id))
                code = 200 if document["data"] else 404
                self._reply(code, json.dumps(document).encode(), "application/json")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-receiver", daemon=True
        )
        self.host, self.port = host, int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def spans(
        self,
        *,
        trace_id: str | None = None,
        where: Callable[[ReceivedSpan], bool] | None = None,
    ) -> list[ReceivedSpan]:
        """Spans received so far (of one trace, or matching `where`), by start."""
        with self._lock:
            spans = list(self._spans)
        if trace_id is not None:
            spans = [s for s in spans if s.trace_id == trace_id]
        if where is not None:
            spans = [s for s in spans if where(s)]
        return sorted(spans, key=lambda s: (s.start_ns, s.end_ns))

    def traces(self) -> dict[str, list[ReceivedSpan]]:
        out: dict[str, list[ReceivedSpan]] = {}
        for span in self.spans():
            out.setdefault(span.trace_id, []).append(span)
        return out

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
