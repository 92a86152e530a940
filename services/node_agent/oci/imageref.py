"""Pure parts of the image store: image references and image configs.

References are normalised the way a pod's `image:` field is compared with
what was imported: `busybox`, `busybox:latest`, `docker.io/busybox` and
`docker.io/library/busybox:latest` are one image; a digest reference
(`name@sha256:...`) matches an image of that id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TAG = "latest"
_DOCKER_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/")


class ReferenceError(ValueError):
    """A malformed image reference."""


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    tag: str = DEFAULT_TAG
    digest: str = ""

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def parse_reference(ref: str) -> Reference:
    """`[registry/]name[:tag][@digest]`, normalised (Docker Hub prefixes
    dropped, tag defaulting to latest)."""
    text = ref.strip()
    if not text:
        raise ReferenceError("empty image reference")
    digest = ""
    if "@" in text:
        text, digest = text.split("@", 1)
        if not digest.startswith("sha256:"):
            raise ReferenceError(f"image reference {ref!r}: only sha256 digests are supported")
    last = text.rsplit("/", 1)[-1]
    tag = DEFAULT_TAG
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not tag:
            raise ReferenceError(f"image reference {ref!r}: empty tag")
    for prefix in _DOCKER_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if not text or any(c.isspace() for c in text) or text != text.lower():
        raise ReferenceError(f"image reference {ref!r}: invalid repository name {text!r}")
    return Reference(name=text, tag=tag, digest=digest)


def normalize(ref: str) -> str:
    """The store's key for a reference: `name:tag`."""
    return str(parse_reference(ref))


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an OCI image config a container uses."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    user: str = ""
    working_dir: str = ""
    stop_signal: str = ""

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.env:
            out["Env"] = list(self.env)
        if self.user:
            out["User"] = self.user
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out


def config_from_oci(config: Mapping[str, Any] | None) -> ImageConfig:
    """The `config` object of an OCI / Docker image config JSON."""
    c = config or {}

    def strings(key: str) -> tuple[str, ...]:
        value = c.get(key) or []
        if isinstance(value, str):
            return (value,)
        return tuple(str(v) for v in value)

    return ImageConfig(
        entrypoint=strings("Entrypoint"),
        cmd=strings("Cmd"),
        env=strings("Env"),
        user=str(c.get("User") or ""),
        working_dir=str(c.get("WorkingDir") or ""),
        stop_signal=str(c.get("StopSignal") or ""),
    )


DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def rootfs_config(
    *,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = (),
    env: Sequence[str] = (),
    user: str = "",
    workdir: str = "",
    stop_signal: str = "",
) -> ImageConfig:
    """The config of an image imported from a bare root filesystem; PATH is
    set as Docker sets it when the env does not."""
    envs = tuple(env)
    if not any(e.startswith("PATH=") for e in envs):
        envs = (DEFAULT_PATH_ENV, *envs)
    for e in envs:
        if "=" not in e:
            raise ValueError(f"--env {e!r}: expected KEY=value")
    return ImageConfig(
        entrypoint=tuple(entrypoint),
        cmd=tuple(cmd),
        env=envs,
        user=user,
        working_dir=workdir,
        stop_signal=stop_signal,
    )


def oci_config_document(config: ImageConfig, diff_ids: Sequence[str]) -> bytes:
    """A canonical OCI image config JSON (its sha256 is the image id)."""
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": config.to_oci(),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """An image in the store: its id (sha256 of its config), its config, and
    its layers bottom to top (diff ids, each unpacked once)."""

    id: str
    config: ImageConfig
    layers: tuple[str, ...]
    refs: tuple[str, ...] = field(default=())
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "config": self.config.to_oci(),
            "layers": list(self.layers),
            "created": self.created,
        }

    @staticmethod
    def from_json(doc: Mapping[str, Any], refs: Sequence[str] = ()) -> ImageRecord:
        return ImageRecord(
            id=str(doc["id"]),
            config=config_from_oci(doc.get("config")),
            layers=tuple(doc.get("layers", [])),
            refs=tuple(refs),
            created=float(doc.get("created", 0.0)),
        )


def never_pull_message(image: str) -> str:
    """kubelet's ErrImageNeverPull message, with how to import the image
    (there is no registry here)."""
    return (
        f'Container image "{image}" is not present with pull policy of Never; '
        f"import it on this node: podbus image import {image} PATH "
        "(an OCI layout, a `docker save` tarball, or a root filesystem)"
    )


def safe_member_path(name: str) -> str | None:
    """A tar member's path relative to the extraction root, or None when it
    would escape it (`..`) or is the root itself."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"


def whiteout_target(path: str) -> tuple[str, bool] | None:
    """For an OCI whiteout entry, (path it removes, opaque?); else None.
    `a/.wh.b` removes a/b; `a/.wh..wh..opq` hides everything below a."""
    head, _, base = path.rpartition("/")
    if base == OPAQUE_WHITEOUT:
        return head, True
    if base.startswith(WHITEOUT_PREFIX):
        name = base[len(WHITEOUT_PREFIX) :]
        return (f"{head}/{name}" if head else name), False
    return None
