"""Loading what users write: YAML or JSON manifests into typed objects, and
printing objects back as kubectl's `-o yaml` / `-o json` do.

Owns the path from text to validated objects: YAML (block or flow style,
multi-document) or JSON (one value or a stream), `kind: List` and any
`*List`, conversion to the registered type, Kubernetes defaults, and
validation. Nothing a user wrote is dropped without a word: a kind podbus
does not run is skipped with a warning, a field it does not implement comes
back as a warning with its path, and every error names its document and
field path (`deployment.yaml#2 (Deployment/web): spec.replicas: ...`).

YAML is read as Kubernetes reads it (sigs.k8s.io/yaml over YAML 1.1):
timestamps stay strings, non-string keys become strings, an explicit null
for a field means "unset", a duplicate key is an error.

Pure apart from `load_manifest_files`, which reads the files it is given.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import msgspec
import yaml

from podmodel.codec import DecodeError, object_from_raw
from podmodel.meta import KubeObject
from podmodel.registry import kind_type

MANIFEST_EXTENSIONS = (".yaml", ".yml", ".json")


@dataclass
class LoadResult:
    """The objects that loaded cleanly, and every warning and error, each
    message prefixed by its document (`file#n (Kind/name): ...`)."""

    objects: list[KubeObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def extend(self, other: LoadResult) -> None:
        self.objects.extend(other.objects)
        self.warnings.extend(other.warnings)
        self.errors.extend(other.errors)


# ------------------------------------------------------------------ YAML reading


class _KubeYamlLoader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver (Kubernetes keeps
    `2024-01-01T00:00:00Z` a string) that records duplicate keys."""

    duplicates: list[str]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append(
                    f'line {line}: mapping key "{key}" already defined at line {seen[key]}'
                )
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


_KubeYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_documents(text: str) -> tuple[list[Any], list[str]]:
    """Every document of a YAML stream, and duplicate-key complaints."""
    loader = _KubeYamlLoader(text)
    loader.duplicates = []
    docs: list[Any] = []
    try:
        while loader.check_data():
            docs.append(loader.get_data())
    finally:
        loader.dispose()
    return docs, loader.duplicates


def _json_documents(text: str) -> list[Any] | None:
    """A JSON value or a stream of them (as kubectl accepts), or None if the
    text is not JSON (then YAML, a superset in practice, gets its turn)."""
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    pos, end = 0, len(text)
    try:
        while True:
            while pos < end and text[pos] in " \t\r\n":
                pos += 1
            if pos >= end:
                return docs
            doc, pos = decoder.raw_decode(text, pos)
            docs.append(doc)
    except json.JSONDecodeError:
        return None


def _string_keys(value: Any) -> Any:
    """Mapping keys as strings, as sigs.k8s.io/yaml converts them
    (`80:` -> "80", `yes:` -> "true")."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(k, bool):
                k = "true" if k else "false"
            elif k is None:
                k = "null"
            elif not isinstance(k, str):
                k = str(k)
            out[k] = _string_keys(v)
        return out
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def parse_documents(text: str | bytes) -> tuple[list[Any], list[str]]:
    """The raw documents of a manifest stream (JSON or YAML), empty ones
    kept as None so numbering follows the stream; and problems found while
    reading (duplicate keys). Raises ValueError when the text is neither."""
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")
    elif text.startswith("\ufeff"):
        text = text[1:]
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        docs = _json_documents(text)
        if docs is not None:
            return docs, []
    try:
        docs, duplicates = _yaml_documents(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {_yaml_message(exc)}") from exc
    return [_string_keys(d) for d in docs], duplicates


def _yaml_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1} column {mark.column + 1}: {exc.problem}"
    return str(exc)


# ------------------------------------------------------------------ unknown fields


@cache
def _struct_fields(cls: type) -> dict[str, msgspec.inspect.Type]:
    """Wire name -> field type of a Struct class (cached: the walk is per document)."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.encode_name: f.type for f in info.fields}


_LIST_TYPES = (
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
    msgspec.inspect.VarTupleType,
)


def _unwrap(t: msgspec.inspect.Type, raw: Any) -> msgspec.inspect.Type | None:
    """The member of a union (or the type under Annotated metadata) that
    `raw`'s shape would decode into, or None if no walkable type fits."""
    while isinstance(t, msgspec.inspect.Metadata):
        t = t.type
    if isinstance(t, msgspec.inspect.UnionType):
        for member in t.types:
            chosen = _unwrap(member, raw)
            if chosen is None:
                continue
            if isinstance(raw, dict) and isinstance(
                chosen, (msgspec.inspect.StructType, msgspec.inspect.DictType)
            ):
                return chosen
            if isinstance(raw, list) and isinstance(
                chosen, (*_LIST_TYPES, msgspec.inspect.TupleType)
            ):
                return chosen
        return None
    return t


def _walk(raw: Any, t: msgspec.inspect.Type, path: str, found: list[str], prune: bool) -> None:
    """Collect the paths of keys `t` has no field for; with `prune`, also
    delete null-valued fields (Kubernetes reads null as unset)."""
    chosen = _unwrap(t, raw)
    if chosen is None:
        return
    if isinstance(chosen, msgspec.inspect.StructType):
        if not isinstance(raw, dict):
            return
        fields = _struct_fields(chosen.cls)
        for key in list(raw):
            child = f"{path}.{key}" if path else str(key)
            sub = fields.get(key)
            if sub is None:
                found.append(child)
                continue
            value = raw[key]
            if value is None:
                if prune:
                    del raw[key]
                continue
            _walk(value, sub, child, found, prune)
    elif isinstance(chosen, _LIST_TYPES):
        if isinstance(raw, list):
            for i, item in enumerate(raw):
                _walk(item, chosen.item_type, f"{path}[{i}]", found, prune)
    elif isinstance(chosen, msgspec.inspect.TupleType):
        if isinstance(raw, list):
            for i, (item, item_type) in enumerate(zip(raw, chosen.item_types, strict=False)):
                _walk(item, item_type, f"{path}[{i}]", found, prune)
    elif isinstance(chosen, msgspec.inspect.DictType) and isinstance(raw, dict):
        for key, value in raw.items():
            _walk(value, chosen.value_type, f"{path}[{key}]", found, prune)


@cache
def _type_info(type: type) -> msgspec.inspect.Type:
    """msgspec's type tree of a kind, built once per type: building it walks
    every nested struct (about 20 ms for a Pod), far more than a walk."""
    return msgspec.inspect.type_info(type)


def unknown_fields(raw: Any, type: type) -> list[str]:
    """Paths (`spec.template.spec.containers[0].foo`, wire names) of every
    key in `raw` that the msgspec Struct `type` has no field for, following
    nested structs, lists, maps and optional values. Pure: `raw` is untouched."""
    found: list[str] = []
    _walk(raw, _type_info(type), "", found, prune=False)
    return found


def _prune_and_find_unknown(raw: dict[str, Any], type: type) -> list[str]:
    found: list[str] = []
    _walk(raw, _type_info(type), "", found, prune=True)
    return found


# ------------------------------------------------------------------ documents -> objects

_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")


def decode_error_message(message: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.spec.replicas`" as
    "spec.replicas: Expected `int`, got `str`"; a missing field as
    "spec.containers[0].name: Required value"."""
    m = _MSGSPEC_PATH.match(message)
    path, msg = "", message
    if m is not None:
        path, msg = m.group("path").lstrip("."), m.group("msg")
    missing = _MISSING_FIELD.match(msg)
    if missing is not None:
        name = missing.group("name")
        return f"{path}.{name}: Required value" if path else f"{name}: Required value"
    return f"{path}: {msg}" if path else msg


def _ensure_kinds_registered() -> None:
    """Importing the kind modules registers them (lazily: they import us not)."""
    import podmodel.event
    import podmodel.node
    import podmodel.pod
    import podmodel.workloads  # noqa: F401


def _label(raw: dict[str, Any]) -> str:
    kind = raw.get("kind") or "?"
    meta = raw.get("metadata")
    name = meta.get("name") or meta.get("generateName") if isinstance(meta, dict) else None
    return f"{kind}/{name}" if name else str(kind)


def _is_list_kind(kind: Any) -> bool:
    return isinstance(kind, str) and kind.endswith("List") and kind_type(kind) is None


def _load_object(raw: Any, where: str, result: LoadResult) -> None:
    """One document (or list item): kind lookup, unknown fields, decode,
    defaults, validation. Appends to `result`."""
    from podmodel.defaults import apply_defaults
    from podmodel.validation import validate

    if not isinstance(raw, dict):
        result.errors.append(f"{where}: expected an object, got {_json_type(raw)}")
        return
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        result.errors.append(f"{where} ({_label(raw)}): kind: Required value: kind not set")
        return
    prefix = f"{where} ({_label(raw)})"
    cls = kind_type(kind)
    if cls is None:
        result.warnings.append(f"{where}: skipped {_label(raw)}: podbus does not run kind {kind}")
        return
    if kind != cls.KIND:  # kinds are case-sensitive in manifests; aliases are for podctl
        result.errors.append(f'{prefix}: kind: Invalid value: "{kind}": did you mean "{cls.KIND}"?')
        return
    api_version = raw.get("apiVersion")
    if api_version not in (None, "", cls.API_VERSION):
        result.errors.append(
            f'{prefix}: apiVersion: no matches for kind "{kind}" in version "{api_version}" '
            f'(podbus serves {kind} as "{cls.API_VERSION}")'
        )
        return
    for path in _prune_and_find_unknown(raw, cls):
        result.warnings.append(f"{prefix}: {path}: unknown field, ignored")
    try:
        obj = object_from_raw(raw)
    except DecodeError as exc:
        result.errors.append(f"{prefix}: {decode_error_message(str(exc))}")
        return
    apply_defaults(obj)
    problems = validate(obj)
    if problems:
        result.errors.extend(f"{prefix}: {p}" for p in problems)
        return
    result.objects.append(obj)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else type(value).__name__


def load_manifests(text: str | bytes, source: str = "<stdin>") -> LoadResult:
    """Every object in a manifest stream, defaulted and validated.

    Documents are numbered from 1 in stream order (`source#n`); empty ones
    are skipped; `kind: List` and any `*List` contribute their items (an item
    without `kind` takes the list's element kind). Objects that fail to
    decode or validate are left out and reported in `errors`."""
    _ensure_kinds_registered()
    result = LoadResult()
    try:
        docs, duplicates = parse_documents(text)
    except ValueError as exc:
        result.errors.append(f"{source}: {exc}")
        return result
    result.errors.extend(f"{source}: {d}" for d in duplicates)
    for n, doc in enumerate(docs, start=1):
        where = f"{source}#{n}"
        if doc is None or doc == {}:
            continue
        if isinstance(doc, dict) and _is_list_kind(doc.get("kind")):
            _load_list(doc, where, result)
        else:
            _load_object(doc, where, result)
    return result


def _load_list(doc: dict[str, Any], where: str, result: LoadResult) -> None:
    items = doc.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        result.errors.append(f"{where} ({doc['kind']}): items: expected an array")
        return
    element_kind = doc["kind"][: -len("List")]
    for i, item in enumerate(items):
        if item is None:
            continue
        if isinstance(item, dict) and not item.get("kind") and element_kind:
            item = {"kind": element_kind, **item}
        _load_object(item, f"{where}.items[{i}]", result)


def manifest_paths(path: str) -> list[str]:
    """The manifest files of a directory, sorted, dot-files ignored, not
    recursive (as `kubectl apply -f dir`); a file path is itself."""
    if not os.path.isdir(path):
        return [path]
    return [
        os.path.join(path, name)
        for name in sorted(os.listdir(path))
        if not name.startswith(".")
        and name.endswith(MANIFEST_EXTENSIONS)
        and os.path.isfile(os.path.join(path, name))
    ]


def load_manifest_files(paths: list[str]) -> LoadResult:
    """load_manifests over files and directories (see manifest_paths); an
    unreadable path is an error, not an exception."""
    result = LoadResult()
    for given in paths:
        for path in manifest_paths(given):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as exc:
                result.errors.append(f"{path}: {exc.strerror or exc}")
                continue
            result.extend(load_manifests(data, source=path))
    return result


# ------------------------------------------------------------------ printing


class _KubeYamlDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, as kubectl prints them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KubeYamlDumper.add_representer(str, _represent_str)


def _printable(obj: KubeObject | list[KubeObject]) -> Any:
    """An object as plain values; several as kubectl's `kind: List`."""
    if isinstance(obj, list):
        return {
            "apiVersion": "v1",
            "items": [msgspec.to_builtins(o) for o in obj],
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
    return msgspec.to_builtins(obj)


def dump_yaml(obj: KubeObject | list[KubeObject]) -> str:
    """`kubectl get -o yaml`: apiVersion, kind, metadata, spec, status in
    that order, fields in declaration order, block style, defaults omitted."""
    return yaml.dump(
        _printable(obj),
        Dumper=_KubeYamlDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )


def dump_json(obj: KubeObject | list[KubeObject]) -> str:
    """`kubectl get -o json`: four-space indentation, a trailing newline."""
    return json.dumps(_printable(obj), indent=4, ensure_ascii=False) + "\n"


__all__ = [
    "MANIFEST_EXTENSIONS",
    "LoadResult",
    "decode_error_message",
    "dump_json",
    "dump_yaml",
    "load_manifest_files",
    "load_manifests",
    "manifest_paths",
    "parse_documents",
    "unknown_fields",
]
