"""A container's environment and argv, resolved exactly as kubelet and the
container runtime resolve them.

- `container_env`: envFrom first, then env in order (later names override
  earlier ones). `value` is expanded with `$(VAR)` against the variables
  defined before it; `valueFrom.fieldRef` reads the pod (metadata.name,
  metadata.namespace, metadata.uid, metadata.labels / annotations, with or
  without `['key']`, spec.nodeName, spec.serviceAccountName, status.podIP(s),
  status.hostIP(s)); `resourceFieldRef` reads requests / limits (unset limits
  read as the node's allocatable) divided by the divisor and rounded up;
  configMapKeyRef / secretKeyRef read what the caller supplies. A Job's
  indexed pod gets JOB_COMPLETION_INDEX from its completion-index annotation.
  Problems raise `EnvError`, which the driver reports as the waiting reason
  CreateContainerConfigError.
- `expand`: Kubernetes' expansion (third_party/forked/golang/expansion):
  `$(VAR)` is replaced when VAR is known and left as written when not,
  `$$` is a literal `$` (so `$$(VAR)` yields `$(VAR)`), a lone `$` stays.
- `expand_command_and_args`: command and args expanded with the final env.
- `effective_argv`: image ENTRYPOINT/CMD combined with command/args:
  command replaces ENTRYPOINT and drops CMD; args alone replace CMD.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

from podmodel.pod import Container, EnvVarSource, Pod, ResourceFieldSelector
from podmodel.quantity import QuantityError, parse_quantity

JOB_COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
JOB_COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"

CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"

Lookup = Callable[[str], str | None]


class EnvError(Exception):
    """The environment cannot be built; the container waits with
    CreateContainerConfigError and this message."""

    reason = CREATE_CONTAINER_CONFIG_ERROR


# ------------------------------------------------------------------ expansion


def mapping_for(*contexts: Mapping[str, str]) -> Lookup:
    """A lookup over several maps, first match wins (MappingFuncFor)."""

    def lookup(name: str) -> str | None:
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return None

    return lookup


def expand(text: str, lookup: Lookup) -> str:
    """Replace `$(VAR)` references; unknown ones stay as written, `$$` is a
    literal `$`, an unterminated `$(` stays."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2 : close]
                    value = lookup(name)
                    out.append(value if value is not None else f"$({name})")
                    advance = close - cursor
            else:
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


# ------------------------------------------------------------------ fieldRef


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote)."""
    out = ['"']
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def format_map(values: Mapping[str, str]) -> str:
    """How the downward API prints all labels or annotations: `key="value"`
    lines, sorted by key."""
    return "\n".join(f"{key}={go_quote(values[key])}" for key in sorted(values))


def _split_subscript(path: str) -> tuple[str, str] | None:
    if not path.endswith("']"):
        return None
    head, sep, key = path[: -len("']")].partition("['")
    if not sep or not head:
        return None
    return head, key


def field_ref_value(
    pod: Pod,
    field_path: str,
    *,
    pod_ips: Sequence[str] | None = None,
    host_ips: Sequence[str] | None = None,
) -> str:
    """The value of a downward-API fieldRef (kubelet's
    podFieldSelectorRuntimeValue). IPs default to the pod's status."""
    if pod_ips is None:
        pod_ips = [ip.ip for ip in pod.status.pod_ips] or (
            [pod.status.pod_ip] if pod.status.pod_ip else []
        )
    if host_ips is None:
        host_ips = [ip.ip for ip in pod.status.host_ips] or (
            [pod.status.host_ip] if pod.status.host_ip else []
        )
    meta = pod.metadata
    subscripted = _split_subscript(field_path)
    if subscripted is not None:
        head, key = subscripted
        if head == "metadata.annotations":
            return meta.annotations.get(key, "")
        if head == "metadata.labels":
            return meta.labels.get(key, "")
        raise EnvError(f'fieldPath "{field_path}" does not support subscript')
    simple: dict[str, Callable[[], str]] = {
        "metadata.name": lambda: meta.name,
        "metadata.namespace": lambda: meta.namespace,
        "metadata.uid": lambda: meta.uid,
        "metadata.labels": lambda: format_map(meta.labels),
        "metadata.annotations": lambda: format_map(meta.annotations),
        "spec.nodeName": lambda: pod.spec.node_name,
        "spec.serviceAccountName": lambda: pod.spec.service_account_name,
        "status.podIP": lambda: pod_ips[0] if pod_ips else "",
        "status.podIPs": lambda: ",".join(pod_ips),
        "status.hostIP": lambda: host_ips[0] if host_ips else "",
        "status.hostIPs": lambda: ",".join(host_ips),
    }
    getter = simple.get(field_path)
    if getter is None:
        raise EnvError(f"unsupported fieldPath: {field_path}")
    return getter()


# ------------------------------------------------------------------ resourceFieldRef

_RESOURCE_KEYS = {"cpu", "memory", "ephemeral-storage"}


def _ceil_div(a: Fraction, b: Fraction) -> int:
    value = a / b
    return -((-value.numerator) // value.denominator)


def resource_field_value(
    selector: ResourceFieldSelector,
    pod: Pod,
    container: Container,
    *,
    node_allocatable: Mapping[str, str] | None = None,
) -> str:
    """requests.* / limits.* of a container divided by the divisor (default
    1) and rounded up; cpu counts in millicores before dividing, as kubelet
    does. A limit that is not set reads as the node's allocatable."""
    target = container
    if selector.container_name:
        found = pod.spec.container(selector.container_name)
        if found is None:
            raise EnvError(f"container {selector.container_name} not found")
        target = found
    kind, _, name = selector.resource.partition(".")
    if kind not in ("requests", "limits") or name not in _RESOURCE_KEYS:
        raise EnvError(f"unsupported container resource : {selector.resource}")
    try:
        divisor = parse_quantity(selector.divisor) if selector.divisor is not None else Fraction(1)
        if divisor == 0:
            divisor = Fraction(1)
        values = target.resources.requests if kind == "requests" else target.resources.limits
        raw = values.get(name)
        if raw is None and kind == "limits" and node_allocatable is not None:
            raw = node_allocatable.get(name)
        amount = parse_quantity(raw) if raw is not None else Fraction(0)
    except QuantityError as exc:
        raise EnvError(str(exc)) from exc
    if name == "cpu":
        # MilliValue on both sides: the divisor below 1m reads as 1m.
        millis = _ceil_div(amount * 1000, Fraction(1))
        div_millis = max(_ceil_div(divisor * 1000, Fraction(1)), 1)
        return str(_ceil_div(Fraction(millis), Fraction(div_millis)))
    return str(_ceil_div(Fraction(_ceil_div(amount, Fraction(1))), divisor))


# ------------------------------------------------------------------ the environment


def container_env(
    pod: Pod,
    container: Container,
    *,
    pod_ips: Sequence[str] | None = None,
    host_ips: Sequence[str] | None = None,
    node_allocatable: Mapping[str, str] | None = None,
    config_maps: Mapping[str, Mapping[str, str]] | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """The container's environment as (name, value) pairs, envFrom first,
    then env in spec order; a name defined twice keeps its first position
    and its last value. `config_maps` / `secrets`: the pod namespace's
    objects by name (missing means not found)."""
    env: dict[str, str] = {}
    cms = config_maps or {}
    secs = secrets or {}
    for source in container.env_from:
        data: Mapping[str, str] | None = None
        if source.config_map_ref is not None:
            cm_ref = source.config_map_ref
            data = _lookup_object(cms, "configmap", cm_ref.name, cm_ref.optional)
        elif source.secret_ref is not None:
            secret_ref = source.secret_ref
            data = _lookup_object(secs, "secret", secret_ref.name, secret_ref.optional)
        for key, value in sorted((data or {}).items()):
            env[source.prefix + key] = value

    lookup = mapping_for(env)
    for var in container.env:
        if var.value:
            value = expand(var.value, lookup)
        elif var.value_from is not None:
            source_value = _value_from(
                pod,
                container,
                var.value_from,
                pod_ips=pod_ips,
                host_ips=host_ips,
                node_allocatable=node_allocatable,
                config_maps=cms,
                secrets=secs,
            )
            if source_value is None:
                continue  # optional reference that is missing
            value = source_value
        else:
            value = ""
        env[var.name] = value

    index = pod.metadata.annotations.get(JOB_COMPLETION_INDEX_ANNOTATION)
    if index is not None and JOB_COMPLETION_INDEX_ENV not in env:
        env[JOB_COMPLETION_INDEX_ENV] = index
    return list(env.items())


def _lookup_object(
    objects: Mapping[str, Mapping[str, str]], kind: str, name: str, optional: bool | None
) -> Mapping[str, str] | None:
    data = objects.get(name)
    if data is None and not optional:
        raise EnvError(f'{kind} "{name}" not found')
    return data


def _value_from(
    pod: Pod,
    container: Container,
    source: EnvVarSource,
    *,
    pod_ips: Sequence[str] | None,
    host_ips: Sequence[str] | None,
    node_allocatable: Mapping[str, str] | None,
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> str | None:
    ns = pod.metadata.namespace
    if source.field_ref is not None:
        return field_ref_value(pod, source.field_ref.field_path, pod_ips=pod_ips, host_ips=host_ips)
    if source.resource_field_ref is not None:
        return resource_field_value(
            source.resource_field_ref, pod, container, node_allocatable=node_allocatable
        )
    if source.config_map_key_ref is not None:
        cm = source.config_map_key_ref
        data = _lookup_object(config_maps, "configmap", cm.name, cm.optional)
        if data is None:
            return None
        if cm.key not in data:
            if cm.optional:
                return None
            raise EnvError(f"couldn't find key {cm.key} in ConfigMap {ns}/{cm.name}")
        return data[cm.key]
    if source.secret_key_ref is not None:
        sk = source.secret_key_ref
        data = _lookup_object(secrets, "secret", sk.name, sk.optional)
        if data is None:
            return None
        if sk.key not in data:
            if sk.optional:
                return None
            raise EnvError(f"couldn't find key {sk.key} in Secret {ns}/{sk.name}")
        return data[sk.key]
    return ""


def expand_command_and_args(
    container: Container, env: Sequence[tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """command and args with `$(VAR)` replaced from the container's final
    environment (ExpandContainerCommandAndArgs)."""
    lookup = mapping_for(dict(env))
    return (
        [expand(part, lookup) for part in container.command],
        [expand(part, lookup) for part in container.args],
    )


def effective_argv(
    command: Sequence[str],
    args: Sequence[str],
    image_entrypoint: Sequence[str] = (),
    image_cmd: Sequence[str] = (),
) -> list[str]:
    """The process argv: command (replacing ENTRYPOINT, dropping CMD) or the
    image ENTRYPOINT, followed by args or, when neither command nor args is
    given, the image CMD. Raises EnvError when nothing is left to run."""
    argv = [*command, *args] if command else [*image_entrypoint, *(args if args else image_cmd)]
    if not argv:
        raise EnvError("no command specified")
    return argv


def merge_image_env(
    image_env: Sequence[str], env: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The process environment: the image's `KEY=value` entries, overridden
    by the container's."""
    merged: dict[str, str] = {}
    for entry in image_env:
        key, _, value = entry.partition("=")
        merged[key] = value
    merged.update(env)
    return list(merged.items())
