"""Validation of every kind, as the Kubernetes API server does before it
stores an object.

`validate(obj)` returns every error at once, each with the wire path the user
wrote (`spec.containers[1].livenessProbe.periodSeconds`) and Kubernetes'
wording ("Required value", "Unsupported value: ...", "Forbidden: ...",
"Duplicate value: ..."). Run it after `apply_defaults`, as Kubernetes does:
explicit zeros that Kubernetes treats as unset are defaulted first.

Each rule is one small function; rules that differ only in data (enum
fields, numeric minimums) are tables. Decoding already checked types; these
rules check values and relations. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from podmodel.codec import FieldError
from podmodel.config import MAX_DATA_BYTES, ConfigMap, Secret, decode_base64
from podmodel.cron import CronError, parse_schedule
from podmodel.event import Event
from podmodel.meta import KubeObject, ObjectMeta
from podmodel.node import Node
from podmodel.pod import (
    Container,
    EphemeralContainer,
    HTTPGetAction,
    LifecycleHandler,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PodAffinityTerm,
    PodSecurityContext,
    PodSpec,
    PodTemplateSpec,
    Probe,
    QuantityValue,
    SecurityContext,
    TCPSocketAction,
    is_sidecar,
)
from podmodel.quantity import parse_quantity
from podmodel.registry import is_namespaced
from podmodel.selector import (
    LabelSelector,
    selector_matches,
    validate_selector,
)
from podmodel.selector import label_key_problem as _label_key_problem
from podmodel.selector import label_value_problem as _label_value_problem
from podmodel.workloads import (
    CronJob,
    DaemonSet,
    Deployment,
    Job,
    PersistentVolumeClaim,
    ReplicaSet,
    StatefulSet,
)

#: The string checks below are pure and see the same few keys, names and
#: quantities over and over (label keys, container names, "100m"): cached,
#: they cost a dict lookup per apply instead of a regular expression match.
_CACHE_SIZE = 4096

label_key_problem = lru_cache(maxsize=_CACHE_SIZE)(_label_key_problem)
label_value_problem = lru_cache(maxsize=_CACHE_SIZE)(_label_value_problem)

# ------------------------------------------------------------------ error collection


def _show(value: Any) -> str:
    """A value as Kubernetes prints it in messages: strings quoted."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Errors:
    """Collects FieldErrors with Kubernetes' message forms."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldError(field=path, message=message))

    def required(self, path: str, detail: str = "") -> None:
        self.add(path, f"Required value: {detail}" if detail else "Required value")

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.add(path, f"Invalid value: {_show(value)}: {detail}")

    def unsupported(self, path: str, value: Any, supported: Iterable[str]) -> None:
        listed = ", ".join(json.dumps(s) for s in supported)
        self.add(path, f"Unsupported value: {_show(value)}: supported values: {listed}")

    def forbidden(self, path: str, detail: str) -> None:
        self.add(path, f"Forbidden: {detail}")

    def duplicate(self, path: str, value: Any) -> None:
        self.add(path, f"Duplicate value: {_show(value)}")

    def not_found(self, path: str, value: Any) -> None:
        self.add(path, f"Not found: {_show(value)}")

    def minimum(self, path: str, value: int | None, lo: int) -> None:
        """`must be >= lo` when value is set and smaller."""
        if value is not None and value < lo:
            self.add(path, f"must be >= {lo}")

    def enum(
        self, path: str, value: str | None, supported: tuple[str, ...], *, empty_ok: bool = True
    ) -> None:
        """Unsupported value unless value is one of supported (or empty and allowed)."""
        if value is None or (value == "" and empty_ok):
            return
        if value not in supported:
            self.unsupported(path, value, supported)


def validate(obj: KubeObject) -> list[FieldError]:
    """Every validation error of `obj`, each with its wire path."""
    errs = Errors()
    _validate_object_meta(obj, errs)
    kind_rule = _KIND_RULES.get(type(obj))
    if kind_rule is not None:
        kind_rule(obj, errs)
    return errs.items


# ------------------------------------------------------------------ names and labels

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
_HAS_LETTER = re.compile(r"[a-z]")
_PERCENT = re.compile(r"[0-9]+%")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


@lru_cache(maxsize=_CACHE_SIZE)
def dns1123_label_problem(value: str) -> str | None:
    """Why value is not an RFC 1123 label (container, volume names), or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS1123_LABEL.fullmatch(value):
        return LABEL_MSG
    return None


def dns1123_subdomain_problem(value: str) -> str | None:
    """Why value is not an RFC 1123 subdomain (most object names), or None."""
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        return SUBDOMAIN_MSG
    return None


@lru_cache(maxsize=_CACHE_SIZE)
def port_name_problem(value: str) -> str | None:
    """Why value is not an IANA_SVC_NAME (port names), or None."""
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC_NAME.fullmatch(value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if value.startswith("-") or value.endswith("-"):
        return "must not begin or end with a hyphen"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if not _HAS_LETTER.search(value):
        return "must contain at least one letter (a-z)"
    return None


def _check_name(errs: Errors, path: str, value: str, problem: Callable[[str], str | None]) -> None:
    """Required, then the format `problem` describes."""
    if not value:
        errs.required(path)
        return
    why = problem(value)
    if why is not None:
        errs.invalid(path, value, why)


def _validate_labels(errs: Errors, path: str, labels: dict[str, str]) -> None:
    for key, value in labels.items():
        why = label_key_problem(key)
        if why is not None:
            errs.invalid(path, key, why)
        why = label_value_problem(value)
        if why is not None:
            errs.invalid(path, value, why)


_ANNOTATIONS_MAX_BYTES = 256 * 1024


def _validate_annotations(errs: Errors, path: str, annotations: dict[str, str]) -> None:
    total = 0
    for key, value in annotations.items():
        why = label_key_problem(key.lower())
        if why is not None:
            errs.invalid(path, key, why)
        total += len(key) + len(value)
    if total > _ANNOTATIONS_MAX_BYTES:
        errs.add(path, f"Too long: must have at most {_ANNOTATIONS_MAX_BYTES} bytes")


def _validate_object_meta(obj: KubeObject, errs: Errors) -> None:
    meta = obj.metadata
    if not meta.name and not meta.generate_name:
        errs.required("metadata.name", "name or generateName is required")
    elif meta.name:
        _check_name(errs, "metadata.name", meta.name, dns1123_subdomain_problem)
    if meta.generate_name:
        # A prefix: Kubernetes masks one trailing dash before checking.
        prefix = meta.generate_name.removesuffix("-")
        why = dns1123_subdomain_problem(prefix) if prefix else SUBDOMAIN_MSG
        if why is not None:
            errs.invalid("metadata.generateName", meta.generate_name, why)
    if meta.namespace:
        if not is_namespaced(obj.kind or obj.KIND):
            errs.forbidden("metadata.namespace", "not allowed on this type")
        else:
            _check_name(errs, "metadata.namespace", meta.namespace, dns1123_label_problem)
    _validate_meta_maps(errs, "metadata", meta)
    for i, ref in enumerate(meta.owner_references):
        ref_path = f"metadata.ownerReferences[{i}]"
        for wire, value in (
            ("apiVersion", ref.api_version),
            ("kind", ref.kind),
            ("name", ref.name),
            ("uid", ref.uid),
        ):
            if not value:
                errs.required(f"{ref_path}.{wire}")
    if sum(1 for ref in meta.owner_references if ref.controller) > 1:
        errs.invalid(
            "metadata.ownerReferences", "", "Only one reference can have Controller set to true"
        )


def _validate_meta_maps(errs: Errors, path: str, meta: ObjectMeta) -> None:
    _validate_labels(errs, f"{path}.labels", meta.labels)
    _validate_annotations(errs, f"{path}.annotations", meta.annotations)


# ------------------------------------------------------------------ quantities


@lru_cache(maxsize=_CACHE_SIZE, typed=True)
def _quantity_problem(value: QuantityValue) -> tuple[Fraction | None, str | None]:
    """(the parsed quantity, None) or (None, why it is invalid)."""
    try:
        q = parse_quantity(value)
    except ValueError:
        return None, "must be a valid quantity"
    if q < 0:
        return None, "must be greater than or equal to 0"
    return q, None


def _quantity(errs: Errors, path: str, value: QuantityValue) -> Fraction | None:
    """The parsed quantity, or None after recording why it does not parse."""
    q, why = _quantity_problem(value)
    if why is not None:
        errs.invalid(path, value, why)
    return q


def _validate_resources(
    errs: Errors, path: str, requests: dict[str, QuantityValue], limits: dict[str, QuantityValue]
) -> None:
    # Paths are only formatted for an error: this runs for every container.
    parsed_limits: dict[str, Fraction | None] = {}
    for name, v in limits.items():
        parsed_limits[name], why = _quantity_problem(v)
        if why is not None:
            errs.invalid(f"{path}.limits[{name}]", v, why)
    for name, value in requests.items():
        req, why = _quantity_problem(value)
        if why is not None:
            errs.invalid(f"{path}.requests[{name}]", value, why)
        lim = parsed_limits.get(name)
        if req is not None and lim is not None and req > lim:
            errs.invalid(
                f"{path}.requests[{name}]",
                value if isinstance(value, str) else str(value),
                f"must be less than or equal to {name} limit of {limits[name]}",
            )


# ------------------------------------------------------------------ enums (data)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Equal", "Exists")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
URI_SCHEMES = ("HTTP", "HTTPS")
SECCOMP_TYPES = ("RuntimeDefault", "Localhost", "Unconfined")
FS_GROUP_CHANGE_POLICIES = ("OnRootMismatch", "Always")
SUPPLEMENTAL_GROUPS_POLICIES = ("Merge", "Strict")
HOST_PATH_TYPES = (
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
)
STORAGE_MEDIUMS = ("", "Memory", "HugePages")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
DEPLOYMENT_STRATEGIES = ("Recreate", "RollingUpdate")
STATEFULSET_UPDATE_STRATEGIES = ("RollingUpdate", "OnDelete")
POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
PVC_RETENTION_POLICIES = ("Retain", "Delete")
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
COMPLETION_MODES = ("NonIndexed", "Indexed")
JOB_RESTART_POLICIES = ("OnFailure", "Never")
POD_FAILURE_ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")
EXIT_CODE_OPERATORS = ("In", "NotIn")
CONDITION_STATUSES = ("True", "False", "Unknown")
EVENT_TYPES = ("Normal", "Warning")
POD_REPLACEMENT_POLICIES = ("TerminatingOrFailed", "Failed")
FIELD_REF_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
RESOURCE_FIELD_REFS = (
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
)
_FIELD_REF_MAP = re.compile(r"metadata\.(labels|annotations)\['[^']+'\]")

# ------------------------------------------------------------------ label selectors


def validate_label_selector(errs: Errors, path: str, selector: LabelSelector) -> None:
    """matchLabels syntax; matchExpressions operators and their values
    (podmodel.selector owns the rule)."""
    errs.items.extend(validate_selector(selector, path))


def _selector_is_empty(selector: LabelSelector) -> bool:
    return not selector.match_labels and not selector.match_expressions


def _validate_workload_selector(
    errs: Errors, kind: str, selector: LabelSelector | None, template: PodTemplateSpec
) -> None:
    """Selector required, valid, non-empty and matching the template's labels."""
    if selector is None:
        errs.required("spec.selector")
        return
    if _selector_is_empty(selector):
        errs.invalid("spec.selector", "", f"empty selector is invalid for {kind.lower()}")
        return
    before = len(errs.items)
    validate_label_selector(errs, "spec.selector", selector)
    if len(errs.items) == before and not selector_matches(selector, template.metadata.labels):
        errs.invalid(
            "spec.template.metadata.labels",
            ",".join(f"{k}={v}" for k, v in sorted(template.metadata.labels.items())),
            "`selector` does not match template `labels`",
        )


# ------------------------------------------------------------------ pod spec context


@dataclass(frozen=True)
class PodContext:
    """Where a PodSpec sits: its path, which restart policies its owner allows
    (None: any), and what kind of owner (for messages)."""

    path: str
    restart_policies: tuple[str, ...] | None = None
    owner: str = "Pod"
    is_template: bool = False
    claim_volumes: frozenset[str] = frozenset()
    """Volume names a StatefulSet's volumeClaimTemplates provide."""

    def child(self, suffix: str) -> str:
        return f"{self.path}.{suffix}"


ContainerRule = Callable[[Errors, str, str, Container, PodSpec, PodContext], None]
"""(errors, container path, kind "init"/"app"/"ephemeral", container, spec, context)"""

# ------------------------------------------------------------------ container rules


def _rule_container_name(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    _check_name(errs, f"{path}.name", c.name, dns1123_label_problem)


def _rule_container_image(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    if not c.image.strip():
        errs.required(f"{path}.image")


def _rule_container_enums(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    errs.enum(f"{path}.imagePullPolicy", c.image_pull_policy, IMAGE_PULL_POLICIES)
    errs.enum(
        f"{path}.terminationMessagePolicy",
        c.termination_message_policy,
        TERMINATION_MESSAGE_POLICIES,
    )


def _rule_container_restart_policy(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    """Only init containers take a restartPolicy, and only Always (sidecars)."""
    if c.restart_policy is None:
        return
    if kind == "init":
        errs.enum(f"{path}.restartPolicy", c.restart_policy, ("Always",), empty_ok=False)
    elif kind == "app":
        errs.forbidden(f"{path}.restartPolicy", "may not be set for non-init containers")


def _rule_ports(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    names: set[str] = set()
    for i, port in enumerate(c.ports):
        p = f"{path}.ports[{i}]"
        if port.name:
            why = port_name_problem(port.name)
            if why is not None:
                errs.invalid(f"{p}.name", port.name, why)
            elif port.name in names:
                errs.duplicate(f"{p}.name", port.name)
            names.add(port.name)
        if not 1 <= port.container_port <= 65535:
            if port.container_port == 0:
                errs.required(f"{p}.containerPort")
            else:
                errs.invalid(
                    f"{p}.containerPort",
                    port.container_port,
                    "must be between 1 and 65535, inclusive",
                )
        if port.host_port != 0 and not 1 <= port.host_port <= 65535:
            errs.invalid(f"{p}.hostPort", port.host_port, "must be between 1 and 65535, inclusive")
        errs.enum(f"{p}.protocol", port.protocol, PROTOCOLS)
        if spec.host_network and port.host_port not in (0, port.container_port):
            errs.invalid(
                f"{p}.hostPort",
                port.host_port,
                "must match `containerPort` when `hostNetwork` is true",
            )


def _rule_env(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    for i, env in enumerate(c.env):
        p = f"{path}.env[{i}]"
        if not env.name:
            errs.required(f"{p}.name")
        elif "=" in env.name or not env.name.isprintable() or not env.name.isascii():
            errs.invalid(
                f"{p}.name",
                env.name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            )
        source = env.value_from
        if source is None:
            continue
        sources = [
            s
            for s, v in (
                ("fieldRef", source.field_ref),
                ("resourceFieldRef", source.resource_field_ref),
                ("configMapKeyRef", source.config_map_key_ref),
                ("secretKeyRef", source.secret_key_ref),
            )
            if v is not None
        ]
        if env.value:
            errs.invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty")
        if not sources:
            errs.invalid(
                f"{p}.valueFrom",
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )
        elif len(sources) > 1:
            errs.invalid(
                f"{p}.valueFrom", "", "may not have more than one field specified at a time"
            )
        if source.field_ref is not None:
            fp = source.field_ref.field_path
            if not fp:
                errs.required(f"{p}.valueFrom.fieldRef.fieldPath")
            elif fp not in FIELD_REF_PATHS and not _FIELD_REF_MAP.fullmatch(fp):
                errs.unsupported(f"{p}.valueFrom.fieldRef.fieldPath", fp, FIELD_REF_PATHS)
        if source.resource_field_ref is not None:
            res = source.resource_field_ref.resource
            if not res:
                errs.required(f"{p}.valueFrom.resourceFieldRef.resource")
            elif res not in RESOURCE_FIELD_REFS and not res.startswith(
                ("limits.hugepages-", "requests.hugepages-")
            ):
                errs.unsupported(
                    f"{p}.valueFrom.resourceFieldRef.resource", res, RESOURCE_FIELD_REFS
                )
        for ref_name, ref in (
            ("configMapKeyRef", source.config_map_key_ref),
            ("secretKeyRef", source.secret_key_ref),
        ):
            if ref is not None:
                if not ref.key:
                    errs.required(f"{p}.valueFrom.{ref_name}.key")
                if not ref.name:
                    errs.required(f"{p}.valueFrom.{ref_name}.name")
    for i, src in enumerate(c.env_from):
        p = f"{path}.envFrom[{i}]"
        set_refs = [r for r in (src.config_map_ref, src.secret_ref) if r is not None]
        if len(set_refs) != 1:
            errs.invalid(p, "", "must specify exactly one of: `configMapRef` or `secretRef`")
        for r_name, r in (("configMapRef", src.config_map_ref), ("secretRef", src.secret_ref)):
            if r is not None and not r.name:
                errs.required(f"{p}.{r_name}.name")


def _rule_resources(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    if not c.resources.requests and not c.resources.limits:
        return
    _validate_resources(errs, f"{path}.resources", c.resources.requests, c.resources.limits)


def _rule_volume_mounts(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    if not c.volume_mounts:
        return
    volumes = {v.name for v in spec.volumes} | ctx.claim_volumes
    paths: set[str] = set()
    for i, mount in enumerate(c.volume_mounts):
        p = f"{path}.volumeMounts[{i}]"
        if not mount.name:
            errs.required(f"{p}.name")
        elif mount.name not in volumes:
            errs.not_found(f"{p}.name", mount.name)
        if not mount.mount_path:
            errs.required(f"{p}.mountPath")
        elif mount.mount_path in paths:
            errs.invalid(f"{p}.mountPath", mount.mount_path, "must be unique")
        paths.add(mount.mount_path)
        if mount.sub_path:
            if mount.sub_path.startswith("/"):
                errs.invalid(f"{p}.subPath", mount.sub_path, "must be a relative path")
            elif ".." in mount.sub_path.split("/"):
                errs.invalid(f"{p}.subPath", mount.sub_path, "must not contain '..'")


def _validate_port_ref(errs: Errors, path: str, port: int | str) -> None:
    """A port by number (1-65535) or by IANA_SVC_NAME."""
    if isinstance(port, int):
        if not 1 <= port <= 65535:
            errs.invalid(path, port, "must be between 1 and 65535, inclusive")
    elif not port:
        errs.required(path)
    else:
        why = port_name_problem(port)
        if why is not None:
            errs.invalid(path, port, why)


def _validate_http_get(errs: Errors, path: str, action: HTTPGetAction) -> None:
    _validate_port_ref(errs, f"{path}.port", action.port)
    errs.enum(f"{path}.scheme", action.scheme, URI_SCHEMES)
    for i, header in enumerate(action.http_headers):
        if not header.name:
            errs.required(f"{path}.httpHeaders[{i}].name")


def _validate_tcp_socket(errs: Errors, path: str, action: TCPSocketAction) -> None:
    _validate_port_ref(errs, f"{path}.port", action.port)


def _validate_handler(
    errs: Errors, path: str, handlers: list[str], probe_or_hook: Probe | LifecycleHandler
) -> None:
    """Exactly one handler; each handler's own fields."""
    if not handlers:
        errs.required(path, "must specify a handler type")
    elif len(handlers) > 1:
        errs.forbidden(path, "may not specify more than 1 handler type")
    if probe_or_hook.exec is not None and not probe_or_hook.exec.command:
        errs.required(f"{path}.exec.command")
    if probe_or_hook.http_get is not None:
        _validate_http_get(errs, f"{path}.httpGet", probe_or_hook.http_get)
    if probe_or_hook.tcp_socket is not None:
        _validate_tcp_socket(errs, f"{path}.tcpSocket", probe_or_hook.tcp_socket)


#: (wire name, attribute, minimum) of every probe number.
PROBE_MINIMUMS = (
    ("initialDelaySeconds", "initial_delay_seconds", 0),
    ("timeoutSeconds", "timeout_seconds", 1),
    ("periodSeconds", "period_seconds", 1),
    ("successThreshold", "success_threshold", 1),
    ("failureThreshold", "failure_threshold", 1),
    ("terminationGracePeriodSeconds", "termination_grace_period_seconds", 1),
)

#: (wire name, attribute, must succeed once) of the three probes.
PROBES = (
    ("livenessProbe", "liveness_probe", True),
    ("readinessProbe", "readiness_probe", False),
    ("startupProbe", "startup_probe", True),
)


def _validate_probe(
    errs: Errors, path: str, probe: Probe, *, single_success: bool, readiness: bool
) -> None:
    _validate_handler(errs, path, probe.handlers(), probe)
    if probe.grpc is not None and not 1 <= probe.grpc.port <= 65535:
        errs.invalid(f"{path}.grpc.port", probe.grpc.port, "must be between 1 and 65535, inclusive")
    for wire, attr, lo in PROBE_MINIMUMS:
        errs.minimum(f"{path}.{wire}", getattr(probe, attr), lo)
    if single_success and probe.success_threshold != 1:
        errs.invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1")
    if readiness and probe.termination_grace_period_seconds is not None:
        errs.invalid(
            f"{path}.terminationGracePeriodSeconds",
            probe.termination_grace_period_seconds,
            "must not be set for readinessProbes",
        )


def _may_have_probes(kind: str, c: Container) -> bool:
    return kind == "app" or (kind == "init" and is_sidecar(c))


def _rule_probes(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    for wire, attr, single_success in PROBES:
        probe: Probe | None = getattr(c, attr)
        if probe is None:
            continue
        p = f"{path}.{wire}"
        if kind == "init" and not is_sidecar(c):
            errs.forbidden(p, "may not be set for init containers without restartPolicy=Always")
            continue
        if kind == "ephemeral":
            continue  # reported by the ephemeral rule
        _validate_probe(
            errs, p, probe, single_success=single_success, readiness=wire == "readinessProbe"
        )


def _rule_lifecycle(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    if c.lifecycle is None or kind == "ephemeral":
        return
    p = f"{path}.lifecycle"
    if kind == "init" and not is_sidecar(c):
        errs.forbidden(p, "may not be set for init containers without restartPolicy=Always")
        return
    for wire, hook in (("postStart", c.lifecycle.post_start), ("preStop", c.lifecycle.pre_stop)):
        if hook is None:
            continue
        hp = f"{p}.{wire}"
        handlers = [
            name
            for name, v in (
                ("exec", hook.exec),
                ("httpGet", hook.http_get),
                ("tcpSocket", hook.tcp_socket),
                ("sleep", hook.sleep),
            )
            if v is not None
        ]
        _validate_handler(errs, hp, handlers, hook)
        if hook.sleep is not None:
            grace = spec.termination_grace_period_seconds
            if not 1 <= hook.sleep.seconds <= max(grace, 1):
                errs.invalid(
                    f"{hp}.sleep.seconds",
                    hook.sleep.seconds,
                    f"must be greater than 0 and less than terminationGracePeriodSeconds ({grace})",
                )


#: (wire name, test) of the fields an ephemeral container may not set.
EPHEMERAL_FORBIDDEN: tuple[tuple[str, Callable[[Container], bool]], ...] = (
    ("ports", lambda c: bool(c.ports)),
    ("livenessProbe", lambda c: c.liveness_probe is not None),
    ("readinessProbe", lambda c: c.readiness_probe is not None),
    ("startupProbe", lambda c: c.startup_probe is not None),
    ("lifecycle", lambda c: c.lifecycle is not None),
    ("resources", lambda c: bool(c.resources.requests or c.resources.limits)),
    ("restartPolicy", lambda c: c.restart_policy is not None),
)


def _rule_ephemeral(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    if kind != "ephemeral":
        return
    for wire, is_set in EPHEMERAL_FORBIDDEN:
        if is_set(c):
            errs.forbidden(f"{path}.{wire}", "cannot be set for an Ephemeral Container")
    if isinstance(c, EphemeralContainer) and c.target_container_name:
        targets = {x.name for x in (*spec.init_containers, *spec.containers)}
        if c.target_container_name not in targets:
            errs.not_found(f"{path}.targetContainerName", c.target_container_name)


def _validate_capability_names(errs: Errors, path: str, names: list[str]) -> None:
    for i, name in enumerate(names):
        if not name:
            errs.required(f"{path}[{i}]")


def _has_sys_admin(sc: SecurityContext) -> bool:
    return sc.capabilities is not None and any(
        cap.upper().removeprefix("CAP_") == "SYS_ADMIN" for cap in sc.capabilities.add
    )


def _validate_common_security(
    errs: Errors, path: str, sc: SecurityContext | PodSecurityContext
) -> None:
    for wire, value in (("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group)):
        if value is not None and not 0 <= value <= 2147483647:
            errs.invalid(f"{path}.{wire}", value, "must be between 0 and 2147483647, inclusive")
    for wire, profile in (
        ("seccompProfile", sc.seccomp_profile),
        ("appArmorProfile", sc.app_armor_profile),
    ):
        if profile is None:
            continue
        p = f"{path}.{wire}"
        if not profile.type:
            errs.required(f"{p}.type")
        else:
            errs.enum(f"{p}.type", profile.type, SECCOMP_TYPES)
        if profile.type == "Localhost" and not profile.localhost_profile:
            errs.required(f"{p}.localhostProfile", "must be set when type is Localhost")
        if profile.type != "Localhost" and profile.localhost_profile is not None:
            errs.invalid(
                f"{p}.localhostProfile",
                profile.localhost_profile,
                "can only be set when type is Localhost",
            )


def _rule_security_context(
    errs: Errors, path: str, kind: str, c: Container, spec: PodSpec, ctx: PodContext
) -> None:
    sc = c.security_context
    if sc is None:
        return
    p = f"{path}.securityContext"
    _validate_common_security(errs, p, sc)
    if sc.capabilities is not None:
        _validate_capability_names(errs, f"{p}.capabilities.add", sc.capabilities.add)
        _validate_capability_names(errs, f"{p}.capabilities.drop", sc.capabilities.drop)
    if sc.allow_privilege_escalation is False:
        if sc.privileged:
            errs.invalid(
                p, "", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
            )
        if _has_sys_admin(sc):
            errs.invalid(
                p,
                "",
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            )
    errs.enum(f"{p}.procMount", sc.proc_mount, ("Default", "Unmasked"))


#: Every rule applied to each container (init, app, ephemeral).
CONTAINER_RULES: tuple[ContainerRule, ...] = (
    _rule_container_name,
    _rule_container_image,
    _rule_container_enums,
    _rule_container_restart_policy,
    _rule_ports,
    _rule_env,
    _rule_resources,
    _rule_volume_mounts,
    _rule_probes,
    _rule_lifecycle,
    _rule_ephemeral,
    _rule_security_context,
)

# ------------------------------------------------------------------ pod spec rules

PodSpecRule = Callable[[Errors, PodSpec, PodContext], None]

_LIST_NAMES = {"init": "initContainers", "app": "containers", "ephemeral": "ephemeralContainers"}


def _spec_containers(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    if not spec.containers:
        errs.required(ctx.child("containers"))
    seen: set[str] = set()
    # The order of spec.all_containers(): init, app, ephemeral.
    for kind, containers in (
        ("init", spec.init_containers),
        ("app", spec.containers),
        ("ephemeral", spec.ephemeral_containers),
    ):
        if not containers:
            continue
        list_path = ctx.child(_LIST_NAMES[kind])
        for i, c in enumerate(containers):
            path = f"{list_path}[{i}]"
            if c.name and c.name in seen:
                errs.duplicate(f"{path}.name", c.name)
            seen.add(c.name)
            for rule in CONTAINER_RULES:
                rule(errs, path, kind, c, spec, ctx)


def _spec_restart_policy(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    path = ctx.child("restartPolicy")
    allowed = ctx.restart_policies
    if allowed is None:
        if not spec.restart_policy:
            errs.required(path)
        else:
            errs.enum(path, spec.restart_policy, RESTART_POLICIES)
        return
    if not spec.restart_policy:
        errs.required(path, "valid values: " + ", ".join(json.dumps(v) for v in allowed))
    elif spec.restart_policy not in allowed:
        errs.unsupported(path, spec.restart_policy, allowed)


def _spec_enums_and_numbers(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    errs.enum(ctx.child("dnsPolicy"), spec.dns_policy, DNS_POLICIES)
    errs.enum(ctx.child("preemptionPolicy"), spec.preemption_policy, PREEMPTION_POLICIES)
    errs.minimum(
        ctx.child("terminationGracePeriodSeconds"), spec.termination_grace_period_seconds, 0
    )
    errs.minimum(ctx.child("activeDeadlineSeconds"), spec.active_deadline_seconds, 1)
    if spec.dns_policy == "None" and (spec.dns_config is None or not spec.dns_config.nameservers):
        errs.required(ctx.child("dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None")
    if (
        ctx.is_template
        and ctx.owner in ("Deployment", "ReplicaSet")
        and spec.active_deadline_seconds is not None
    ):
        errs.forbidden(
            ctx.child("activeDeadlineSeconds"),
            f"activeDeadlineSeconds in {ctx.owner} is not Supported",
        )
    if ctx.is_template and spec.ephemeral_containers:
        errs.forbidden(
            ctx.child("ephemeralContainers"), "ephemeral containers not allowed in pod template"
        )


def _spec_names(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    for wire, value in (("hostname", spec.hostname), ("subdomain", spec.subdomain)):
        if value:
            _check_name(errs, ctx.child(wire), value, dns1123_label_problem)
    if spec.node_name:
        _check_name(errs, ctx.child("nodeName"), spec.node_name, dns1123_subdomain_problem)
    if spec.service_account_name:
        _check_name(
            errs,
            ctx.child("serviceAccountName"),
            spec.service_account_name,
            dns1123_subdomain_problem,
        )
    _validate_labels(errs, ctx.child("nodeSelector"), spec.node_selector)
    for i, gate in enumerate(spec.readiness_gates):
        _check_name(
            errs,
            ctx.child(f"readinessGates[{i}].conditionType"),
            gate.condition_type,
            label_key_problem,
        )
    for name, amount in spec.overhead.items():
        _quantity(errs, ctx.child(f"overhead[{name}]"), amount)


def _spec_volumes(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    seen: set[str] = set()
    for i, vol in enumerate(spec.volumes):
        p = ctx.child(f"volumes[{i}]")
        _check_name(errs, f"{p}.name", vol.name, dns1123_label_problem)
        if vol.name and vol.name in seen:
            errs.duplicate(f"{p}.name", vol.name)
        seen.add(vol.name)
        sources = vol.sources()
        if not sources:
            errs.required(p, "must specify a volume type")
        elif len(sources) > 1:
            errs.forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type")
        if vol.empty_dir is not None:
            errs.enum(f"{p}.emptyDir.medium", vol.empty_dir.medium, STORAGE_MEDIUMS)
            if vol.empty_dir.size_limit is not None:
                _quantity(errs, f"{p}.emptyDir.sizeLimit", vol.empty_dir.size_limit)
        if vol.host_path is not None:
            if not vol.host_path.path:
                errs.required(f"{p}.hostPath.path")
            errs.enum(f"{p}.hostPath.type", vol.host_path.type, HOST_PATH_TYPES)
        if vol.persistent_volume_claim is not None and not vol.persistent_volume_claim.claim_name:
            errs.required(f"{p}.persistentVolumeClaim.claimName")
        if vol.config_map is not None and not vol.config_map.name:
            errs.required(f"{p}.configMap.name")
        if vol.secret is not None and not vol.secret.secret_name:
            errs.required(f"{p}.secret.secretName")


def _spec_tolerations(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    for i, tol in enumerate(spec.tolerations):
        p = ctx.child(f"tolerations[{i}]")
        if tol.key:
            why = label_key_problem(tol.key)
            if why is not None:
                errs.invalid(f"{p}.key", tol.key, why)
        if tol.operator and tol.operator not in TOLERATION_OPERATORS:  # errs.enum, path on demand
            errs.unsupported(f"{p}.operator", tol.operator, TOLERATION_OPERATORS)
        if not tol.key and tol.operator != "Exists":
            errs.invalid(
                f"{p}.operator",
                tol.operator,
                'operator must be Exists when `key` is empty, which means "match all values and all keys"',
            )
        if tol.operator == "Exists" and tol.value:
            errs.invalid(f"{p}.value", tol.value, "value must be empty when `operator` is 'Exists'")
        elif tol.operator in ("", "Equal") and tol.value:
            why = label_value_problem(tol.value)
            if why is not None:
                errs.invalid(f"{p}.value", tol.value, why)
        if tol.effect and tol.effect not in TAINT_EFFECTS:
            errs.unsupported(f"{p}.effect", tol.effect, TAINT_EFFECTS)
        if tol.toleration_seconds is not None and tol.effect != "NoExecute":
            errs.invalid(
                f"{p}.effect",
                tol.effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            )


def _validate_node_selector_requirement(
    errs: Errors, path: str, req: NodeSelectorRequirement, *, field: bool
) -> None:
    why = label_key_problem(req.key) if req.key else None
    if not req.key:
        errs.required(f"{path}.key")
    elif why is not None and not field:
        errs.invalid(f"{path}.key", req.key, why)
    if req.operator in ("In", "NotIn"):
        if not req.values:
            errs.required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
    elif req.operator in ("Exists", "DoesNotExist"):
        if req.values:
            errs.forbidden(
                f"{path}.values",
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )
    elif req.operator in ("Gt", "Lt"):
        if len(req.values) != 1 or not req.values[0].lstrip("-").isdigit():
            errs.required(
                f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'"
            )
    else:
        errs.unsupported(f"{path}.operator", req.operator, NODE_SELECTOR_OPERATORS)


def _validate_node_selector_term(errs: Errors, path: str, term: NodeSelectorTerm) -> None:
    for j, req in enumerate(term.match_expressions):
        _validate_node_selector_requirement(errs, f"{path}.matchExpressions[{j}]", req, field=False)
    for j, req in enumerate(term.match_fields):
        _validate_node_selector_requirement(errs, f"{path}.matchFields[{j}]", req, field=True)


def _validate_weight(errs: Errors, path: str, weight: int) -> None:
    if not 1 <= weight <= 100:
        errs.invalid(path, weight, "must be in the range 1-100")


def _validate_pod_affinity_term(errs: Errors, path: str, term: PodAffinityTerm) -> None:
    if not term.topology_key:
        errs.required(f"{path}.topologyKey", "can not be empty")
    else:
        why = label_key_problem(term.topology_key)
        if why is not None:
            errs.invalid(f"{path}.topologyKey", term.topology_key, why)
    if term.label_selector is not None:
        validate_label_selector(errs, f"{path}.labelSelector", term.label_selector)
    if term.namespace_selector is not None:
        validate_label_selector(errs, f"{path}.namespaceSelector", term.namespace_selector)
    for i, ns in enumerate(term.namespaces):
        _check_name(errs, f"{path}.namespaces[{i}]", ns, dns1123_label_problem)


_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def _spec_node_affinity(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    na = spec.affinity.node_affinity if spec.affinity is not None else None
    if na is None:
        return
    p = ctx.child("affinity.nodeAffinity")
    required = na.required_during_scheduling_ignored_during_execution
    if required is not None:
        if not required.node_selector_terms:
            errs.required(
                f"{p}.{_REQUIRED}.nodeSelectorTerms", "must have at least one node selector term"
            )
        for i, term in enumerate(required.node_selector_terms):
            _validate_node_selector_term(errs, f"{p}.{_REQUIRED}.nodeSelectorTerms[{i}]", term)
    for i, weighted in enumerate(na.preferred_during_scheduling_ignored_during_execution):
        _validate_weight(errs, f"{p}.{_PREFERRED}[{i}].weight", weighted.weight)
        _validate_node_selector_term(errs, f"{p}.{_PREFERRED}[{i}].preference", weighted.preference)


def _spec_pod_affinity(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    if spec.affinity is None:
        return
    for wire, pa in (
        ("podAffinity", spec.affinity.pod_affinity),
        ("podAntiAffinity", spec.affinity.pod_anti_affinity),
    ):
        if pa is None:
            continue
        p = ctx.child(f"affinity.{wire}")
        for i, term in enumerate(pa.required_during_scheduling_ignored_during_execution):
            _validate_pod_affinity_term(errs, f"{p}.{_REQUIRED}[{i}]", term)
        for i, weighted in enumerate(pa.preferred_during_scheduling_ignored_during_execution):
            _validate_weight(errs, f"{p}.{_PREFERRED}[{i}].weight", weighted.weight)
            _validate_pod_affinity_term(
                errs, f"{p}.{_PREFERRED}[{i}].podAffinityTerm", weighted.pod_affinity_term
            )


def _spec_topology_spread(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    for i, tsc in enumerate(spec.topology_spread_constraints):
        p = ctx.child(f"topologySpreadConstraints[{i}]")
        errs.minimum(f"{p}.maxSkew", tsc.max_skew, 1)
        if not tsc.topology_key:
            errs.required(f"{p}.topologyKey", "can not be empty")
        errs.enum(
            f"{p}.whenUnsatisfiable", tsc.when_unsatisfiable, WHEN_UNSATISFIABLE, empty_ok=False
        )
        if tsc.min_domains is not None:
            errs.minimum(f"{p}.minDomains", tsc.min_domains, 1)
        if tsc.label_selector is not None:
            validate_label_selector(errs, f"{p}.labelSelector", tsc.label_selector)


def _spec_security_context(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    sc = spec.security_context
    if sc is None:
        return
    p = ctx.child("securityContext")
    _validate_common_security(errs, p, sc)
    if sc.fs_group is not None and not 0 <= sc.fs_group <= 2147483647:
        errs.invalid(f"{p}.fsGroup", sc.fs_group, "must be between 0 and 2147483647, inclusive")
    for i, gid in enumerate(sc.supplemental_groups):
        if not 0 <= gid <= 2147483647:
            errs.invalid(
                f"{p}.supplementalGroups[{i}]", gid, "must be between 0 and 2147483647, inclusive"
            )
    errs.enum(f"{p}.fsGroupChangePolicy", sc.fs_group_change_policy, FS_GROUP_CHANGE_POLICIES)
    errs.enum(
        f"{p}.supplementalGroupsPolicy", sc.supplemental_groups_policy, SUPPLEMENTAL_GROUPS_POLICIES
    )
    for i, sysctl in enumerate(sc.sysctls):
        if not sysctl.name:
            errs.required(f"{p}.sysctls[{i}].name")


#: Every rule applied to a PodSpec (in a Pod or a template).
POD_SPEC_RULES: tuple[PodSpecRule, ...] = (
    _spec_containers,
    _spec_restart_policy,
    _spec_enums_and_numbers,
    _spec_names,
    _spec_volumes,
    _spec_tolerations,
    _spec_node_affinity,
    _spec_pod_affinity,
    _spec_topology_spread,
    _spec_security_context,
)


def validate_pod_spec(errs: Errors, spec: PodSpec, ctx: PodContext) -> None:
    for rule in POD_SPEC_RULES:
        rule(errs, spec, ctx)


def _validate_template(errs: Errors, template: PodTemplateSpec, ctx: PodContext) -> None:
    _validate_meta_maps(errs, "spec.template.metadata", template.metadata)
    validate_pod_spec(errs, template.spec, ctx)


# ------------------------------------------------------------------ kinds


def _validate_pod(pod: Pod, errs: Errors) -> None:
    validate_pod_spec(errs, pod.spec, PodContext("spec"))
    errs.enum(
        "status.phase", pod.status.phase, ("Pending", "Running", "Succeeded", "Failed", "Unknown")
    )
    for i, cond in enumerate(pod.status.conditions):
        errs.enum(f"status.conditions[{i}].status", cond.status, CONDITION_STATUSES, empty_ok=False)


def _int_or_percent(errs: Errors, path: str, value: int | str, *, max_percent: bool) -> int | None:
    """The number of an absolute count or percentage (for the both-zero check)."""
    if isinstance(value, int):
        if value < 0:
            errs.invalid(path, value, "must be greater than or equal to 0")
            return None
        return value
    if not _PERCENT.fullmatch(value):
        errs.invalid(
            path,
            value,
            "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        )
        return None
    pct = int(value[:-1])
    if max_percent and pct > 100:
        errs.invalid(path, value, "must not be greater than 100%")
    return pct


_TEMPLATE = "spec.template.spec"


def _validate_deployment(d: Deployment, errs: Errors) -> None:
    spec = d.spec
    errs.minimum("spec.replicas", spec.replicas, 0)
    errs.minimum("spec.minReadySeconds", spec.min_ready_seconds, 0)
    errs.minimum("spec.revisionHistoryLimit", spec.revision_history_limit, 0)
    if spec.progress_deadline_seconds <= spec.min_ready_seconds:
        errs.invalid(
            "spec.progressDeadlineSeconds",
            spec.progress_deadline_seconds,
            "must be greater than minReadySeconds",
        )
    _validate_workload_selector(errs, "Deployment", spec.selector, spec.template)
    _validate_template(errs, spec.template, PodContext(_TEMPLATE, ("Always",), "Deployment", True))
    strategy = spec.strategy
    errs.enum("spec.strategy.type", strategy.type, DEPLOYMENT_STRATEGIES, empty_ok=False)
    ru = strategy.rolling_update
    if strategy.type == "Recreate" and ru is not None:
        errs.forbidden(
            "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
        )
    elif ru is not None:
        _validate_surge_and_unavailable(
            errs, "spec.strategy.rollingUpdate", ru.max_surge, ru.max_unavailable
        )


def _validate_surge_and_unavailable(
    errs: Errors, p: str, surge: int | str, unavailable: int | str
) -> None:
    """A Deployment's maxSurge / maxUnavailable: counts or percentages, not both 0."""
    surge_n = _int_or_percent(errs, f"{p}.maxSurge", surge, max_percent=False)
    unavailable_n = _int_or_percent(errs, f"{p}.maxUnavailable", unavailable, max_percent=True)
    if surge_n == 0 and unavailable_n == 0:
        errs.invalid(f"{p}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0")


def _validate_replica_set(rs: ReplicaSet, errs: Errors) -> None:
    spec = rs.spec
    errs.minimum("spec.replicas", spec.replicas, 0)
    errs.minimum("spec.minReadySeconds", spec.min_ready_seconds, 0)
    _validate_workload_selector(errs, "ReplicaSet", spec.selector, spec.template)
    _validate_template(errs, spec.template, PodContext(_TEMPLATE, ("Always",), "ReplicaSet", True))


DAEMONSET_STRATEGIES = ("RollingUpdate", "OnDelete")


def _validate_daemon_set(ds: DaemonSet, errs: Errors) -> None:
    spec = ds.spec
    errs.minimum("spec.minReadySeconds", spec.min_ready_seconds, 0)
    errs.minimum("spec.revisionHistoryLimit", spec.revision_history_limit, 0)
    _validate_workload_selector(errs, "DaemonSet", spec.selector, spec.template)
    _validate_template(errs, spec.template, PodContext(_TEMPLATE, ("Always",), "DaemonSet", True))
    strategy = spec.update_strategy
    errs.enum("spec.updateStrategy.type", strategy.type, DAEMONSET_STRATEGIES, empty_ok=False)
    ru = strategy.rolling_update
    if ru is not None and strategy.type == "RollingUpdate":
        # ValidateRollingUpdateDaemonSet: exactly one of the two is non-zero
        p = "spec.updateStrategy.rollingUpdate"
        surge = _int_or_percent(errs, f"{p}.maxSurge", ru.max_surge, max_percent=True)
        unavailable = _int_or_percent(
            errs, f"{p}.maxUnavailable", ru.max_unavailable, max_percent=True
        )
        if surge and unavailable:
            errs.invalid(
                f"{p}.maxSurge", ru.max_surge, "may not be set when maxUnavailable is non-zero"
            )
        elif surge == 0 and unavailable == 0:
            errs.required(f"{p}.maxUnavailable", "cannot be 0 when maxSurge is 0")


def _validate_claim_template(errs: Errors, path: str, claim: PersistentVolumeClaim) -> None:
    _check_name(errs, f"{path}.metadata.name", claim.metadata.name, dns1123_subdomain_problem)
    _validate_meta_maps(errs, f"{path}.metadata", claim.metadata)
    if not claim.spec.access_modes:
        errs.required(f"{path}.spec.accessModes", "at least 1 access mode is required")
    for i, mode in enumerate(claim.spec.access_modes):
        errs.enum(f"{path}.spec.accessModes[{i}]", mode, ACCESS_MODES, empty_ok=False)
    resources = claim.spec.resources
    if "storage" not in resources.requests:
        errs.required(f"{path}.spec.resources[storage]")
    _validate_resources(errs, f"{path}.spec.resources", resources.requests, resources.limits)
    errs.enum(f"{path}.spec.volumeMode", claim.spec.volume_mode, ("Filesystem", "Block"))


def _validate_stateful_set(sts: StatefulSet, errs: Errors) -> None:
    spec = sts.spec
    errs.minimum("spec.replicas", spec.replicas, 0)
    errs.minimum("spec.minReadySeconds", spec.min_ready_seconds, 0)
    errs.minimum("spec.revisionHistoryLimit", spec.revision_history_limit, 0)
    errs.enum(
        "spec.podManagementPolicy",
        spec.pod_management_policy,
        POD_MANAGEMENT_POLICIES,
        empty_ok=False,
    )
    if spec.service_name:
        _check_name(errs, "spec.serviceName", spec.service_name, dns1123_label_problem)
    strategy = spec.update_strategy
    errs.enum(
        "spec.updateStrategy.type", strategy.type, STATEFULSET_UPDATE_STRATEGIES, empty_ok=False
    )
    ru = strategy.rolling_update
    if strategy.type == "OnDelete" and ru is not None:
        errs.forbidden(
            "spec.updateStrategy.rollingUpdate", "only allowed for updateStrategy 'RollingUpdate'"
        )
    elif ru is not None:
        errs.minimum("spec.updateStrategy.rollingUpdate.partition", ru.partition, 0)
        if ru.max_unavailable is not None:
            path = "spec.updateStrategy.rollingUpdate.maxUnavailable"
            n = _int_or_percent(errs, path, ru.max_unavailable, max_percent=True)
            if n == 0:
                errs.invalid(path, ru.max_unavailable, "must be greater than 0")
    policy = spec.persistent_volume_claim_retention_policy
    if policy is not None:
        p = "spec.persistentVolumeClaimRetentionPolicy"
        errs.enum(f"{p}.whenDeleted", policy.when_deleted, PVC_RETENTION_POLICIES, empty_ok=False)
        errs.enum(f"{p}.whenScaled", policy.when_scaled, PVC_RETENTION_POLICIES, empty_ok=False)
    for i, claim in enumerate(spec.volume_claim_templates):
        _validate_claim_template(errs, f"spec.volumeClaimTemplates[{i}]", claim)
    _validate_workload_selector(errs, "StatefulSet", spec.selector, spec.template)
    claims = frozenset(c.metadata.name for c in spec.volume_claim_templates)
    ctx = PodContext(_TEMPLATE, ("Always",), "StatefulSet", True, claims)
    _validate_template(errs, spec.template, ctx)


def _validate_pod_failure_policy(errs: Errors, job: Job) -> None:
    policy = job.spec.pod_failure_policy
    if policy is None:
        return
    if job.spec.template.spec.restart_policy != "Never":
        errs.invalid(
            "spec.template.spec.restartPolicy",
            job.spec.template.spec.restart_policy,
            'only "Never" is supported when podFailurePolicy is specified',
        )
    for i, rule in enumerate(policy.rules):
        p = f"spec.podFailurePolicy.rules[{i}]"
        errs.enum(f"{p}.action", rule.action, POD_FAILURE_ACTIONS, empty_ok=False)
        if rule.action == "FailIndex" and job.spec.backoff_limit_per_index is None:
            errs.forbidden(f"{p}.action", "requires the backoffLimitPerIndex to be set")
        has_codes = rule.on_exit_codes is not None
        has_conditions = bool(rule.on_pod_conditions)
        if has_codes == has_conditions:
            errs.invalid(p, "", "specifying one of OnExitCodes and OnPodConditions is required")
        if rule.on_exit_codes is not None:
            codes = rule.on_exit_codes
            cp = f"{p}.onExitCodes"
            errs.enum(f"{cp}.operator", codes.operator, EXIT_CODE_OPERATORS, empty_ok=False)
            if not codes.values:
                errs.required(f"{cp}.values", "at least one value is required")
            seen: set[int] = set()
            for j, code in enumerate(codes.values):
                if codes.operator == "In" and code == 0:
                    errs.invalid(f"{cp}.values[{j}]", 0, "must not be 0 for the In operator")
                if code in seen:
                    errs.duplicate(f"{cp}.values[{j}]", code)
                seen.add(code)
            containers = {
                c.name
                for c in (
                    *job.spec.template.spec.init_containers,
                    *job.spec.template.spec.containers,
                )
            }
            if codes.container_name is not None and codes.container_name not in containers:
                errs.invalid(
                    f"{cp}.containerName",
                    codes.container_name,
                    "must be one of the container or initContainer names in the pod template",
                )
        for j, pattern in enumerate(rule.on_pod_conditions):
            pp = f"{p}.onPodConditions[{j}]"
            if not pattern.type:
                errs.required(f"{pp}.type")
            errs.enum(f"{pp}.status", pattern.status, CONDITION_STATUSES, empty_ok=False)


def _validate_job(job: Job, errs: Errors) -> None:
    spec = job.spec
    errs.minimum("spec.parallelism", spec.parallelism, 0)
    errs.minimum("spec.completions", spec.completions, 0)
    errs.minimum("spec.backoffLimit", spec.backoff_limit, 0)
    errs.minimum("spec.activeDeadlineSeconds", spec.active_deadline_seconds, 1)
    errs.minimum("spec.ttlSecondsAfterFinished", spec.ttl_seconds_after_finished, 0)
    errs.minimum("spec.backoffLimitPerIndex", spec.backoff_limit_per_index, 0)
    errs.minimum("spec.maxFailedIndexes", spec.max_failed_indexes, 0)
    errs.enum("spec.completionMode", spec.completion_mode, COMPLETION_MODES, empty_ok=False)
    errs.enum("spec.podReplacementPolicy", spec.pod_replacement_policy, POD_REPLACEMENT_POLICIES)
    if spec.completion_mode == "Indexed" and spec.completions is None:
        errs.required("spec.completions", "when completion mode is Indexed")
    if spec.completion_mode != "Indexed":
        if spec.backoff_limit_per_index is not None:
            errs.invalid(
                "spec.backoffLimitPerIndex",
                spec.backoff_limit_per_index,
                "requires indexed completion mode",
            )
        if spec.max_failed_indexes is not None:
            errs.invalid(
                "spec.maxFailedIndexes", spec.max_failed_indexes, "requires indexed completion mode"
            )
    if spec.manual_selector or spec.selector is not None:
        _validate_workload_selector(errs, "Job", spec.selector, spec.template)
    _validate_template(
        errs, spec.template, PodContext(_TEMPLATE, JOB_RESTART_POLICIES, "Job", True)
    )
    _validate_pod_failure_policy(errs, job)


CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")


def _validate_cron_job(cj: CronJob, errs: Errors) -> None:
    spec = cj.spec
    if len(cj.metadata.name) > 52:
        errs.invalid("metadata.name", cj.metadata.name, "must be no more than 52 characters")
    if not spec.schedule:
        errs.required("spec.schedule")
    elif "TZ=" in spec.schedule:
        errs.invalid(
            "spec.schedule",
            spec.schedule,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        )
    else:
        try:
            parse_schedule(spec.schedule)
        except CronError as exc:
            errs.invalid("spec.schedule", spec.schedule, str(exc))
    if spec.time_zone is not None and zone_problem(spec.time_zone):
        errs.invalid("spec.timeZone", spec.time_zone, f"unknown time zone {spec.time_zone}")
    errs.enum("spec.concurrencyPolicy", spec.concurrency_policy, CONCURRENCY_POLICIES)
    errs.minimum("spec.startingDeadlineSeconds", spec.starting_deadline_seconds, 0)
    errs.minimum("spec.successfulJobsHistoryLimit", spec.successful_jobs_history_limit, 0)
    errs.minimum("spec.failedJobsHistoryLimit", spec.failed_jobs_history_limit, 0)
    template = spec.job_template
    inner = Errors()
    _validate_job(Job(metadata=template.metadata, spec=template.spec), inner)
    for e in inner.items:
        errs.add(f"spec.jobTemplate.{e.field}", e.message)


def zone_problem(name: str) -> bool:
    """True when `name` is not an IANA time zone this machine knows."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return True
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return True
    return False


def _validate_node(node: Node, errs: Errors) -> None:
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(node.spec.taints):
        p = f"spec.taints[{i}]"
        _check_name(errs, f"{p}.key", taint.key, label_key_problem)
        why = label_value_problem(taint.value)
        if why is not None:
            errs.invalid(f"{p}.value", taint.value, why)
        if not taint.effect:
            errs.required(f"{p}.effect")
        else:
            errs.enum(f"{p}.effect", taint.effect, TAINT_EFFECTS)
        if (taint.key, taint.effect) in seen:
            errs.duplicate(f"{p}", f"{taint.key}:{taint.effect}")
        seen.add((taint.key, taint.effect))
    for name, value in (*node.status.capacity.items(), *node.status.allocatable.items()):
        _quantity(
            errs,
            f"status.capacity[{name}]"
            if name in node.status.capacity
            else f"status.allocatable[{name}]",
            value,
        )


def _validate_event(event: Event, errs: Errors) -> None:
    errs.enum("type", event.type, EVENT_TYPES)
    obj = event.involved_object
    if obj.namespace and event.metadata.namespace and obj.namespace != event.metadata.namespace:
        errs.invalid("involvedObject.namespace", obj.namespace, "does not match event.namespace")
    errs.minimum("count", event.count, 0)


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
#: the keys each built-in secret type must have (one of them, for basic-auth)
SECRET_TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def config_key_problem(key: str) -> str | None:
    """Why `key` cannot name a ConfigMap/Secret entry (it becomes a file
    name in volumes), or None. Kubernetes' IsConfigMapKey."""
    if len(key) > 253:
        return "must be no more than 253 characters"
    if not _CONFIG_KEY.fullmatch(key):
        return CONFIG_KEY_MSG
    if key == ".":
        return "must not be '.'"
    if key == "..":
        return "must not be '..'"
    if key.startswith(".."):
        return "must not start with '..'"
    return None


def _validate_config_keys(errs: Errors, field: str, keys: Iterable[str]) -> None:
    for key in keys:
        why = config_key_problem(key)
        if why is not None:
            errs.invalid(f"{field}[{key}]", key, why)


def _validate_config_map(cm: ConfigMap, errs: Errors) -> None:
    _validate_config_keys(errs, "data", cm.data)
    _validate_config_keys(errs, "binaryData", cm.binary_data)
    size = 0
    for key, value in cm.data.items():
        size += len(key) + len(value.encode())
    for key, text in cm.binary_data.items():
        if key in cm.data:
            errs.invalid(f"binaryData[{key}]", key, "duplicate of key present in data")
        raw = decode_base64(text)
        if raw is None:
            errs.invalid(f"binaryData[{key}]", "<binary>", "illegal base64 data")
            continue
        size += len(key) + len(raw)
    if size > MAX_DATA_BYTES:
        errs.add("[]", f"Too long: must have at most {MAX_DATA_BYTES} bytes")


def _validate_secret(secret: Secret, errs: Errors) -> None:
    _validate_config_keys(errs, "data", secret.data)
    _validate_config_keys(errs, "stringData", secret.string_data)
    size = 0
    for key, text in secret.data.items():
        value = decode_base64(text)
        if value is None:
            errs.invalid(f"data[{key}]", "<secret contents redacted>", "illegal base64 data")
            continue
        size += len(value)
    if size > MAX_DATA_BYTES:
        errs.add("data", f"Too long: must have at most {MAX_DATA_BYTES} bytes")
    keys = set(secret.data) | set(secret.string_data)
    for key in SECRET_TYPE_KEYS.get(secret.type, ()):
        if key not in keys:
            errs.required(f"data[{key}]")
    if secret.type == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        errs.required("data[username]")


_KIND_RULES: dict[type[KubeObject], Callable[[Any, Errors], None]] = {
    Pod: _validate_pod,
    Deployment: _validate_deployment,
    ReplicaSet: _validate_replica_set,
    DaemonSet: _validate_daemon_set,
    CronJob: _validate_cron_job,
    StatefulSet: _validate_stateful_set,
    Job: _validate_job,
    Node: _validate_node,
    Event: _validate_event,
    ConfigMap: _validate_config_map,
    Secret: _validate_secret,
}
