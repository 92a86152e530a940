"""Every NATS subject podbus uses, in one place.

The table in README.md mirrors SUBJECTS below; a test keeps them in step.
NATS tokens cannot contain '.', '*', '>' or whitespace; Kubernetes names may
contain '.', so names and namespaces are escaped with `token()`.
"""

from __future__ import annotations

PREFIX = "podbus"
UNBOUND = "_"

API_APPLY = "podbus.api.apply"
API_DELETE = "podbus.api.delete"
API_GET = "podbus.api.get"
API_LIST = "podbus.api.list"
API_EPHEMERAL = "podbus.api.ephemeral"
API_ROLLBACK = "podbus.api.rollback"

STREAM_DESIRED = "PODBUS_DESIRED"
STREAM_WATCH = "PODBUS_WATCH"


def token(value: str) -> str:
    """Escape a name for use as one subject token ('.' is the separator)."""
    if not value:
        return UNBOUND
    return value.replace("%", "%25").replace(".", "%2E").replace("*", "%2A").replace(">", "%3E")


def untoken(value: str) -> str:
    if value == UNBOUND:
        return ""
    return value.replace("%2E", ".").replace("%2A", "*").replace("%3E", ">").replace("%25", "%")


def desired(kind: str, namespace: str, name: str) -> str:
    return f"podbus.desired.{kind.lower()}.{token(namespace)}.{token(name)}"


def rejected(kind: str, namespace: str, name: str) -> str:
    return f"podbus.rejected.{kind.lower()}.{token(namespace)}.{token(name)}"


def watch(kind: str, namespace: str, name: str, node: str | None = None) -> str:
    """Watch subject of one object. Pods carry their node (or `_` if unbound)."""
    if kind.lower() == "pod":
        return f"podbus.watch.pod.{token(node or '')}.{token(namespace)}.{token(name)}"
    return f"podbus.watch.{kind.lower()}.{token(namespace)}.{token(name)}"


def watch_kind(kind: str) -> str:
    """Wildcard for every watch event of one kind."""
    return f"podbus.watch.{kind.lower()}.>"


def watch_pods_on(node: str) -> str:
    """Pods bound to one node (use UNBOUND for the scheduler's queue)."""
    return f"podbus.watch.pod.{token(node)}.>"


def node_exec(node: str) -> str:
    return f"podbus.node.{token(node)}.exec"


def node_logs(node: str) -> str:
    return f"podbus.node.{token(node)}.logs"


def node_attach(node: str) -> str:
    return f"podbus.node.{token(node)}.attach"


def node_attach_input(node: str, session: str) -> str:
    """client -> node-agent: one interactive session's stdin, resize, heartbeat."""
    return f"podbus.node.{token(node)}.attach.{token(session)}.in"


def node_attach_output(node: str, session: str) -> str:
    """node-agent -> client: one interactive session's output, then its exit."""
    return f"podbus.node.{token(node)}.attach.{token(session)}.out"


def probe_assign(node: str) -> str:
    """node-agent -> prober: the full set of probes to run on this node."""
    return f"podbus.probe.{token(node)}.assign"


def probe_result(node: str) -> str:
    """prober -> node-agent: a probe's result changed."""
    return f"podbus.probe.{token(node)}.result"


def probe_sync(node: str) -> str:
    """prober -> node-agent: ask for the full assignment again (after a restart)."""
    return f"podbus.probe.{token(node)}.sync"


def health(service: str, instance: str) -> str:
    return f"podbus.health.{token(service)}.{token(instance)}"


# (subject pattern, kind, who serves / listens) — the README's table.
SUBJECTS: list[tuple[str, str, str]] = [
    (
        API_APPLY,
        "request-reply",
        "workload-controller (queue group): validate, default, persist; reply object + warnings or errors",
    ),
    (API_DELETE, "request-reply", "workload-controller: graceful delete with propagationPolicy"),
    (API_GET, "request-reply", "workload-controller: one object"),
    (
        API_LIST,
        "request-reply",
        "workload-controller: objects by kind / namespace / label selector",
    ),
    (
        API_EPHEMERAL,
        "request-reply",
        "workload-controller: the pod's ephemeralcontainers subresource",
    ),
    (API_ROLLBACK, "request-reply", "workload-controller: Deployment rollback to a revision"),
    (
        "podbus.desired.<kind>.<ns>.<name>",
        "publish (JetStream PODBUS_DESIRED)",
        "workload-controller: apply for fire-and-forget clients",
    ),
    (
        "podbus.rejected.<kind>.<ns>.<name>",
        "publish",
        "workload-controller: why a desired object was refused",
    ),
    (
        "podbus.watch.<kind>.<ns>.<name>",
        "publish (JetStream PODBUS_WATCH)",
        "everyone: ADDED / MODIFIED / DELETED + object + resourceVersion",
    ),
    (
        "podbus.watch.pod.<node|_>.<ns>.<name>",
        "publish (JetStream PODBUS_WATCH)",
        "pods: node-agents listen to their node, the scheduler to `_`",
    ),
    (
        "podbus.node.<node>.exec / .logs / .attach",
        "request-reply / stream",
        "node-agent of that node",
    ),
    (
        "podbus.node.<node>.attach.<session>.in / .out",
        "publish (session frames)",
        "client -> node-agent: stdin, resize, heartbeat; node-agent -> client: output, exit",
    ),
    (
        "podbus.probe.<node>.assign / .result / .sync",
        "publish",
        "node-agent <-> prober of that node",
    ),
    ("podbus.health.<service>.<instance>", "request-reply", "every service instance"),
]
