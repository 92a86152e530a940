"""`podctl describe` text: kubectl's layout (a label column, nested
sections indented by two spaces, conditions and events as tables), built
from objects as plain dicts and aligned by the same tabwriter settings
kubectl's describer uses (minwidth 0, padding 2). Pure: `now` is passed in.
"""

from __future__ import annotations

from typing import Any

from podmodel.config import decode_base64

from clients.podctl.age import age, describe_time, human_duration, parse_time
from clients.podctl.tables import event_last_seen, job_status_text, selector_text
from clients.podctl.tabwriter import DESCRIBE_MINWIDTH, DESCRIBE_PADDING, tabwrite

Obj = dict[str, Any]


class _Writer:
    """kubectl's PrefixWriter: each line at a level gets two spaces per level."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def line(self, level: int, *cells: str) -> None:
        self.parts.append("  " * level + "\t".join(cells) + "\n")

    def indented(self, spaces: int, *cells: str) -> None:
        self.parts.append(" " * spaces + "\t".join(cells) + "\n")

    def text(self) -> str:
        return tabwrite("".join(self.parts), DESCRIBE_MINWIDTH, DESCRIBE_PADDING)


SKIPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
"""Annotations describe leaves out, as kubectl's describer does."""


def _map_lines(w: _Writer, level: int, title: str, values: dict[str, str], sep: str = "=") -> None:
    """`Labels:  a=b` then continuation lines aligned under the first value."""
    if sep == ": ":
        values = {k: v for k, v in values.items() if k not in SKIPPED_ANNOTATIONS}
    if not values:
        w.line(level, title, "<none>")
        return
    for i, (k, v) in enumerate(sorted(values.items())):
        w.line(level, title if i == 0 else "", f"{k}{sep}{v}")


def _events_section(w: _Writer, events: list[Obj], now: float) -> None:
    if not events:
        w.line(0, "Events:", "<none>")
        return
    w.line(0, "Events:")
    w.line(1, "Type", "Reason", "Age", "From", "Message")
    w.line(1, "----", "------", "----", "----", "-------")
    for ev in sorted(events, key=lambda e: parse_time(event_last_seen(e)) or 0.0):
        count = int(ev.get("count") or 1)
        last = age(event_last_seen(ev), now)
        if count > 1:
            first = age(ev.get("firstTimestamp") or ev.get("eventTime"), now)
            when = f"{last} (x{count} over {first})"
        else:
            when = last
        source = ev.get("source") or {}
        origin = source.get("component") or ev.get("reportingComponent") or ""
        if source.get("host"):
            origin = f"{origin}, {source['host']}" if origin else source["host"]
        w.line(
            1,
            ev.get("type") or "Normal",
            ev.get("reason") or "",
            when,
            origin,
            (ev.get("message") or "").strip(),
        )


def _conditions_table(w: _Writer, conditions: list[Obj], with_reason: bool) -> None:
    if not conditions:
        return
    w.line(0, "Conditions:")
    if with_reason:
        w.line(1, "Type", "Status", "Reason")
        w.line(1, "----", "------", "------")
        for c in conditions:
            w.line(1, c.get("type", ""), c.get("status", ""), c.get("reason") or "")
    else:
        w.line(1, "Type", "Status")
        for c in conditions:
            w.line(1, c.get("type", ""), c.get("status", ""))


# ------------------------------------------------------------------ containers


def _probe_text(probe: Obj) -> str:
    if "httpGet" in probe:
        h = probe["httpGet"]
        scheme = (h.get("scheme") or "HTTP").lower()
        handler = (
            f"http-get {scheme}://{h.get('host', '')}:{h.get('port', '')}{h.get('path') or '/'}"
        )
    elif "tcpSocket" in probe:
        handler = f"tcp-socket :{probe['tcpSocket'].get('port', '')}"
    elif "grpc" in probe:
        g = probe["grpc"]
        handler = f"grpc <pod>:{g.get('port', '')} {g.get('service') or ''}".rstrip()
    elif "exec" in probe:
        handler = "exec [" + " ".join((probe["exec"] or {}).get("command") or []) + "]"
    else:
        handler = "unknown"
    return (
        f"{handler} delay={probe.get('initialDelaySeconds', 0)}s "
        f"timeout={probe.get('timeoutSeconds', 1)}s period={probe.get('periodSeconds', 10)}s "
        f"#success={probe.get('successThreshold', 1)} #failure={probe.get('failureThreshold', 3)}"
    )


def _state_lines(w: _Writer, level: int, title: str, state: Obj) -> None:
    if state.get("running") is not None:
        w.line(level, f"{title}:", "Running")
        w.line(level + 1, "Started:", describe_time(state["running"].get("startedAt")))
    elif state.get("waiting") is not None:
        w.line(level, f"{title}:", "Waiting")
        w.line(level + 1, "Reason:", state["waiting"].get("reason") or "")
        if state["waiting"].get("message"):
            w.line(level + 1, "Message:", state["waiting"]["message"])
    elif state.get("terminated") is not None:
        t = state["terminated"]
        w.line(level, f"{title}:", "Terminated")
        w.line(level + 1, "Reason:", t.get("reason") or "")
        if t.get("message"):
            w.line(level + 1, "Message:", t["message"])
        w.line(level + 1, "Exit Code:", str(t.get("exitCode", 0)))
        if t.get("signal"):
            w.line(level + 1, "Signal:", str(t["signal"]))
        w.line(level + 1, "Started:", describe_time(t.get("startedAt")))
        w.line(level + 1, "Finished:", describe_time(t.get("finishedAt")))
    else:
        w.line(level, f"{title}:", "Waiting")


def _container_block(w: _Writer, c: Obj, status: Obj | None, ephemeral: bool = False) -> None:
    w.line(1, f"{c.get('name', '')}:")
    status = status or {}
    w.line(2, "Container ID:", status.get("containerID") or "")
    w.line(2, "Image:", c.get("image") or "")
    w.line(2, "Image ID:", status.get("imageID") or "")
    if ephemeral and c.get("targetContainerName"):
        w.line(2, "Target Container:", c["targetContainerName"])
    ports = c.get("ports") or []
    if ports:
        texts = [f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}" for p in ports]
        w.line(2, "Port:" if len(ports) == 1 else "Ports:", ", ".join(texts))
        hosts = [f"{p.get('hostPort', 0)}/{p.get('protocol') or 'TCP'}" for p in ports]
        w.line(2, "Host Port:" if len(ports) == 1 else "Host Ports:", ", ".join(hosts))
    else:
        w.line(2, "Port:", "<none>")
        w.line(2, "Host Port:", "<none>")
    if c.get("command"):
        w.line(2, "Command:")
        for part in c["command"]:
            w.line(3, part)
    if c.get("args"):
        w.line(2, "Args:")
        for part in c["args"]:
            w.line(3, part)
    _state_lines(w, 2, "State", status.get("state") or {})
    last = status.get("lastState") or {}
    if any(last.get(k) is not None for k in ("running", "waiting", "terminated")):
        _state_lines(w, 2, "Last State", last)
    w.line(2, "Ready:", "True" if status.get("ready") else "False")
    w.line(2, "Restart Count:", str(status.get("restartCount", 0)))
    resources = c.get("resources") or {}
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if values:
            w.line(2, f"{section.capitalize()}:")
            for k, v in sorted(values.items()):
                w.line(3, f"{k}:", str(v))
    for probe_name, label in (
        ("livenessProbe", "Liveness"),
        ("readinessProbe", "Readiness"),
        ("startupProbe", "Startup"),
    ):
        if c.get(probe_name):
            w.line(2, f"{label}:", _probe_text(c[probe_name]))
    env_from = c.get("envFrom") or []
    if env_from:
        w.line(2, "Environment Variables from:")
        for source in env_from:
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                ref = source.get(key)
                if ref is None:
                    continue
                prefix = source.get("prefix")
                what = f"{kind} with prefix '{prefix}'" if prefix else kind
                w.line(3, ref.get("name", ""), what, f"Optional: {_optional(ref)}")
    env = c.get("env") or []
    if env:
        w.line(2, "Environment:")
        for e in env:
            w.line(3, f"{e.get('name')}:", *_env_value(e))
    else:
        w.line(2, "Environment:", "<none>")
    mounts = c.get("volumeMounts") or []
    if mounts:
        w.line(2, "Mounts:")
        for m in mounts:
            mode = "ro" if m.get("readOnly") else "rw"
            w.line(3, f"{m.get('mountPath')} from {m.get('name')} ({mode})")
    else:
        w.line(2, "Mounts:", "<none>")


def _optional(ref: Obj) -> str:
    return "true" if ref.get("optional") else "false"


def _env_value(e: Obj) -> list[str]:
    """The cells kubectl's describeContainerEnvVars prints for one variable."""
    source = e.get("valueFrom")
    if not source:
        return [e.get("value") or ""]
    if source.get("fieldRef"):
        ref = source["fieldRef"]
        return [f" ({ref.get('apiVersion') or 'v1'}:{ref.get('fieldPath', '')})"]
    if source.get("resourceFieldRef"):
        return [f" ({source['resourceFieldRef'].get('resource', '')})"]
    if source.get("secretKeyRef"):
        ref = source["secretKeyRef"]
        text = f"<set to the key '{ref.get('key', '')}' in secret '{ref.get('name', '')}'>"
        return [text, f"Optional: {_optional(ref)}"]
    if source.get("configMapKeyRef"):
        ref = source["configMapKeyRef"]
        text = f"<set to the key '{ref.get('key', '')}' of config map '{ref.get('name', '')}'>"
        return [text, f"Optional: {_optional(ref)}"]
    return ["<set from valueFrom>"]


def _volume_lines(w: _Writer, volumes: list[Obj]) -> None:
    if not volumes:
        w.line(0, "Volumes:", "<none>")
        return
    w.line(0, "Volumes:")
    for v in volumes:
        w.line(1, f"{v.get('name')}:")
        if "emptyDir" in v:
            ed = v.get("emptyDir") or {}
            w.line(2, "Type:", "EmptyDir (a temporary directory that shares a pod's lifetime)")
            w.line(2, "Medium:", ed.get("medium") or "")
            w.line(2, "SizeLimit:", str(ed.get("sizeLimit") or "<unset>"))
        elif "hostPath" in v:
            hp = v.get("hostPath") or {}
            w.line(2, "Type:", "HostPath (bare host directory volume)")
            w.line(2, "Path:", hp.get("path") or "")
            w.line(2, "HostPathType:", hp.get("type") or "")
        elif "persistentVolumeClaim" in v:
            pvc = v.get("persistentVolumeClaim") or {}
            w.line(
                2,
                "Type:",
                "PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)",
            )
            w.line(2, "ClaimName:", pvc.get("claimName") or "")
            w.line(2, "ReadOnly:", "true" if pvc.get("readOnly") else "false")
        elif "configMap" in v:
            cm = v.get("configMap") or {}
            w.line(2, "Type:", "ConfigMap (a volume populated by a ConfigMap)")
            w.line(2, "Name:", cm.get("name") or "")
            w.line(2, "Optional:", _optional(cm))
        elif "secret" in v:
            secret = v.get("secret") or {}
            w.line(2, "Type:", "Secret (a volume populated by a Secret)")
            w.line(2, "SecretName:", secret.get("secretName") or "")
            w.line(2, "Optional:", _optional(secret))
        elif "downwardAPI" in v:
            w.line(2, "Type:", "DownwardAPI (a volume populated by information about the pod)")
            w.line(2, "Items:")
            for item in (v.get("downwardAPI") or {}).get("items") or []:
                ref = item.get("fieldRef") or {}
                res = item.get("resourceFieldRef") or {}
                source = ref.get("fieldPath") or res.get("resource") or ""
                w.line(3, f"{source} -> {item.get('path', '')}")
        else:
            kinds = [k for k in v if k != "name"]
            w.line(2, "Type:", kinds[0] if kinds else "<unknown>")


def toleration_text(t: Obj) -> str:
    """kubectl's `key=value:Effect op=Exists for 300s`."""
    text = t.get("key") or ""
    if t.get("value"):
        text += f"={t['value']}"
    if t.get("effect"):
        text += f":{t['effect']}"
    if t.get("operator") == "Exists" and not t.get("value"):
        text += " op=Exists" if (t.get("key") or t.get("effect")) else "op=Exists"
    if t.get("tolerationSeconds") is not None:
        text += f" for {t['tolerationSeconds']}s"
    return text


def _controlled_by(meta: Obj) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return None


def _common_header(w: _Writer, obj: Obj, *, namespaced: bool = True) -> None:
    meta = obj.get("metadata") or {}
    w.line(0, "Name:", meta.get("name", ""))
    if namespaced:
        w.line(0, "Namespace:", meta.get("namespace") or "default")


def describe_pod(pod: Obj, events: list[Obj], now: float) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    w = _Writer()
    _common_header(w, pod)
    w.line(0, "Priority:", str(spec.get("priority", 0)))
    if spec.get("priorityClassName"):
        w.line(0, "Priority Class Name:", spec["priorityClassName"])
    w.line(0, "Service Account:", spec.get("serviceAccountName") or "default")
    node = spec.get("nodeName") or ""
    if node and status.get("hostIP"):
        node = f"{node}/{status['hostIP']}"
    w.line(0, "Node:", node or "<none>")
    if status.get("startTime"):
        w.line(0, "Start Time:", describe_time(status["startTime"]))
    _map_lines(w, 0, "Labels:", meta.get("labels") or {})
    _map_lines(w, 0, "Annotations:", meta.get("annotations") or {}, sep=": ")
    if meta.get("deletionTimestamp"):
        grace = meta.get("deletionGracePeriodSeconds")
        since = parse_time(meta["deletionTimestamp"])
        ago = human_duration(now - since) if since is not None else "?"
        w.line(
            0,
            "Status:",
            f"Terminating (lasts {ago})",
        )
        w.line(0, "Termination Grace Period:", f"{grace if grace is not None else 30}s")
    else:
        w.line(0, "Status:", status.get("phase") or "Pending")
    if status.get("reason"):
        w.line(0, "Reason:", status["reason"])
    if status.get("message"):
        w.line(0, "Message:", status["message"])
    w.line(0, "IP:", status.get("podIP") or "")
    ips = status.get("podIPs") or []
    if ips:
        w.line(0, "IPs:")
        for ip in ips:
            w.line(1, "IP:", ip.get("ip") or "")
    else:
        w.line(0, "IPs:", "<none>")
    owner = _controlled_by(meta)
    if owner:
        w.line(0, "Controlled By:", owner)
    init_statuses = {s.get("name"): s for s in status.get("initContainerStatuses") or []}
    if spec.get("initContainers"):
        w.line(0, "Init Containers:")
        for c in spec["initContainers"]:
            _container_block(w, c, init_statuses.get(c.get("name")))
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    w.line(0, "Containers:")
    for c in spec.get("containers") or []:
        _container_block(w, c, statuses.get(c.get("name")))
    if spec.get("ephemeralContainers"):
        eph = {s.get("name"): s for s in status.get("ephemeralContainerStatuses") or []}
        w.line(0, "Ephemeral Containers:")
        for c in spec["ephemeralContainers"]:
            _container_block(w, c, eph.get(c.get("name")), ephemeral=True)
    _conditions_table(w, status.get("conditions") or [], with_reason=False)
    _volume_lines(w, spec.get("volumes") or [])
    w.line(0, "QoS Class:", status.get("qosClass") or "BestEffort")
    selectors = spec.get("nodeSelector") or {}
    _map_lines(w, 0, "Node-Selectors:", selectors)
    tolerations = spec.get("tolerations") or []
    if tolerations:
        for i, t in enumerate(tolerations):
            w.line(0, "Tolerations:" if i == 0 else "", toleration_text(t))
    else:
        w.line(0, "Tolerations:", "<none>")
    _events_section(w, events, now)
    return w.text()


def _template_lines(w: _Writer, template: Obj) -> None:
    tmeta = template.get("metadata") or {}
    tspec = template.get("spec") or {}
    w.line(0, "Pod Template:")
    labels = tmeta.get("labels") or {}
    if labels:
        for i, (k, v) in enumerate(sorted(labels.items())):
            w.line(1, "Labels:" if i == 0 else "", f"{k}={v}")
    else:
        w.line(1, "Labels:", "<none>")
    annotations = tmeta.get("annotations") or {}
    if annotations:
        for i, (k, v) in enumerate(sorted(annotations.items())):
            w.line(1, "Annotations:" if i == 0 else "", f"{k}: {v}")
    for title, key in (("Init Containers:", "initContainers"), ("Containers:", "containers")):
        containers = tspec.get(key) or []
        if not containers and key == "initContainers":
            continue
        w.line(1, title)
        for c in containers:
            w.indented(3, f"{c.get('name')}:")
            w.indented(4, "Image:", c.get("image") or "")
            ports = c.get("ports") or []
            ports_text = ", ".join(
                f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}" for p in ports
            )
            w.indented(4, "Port:", ports_text or "<none>")
            if c.get("command"):
                w.indented(4, "Command:")
                for part in c["command"]:
                    w.indented(6, part)
            if c.get("readinessProbe"):
                w.indented(4, "Readiness:", _probe_text(c["readinessProbe"]))
            if c.get("livenessProbe"):
                w.indented(4, "Liveness:", _probe_text(c["livenessProbe"]))
            mounts = c.get("volumeMounts") or []
            if mounts:
                w.indented(4, "Mounts:")
                for m in mounts:
                    w.indented(6, f"{m.get('mountPath')} from {m.get('name')} (rw)")
    vols = tspec.get("volumes") or []
    if vols:
        w.line(1, "Volumes:")
        for v in vols:
            kinds = [k for k in v if k != "name"]
            w.line(2, f"{v.get('name')}:", kinds[0] if kinds else "")


def describe_deployment(
    d: Obj, events: list[Obj], now: float, replicasets: list[Obj] | None = None
) -> str:
    meta, spec, status = d.get("metadata") or {}, d.get("spec") or {}, d.get("status") or {}
    w = _Writer()
    _common_header(w, d)
    w.line(0, "CreationTimestamp:", describe_time(meta.get("creationTimestamp")))
    _map_lines(w, 0, "Labels:", meta.get("labels") or {})
    _map_lines(w, 0, "Annotations:", meta.get("annotations") or {}, sep=": ")
    w.line(0, "Selector:", selector_text(spec.get("selector")))
    replicas = spec.get("replicas", 1)
    w.line(
        0,
        "Replicas:",
        f"{replicas} desired | {status.get('updatedReplicas', 0)} updated | "
        f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
        f"{status.get('unavailableReplicas', 0)} unavailable",
    )
    strategy = spec.get("strategy") or {}
    w.line(0, "StrategyType:", strategy.get("type") or "RollingUpdate")
    w.line(0, "MinReadySeconds:", str(spec.get("minReadySeconds", 0)))
    if (strategy.get("type") or "RollingUpdate") == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        w.line(
            0,
            "RollingUpdateStrategy:",
            f"{ru.get('maxUnavailable', '25%')} max unavailable, {ru.get('maxSurge', '25%')} max surge",
        )
    if spec.get("paused"):
        w.line(0, "Paused:", "true")
    _template_lines(w, spec.get("template") or {})
    _conditions_table(w, status.get("conditions") or [], with_reason=True)
    if replicasets is not None:
        revision = meta.get("annotations", {}).get("deployment.kubernetes.io/revision")
        new, old = [], []
        for rs in replicasets:
            rs_rev = ((rs.get("metadata") or {}).get("annotations") or {}).get(
                "deployment.kubernetes.io/revision"
            )
            text = (
                f"{rs['metadata']['name']} ({(rs.get('status') or {}).get('replicas', 0)}/"
                f"{(rs.get('spec') or {}).get('replicas', 0)} replicas created)"
            )
            if revision is not None and rs_rev == revision:
                new.append(text)
            elif (rs.get("spec") or {}).get("replicas", 0) or (rs.get("status") or {}).get(
                "replicas", 0
            ):
                old.append(text)
        w.line(0, "OldReplicaSets:", ", ".join(old) or "<none>")
        w.line(0, "NewReplicaSet:", ", ".join(new) or "<none>")
    _events_section(w, events, now)
    return w.text()


def describe_config(kind: str, obj: Obj, events: list[Obj], now: float) -> str:
    """ConfigMap (its values) and Secret (only each value's size), as
    kubectl's describers print them."""
    meta = obj.get("metadata") or {}
    w = _Writer()
    _common_header(w, obj)
    _map_lines(w, 0, "Labels:", meta.get("labels") or {})
    _map_lines(w, 0, "Annotations:", meta.get("annotations") or {}, sep=": ")
    w.line(0, "")
    if kind == "Secret":
        w.line(0, "Type:", obj.get("type") or "Opaque")
        w.line(0, "")
        w.line(0, "Data")
        w.line(0, "====")
        for key, text in sorted((obj.get("data") or {}).items()):
            size = len(decode_base64(text) or b"")
            w.line(0, f"{key}:", f"{size} bytes")
        return w.text()
    w.line(0, "Data")
    w.line(0, "====")
    for key, value in sorted((obj.get("data") or {}).items()):
        w.line(0, f"{key}:")
        w.line(0, "----")
        w.parts.append(value.replace("\t", " ") + "\n\n")
    if not obj.get("data"):
        w.line(0, "")
    w.line(0, "BinaryData")
    w.line(0, "====")
    for key, text in sorted((obj.get("binaryData") or {}).items()):
        w.line(0, f"{key}:", f"{len(decode_base64(text) or b'')} bytes")
    w.line(0, "")
    _events_section(w, events, now)
    return w.text()


def describe_generic(kind: str, obj: Obj, events: list[Obj], now: float) -> str:
    """ReplicaSet, StatefulSet, Job, Node, Event: header, a summary, template, conditions, events."""
    if kind in ("ConfigMap", "Secret"):
        return describe_config(kind, obj, events, now)
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    w = _Writer()
    _common_header(w, obj, namespaced=kind != "Node")
    if kind == "Node":
        roles = [k.split("/", 1)[1] for k in meta.get("labels") or {} if k.startswith("node-role")]
        w.line(0, "Roles:", ",".join(roles) or "<none>")
    _map_lines(w, 0, "Labels:", meta.get("labels") or {})
    _map_lines(w, 0, "Annotations:", meta.get("annotations") or {}, sep=": ")
    w.line(0, "CreationTimestamp:", describe_time(meta.get("creationTimestamp")))
    owner = _controlled_by(meta)
    if owner:
        w.line(0, "Controlled By:", owner)
    if kind in ("ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
        w.line(0, "Selector:", selector_text(spec.get("selector")))
    if kind == "CronJob":
        w.line(0, "Schedule:", spec.get("schedule", ""))
        w.line(0, "Concurrency Policy:", spec.get("concurrencyPolicy") or "Allow")
        w.line(0, "Suspend:", "True" if spec.get("suspend") else "False")
        w.line(0, "Successful Job History Limit:", str(spec.get("successfulJobsHistoryLimit", 3)))
        w.line(0, "Failed Job History Limit:", str(spec.get("failedJobsHistoryLimit", 1)))
        deadline = spec.get("startingDeadlineSeconds")
        w.line(
            0, "Starting Deadline Seconds:", f"{deadline}s" if deadline is not None else "<unset>"
        )
        w.line(0, "Last Schedule Time:", describe_time(status.get("lastScheduleTime")))
        active = [a.get("name", "") for a in status.get("active") or []]
        w.line(0, "Active Jobs:", ", ".join(active) or "<none>")
    if kind == "DaemonSet":
        node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
        w.line(
            0,
            "Node-Selector:",
            ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or "<none>",
        )
        for label, key in (
            ("Desired Number of Nodes Scheduled:", "desiredNumberScheduled"),
            ("Current Number of Nodes Scheduled:", "currentNumberScheduled"),
            ("Number of Nodes Scheduled with Up-to-date Pods:", "updatedNumberScheduled"),
            ("Number of Nodes Scheduled with Available Pods:", "numberAvailable"),
            ("Number of Nodes Misscheduled:", "numberMisscheduled"),
        ):
            w.line(0, label, str(status.get(key, 0)))
    if kind == "ReplicaSet":
        w.line(
            0,
            "Replicas:",
            f"{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired",
        )
    elif kind == "StatefulSet":
        w.line(
            0, "Replicas:", f"{spec.get('replicas', 1)} desired | {status.get('replicas', 0)} total"
        )
        w.line(
            0, "Update Strategy:", (spec.get("updateStrategy") or {}).get("type") or "RollingUpdate"
        )
        w.line(0, "Pod Management Policy:", spec.get("podManagementPolicy") or "OrderedReady")
    elif kind == "Job":
        w.line(0, "Parallelism:", str(spec.get("parallelism", 1)))
        w.line(0, "Completions:", str(spec.get("completions", 1)))
        w.line(0, "Completion Mode:", spec.get("completionMode") or "NonIndexed")
        if status.get("startTime"):
            w.line(0, "Start Time:", describe_time(status["startTime"]))
        if status.get("completionTime"):
            w.line(0, "Completed At:", describe_time(status["completionTime"]))
            start = parse_time(status.get("startTime"))
            end = parse_time(status.get("completionTime"))
            if start is not None and end is not None:
                w.line(0, "Duration:", human_duration(end - start))
        w.line(0, "Status:", job_status_text(obj))
        w.line(
            0,
            "Pods Statuses:",
            f"{status.get('active', 0)} Active ({status.get('ready', 0) or 0} Ready) / "
            f"{status.get('succeeded', 0)} Succeeded / {status.get('failed', 0)} Failed",
        )
    if kind == "Node":
        taints = spec.get("taints") or []
        if taints:
            for i, t in enumerate(taints):
                value = f"={t['value']}" if t.get("value") else ""
                w.line(0, "Taints:" if i == 0 else "", f"{t.get('key')}{value}:{t.get('effect')}")
        else:
            w.line(0, "Taints:", "<none>")
        w.line(0, "Unschedulable:", "true" if spec.get("unschedulable") else "false")
        conditions = status.get("conditions") or []
        if conditions:
            w.line(0, "Conditions:")
            w.line(1, "Type", "Status", "LastHeartbeatTime", "Reason", "Message")
            w.line(1, "----", "------", "-----------------", "------", "-------")
            for c in conditions:
                w.line(
                    1,
                    c.get("type", ""),
                    c.get("status", ""),
                    describe_time(c.get("lastHeartbeatTime")),
                    c.get("reason") or "",
                    c.get("message") or "",
                )
        addresses = status.get("addresses") or []
        w.line(0, "Addresses:")
        for a in addresses:
            w.line(1, f"{a.get('type')}:", a.get("address") or "")
        for section in ("capacity", "allocatable"):
            values = status.get(section) or {}
            if values:
                w.line(0, f"{section.capitalize()}:")
                for k, v in sorted(values.items()):
                    w.line(1, f"{k}:", str(v))
    if kind in ("ReplicaSet", "StatefulSet", "DaemonSet", "Job") and spec.get("template"):
        _template_lines(w, spec["template"])
    if kind == "StatefulSet" and spec.get("volumeClaimTemplates"):
        w.line(0, "Volume Claims:")
        for claim in spec["volumeClaimTemplates"]:
            cmeta = claim.get("metadata") or {}
            cspec = claim.get("spec") or {}
            w.line(1, "Name:", cmeta.get("name") or "")
            w.line(1, "StorageClass:", cspec.get("storageClassName") or "")
            size = ((cspec.get("resources") or {}).get("requests") or {}).get("storage", "")
            w.line(1, "Capacity:", str(size))
            w.line(1, "Access Modes:", ",".join(cspec.get("accessModes") or []))
    if kind != "Node":
        _conditions_table(w, status.get("conditions") or [], with_reason=kind != "Job")
    if kind == "Event":
        w.line(0, "Reason:", obj.get("reason") or "")
        w.line(0, "Message:", obj.get("message") or "")
        return w.text()
    _events_section(w, events, now)
    return w.text()


def events_for(obj: Obj, events: list[Obj]) -> list[Obj]:
    """The events about `obj` (by uid when both have one, else kind and name)."""
    meta = obj.get("metadata") or {}
    uid = meta.get("uid")
    out = []
    for ev in events:
        inv = ev.get("involvedObject") or {}
        if uid and inv.get("uid"):
            if inv["uid"] == uid:
                out.append(ev)
        elif inv.get("kind") == obj.get("kind") and inv.get("name") == meta.get("name"):
            out.append(ev)
    return out
