"""Claiming objects through controller references: which candidates a
controller owns, which orphans it adopts and which of its own it releases.

Owns Kubernetes' ControllerRefManager rules (pkg/controller/controller_ref_manager.go):
- an object controlled by someone else is never touched;
- an object we control stays ours while the selector matches; when it no
  longer matches we release it (drop our reference), unless we are being
  deleted;
- an orphan that matches is adopted (a controller reference is added),
  unless we or it are being deleted.
Adoption and release are PatchMetadata actions; the driver applies them to
the freshest object, skipping an adoption if a controller appeared meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from podmodel.meta import KubeObject, controller_of
from podmodel.pod import Pod
from podmodel.selector import LabelSelector, selector_matches

from services.workload_controller.logic.actions import Action, PatchMetadata
from services.workload_controller.logic.pod_state import is_active
from services.workload_controller.logic.pod_template import controller_reference

T = TypeVar("T", bound=KubeObject)


@dataclass
class Claim(Generic[T]):
    """The objects `owner` controls after claiming, and the patches that
    adopt or release objects to get there."""

    owned: list[T] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


def claim_active_pods(
    owner: KubeObject, selector: LabelSelector, pods: Iterable[Pod]
) -> Claim[Pod]:
    """Claim the active pods (not terminal, not being deleted) by the owner's
    selector: what ReplicaSets and DaemonSets count."""
    return claim(
        owner,
        (p for p in pods if is_active(p)),
        lambda p: selector_matches(selector, p.metadata.labels),
    )


def claim(owner: KubeObject, candidates: Iterable[T], matches: Callable[[T], bool]) -> Claim[T]:
    """Claim `candidates` for `owner` (see the module docstring). Candidates
    the driver passes are typically the objects indexed under the owner's uid
    plus the namespace's orphans: one pass, no scan of unrelated objects."""
    result: Claim[T] = Claim()
    owner_uid = owner.metadata.uid
    owner_deleting = owner.metadata.deletion_timestamp is not None
    adopt_ref = None
    for obj in candidates:
        meta = obj.metadata
        ref = controller_of(meta)
        if ref is not None:
            if ref.uid != owner_uid:
                continue
            if matches(obj):
                result.owned.append(obj)
            elif not owner_deleting:
                result.actions.append(
                    PatchMetadata(
                        kind=obj.kind or obj.KIND,
                        namespace=meta.namespace,
                        name=meta.name,
                        uid=meta.uid,
                        remove_owner_uids=(owner_uid,),
                        reason="release: selector no longer matches",
                    )
                )
            continue
        if owner_deleting or meta.deletion_timestamp is not None or not matches(obj):
            continue
        if adopt_ref is None:
            adopt_ref = controller_reference(owner)
        result.actions.append(
            PatchMetadata(
                kind=obj.kind or obj.KIND,
                namespace=meta.namespace,
                name=meta.name,
                uid=meta.uid,
                add_owner_reference=adopt_ref,
                reason="adopt: orphan matches the selector",
            )
        )
        result.owned.append(obj)
    return result
