"""`podctl trace`: Jaeger's query API answer and local span records become
the same spans; the waterfall puts parents before children, offsets from the
trace's start, bars on one time axis, attributes and events; run_trace says
why when it cannot draw."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from clients.podctl.trace_view import (
    format_duration,
    render_waterfall,
    run_trace,
    spans_from_jaeger,
    spans_from_records,
    trace_id_of,
    tree_order,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_764_064_800_000_000  # microseconds, as Jaeger gives them


def tag(key: str, value: Any) -> dict[str, Any]:
    kind = {bool: "bool", int: "int64", float: "float64"}.get(type(value), "string")
    return {"key": key, "type": kind, "value": value}


POD_TAGS = [
    tag("k8s.pod.name", "web"),
    tag("k8s.namespace.name", "default"),
    tag("k8s.pod.uid", "u1"),
]


def jaeger_span(
    span_id: str,
    name: str,
    process: str,
    start_us: int,
    duration_us: int,
    parent: str | None = None,
    tags: list[dict[str, Any]] | None = None,
    logs: list[dict[str, Any]] | None = None,
    references: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    refs = [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": parent}] if parent else []
    return {
        "traceID": TRACE,
        "spanID": span_id,
        "operationName": name,
        "references": refs + (references or []),
        "startTime": T0 + start_us,
        "duration": duration_us,
        "tags": POD_TAGS + (tags or []),
        "logs": logs or [],
        "processID": process,
        "warnings": None,
    }


# The shape of GET /api/traces/<id> (Jaeger v1 query API, also served by v2):
# spans in arrival order, not tree order.
JAEGER_ANSWER: dict[str, Any] = {
    "data": [
        {
            "traceID": TRACE,
            "spans": [
                jaeger_span(
                    "00000000000000b2",
                    "scheduler.bound",
                    "p2",
                    40_000,
                    3_000,
                    parent="00000000000000a1",
                    tags=[tag("k8s.node.name", "n1"), tag("otel.scope.name", "podbus")],
                ),
                jaeger_span(
                    "00000000000000a1",
                    "pod default/web",
                    "p1",
                    0,
                    100,
                    references=[
                        {"refType": "FOLLOWS_FROM", "traceID": "ab" * 16, "spanID": "cd" * 8}
                    ],
                ),
                jaeger_span(
                    "00000000000000c3",
                    "node-agent.container.started",
                    "p3",
                    1_200_000,
                    500_000,
                    parent="00000000000000a1",
                    tags=[
                        tag("k8s.container.name", "app"),
                        tag("span.kind", "internal"),
                        tag("otel.status_code", "ERROR"),
                        tag("error", True),
                    ],
                    logs=[
                        {
                            "timestamp": T0 + 1_500_000,
                            "fields": [tag("event", "back-off"), tag("reason", "CrashLoopBackOff")],
                        }
                    ],
                ),
                jaeger_span(
                    "00000000000000b1",
                    "scheduler.queued",
                    "p2",
                    10_000,
                    25_000,
                    parent="00000000000000a1",
                    tags=[tag("span.kind", "consumer"), tag("messaging.system", "nats")],
                ),
                jaeger_span(
                    "00000000000000b3",
                    "scheduler.filtered",
                    "p2",
                    12_000,
                    5_000,
                    parent="00000000000000b1",
                    tags=[tag("podbus.feasible_nodes", 2)],
                ),
            ],
            "processes": {
                "p1": {"serviceName": "workload-controller", "tags": []},
                "p2": {"serviceName": "scheduler", "tags": [tag("hostname", "h")]},
                "p3": {"serviceName": "node-agent", "tags": []},
            },
            "warnings": None,
        }
    ],
    "total": 0,
    "limit": 0,
    "offset": 0,
    "errors": None,
}


def test_jaeger_answer_becomes_spans_with_parents_links_and_events() -> None:
    spans = {s.name: s for s in spans_from_jaeger(json.loads(json.dumps(JAEGER_ANSWER)))}
    root = spans["pod default/web"]
    assert root.parent_id == "" and root.links == ["ab" * 16]
    assert root.service == "workload-controller" and root.trace_id == TRACE
    started = spans["node-agent.container.started"]
    assert started.parent_id == "00000000000000a1"
    assert started.status == "ERROR" and started.kind == "INTERNAL"
    assert started.duration_ns == 500_000_000
    assert [(e.name, e.attributes) for e in started.events] == [
        ("back-off", {"reason": "CrashLoopBackOff"})
    ]
    assert "error" not in started.attributes and "span.kind" not in started.attributes
    assert spans["scheduler.queued"].kind == "CONSUMER"


def test_tree_order_puts_children_under_parents_by_start() -> None:
    order = tree_order(spans_from_jaeger(JAEGER_ANSWER))
    assert [(d, s.name) for d, s in order] == [
        (0, "pod default/web"),
        (1, "scheduler.queued"),
        (2, "scheduler.filtered"),
        (1, "scheduler.bound"),
        (1, "node-agent.container.started"),
    ]


def test_waterfall_rows_show_offsets_durations_bars_and_attributes() -> None:
    lines = render_waterfall(spans_from_jaeger(JAEGER_ANSWER), width=160, bar_width=20)
    text = "\n".join(lines)
    assert lines[0] == f"trace {TRACE}  pod default/web  uid u1  node n1"
    assert "5 spans from 3 services (node-agent, scheduler, workload-controller) over 1.70s" in text
    started = next(line for line in lines if "node-agent.container.started" in line)
    assert started.split()[:3] == ["+1.20s", "500ms", "node-agent"]
    assert (
        "container.name=app" in started
        and "node.name" not in started
        and "node-agent.container.started !" in started
    )
    # 1.2 s of 1.7 s: the bar starts at 14/20 and runs to the end.
    bar = started.split("|")[1]
    assert bar == " " * 14 + "█" * 6
    filtered = next(line for line in lines if "scheduler.filtered" in line)
    assert "    scheduler.filtered" in filtered and "feasible_nodes=2" in filtered
    assert "pod.name=" not in text  # common attributes only in the header
    event = lines[lines.index(started) + 1]
    assert "· event" in event and "back-off reason=CrashLoopBackOff" in event
    assert event.split()[0] == "+1.50s"
    assert "[consumer]" in next(line for line in lines if "scheduler.queued" in line)
    assert "links=abababab" in lines[3]


def test_ascii_bars_for_terminals_without_utf8() -> None:
    lines = render_waterfall(spans_from_jaeger(JAEGER_ANSWER), ascii_only=True)
    assert "#" in "\n".join(lines) and "█" not in "\n".join(lines)


def test_durations_are_short() -> None:
    assert [format_duration(n) for n in (400_000, 12_300_000, 1_254_000_000, 123_000_000_000)] == [
        "0.4ms",
        "12ms",
        "1.25s",
        "2m03s",
    ]


def pod_obj(traceparent: str | None) -> dict[str, Any]:
    annotations = {"podbus.io/traceparent": traceparent} if traceparent else {}
    return {
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
    }


def test_trace_id_comes_from_the_annotation() -> None:
    assert trace_id_of(pod_obj(f"00-{TRACE}-00000000000000a1-01")) == TRACE
    assert trace_id_of(pod_obj(None)) is None
    assert trace_id_of(pod_obj("garbage")) is None


def test_run_trace_draws_from_local_span_files(tmp_path: Path) -> None:
    records = [
        {
            "name": "pod default/web",
            "trace_id": TRACE,
            "span_id": "a1" * 8,
            "parent_id": "",
            "kind": "INTERNAL",
            "service": "workload-controller",
            "start_ns": 1_000,
            "end_ns": 2_000,
            "status": "UNSET",
            "attributes": {"k8s.pod.name": "web", "k8s.namespace.name": "default"},
            "events": [],
            "links": [],
        },
        {
            "name": "prober.transition",
            "trace_id": TRACE,
            "span_id": "b2" * 8,
            "parent_id": "a1" * 8,
            "kind": "INTERNAL",
            "service": "prober",
            "start_ns": 5_000_000,
            "end_ns": 6_000_000,
            "status": "UNSET",
            "attributes": {"podbus.probe.result": "success"},
            "events": [{"name": "ready", "time_ns": 5_500_000, "attributes": {}}],
            "links": [],
        },
    ]
    assert [s.name for s in spans_from_records(records)] == ["pod default/web", "prober.transition"]
    other = dict(records[0], trace_id="0" * 32)
    (tmp_path / "wc-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [records[0], other]))
    (tmp_path / "prober-1.jsonl").write_text(json.dumps(records[1]) + "\n")
    out, err = io.StringIO(), io.StringIO()
    code = run_trace(
        pod_obj(f"00-{TRACE}-{'a1' * 8}-01"),
        jaeger_url=None,
        spans_dir=str(tmp_path),
        out=out,
        err=err,
        width=120,
    )
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "2 spans from 2 services" in text
    assert "  prober.transition" in text and "probe.result=success" in text


def test_run_trace_explains_a_pod_without_trace_and_an_unknown_trace(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_trace(pod_obj(None), jaeger_url=None, spans_dir=None, out=out, err=err) == 1
    assert "has no podbus.io/traceparent annotation" in err.getvalue()
    err = io.StringIO()
    code = run_trace(
        pod_obj(f"00-{TRACE}-{'a1' * 8}-01"),
        jaeger_url="http://127.0.0.1:9",  # nothing listens on the discard port
        spans_dir=str(tmp_path),
        out=out,
        err=err,
    )
    assert code == 1 and out.getvalue() == ""
    assert f"no spans of trace {TRACE}" in err.getvalue()
    assert "Jaeger (cannot read http://127.0.0.1:9/api/traces/" in err.getvalue()
    assert str(tmp_path) in err.getvalue()
