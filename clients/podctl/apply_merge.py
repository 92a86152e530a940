"""What `podctl apply` sends, decided as kubectl decides it: the manifest
is remembered in the `kubectl.kubernetes.io/last-applied-configuration`
annotation, so a re-apply can tell the user's own changes from fields
others own (a controller's annotations, the scheduler's binding). Labels,
annotations and the spec are merged three ways, map by map (keys others
added stay: a Job's selector, a pod's nodeName; keys the user removed from
the manifest go); lists and values are the manifest's.
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


_MISSING: Any = object()


def three_way(mine: Any, live: Any, before: Any) -> Any:
    """kubectl apply's merge for one value: maps merge key by key (a key
    only the live object has, and the last applied manifest did not, is
    someone else's and stays; a key the last manifest had and this one does
    not is removed); anything else is the manifest's."""
    if not isinstance(mine, dict) or not isinstance(live, dict):
        return copy.deepcopy(mine)
    before_map = before if isinstance(before, dict) else {}
    out: dict[str, Any] = {}
    for key, value in live.items():
        if key not in mine and key not in before_map:
            out[key] = copy.deepcopy(value)
    for key, value in mine.items():
        out[key] = three_way(value, live.get(key, _MISSING), before_map.get(key, _MISSING))
    return out


def merged_object(manifest: Obj, existing: Obj | None) -> Obj:
    """The object to send for `manifest` given what is stored (None: create)."""
    new = copy.deepcopy(manifest)
    meta = new.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[LAST_APPLIED] = last_applied_text(manifest)
    meta["annotations"] = annotations
    if existing is None:
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
    for field in ("labels", "annotations"):
        merged = three_way(
            meta.get(field) or {}, old_meta.get(field) or {}, before_meta.get(field) or {}
        )
        if merged:
            meta[field] = merged
        else:
            meta.pop(field, None)
    if "spec" in new or "spec" in existing:
        new["spec"] = three_way(
            new.get("spec") or {}, existing.get("spec") or {}, before.get("spec")
        )
    return new


def unchanged(merged: Obj, existing: Obj) -> bool:
    """Would sending `merged` change nothing a user wrote?"""
    nm, om = merged.get("metadata") or {}, existing.get("metadata") or {}
    return (
        (nm.get("labels") or {}) == (om.get("labels") or {})
        and (nm.get("annotations") or {}) == (om.get("annotations") or {})
        and (merged.get("spec") or {}) == (existing.get("spec") or {})
    )
