"""Finding the fields of a client's object that podbus does not implement,
fast enough for the API's hot path.

podmodel.manifest.unknown_fields answers the same question by walking the
raw object against msgspec's generic type tree, one call and a chain of
isinstance checks per value. Here each type is compiled once into a small
tree of shapes in which every scalar field is `None`, so the walk touches
only maps and lists and never calls anything for a string or a number:
about five times faster on a Pod, which matters when it runs for every
apply. The answer (wire-name paths, in document order) is the same; a unit
test compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

_LIST_TYPES = (
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
    msgspec.inspect.VarTupleType,
)


@dataclass(eq=False)
class StructShape:
    """A struct: wire name -> shape of the field (None: a scalar)."""

    fields: dict[str, Shape] = field(default_factory=dict)


@dataclass(eq=False)
class ListShape:
    item: Shape


@dataclass(eq=False)
class TupleShape:
    items: list[Shape]


@dataclass(eq=False)
class MapShape:
    value: Shape


@dataclass(eq=False)
class UnionShape:
    """A union: the member a map or a list decodes into (or None)."""

    for_map: Shape
    for_list: Shape


Shape = StructShape | ListShape | TupleShape | MapShape | UnionShape | None

_compiled: dict[type, StructShape] = {}


def _struct(cls: type) -> StructShape:
    shape = _compiled.get(cls)
    if shape is not None:
        return shape
    shape = StructShape()
    _compiled[cls] = shape  # before the fields: recursive types refer to it
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    for f in info.fields:
        shape.fields[f.encode_name] = _compile(f.type)
    return shape


def _compile(t: msgspec.inspect.Type) -> Shape:
    while isinstance(t, msgspec.inspect.Metadata):
        t = t.type
    if isinstance(t, msgspec.inspect.StructType):
        return _struct(t.cls)
    if isinstance(t, _LIST_TYPES):
        return ListShape(_compile(t.item_type))
    if isinstance(t, msgspec.inspect.TupleType):
        return TupleShape([_compile(i) for i in t.item_types])
    if isinstance(t, msgspec.inspect.DictType):
        return MapShape(_compile(t.value_type))
    if isinstance(t, msgspec.inspect.UnionType):
        for_map: Shape = None
        for_list: Shape = None
        for member in t.types:
            shape = _compile(member)
            if for_map is None and isinstance(shape, (StructShape, MapShape)):
                for_map = shape
            if for_list is None and isinstance(shape, (ListShape, TupleShape)):
                for_list = shape
        if for_map is None and for_list is None:
            return None
        return UnionShape(for_map, for_list)
    return None


def shape_of(cls: type) -> StructShape:
    """The compiled shape of a struct type (cached)."""
    return _struct(cls)


def unknown_fields(raw: Any, cls: type) -> list[str]:
    """Paths of every key in `raw` that `cls` has no field for (wire names,
    `spec.containers[0].foo`), following structs, lists, maps and unions;
    null values are skipped (Kubernetes reads null as unset)."""
    shape = _struct(cls)
    found: list[str] = []
    if _any_unknown(raw, shape):  # the usual answer is "none": no paths built for it
        _walk(raw, shape, "", found)
    return found


def _any_unknown(raw: Any, shape: Shape) -> bool:
    """Whether `_walk` would find anything (the same traversal, without paths)."""
    if type(shape) is UnionShape:
        shape = shape.for_map if isinstance(raw, dict) else shape.for_list
    if type(shape) is StructShape:
        if not isinstance(raw, dict):
            return False
        fields = shape.fields
        for key, value in raw.items():
            if key not in fields:
                return True
            sub = fields[key]
            if sub is not None and value is not None and _any_unknown(value, sub):
                return True
    elif type(shape) is ListShape:
        if isinstance(raw, list) and shape.item is not None:
            item = shape.item
            for value in raw:
                if value is not None and _any_unknown(value, item):
                    return True
    elif type(shape) is MapShape:
        if isinstance(raw, dict) and shape.value is not None:
            sub = shape.value
            for value in raw.values():
                if value is not None and _any_unknown(value, sub):
                    return True
    elif type(shape) is TupleShape and isinstance(raw, list):
        for value, sub in zip(raw, shape.items, strict=False):
            if sub is not None and value is not None and _any_unknown(value, sub):
                return True
    return False


def _walk(raw: Any, shape: Shape, path: str, found: list[str]) -> None:
    if type(shape) is UnionShape:
        shape = shape.for_map if isinstance(raw, dict) else shape.for_list
    if type(shape) is StructShape:
        if not isinstance(raw, dict):
            return
        fields = shape.fields
        for key, value in raw.items():
            if key not in fields:
                found.append(f"{path}.{key}" if path else str(key))
                continue
            sub = fields[key]
            if sub is not None and value is not None:
                _walk(value, sub, f"{path}.{key}" if path else key, found)
    elif type(shape) is ListShape:
        if isinstance(raw, list) and shape.item is not None:
            item = shape.item
            for i, value in enumerate(raw):
                if value is not None:
                    _walk(value, item, f"{path}[{i}]", found)
    elif type(shape) is MapShape:
        if isinstance(raw, dict) and shape.value is not None:
            sub = shape.value
            for key, value in raw.items():
                if value is not None:
                    _walk(value, sub, f"{path}[{key}]", found)
    elif type(shape) is TupleShape and isinstance(raw, list):
        for i, (value, sub) in enumerate(zip(raw, shape.items, strict=False)):
            if sub is not None and value is not None:
                _walk(value, sub, f"{path}[{i}]", found)
