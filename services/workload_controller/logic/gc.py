"""The garbage-collection plan: dependents whose owners are gone are deleted,
an owner deleted with Orphan lets its dependents go free, and an owner
deleted with Foreground stays (deletionTimestamp + the `foregroundDeletion`
finalizer) until its blocking dependents are gone. Follows
pkg/controller/garbagecollector (attemptToDeleteItem,
processDeletingDependentsItem, orphanDependents).

Owns `plan_garbage_collection`. Pure: a snapshot of objects in, actions out.

How deletion propagation reaches this plan: the API deletes an owner with
propagationPolicy Background by removing it (its dependents then have a
dangling reference and are deleted here); with Foreground it sets
deletionTimestamp and the `foregroundDeletion` finalizer; with Orphan it sets
deletionTimestamp and the `orphan` finalizer. The store removes an object
whose deletionTimestamp is set once its finalizers list is empty.

Owners are identified by uid, as Kubernetes does. A reference whose owner is
missing from the snapshot is "dangling"; deletes based on that carry the
owner in `DeleteObject.verify_absent`, and the driver confirms absence in
the store first (Kubernetes does a live read), so a lagging cache never
deletes the dependents of a live owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from podmodel.meta import KubeObject, OwnerReference

from services.workload_controller.logic.actions import Action, DeleteObject, PatchMetadata

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"


def _kind(obj: KubeObject) -> str:
    return obj.kind or obj.KIND


def _deleting_dependents(obj: KubeObject) -> bool:
    meta = obj.metadata
    return meta.deletion_timestamp is not None and FOREGROUND_FINALIZER in meta.finalizers


def _patch(obj: KubeObject, reason: str, **changes: Any) -> PatchMetadata:
    meta = obj.metadata
    return PatchMetadata(
        kind=_kind(obj),
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        reason=reason,
        **changes,
    )


def plan_garbage_collection(objects: Iterable[KubeObject]) -> list[Action]:
    """Actions that carry out deletion propagation over `objects` (every
    object that owns or is owned, of every kind, one snapshot)."""
    snapshot = list(objects)
    by_uid: dict[str, KubeObject] = {o.metadata.uid: o for o in snapshot if o.metadata.uid}
    dependents: dict[str, list[tuple[KubeObject, OwnerReference]]] = {}
    for obj in snapshot:
        for ref in obj.metadata.owner_references:
            dependents.setdefault(ref.uid, []).append((obj, ref))

    orphaning: list[Action] = []
    finalizing: list[Action] = []
    deleting: list[Action] = []

    for owner in snapshot:
        meta = owner.metadata
        if meta.deletion_timestamp is None:
            continue
        deps = dependents.get(meta.uid, [])
        if ORPHAN_FINALIZER in meta.finalizers:
            for dep, _ in deps:
                orphaning.append(
                    _patch(dep, "orphan: owner deleted with Orphan", remove_owner_uids=(meta.uid,))
                )
            finalizing.append(
                _patch(owner, "dependents orphaned", remove_finalizers=(ORPHAN_FINALIZER,))
            )
        elif FOREGROUND_FINALIZER in meta.finalizers:
            blocking = [dep for dep, ref in deps if ref.block_owner_deletion]
            if not blocking:
                finalizing.append(
                    _patch(
                        owner,
                        "no blocking dependents left",
                        remove_finalizers=(FOREGROUND_FINALIZER,),
                    )
                )

    for item in snapshot:
        refs = item.metadata.owner_references
        if not refs:
            continue
        if item.metadata.deletion_timestamp is not None:
            continue  # already going (a foreground-deleting item is handled above)
        solid: list[OwnerReference] = []
        dangling: list[OwnerReference] = []
        waiting: list[OwnerReference] = []
        for ref in refs:
            found = by_uid.get(ref.uid)
            if found is None:
                dangling.append(ref)
            elif _deleting_dependents(found):
                waiting.append(ref)
            else:
                solid.append(ref)
        if not dangling and not waiting:
            continue
        if solid:
            # Still owned by someone alive: only drop the references to
            # owners that are gone or waiting for us.
            orphaning.append(
                _patch(
                    item,
                    "drop references to deleted owners",
                    remove_owner_uids=tuple(r.uid for r in (*dangling, *waiting)),
                )
            )
            continue
        if waiting and dependents.get(item.metadata.uid):
            policy = "Foreground"
        elif ORPHAN_FINALIZER in item.metadata.finalizers:
            policy = "Orphan"
        elif FOREGROUND_FINALIZER in item.metadata.finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        deleting.append(
            DeleteObject(
                kind=_kind(item),
                namespace=item.metadata.namespace,
                name=item.metadata.name,
                uid=item.metadata.uid,
                propagation_policy=policy,
                reason="garbage collection: owner deleted",
                verify_absent=tuple(dangling),
            )
        )
    return [*orphaning, *finalizing, *deleting]
