"""Decisions behind podctl's long-running and editing verbs, kept pure:
rollout status messages (kubectl's status viewers, word for word), rollout
history and the ReplicaSet `rollout undo` copies back, `wait --for`
conditions with a small JSONPath, and `label` / `annotate` edits.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
TEMPLATE_HASH_LABEL = "pod-template-hash"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"


class RolloutError(ValueError):
    """A rollout that can never finish (deadline exceeded, wrong strategy)."""


@dataclass(frozen=True)
class RolloutState:
    message: str
    done: bool


def _cond(obj: Obj, kind: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def deployment_rollout(d: Obj) -> RolloutState:
    """kubectl's DeploymentStatusViewer. Raises RolloutError on a missed deadline."""
    meta, spec, status = d.get("metadata") or {}, d.get("spec") or {}, d.get("status") or {}
    name = meta.get("name", "")
    if int(meta.get("generation") or 0) <= int(status.get("observedGeneration") or 0):
        progressing = _cond(d, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            raise RolloutError(f'deployment "{name}" exceeded its progress deadline')
        replicas = int(spec.get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        if updated < replicas:
            return RolloutState(
                f'Waiting for deployment "{name}" rollout to finish: {updated} out of '
                f"{replicas} new replicas have been updated...",
                False,
            )
        if total > updated:
            return RolloutState(
                f'Waiting for deployment "{name}" rollout to finish: {total - updated} old '
                "replicas are pending termination...",
                False,
            )
        if available < updated:
            return RolloutState(
                f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} '
                "updated replicas are available...",
                False,
            )
        return RolloutState(f'deployment "{name}" successfully rolled out', True)
    return RolloutState("Waiting for deployment spec update to be observed...", False)


def statefulset_rollout(s: Obj) -> RolloutState:
    """kubectl's StatefulSetStatusViewer."""
    meta, spec, status = s.get("metadata") or {}, s.get("spec") or {}, s.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    observed = int(status.get("observedGeneration") or 0)
    if observed == 0 or int(meta.get("generation") or 0) > observed:
        return RolloutState("Waiting for statefulset spec update to be observed...", False)
    replicas = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    if ready < replicas:
        return RolloutState(f"Waiting for {replicas - ready} pods to be ready...", False)
    updated = int(status.get("updatedReplicas") or 0)
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        partition = int(rolling.get("partition") or 0)
        if updated < replicas - partition:
            return RolloutState(
                f"Waiting for partitioned roll out to finish: {updated} out of "
                f"{replicas - partition} new pods have been updated...",
                False,
            )
        return RolloutState(
            f"partitioned roll out complete: {updated} new pods have been updated...", True
        )
    if status.get("updateRevision") != status.get("currentRevision"):
        return RolloutState(
            f"waiting for statefulset rolling update to complete {updated} pods at revision "
            f"{status.get('updateRevision', '')}...",
            False,
        )
    return RolloutState(
        f"statefulset rolling update complete {status.get('currentReplicas', 0)} pods at "
        f"revision {status.get('currentRevision', '')}...",
        True,
    )


def daemonset_rollout(ds: Obj) -> RolloutState:
    """kubectl's DaemonSetStatusViewer."""
    meta, spec, status = ds.get("metadata") or {}, ds.get("spec") or {}, ds.get("status") or {}
    name = meta.get("name", "")
    if ((spec.get("updateStrategy") or {}).get("type") or "RollingUpdate") != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return RolloutState("Waiting for daemon set spec update to be observed...", False)
    desired = int(status.get("desiredNumberScheduled") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    available = int(status.get("numberAvailable") or 0)
    if updated < desired:
        return RolloutState(
            f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {desired} '
            "new pods have been updated...",
            False,
        )
    if available < desired:
        return RolloutState(
            f'Waiting for daemon set "{name}" rollout to finish: {available} of {desired} '
            "updated pods are available...",
            False,
        )
    return RolloutState(f'daemon set "{name}" successfully rolled out', True)


# ------------------------------------------------------------------ history and undo


def owned_by(obj: Obj, owner: Obj) -> bool:
    uid = (owner.get("metadata") or {}).get("uid")
    name = (owner.get("metadata") or {}).get("name")
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == owner.get("kind") and (
            (uid and ref.get("uid") == uid) or (not uid and ref.get("name") == name)
        ):
            return True
    return False


def revision_of(rs: Obj) -> int:
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def history(replicasets: list[Obj]) -> list[tuple[int, str]]:
    """(revision, change cause or `<none>`) of each ReplicaSet, oldest first."""
    rows = []
    for rs in replicasets:
        rev = revision_of(rs)
        if rev <= 0:
            continue
        cause = ((rs.get("metadata") or {}).get("annotations") or {}).get(
            CHANGE_CAUSE_ANNOTATION, "<none>"
        )
        rows.append((rev, cause))
    return sorted(rows)


def undo_template(deployment: Obj, replicasets: list[Obj], to_revision: int = 0) -> Obj:
    """The pod template `rollout undo` writes back: the ReplicaSet of
    `to_revision` (0: the one before the current), without its
    pod-template-hash label. Raises RolloutError naming what is missing."""
    by_rev = {revision_of(rs): rs for rs in replicasets if revision_of(rs) > 0}
    if not by_rev:
        raise RolloutError("no rollout history found")
    current = max(by_rev)
    if to_revision == 0:
        older = [r for r in by_rev if r < current]
        if not older:
            raise RolloutError("no rollout history found")
        to_revision = max(older)
    if to_revision not in by_rev:
        raise RolloutError(f"unable to find specified revision {to_revision} in history")
    template = copy.deepcopy((by_rev[to_revision].get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(TEMPLATE_HASH_LABEL, None)
    return template


def same_template(a: Obj, b: Obj) -> bool:
    def clean(t: Obj) -> Obj:
        t = copy.deepcopy(t)
        ((t.get("metadata") or {}).get("labels") or {}).pop(TEMPLATE_HASH_LABEL, None)
        return t

    return clean(a) == clean(b)


# ------------------------------------------------------------------ wait --for


@dataclass(frozen=True)
class WaitFor:
    """A parsed `--for`: condition=Type[=value], delete, or jsonpath={expr}=value."""

    kind: str  # "condition" | "delete" | "jsonpath" | "create"
    name: str = ""
    value: str | None = None


def parse_wait_for(text: str) -> WaitFor:
    if text == "delete":
        return WaitFor("delete")
    if text == "create":
        return WaitFor("create")
    if text.startswith("condition="):
        rest = text[len("condition=") :]
        if not rest:
            raise ValueError("--for=condition= needs a condition name, e.g. condition=Ready")
        name, _, value = rest.partition("=")
        return WaitFor("condition", name, value or "true")
    if text.startswith("jsonpath="):
        rest = text[len("jsonpath=") :].strip("'\"")
        match = re.fullmatch(r"(\{[^}]*\})(?:=(.*))?", rest)
        if not match:
            raise ValueError(
                f"jsonpath wait format must be --for=jsonpath='{{.status.readyReplicas}}'=3: {text}"
            )
        return WaitFor("jsonpath", match.group(1), match.group(2))
    raise ValueError(f"unrecognized condition: {text!r}")


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """Values of a simple JSONPath (`{.status.conditions[0].type}`,
    `{.metadata.labels.app}`, `{.items[*].metadata.name}`)."""
    path = expr.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.lstrip("$")
    tokens = re.findall(r"\.([^.\[]+)|\[(\*|-?\d+)\]", path)
    current: list[Any] = [obj]
    for key, index in tokens:
        nxt: list[Any] = []
        for value in current:
            if key:
                if isinstance(value, dict) and key in value:
                    nxt.append(value[key])
            elif isinstance(value, list):
                if index == "*":
                    nxt.extend(value)
                else:
                    i = int(index)
                    if -len(value) <= i < len(value):
                        nxt.append(value[i])
        current = nxt
    return current


def jsonpath_value_text(v: Any) -> str:
    """One JSONPath value as kubectl prints it (booleans lower case, maps
    and lists as compact JSON)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        import json

        return json.dumps(v, separators=(",", ":"))
    return str(v)


def jsonpath_text(values: list[Any]) -> str:
    return " ".join(jsonpath_value_text(v) for v in values)


def jsonpath_template(obj: Any, template: str) -> str:
    """kubectl's `-o jsonpath=` output: each `{...}` replaced by its values,
    the text around kept (`{.a} {.b}\n` works)."""
    out: list[str] = []
    pos = 0
    for match in re.finditer(r"\{[^}]*\}", template):
        out.append(template[pos : match.start()])
        inner = match.group(0)[1:-1].strip()
        if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
            out.append(inner[1:-1].replace("\\n", "\n").replace("\\t", "\t"))  # {"\n"}
        else:
            out.append(jsonpath_text(jsonpath(obj, match.group(0))))
        pos = match.end()
    out.append(template[pos:])
    return "".join(out).replace("\\n", "\n").replace("\\t", "\t")


def condition_met(obj: Obj, wanted: WaitFor) -> bool:
    """Is `obj` in the state `wanted` asks for (condition or jsonpath)?"""
    if wanted.kind == "condition":
        for c in (obj.get("status") or {}).get("conditions") or []:
            if str(c.get("type", "")).lower() == wanted.name.lower():
                return str(c.get("status", "")).lower() == (wanted.value or "true").lower()
        return False
    if wanted.kind == "jsonpath":
        values = jsonpath(obj, wanted.name)
        if not values:
            return False
        if wanted.value is None:
            return True
        return jsonpath_text(values) == wanted.value
    return True


# ------------------------------------------------------------------ label / annotate


class EditError(ValueError):
    pass


def parse_edits(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """`k=v` sets, `k-` removes (kubectl's label/annotate arguments)."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for arg in args:
        if arg.endswith("-") and "=" not in arg:
            removes.append(arg[:-1])
        elif "=" in arg:
            key, _, value = arg.partition("=")
            if not key:
                raise EditError(f"invalid label spec: {arg}")
            sets[key] = value
        else:
            raise EditError(f"at least one label update is required (got {arg!r})")
    return sets, removes


def apply_edits(
    current: dict[str, str],
    sets: dict[str, str],
    removes: list[str],
    *,
    overwrite: bool,
    what: str = "label",
) -> dict[str, str]:
    """The new map, or EditError as kubectl words it."""
    out = dict(current)
    for key, value in sets.items():
        if key in out and out[key] != value and not overwrite:
            raise EditError(f"'{key}' already has a value ({out[key]}), and --overwrite is false")
        out[key] = value
    for key in removes:
        out.pop(key, None)
    return out
