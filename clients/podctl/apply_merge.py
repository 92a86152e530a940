"""What `podctl apply` sends, decided as kubectl decides it: the manifest
is remembered in the `kubectl.kubernetes.io/last-applied-configuration`
annotation, so a re-apply can tell the user's own changes from fields
others own (a controller's annotations, the scheduler's binding). Labels
and annotations are merged three ways (keys others added stay, keys the
user removed from the manifest go); the spec is the manifest's, plus the
fields only servers write (a pod's nodeName and ephemeral containers).
Pure.
"""

from __future__ import annotations

import copy
import json
from typing import Any

Obj = dict[str, Any]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def last_applied_text(manifest: Obj) -> str:
    """The annotation's value: the manifest as compact JSON with sorted keys."""
    clean = copy.deepcopy(manifest)
    clean.pop("status", None)
    meta = clean.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation"):
        meta.pop(key, None)
    return json.dumps(clean, sort_keys=True, separators=(",", ":"))


def _merge_map(
    mine: dict[str, str], theirs: dict[str, str], before: dict[str, str]
) -> dict[str, str]:
    out = {k: v for k, v in theirs.items() if k not in before}
    out.update(mine)
    return out


def merged_object(manifest: Obj, existing: Obj | None) -> Obj:
    """The object to send for `manifest` given what is stored (None: create)."""
    new = copy.deepcopy(manifest)
    meta = new.setdefault("metadata", {})
    applied = last_applied_text(manifest)
    mine_annotations = dict(meta.get("annotations") or {})
    mine_annotations[LAST_APPLIED] = applied
    if existing is None:
        meta["annotations"] = mine_annotations
        return new
    old_meta = existing.get("metadata") or {}
    before: Obj = {}
    old_applied = (old_meta.get("annotations") or {}).get(LAST_APPLIED)
    if old_applied:
        try:
            before = json.loads(old_applied)
        except ValueError:
            before = {}
    before_meta = before.get("metadata") or {}
    meta["labels"] = _merge_map(
        dict(meta.get("labels") or {}),
        old_meta.get("labels") or {},
        before_meta.get("labels") or {},
    )
    meta["annotations"] = _merge_map(
        mine_annotations,
        old_meta.get("annotations") or {},
        {**(before_meta.get("annotations") or {}), LAST_APPLIED: ""},
    )
    if not meta["labels"]:
        meta.pop("labels")
    if new.get("kind") == "Pod":
        spec, old_spec = new.setdefault("spec", {}), existing.get("spec") or {}
        if not spec.get("nodeName") and old_spec.get("nodeName"):
            spec["nodeName"] = old_spec["nodeName"]
        if not spec.get("ephemeralContainers") and old_spec.get("ephemeralContainers"):
            spec["ephemeralContainers"] = old_spec["ephemeralContainers"]
    return new


def unchanged(merged: Obj, existing: Obj) -> bool:
    """Would sending `merged` change nothing a user wrote?"""
    nm, om = merged.get("metadata") or {}, existing.get("metadata") or {}
    return (
        (nm.get("labels") or {}) == (om.get("labels") or {})
        and (nm.get("annotations") or {}) == (om.get("annotations") or {})
        and (merged.get("spec") or {}) == (existing.get("spec") or {})
    )
