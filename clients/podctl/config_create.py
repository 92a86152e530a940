"""`podctl create configmap|secret generic NAME --from-literal/--from-file/
--from-env-file`: the object kubectl would build, with kubectl's messages.
Reading the files is the only I/O; what they become is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from podmodel.config import encode_base64
from podmodel.validation import config_key_problem


class ConfigSourceError(ValueError):
    """A source kubectl would refuse; the message is kubectl's."""


def _add(data: dict[str, bytes], key: str, value: bytes, kind: str, name: str) -> None:
    why = config_key_problem(key)
    if why is not None:
        raise ConfigSourceError(f'"{key}" is not valid key name for a {kind}: {why}')
    if key in data:
        raise ConfigSourceError(
            f'cannot add key "{key}", another key by that name already exists in Data for '
            f'{kind} "{name}"'
        )
    data[key] = value


def gather(
    kind: str,
    name: str,
    literals: Sequence[str] = (),
    files: Sequence[str] = (),
    env_files: Sequence[str] = (),
) -> dict[str, bytes]:
    """The key -> value map of the sources, in kubectl's order (files,
    literals, env files)."""
    data: dict[str, bytes] = {}
    for source in files:
        key, sep, path = source.partition("=")
        if not sep:
            key, path = "", source
        p = Path(path)
        if p.is_dir():
            if key:
                raise ConfigSourceError(f"cannot give a key name for a directory path: {source}")
            for entry in sorted(p.iterdir()):
                if entry.is_file() and config_key_problem(entry.name) is None:
                    _add(data, entry.name, entry.read_bytes(), kind, name)
            continue
        try:
            content = p.read_bytes()
        except OSError as exc:
            raise ConfigSourceError(f"error reading {path}: {exc.strerror or exc}") from exc
        _add(data, key or p.name, content, kind, name)
    for literal in literals:
        key, sep, text = literal.partition("=")
        if not sep or not key:
            raise ConfigSourceError(f"invalid literal source {literal}, expected key=value")
        _add(data, key, text.encode(), kind, name)
    for env_file in env_files:
        try:
            lines = Path(env_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigSourceError(f"error reading {env_file}: {exc.strerror or exc}") from exc
        for n, raw in enumerate(lines, 1):
            line = raw.lstrip()
            if not line or line.startswith("#"):
                continue
            key, sep, text = line.partition("=")
            if not sep:
                raise ConfigSourceError(
                    f'{env_file} line {n}: "{line}" is not a valid env line (KEY=VALUE)'
                )
            _add(data, key, text.encode(), kind, name)
    return data


def config_map_object(name: str, namespace: str, data: dict[str, bytes]) -> dict[str, Any]:
    """Text values in data, the others (not UTF-8) in binaryData, as kubectl does."""
    text: dict[str, str] = {}
    binary: dict[str, str] = {}
    for key, value in data.items():
        try:
            text[key] = value.decode()
        except UnicodeDecodeError:
            binary[key] = encode_base64(value)
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": text,
    }
    if binary:
        obj["binaryData"] = binary
    return obj


def secret_object(
    name: str, namespace: str, data: dict[str, bytes], type_: str = ""
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: encode_base64(v) for k, v in data.items()},
    }
    if type_:
        obj["type"] = type_
    return obj
