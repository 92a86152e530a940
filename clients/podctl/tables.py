"""`podctl get` tables: the columns kubectl prints for each kind (and their
`-o wide` additions), from objects as plain dicts. Pure: `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clients.podctl.age import age, human_duration, parse_time
from clients.podctl.pod_status import pod_columns
from clients.podctl.tabwriter import table

Obj = dict[str, Any]
RowFn = Callable[[Obj, float, bool], list[str]]


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def selector_text(selector: Obj | None) -> str:
    """A LabelSelector as kubectl prints it (`app=web,tier in (a,b)`)."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator", "")
        key = expr.get("key", "")
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or "<none>"


def _containers_images(template_spec: Obj) -> list[str]:
    containers = template_spec.get("containers") or []
    return [
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    ]


def _has_condition(obj: Obj, kind: str) -> bool:
    for cond in _status(obj).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return True
    return False


# ------------------------------------------------------------------ rows per kind


def pod_row(pod: Obj, now: float, wide: bool) -> list[str]:
    cols = pod_columns(pod, now)
    row = [
        _meta(pod).get("name", ""),
        cols.ready,
        cols.status,
        cols.restarts,
        age(_meta(pod).get("creationTimestamp"), now),
    ]
    if wide:
        status = _status(pod)
        ips = status.get("podIPs") or []
        ip = (ips[0].get("ip") if ips else "") or status.get("podIP") or "<none>"
        gates = _spec(pod).get("readinessGates") or []
        gates_text = "<none>"
        if gates:
            true = sum(1 for g in gates if _has_condition(pod, g.get("conditionType", "")))
            gates_text = f"{true}/{len(gates)}"
        row += [
            ip,
            _spec(pod).get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>",
            gates_text,
        ]
    return row


def deployment_row(d: Obj, now: float, wide: bool) -> list[str]:
    spec, status = _spec(d), _status(d)
    row = [
        _meta(d).get("name", ""),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        str(status.get("updatedReplicas", 0)),
        str(status.get("availableReplicas", 0)),
        age(_meta(d).get("creationTimestamp"), now),
    ]
    if wide:
        row += _containers_images(((spec.get("template") or {}).get("spec")) or {})
        row.append(selector_text(spec.get("selector")))
    return row


def replicaset_row(rs: Obj, now: float, wide: bool) -> list[str]:
    spec, status = _spec(rs), _status(rs)
    row = [
        _meta(rs).get("name", ""),
        str(spec.get("replicas", 1)),
        str(status.get("replicas", 0)),
        str(status.get("readyReplicas", 0)),
        age(_meta(rs).get("creationTimestamp"), now),
    ]
    if wide:
        row += _containers_images(((spec.get("template") or {}).get("spec")) or {})
        row.append(selector_text(spec.get("selector")))
    return row


def statefulset_row(s: Obj, now: float, wide: bool) -> list[str]:
    spec, status = _spec(s), _status(s)
    row = [
        _meta(s).get("name", ""),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        age(_meta(s).get("creationTimestamp"), now),
    ]
    if wide:
        row += _containers_images(((spec.get("template") or {}).get("spec")) or {})
    return row


def configmap_row(cm: Obj, now: float, wide: bool) -> list[str]:
    keys = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [_meta(cm).get("name", ""), str(keys), age(_meta(cm).get("creationTimestamp"), now)]


def secret_row(secret: Obj, now: float, wide: bool) -> list[str]:
    return [
        _meta(secret).get("name", ""),
        secret.get("type") or "Opaque",
        str(len(secret.get("data") or {})),
        age(_meta(secret).get("creationTimestamp"), now),
    ]


def daemonset_row(ds: Obj, now: float, wide: bool) -> list[str]:
    spec, status = _spec(ds), _status(ds)
    template_spec = (spec.get("template") or {}).get("spec") or {}
    node_selector = template_spec.get("nodeSelector") or {}
    row = [
        _meta(ds).get("name", ""),
        str(status.get("desiredNumberScheduled", 0)),
        str(status.get("currentNumberScheduled", 0)),
        str(status.get("numberReady", 0)),
        str(status.get("updatedNumberScheduled", 0)),
        str(status.get("numberAvailable", 0)),
        ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or "<none>",
        age(_meta(ds).get("creationTimestamp"), now),
    ]
    if wide:
        row += [*_containers_images(template_spec), selector_text(spec.get("selector"))]
    return row


def cronjob_row(cj: Obj, now: float, wide: bool) -> list[str]:
    spec, status = _spec(cj), _status(cj)
    last = status.get("lastScheduleTime")
    row = [
        _meta(cj).get("name", ""),
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        "True" if spec.get("suspend") else "False",
        str(len(status.get("active") or [])),
        age(last, now) if last else "<none>",
        age(_meta(cj).get("creationTimestamp"), now),
    ]
    if wide:
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        template_spec = (job_spec.get("template") or {}).get("spec") or {}
        row += [*_containers_images(template_spec), selector_text(job_spec.get("selector"))]
    return row


def job_status_text(job: Obj) -> str:
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if _meta(job).get("deletionTimestamp"):
        return "Terminating"
    if _has_condition(job, "Suspended"):
        return "Suspended"
    if _has_condition(job, "FailureTarget"):
        return "FailureTarget"
    if _has_condition(job, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    return "Running"


def job_row(job: Obj, now: float, wide: bool) -> list[str]:
    spec, status = _spec(job), _status(job)
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    else:
        parallelism = spec.get("parallelism") or 0
        completions = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    start = parse_time(status.get("startTime"))
    end = parse_time(status.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration((end if end is not None else now) - start)
    row = [
        _meta(job).get("name", ""),
        job_status_text(job),
        completions,
        duration,
        age(_meta(job).get("creationTimestamp"), now),
    ]
    if wide:
        row += _containers_images(((spec.get("template") or {}).get("spec")) or {})
        row.append(selector_text(spec.get("selector")))
    return row


def node_status_text(node: Obj) -> str:
    conditions = {c.get("type"): c.get("status") for c in _status(node).get("conditions") or []}
    ready = conditions.get("Ready")
    text = {"True": "Ready", "False": "NotReady"}.get(ready or "", "Unknown")
    if _spec(node).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def node_roles(node: Obj) -> str:
    roles = sorted(
        key.split("/", 1)[1] or ""
        for key in (_meta(node).get("labels") or {})
        if key.startswith("node-role.kubernetes.io/")
    )
    labels = _meta(node).get("labels") or {}
    if "kubernetes.io/role" in labels:
        roles.append(labels["kubernetes.io/role"])
    return ",".join(r for r in roles if r) or "<none>"


def node_row(node: Obj, now: float, wide: bool) -> list[str]:
    info = _status(node).get("nodeInfo") or {}
    row = [
        _meta(node).get("name", ""),
        node_status_text(node),
        node_roles(node),
        age(_meta(node).get("creationTimestamp"), now),
        info.get("kubeletVersion") or "",
    ]
    if wide:
        addresses = {a.get("type"): a.get("address") for a in _status(node).get("addresses") or []}
        row += [
            addresses.get("InternalIP") or "<none>",
            addresses.get("ExternalIP") or "<none>",
            info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>",
        ]
    return row


def event_last_seen(ev: Obj) -> str | None:
    return ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp")


def event_object(ev: Obj) -> str:
    inv = ev.get("involvedObject") or {}
    return f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}"


def event_row(ev: Obj, now: float, wide: bool) -> list[str]:
    row = [
        age(event_last_seen(ev), now),
        ev.get("type") or "Normal",
        ev.get("reason") or "",
        event_object(ev),
    ]
    if wide:
        source = ev.get("source") or {}
        component = source.get("component") or ev.get("reportingComponent") or ""
        host = source.get("host") or ""
        row += [
            (f"{component}, {host}" if host else component),
            "" if ev.get("count") is None else str(ev.get("count", 1)),
            age(ev.get("firstTimestamp") or ev.get("eventTime"), now),
        ]
    row.append(ev.get("message") or "")
    return row


HEADERS: dict[str, tuple[list[str], list[str]]] = {
    "Pod": (
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
    ),
    "Deployment": (
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    "ReplicaSet": (
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    "StatefulSet": (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"]),
    "CronJob": (
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    "DaemonSet": (
        ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    "Job": (
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    "Node": (
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
    ),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], []),
    "ConfigMap": (["NAME", "DATA", "AGE"], []),
    "Secret": (["NAME", "TYPE", "DATA", "AGE"], []),
}

_EVENT_WIDE_HEADERS = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SOURCE", "COUNT", "FIRST SEEN"]

ROWS: dict[str, RowFn] = {
    "Pod": pod_row,
    "Deployment": deployment_row,
    "ReplicaSet": replicaset_row,
    "StatefulSet": statefulset_row,
    "DaemonSet": daemonset_row,
    "CronJob": cronjob_row,
    "Job": job_row,
    "Node": node_row,
    "Event": event_row,
    "ConfigMap": configmap_row,
    "Secret": secret_row,
}


def headers_for(kind: str, wide: bool, all_namespaces: bool = False) -> list[str]:
    base, extra = HEADERS[kind]
    if kind == "Event" and wide:
        headers = [*_EVENT_WIDE_HEADERS, "MESSAGE"]
    else:
        headers = base + (extra if wide else [])
    return (["NAMESPACE", *headers]) if all_namespaces else list(headers)


def rows_for(
    kind: str,
    objects: list[Obj],
    now: float,
    *,
    wide: bool = False,
    all_namespaces: bool = False,
    show_labels: bool = False,
) -> list[list[str]]:
    make = ROWS[kind]
    rows = []
    for obj in objects:
        row = make(obj, now, wide)
        if all_namespaces:
            row = [_meta(obj).get("namespace", ""), *row]
        if show_labels:
            labels = _meta(obj).get("labels") or {}
            row.append(",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>")
        rows.append(row)
    return rows


def sort_objects(kind: str, objects: list[Obj]) -> list[Obj]:
    """kubectl's order: by namespace and name; events by when they were last seen."""
    if kind == "Event":
        return sorted(objects, key=lambda e: parse_time(event_last_seen(e)) or 0.0)
    return sorted(objects, key=lambda o: (_meta(o).get("namespace", ""), _meta(o).get("name", "")))


def render(
    kind: str,
    objects: list[Obj],
    now: float,
    *,
    wide: bool = False,
    all_namespaces: bool = False,
    show_labels: bool = False,
    with_headers: bool = True,
) -> str:
    """The whole table for one kind."""
    headers = headers_for(kind, wide, all_namespaces)
    if show_labels:
        headers.append("LABELS")
    rows = rows_for(
        kind, objects, now, wide=wide, all_namespaces=all_namespaces, show_labels=show_labels
    )
    return table(headers, rows, with_headers=with_headers)
