"""`podctl trace POD`: a pod's trace as a terminal waterfall.

The trace id comes from the pod's `podbus.io/traceparent` annotation (the
root span opened at creation). The spans come from Jaeger's query API
(`JAEGER_URL`, `GET /api/traces/<id>`) when one is set, else from the span
files that `podbus up` has the services keep (PODBUS_SPANS_DIR, by default
`<state dir>/spans`; see servicekit.telemetry.SpanFileExporter).

Three parts, kept apart so the drawing is tested without a server:
parsing (`spans_from_jaeger`, `spans_from_records`: both shapes become
`TraceSpan`s), drawing (`render_waterfall`: pure, lines of text), and fetching
(`fetch_jaeger`, `fetch_local`, `run_trace`, `main`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from servicekit.telemetry import TRACEPARENT_ANNOTATION, read_span_files

# Attributes every span of a pod's trace carries; the header shows them once.
_COMMON_ATTRIBUTES = frozenset(
    {"k8s.pod.name", "k8s.namespace.name", "k8s.pod.uid", "messaging.system", "otel.scope.name"}
)
# Jaeger's own tags that are not span attributes.
_JAEGER_INTERNAL_TAGS = frozenset(
    {
        "span.kind",
        "otel.status_code",
        "otel.status_description",
        "otel.scope.name",
        "otel.scope.version",
        "otel.library.name",
        "otel.library.version",
        "internal.span.format",
        "error",
    }
)


@dataclass
class TraceEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class TraceSpan:
    """One span, whichever source it came from (ids as lowercase hex)."""

    trace_id: str
    span_id: str
    parent_id: str
    service: str
    name: str
    start_ns: int
    end_ns: int
    kind: str = "INTERNAL"
    status: str = "UNSET"
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[TraceEvent] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # linked trace ids

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


# ------------------------------------------------------------------ parsing


def _hex(value: Any, digits: int) -> str:
    return str(value or "").lower().zfill(digits) if value else ""


def _jaeger_tags(tags: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {str(t.get("key")): t.get("value") for t in tags or () if t.get("key") is not None}


def spans_from_jaeger(document: Mapping[str, Any]) -> list[TraceSpan]:
    """The spans of a Jaeger query API answer (`{"data": [trace, ...]}`;
    microsecond times, tags as key/type/value, events as logs)."""
    spans: list[TraceSpan] = []
    for trace in document.get("data") or ():
        processes = trace.get("processes") or {}
        for raw in trace.get("spans") or ():
            tags = _jaeger_tags(raw.get("tags"))
            process = processes.get(raw.get("processID"), {})
            parent = ""
            for ref in raw.get("references") or ():
                if ref.get("refType") == "CHILD_OF" and ref.get("traceID") == raw.get("traceID"):
                    parent = _hex(ref.get("spanID"), 16)
                    break
            links = [
                _hex(ref.get("traceID"), 32)
                for ref in raw.get("references") or ()
                if ref.get("traceID") != raw.get("traceID")
            ]
            events = []
            for log in raw.get("logs") or ():
                fields = _jaeger_tags(log.get("fields"))
                name = str(fields.pop("event", "event"))
                events.append(TraceEvent(name, int(log.get("timestamp", 0)) * 1000, fields))
            start = int(raw.get("startTime", 0)) * 1000
            status = str(tags.get("otel.status_code", "UNSET")).upper()
            if tags.get("error") is True and status == "UNSET":
                status = "ERROR"
            spans.append(
                TraceSpan(
                    trace_id=_hex(raw.get("traceID"), 32),
                    span_id=_hex(raw.get("spanID"), 16),
                    parent_id=parent,
                    service=str(process.get("serviceName", "")),
                    name=str(raw.get("operationName", "")),
                    start_ns=start,
                    end_ns=start + int(raw.get("duration", 0)) * 1000,
                    kind=str(tags.get("span.kind", "internal")).upper(),
                    status=status,
                    attributes={k: v for k, v in tags.items() if k not in _JAEGER_INTERNAL_TAGS},
                    events=events,
                    links=links,
                )
            )
    return spans


def spans_from_records(records: Sequence[Mapping[str, Any]]) -> list[TraceSpan]:
    """The spans of local span files (servicekit.telemetry.span_json_record)."""
    return [
        TraceSpan(
            trace_id=str(r.get("trace_id", "")),
            span_id=str(r.get("span_id", "")),
            parent_id=str(r.get("parent_id", "")),
            service=str(r.get("service", "")),
            name=str(r.get("name", "")),
            start_ns=int(r.get("start_ns", 0)),
            end_ns=int(r.get("end_ns", 0)),
            kind=str(r.get("kind", "INTERNAL")),
            status=str(r.get("status", "UNSET")),
            attributes=dict(r.get("attributes") or {}),
            events=[
                TraceEvent(
                    str(e.get("name", "")), int(e.get("time_ns", 0)), e.get("attributes") or {}
                )
                for e in r.get("events") or ()
            ],
            links=[str(link.get("trace_id", "")) for link in r.get("links") or ()],
        )
        for r in records
    ]


# ------------------------------------------------------------------ drawing


def format_duration(ns: int) -> str:
    """Short and aligned: 0.4ms, 12ms, 1.25s, 2m03s."""
    ms = ns / 1e6
    if ms < 10:
        return f"{ms:.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.2f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def _value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ",".join(_value(x) for x in v)
    text = str(v)
    return json.dumps(text) if (" " in text or not text) else text


def _attribute_text(
    attributes: Mapping[str, Any],
    skip: frozenset[str],
    *,
    prefix: str = "",
    node: str = "",
) -> str:
    """k=v pairs, short: no `k8s.`/`podbus.`/own-service prefix, no empty
    values, the node only where it is not the pod's node from the header."""
    parts = []
    for key, value in attributes.items():
        if key in skip or value in ("", None, []):
            continue
        if key == "k8s.node.name" and value == node:
            continue
        short = key.removeprefix("k8s.").removeprefix("podbus.")
        if prefix:
            short = short.removeprefix(prefix)
        parts.append(f"{short}={_value(value)}")
    return " ".join(parts)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def tree_order(spans: Sequence[TraceSpan]) -> list[tuple[int, TraceSpan]]:
    """(depth, span) parent before children, siblings by start time; a span
    whose parent is missing (not exported yet) starts a tree of its own."""
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[TraceSpan]] = {}
    roots: list[TraceSpan] = []
    for span in spans:
        if span.parent_id and span.parent_id in by_id and span.parent_id != span.span_id:
            children.setdefault(span.parent_id, []).append(span)
        else:
            roots.append(span)

    def key(s: TraceSpan) -> tuple[int, int, str]:
        return (s.start_ns, s.end_ns, s.name)

    ordered: list[tuple[int, TraceSpan]] = []
    seen: set[str] = set()
    stack = [(0, s) for s in sorted(roots, key=key, reverse=True)]
    while stack:
        depth, span = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        ordered.append((depth, span))
        for child in sorted(children.get(span.span_id, []), key=key, reverse=True):
            stack.append((depth + 1, child))
    return ordered


def render_waterfall(
    spans: Sequence[TraceSpan],
    *,
    width: int = 120,
    bar_width: int = 30,
    ascii_only: bool = False,
) -> list[str]:
    """The trace as lines: a header, then one row per span (offset from the
    trace's start, duration, service, indented name, a bar on the trace's
    time axis, the span's own attributes) and one row per span event."""
    if not spans:
        return ["(no spans)"]
    start = min(s.start_ns for s in spans)
    end = max(max(s.end_ns, s.start_ns) for s in spans)
    total = max(1, end - start)
    full, tick = ("#", "|") if ascii_only else ("█", "▏")
    first = min(spans, key=lambda s: (s.start_ns, s.parent_id != ""))
    pod = first.attributes.get("k8s.pod.name")
    namespace = first.attributes.get("k8s.namespace.name")
    services = sorted({s.service for s in spans if s.service})
    title = f"trace {first.trace_id}"
    if pod:
        title += f"  pod {namespace}/{pod}" if namespace else f"  pod {pod}"
    uid = first.attributes.get("k8s.pod.uid")
    if uid:
        title += f"  uid {uid}"
    nodes = [s.attributes["k8s.node.name"] for s in spans if s.attributes.get("k8s.node.name")]
    node = str(max(set(nodes), key=nodes.count)) if nodes else ""
    if node:
        title += f"  node {node}"
    lines = [
        title,
        f"{len(spans)} spans from {len(services)} services ({', '.join(services)}) "
        f"over {format_duration(total)}",
    ]
    order = tree_order(spans)
    service_w = min(22, max(len(s.service) for s in spans) if spans else 7)
    name_w = min(
        48, max(len(s.name) + 2 * min(d, 6) + (2 if s.status == "ERROR" else 0) for d, s in order)
    )
    service_w, name_w = max(service_w, 7), max(name_w, 4)
    head = (
        f"{'OFFSET':>9} {'DURATION':>8}  {'SERVICE':<{service_w}}  {'SPAN':<{name_w}}  "
        f"{'TIMELINE':<{bar_width + 2}}  ATTRIBUTES"
    )
    lines.append(head.rstrip())
    attr_w = max(10, width - len(head) + len("ATTRIBUTES"))
    for depth, span in order:
        offset = span.start_ns - start
        a = min(bar_width - 1, int(offset / total * bar_width))
        b = max(a + 1, min(bar_width, math.ceil((span.end_ns - start) / total * bar_width)))
        cells = full * (b - a) if span.duration_ns * bar_width >= total else tick
        bar = (" " * a + cells).ljust(bar_width)
        name = "  " * min(depth, 6) + span.name
        if span.status == "ERROR":
            name += " !"
        own = span.name.split(".")[0] + "." if "." in span.name else ""
        attrs = _attribute_text(span.attributes, _COMMON_ATTRIBUTES, prefix=own, node=node)
        if span.kind not in ("INTERNAL", ""):
            attrs = f"[{span.kind.lower()}] {attrs}".rstrip()
        if span.links:
            attrs += f" links={','.join(t[:8] for t in span.links)}"
        row = (
            f"{'+' + format_duration(offset):>9} {format_duration(span.duration_ns):>8}  "
            f"{_clip(span.service, service_w):<{service_w}}  {_clip(name, name_w):<{name_w}}  "
            f"|{bar}|  {_clip(attrs.strip(), attr_w)}"
        )
        lines.append(row.rstrip())
        for event in sorted(span.events, key=lambda e: e.time_ns):
            at = max(0, event.time_ns - start)
            pos = min(bar_width - 1, int(at / total * bar_width))
            ebar = (" " * pos + "*").ljust(bar_width)
            text = f"{event.name} {_attribute_text(event.attributes, frozenset())}".strip()
            indent = "  " * min(depth + 1, 7)
            lines.append(
                (
                    f"{'+' + format_duration(at):>9} {'':>8}  {'':<{service_w}}  "
                    f"{_clip(indent + '· event', name_w):<{name_w}}  |{ebar}|  "
                    f"{_clip(text, attr_w)}"
                ).rstrip()
            )
    return lines


# ------------------------------------------------------------------ fetching


class TraceFetchError(Exception):
    """The spans could not be fetched; the message says from where and why."""


def trace_id_of(pod: Mapping[str, Any]) -> str | None:
    """The pod's trace id (32 hex digits) from its traceparent annotation."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    parts = str(annotations.get(TRACEPARENT_ANNOTATION, "")).split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    try:
        int(parts[1], 16)
    except ValueError:
        return None
    return parts[1].lower()


def fetch_jaeger(jaeger_url: str, trace_id: str, *, timeout: float = 10.0) -> list[TraceSpan]:
    """The trace from Jaeger's query API; [] when Jaeger does not know it."""
    url = f"{jaeger_url.rstrip('/')}/api/traces/{urllib.parse.quote(trace_id)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise TraceFetchError(f"Jaeger at {jaeger_url} answered {exc.code} for {url}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TraceFetchError(f"cannot read {url}: {exc}") from exc
    if not isinstance(document, dict):
        raise TraceFetchError(f"{url}: not a Jaeger answer")
    return spans_from_jaeger(document)


def fetch_local(spans_dir: str, trace_id: str) -> list[TraceSpan]:
    return spans_from_records(read_span_files(spans_dir, trace_id))


def run_trace(
    pod_obj: Mapping[str, Any],
    *,
    jaeger_url: str | None,
    spans_dir: str | None,
    out: TextIO,
    err: TextIO | None = None,
    width: int | None = None,
) -> int:
    """Fetch the pod's trace (Jaeger first when given, then the local span
    files) and print its waterfall to `out`. 0 when drawn, 1 otherwise, with
    the reason on `err`."""
    err = err or sys.stderr
    meta = pod_obj.get("metadata") or {}
    ref = f"pod {meta.get('namespace', 'default')}/{meta.get('name', '?')}"
    trace_id = trace_id_of(pod_obj)
    if trace_id is None:
        print(
            f"error: {ref} has no {TRACEPARENT_ANNOTATION} annotation: tracing was off when "
            "it was created (set OTEL_EXPORTER_OTLP_ENDPOINT for the services, or use `podbus up`)",
            file=err,
        )
        return 1
    tried: list[str] = []
    spans: list[TraceSpan] = []
    if jaeger_url:
        try:
            spans = fetch_jaeger(jaeger_url, trace_id)
            tried.append(f"Jaeger at {jaeger_url}")
        except TraceFetchError as exc:
            tried.append(f"Jaeger ({exc})")
    if not spans and spans_dir:
        spans = fetch_local(spans_dir, trace_id)
        tried.append(f"the span files in {spans_dir}")
    if not spans:
        where = " and ".join(tried) or "nowhere (set JAEGER_URL or PODBUS_SPANS_DIR)"
        print(f"error: no spans of trace {trace_id} ({ref}) in {where}", file=err)
        return 1
    columns = width or _terminal_width(out)
    encoding = (getattr(out, "encoding", None) or "utf-8").lower()
    for line in render_waterfall(spans, width=columns, ascii_only="utf" not in encoding):
        print(line, file=out)
    return 0


def _terminal_width(out: TextIO) -> int:
    try:
        return max(80, os.get_terminal_size(out.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        return 140


def default_spans_dir(env: Mapping[str, str]) -> str:
    """PODBUS_SPANS_DIR, else where `podbus up` keeps spans by default."""
    from clients.podctl.connection import state_dir

    return env.get("PODBUS_SPANS_DIR") or str(state_dir(env) / "spans")


async def _get_pod(server: str | None, namespace: str, name: str) -> dict[str, Any] | None:
    from clients.podctl.client import PodbusClient
    from clients.podctl.connection import from_environment

    async with PodbusClient.connect(from_environment(server=server)) as client:
        return await client.get("Pod", namespace, name)


def main(argv: list[str] | None = None) -> int:
    """`podctl trace [-n NS] [--server URL] POD [--jaeger URL] [--spans-dir DIR]`."""
    p = argparse.ArgumentParser(prog="podctl trace", description=__doc__.split("\n\n")[0])
    p.add_argument("pod", metavar="POD")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--server", default=None)
    p.add_argument("--jaeger", default=os.environ.get("JAEGER_URL"), help="env JAEGER_URL")
    p.add_argument("--spans-dir", default=None, help="env PODBUS_SPANS_DIR")
    p.add_argument("--width", type=int, default=None)
    args = p.parse_args(argv)
    name = args.pod.removeprefix("pod/").removeprefix("pods/")
    try:
        pod = asyncio.run(_get_pod(args.server, args.namespace, name))
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if pod is None:
        print(f'error: pods "{name}" not found in namespace {args.namespace}', file=sys.stderr)
        return 1
    spans_dir = args.spans_dir or default_spans_dir(os.environ)
    if not Path(spans_dir).is_dir():
        spans_dir = None
    return run_trace(
        pod, jaeger_url=args.jaeger, spans_dir=spans_dir, out=sys.stdout, width=args.width
    )


if __name__ == "__main__":
    sys.exit(main())
