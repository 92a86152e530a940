"""Deleting an object with a propagation policy, as the Kubernetes API
server does it; shared by the API intake (podbus.api.delete) and the
controllers' DeleteObject actions.

- Background (default): the object is deleted now (a bound pod gracefully:
  deletionTimestamp + grace period, the node-agent finishes it; an unbound
  pod at once); the garbage collector then deletes its dependents.
- Foreground: the `foregroundDeletion` finalizer is added and the object is
  marked (deletionTimestamp); the garbage collector deletes the blocking
  dependents, then removes the finalizer, which removes the object.
- Orphan: the `orphan` finalizer is added and the object is marked; the
  garbage collector removes the owner references from the dependents, then
  the finalizer.

Pods own nothing, so for a pod every policy is a graceful delete. Adding
the finalizer is a compare-and-set retried on conflict; nothing else is
written here.
"""

from __future__ import annotations

from podmodel.meta import KubeObject
from podmodel.registry import canonical_kind
from servicekit.store import Conflict, Invalid, Store

from services.workload_controller.logic.gc import FOREGROUND_FINALIZER, ORPHAN_FINALIZER

POLICIES = ("Background", "Foreground", "Orphan")
_FINALIZER = {"Foreground": FOREGROUND_FINALIZER, "Orphan": ORPHAN_FINALIZER}


async def delete_with_policy(
    store: Store,
    kind: str,
    namespace: str,
    name: str,
    *,
    policy: str = "Background",
    grace_period_seconds: int | None = None,
    uid: str = "",
    attempts: int = 5,
) -> KubeObject | None:
    """Delete one object (see the module docstring). Returns the marked
    object, or None when it was removed at once (or already gone while
    adding the finalizer). `uid`: only delete that incarnation."""
    policy = policy or "Background"
    if policy not in POLICIES:
        raise Invalid(
            f"propagationPolicy: Unsupported value: {policy!r}: supported values: "
            + ", ".join(repr(p) for p in POLICIES),
            kind=kind,
            namespace=namespace,
            name=name,
        )
    canonical = canonical_kind(kind) or kind
    finalizer = _FINALIZER.get(policy) if canonical != "Pod" else None
    expected: str | None = None
    if finalizer is not None or uid:
        for attempt in range(attempts):
            current = await store.get(canonical, namespace, name)
            if current is None or (uid and current.metadata.uid != uid):
                return None
            expected = current.metadata.resource_version
            if finalizer is None or finalizer in current.metadata.finalizers:
                break
            if current.metadata.deletion_timestamp is not None:
                break  # already being deleted under another policy
            current.metadata.finalizers = [*current.metadata.finalizers, finalizer]
            try:
                updated = await store.update(current)
            except Conflict:
                if attempt == attempts - 1:
                    raise
                continue
            expected = updated.metadata.resource_version
            break
    try:
        return await store.delete(
            canonical,
            namespace,
            name,
            grace_period_seconds=grace_period_seconds,
            expected_rv=expected,
        )
    except Conflict:
        if expected is None:
            raise
        # Changed between our read and the delete: delete without the guard
        # only if it is still the same incarnation.
        current = await store.get(canonical, namespace, name)
        if current is None or (uid and current.metadata.uid != uid):
            return None
        return await store.delete(
            canonical, namespace, name, grace_period_seconds=grace_period_seconds
        )
