"""Pure request handling of the workload-controller API: request/reply types and
the update rules Kubernetes enforces on pods (ValidatePodUpdate, ephemeral
container additions). No I/O here, so the rules are unit-testable; the NATS
side lives in intake.py. The request/reply types are podmodel.api.
"""

from __future__ import annotations

from typing import Any

import msgspec
from podmodel.codec import DecodeError, ErrorReply, FieldError, object_from_raw
from podmodel.config import ConfigMap, Secret
from podmodel.defaults import apply_defaults
from podmodel.manifest import decode_error_message
from podmodel.meta import KubeObject
from podmodel.pod import Container, EphemeralContainer, Pod, PodSpec
from podmodel.registry import kind_type
from podmodel.validation import validate

from services.workload_controller.unknown_fields import unknown_fields

POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
    "`spec.tolerations` (only additions to existing tolerations), "
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _without_images(containers: list[Container]) -> list[Container]:
    return [msgspec.structs.replace(c, image="") for c in containers]


def validate_pod_update(new: PodSpec, old: PodSpec) -> list[FieldError]:
    """Kubernetes' ValidatePodUpdate: only images, activeDeadlineSeconds (set or
    lowered, never removed), toleration additions and a grace period may change."""
    errs: list[FieldError] = []
    if old.active_deadline_seconds is not None and (
        new.active_deadline_seconds is None
        or new.active_deadline_seconds > old.active_deadline_seconds
    ):
        errs.append(
            FieldError(
                field="spec.activeDeadlineSeconds",
                message="must be less than or equal to the previous value and may not be removed",
            )
        )
    for i, tol in enumerate(old.tolerations):
        if tol not in new.tolerations:
            errs.append(
                FieldError(
                    field=f"spec.tolerations[{i}]", message="existing toleration may not be removed"
                )
            )
    if len(new.containers) != len(old.containers) or len(new.init_containers) != len(
        old.init_containers
    ):
        errs.append(FieldError(field="spec", message="Forbidden: " + POD_UPDATE_FORBIDDEN))
        return errs
    mutable_cleared_new = msgspec.structs.replace(
        new,
        containers=_without_images(new.containers),
        init_containers=_without_images(new.init_containers),
        active_deadline_seconds=None,
        tolerations=[],
        termination_grace_period_seconds=0,
        ephemeral_containers=[],
    )
    mutable_cleared_old = msgspec.structs.replace(
        old,
        containers=_without_images(old.containers),
        init_containers=_without_images(old.init_containers),
        active_deadline_seconds=None,
        tolerations=[],
        termination_grace_period_seconds=0,
        ephemeral_containers=[],
    )
    if mutable_cleared_new != mutable_cleared_old:
        errs.append(FieldError(field="spec", message="Forbidden: " + POD_UPDATE_FORBIDDEN))
    return errs


IMMUTABLE_SET = "Forbidden: field is immutable when `immutable` is set"


def validate_config_update(new: ConfigMap | Secret, old: ConfigMap | Secret) -> list[FieldError]:
    """ValidateConfigMapUpdate / ValidateSecretUpdate: nothing of an
    immutable one changes, `immutable` is never unset, a secret keeps its type."""
    errs: list[FieldError] = []
    if isinstance(new, Secret) and isinstance(old, Secret) and new.type != old.type:
        errs.append(
            FieldError(field="type", message=f'Invalid value: "{new.type}": field is immutable')
        )
    if not old.immutable:
        return errs
    if not new.immutable:
        errs.append(FieldError(field="immutable", message=IMMUTABLE_SET))
    if new.data != old.data:
        errs.append(FieldError(field="data", message=IMMUTABLE_SET))
    if (
        isinstance(new, ConfigMap)
        and isinstance(old, ConfigMap)
        and new.binary_data != old.binary_data
    ):
        errs.append(FieldError(field="binaryData", message=IMMUTABLE_SET))
    return errs


def _forbidden_ephemeral_fields(path: str, c: EphemeralContainer) -> list[FieldError]:
    """Ephemeral containers are debugging shells: no ports, probes, lifecycle,
    resources or restart policy (Kubernetes' validateEphemeralContainers)."""
    checks = [
        ("ports", bool(c.ports)),
        ("livenessProbe", c.liveness_probe is not None),
        ("readinessProbe", c.readiness_probe is not None),
        ("startupProbe", c.startup_probe is not None),
        ("lifecycle", c.lifecycle is not None),
        ("resources", bool(c.resources.limits or c.resources.requests)),
        ("restartPolicy", c.restart_policy is not None),
    ]
    return [
        FieldError(
            field=f"{path}.{name}", message="Forbidden: may not be set for ephemeral containers"
        )
        for name, bad in checks
        if bad
    ]


def validate_ephemeral_update(pod: Pod, wanted: list[EphemeralContainer]) -> list[FieldError]:
    """Ephemeral containers may only be added: existing ones must stay as they
    are, and new ones may not carry the fields forbidden above."""
    errs: list[FieldError] = []
    existing = {c.name: c for c in pod.spec.ephemeral_containers}
    seen = {c.name for c in wanted}
    for name in existing:
        if name not in seen:
            errs.append(
                FieldError(
                    field="spec.ephemeralContainers",
                    message=f"Forbidden: existing {name!r} may not be removed",
                )
            )
    for i, c in enumerate(wanted):
        path = f"spec.ephemeralContainers[{i}]"
        old = existing.get(c.name)
        if old is not None:
            if old != c:
                errs.append(
                    FieldError(
                        field=path,
                        message="Forbidden: existing ephemeral containers may not change",
                    )
                )
            continue
        errs.extend(_forbidden_ephemeral_fields(path, c))
    return errs


def prepare_object(raw: Any) -> tuple[KubeObject, list[str]] | ErrorReply:
    """Decode, default and validate a client's object the way manifests are
    loaded: unknown fields become warnings, every invalid field is listed, and
    status is dropped because it is never taken from a client."""
    if not isinstance(raw, dict):
        return ErrorReply(error="object: expected a JSON/msgpack map")
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        return ErrorReply(error="kind: Required value: kind not set")
    cls = kind_type(kind)
    if cls is None:
        return ErrorReply(error=f"kind: unknown kind {kind!r}", reason="BadRequest")
    raw = {k: v for k, v in raw.items() if k != "status"}
    warnings = [f"{path}: unknown field, ignored" for path in unknown_fields(raw, cls)]
    try:
        obj = object_from_raw(raw)
    except DecodeError as exc:
        return ErrorReply(error=decode_error_message(str(exc)))
    apply_defaults(obj)
    problems = validate(obj)
    if problems:
        return ErrorReply(
            error=f"{kind} {obj.metadata.name!r} is invalid",
            reason="Invalid",
            code=422,
            details=problems,
        )
    return obj, warnings
