"""What `podbus up` shows while it runs: a screen of services, nodes and
pods (redrawn on a terminal), or one line per change (when the output is a
pipe or a file), and how far `--demo` has got. Pure: callers pass the
processes' states, the objects (plain dicts) and the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clients.podctl.age import human_duration
from clients.podctl.kinds import resource
from clients.podctl.pod_status import pod_columns
from clients.podctl.tables import node_status_text, render
from clients.podctl.tabwriter import table

Obj = dict[str, Any]


@dataclass(frozen=True)
class ServiceState:
    name: str
    pid: int
    running: bool
    started: float
    exit_code: int | None = None
    detail: str = ""


def services_table(services: list[ServiceState], now: float) -> str:
    rows = []
    for s in services:
        status = "running" if s.running else f"exited ({s.exit_code})"
        rows.append([s.name, str(s.pid), status, human_duration(now - s.started), s.detail or "-"])
    return table(["SERVICE", "PID", "STATUS", "UPTIME", "DETAIL"], rows)


def screen(
    header: str,
    services: list[ServiceState],
    nodes: list[Obj],
    pods: list[Obj],
    now: float,
    footer: str = "",
) -> str:
    """The whole live screen (without the clear-screen escape)."""
    parts = [header, services_table(services, now)]
    parts.append(render("Node", nodes, now) if nodes else "No nodes yet.\n")
    if pods:
        parts.append(
            render(
                "Pod",
                sorted(
                    pods,
                    key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]),
                ),
                now,
                all_namespaces=True,
            )
        )
    else:
        parts.append("No pods yet (try: podctl apply -f examples/).\n")
    if footer:
        parts.append(footer + "\n")
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def pod_line(pod: Obj, now: float) -> str:
    cols = pod_columns(pod, now)
    meta = pod.get("metadata") or {}
    node = (pod.get("spec") or {}).get("nodeName") or "<unscheduled>"
    return (
        f"pod {meta.get('namespace', 'default')}/{meta.get('name', '')}: "
        f"{cols.status} {cols.ready} on {node}"
    )


def node_line(node: Obj) -> str:
    return f"node {(node.get('metadata') or {}).get('name', '')}: {node_status_text(node)}"


def changes(
    previous: dict[str, str], nodes: list[Obj], pods: list[Obj], now: float
) -> tuple[list[str], dict[str, str]]:
    """Lines for what changed since `previous` (key -> last line), and the new map."""
    current: dict[str, str] = {}
    for n in nodes:
        current[f"node/{n['metadata']['name']}"] = node_line(n)
    for p in pods:
        meta = p["metadata"]
        current[f"pod/{meta.get('namespace')}/{meta['name']}"] = pod_line(p, now)
    lines = [line for key, line in current.items() if previous.get(key) != line]
    for key in previous:
        if key not in current:
            kind, _, name = key.partition("/")
            lines.append(f"{kind} {name}: deleted")
    return lines, current


def _ready_condition(obj: Obj, kind: str) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return bool(c.get("status") == "True")
    return False


def demo_progress(objects: list[Obj]) -> tuple[list[str], list[str]]:
    """(done, waiting) descriptions of the demo's objects, as they are now:
    Deployments and StatefulSets with every replica ready, DaemonSets ready
    on every node that should run them, Jobs complete, Pods ready."""
    done: list[str] = []
    waiting: list[str] = []
    for obj in objects:
        kind = obj.get("kind", "")
        name = (obj.get("metadata") or {}).get("name", "")
        ref = resource(kind).ref(name)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if kind in ("Deployment", "StatefulSet"):
            want = int(spec.get("replicas", 1))
            ready = int(status.get("readyReplicas") or 0)
            (done if ready >= want else waiting).append(f"{ref} {ready}/{want}")
        elif kind == "DaemonSet":
            want = int(status.get("desiredNumberScheduled") or 0)
            ready = int(status.get("numberReady") or 0)
            (done if want and ready >= want else waiting).append(f"{ref} {ready}/{want}")
        elif kind == "Job":
            if _ready_condition(obj, "Complete"):
                done.append(f"{ref} Complete")
            else:
                waiting.append(
                    f"{ref} {'Failed' if _ready_condition(obj, 'Failed') else 'Running'}"
                )
        elif kind == "Pod":
            ok = _ready_condition(obj, "Ready")
            (done if ok else waiting).append(f"{ref} {'Ready' if ok else 'not ready'}")
    return done, waiting
