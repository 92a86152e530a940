"""`get -o custom-columns=HEADER:PATH,...` and `get --sort-by=PATH`, as
kubectl prints and orders them (kubectl's messages for bad specs). Pure.
"""

from __future__ import annotations

from clients.podctl.rollout_logic import jsonpath, jsonpath_value_text
from clients.podctl.tables import Obj


def parse_custom_columns(spec: str) -> list[tuple[str, str]]:
    """`NAME:.metadata.name,NODE:.spec.nodeName` -> [(header, path)]."""
    if not spec.strip():
        raise ValueError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header or not path:
            raise ValueError(
                f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            )
        columns.append((header, _braced(path)))
    return columns


def _braced(path: str) -> str:
    path = path.strip()
    return path if path.startswith("{") else "{" + path + "}"


def custom_column_rows(objs: list[Obj], columns: list[tuple[str, str]]) -> list[list[str]]:
    """One row per object; a path with no value prints `<none>`, several
    values are joined with commas (as kubectl does)."""
    rows = []
    for obj in objs:
        row = []
        for _header, path in columns:
            values = jsonpath(obj, path)
            row.append(",".join(jsonpath_value_text(v) for v in values) if values else "<none>")
        rows.append(row)
    return rows


def sort_by(objs: list[Obj], path: str) -> list[Obj]:
    """Objects ordered by the value at `path` (`.metadata.creationTimestamp`,
    `{.status.containerStatuses[0].restartCount}`): numbers by value,
    anything else as text (RFC 3339 times sort as text); objects without
    the field first. Stable, so equal keys keep the listing's order."""
    expr = _braced(path)
    if "[*]" in expr:
        raise ValueError(f"couldn't sort by {path}: the path must give one value per object")

    def key(obj: Obj) -> tuple[int, float, str]:
        values = jsonpath(obj, expr)
        if not values:
            return (0, 0.0, "")
        value = values[0]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (1, float(value), "")
        return (2, 0.0, jsonpath_value_text(value))

    keys = [key(o) for o in objs]
    if objs and all(k[0] == 0 for k in keys):
        raise ValueError(f"couldn't find any field with path {expr!r} in the list of objects")
    order = sorted(range(len(objs)), key=keys.__getitem__)
    return [objs[i] for i in order]
