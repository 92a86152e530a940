"""Static pods: the pods a node-agent runs from its manifest directory, and
the mirror pods that show them in the store (K8S_SEMANTICS.md section 7;
kubelet's pkg/kubelet/config/common.go and pod/mirror_client.go).

- A manifest file (dot-files ignored) holds a Pod (or a List of them). The
  agent names it `<name>-<nodeName>`, puts it in namespace default when it
  has none, binds it to this node (never scheduled), gives it a uid hashed
  from the pod, the node and the file path — so an edit is a new uid and a
  replaced pod — and the annotations kubernetes.io/config.hash (the uid),
  config.source=file and config.seen, and a toleration of every NoExecute
  taint.
- The mirror pod is that pod with kubernetes.io/config.mirror=<hash> and an
  ownerReference to the Node; the API cannot control it: a mirror that is
  deleted or out of date is recreated (`mirror_pod_action`).
- A directory scan is a map path -> hash; `diff_manifests` says which
  files were added, removed or changed.

Pure: the caller reads the directory and the files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import msgspec
from podmodel.manifest import load_manifests
from podmodel.meta import ObjectMeta, OwnerReference
from podmodel.pod import Pod, PodSpec, PodStatus, Toleration

from services.node_agent.logic.timefmt import rfc3339_nano

CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_SEEN = "kubernetes.io/config.seen"
SOURCE_FILE = "file"
DEFAULT_NAMESPACE = "default"

#: kubelet rescans the directory this often (seconds) besides watching it.
RESCAN_SECONDS = 20.0

_TOLERATE_NO_EXECUTE = Toleration(operator="Exists", effect="NoExecute")
_JSON = msgspec.json.Encoder(order="sorted")


class StaticPodError(ValueError):
    """A manifest that cannot become a static pod; the message names the file."""


def is_manifest_name(filename: str) -> bool:
    """Whether a directory entry is read at all: dot-files are ignored."""
    return bool(filename) and not filename.startswith(".")


def static_pod_name(name: str, node_name: str) -> str:
    """`<name>-<nodeName>` (the node name lower-cased, as kubelet does)."""
    return f"{name}-{node_name.lower()}"


def static_pod_uid(pod: Pod, node_name: str, path: str) -> str:
    """md5 over the pod as written (after defaulting) and its source, hex:
    the same file on the same node always gives the same uid; any edit that
    changes the pod gives another one."""
    hasher = hashlib.md5(usedforsecurity=False)
    hasher.update(_JSON.encode(pod))
    hasher.update(f"host:{node_name}".encode())
    hasher.update(f"file:{path}".encode())
    return hasher.hexdigest()


def static_pods_from_manifest(
    path: str, content: bytes | str, node_name: str, *, seen: float
) -> list[Pod]:
    """The pods a manifest file defines, ready to run on this node. `seen`
    is when the agent first read it (config.seen). Raises StaticPodError if
    the file does not hold valid pods."""
    result = load_manifests(content, source=path)
    if result.errors:
        raise StaticPodError("; ".join(result.errors))
    pods: list[Pod] = []
    for obj in result.objects:
        if not isinstance(obj, Pod):
            raise StaticPodError(f"{path}: {obj.kind}/{obj.metadata.name} is not a Pod")
        pods.append(_as_static(obj, path, node_name, seen))
    if not pods:
        raise StaticPodError(f"{path}: no pod in manifest")
    return pods


def _as_static(pod: Pod, path: str, node_name: str, seen: float) -> Pod:
    uid = pod.metadata.uid or static_pod_uid(pod, node_name, path)
    meta = pod.metadata
    meta.uid = uid
    meta.name = static_pod_name(meta.name, node_name)
    meta.namespace = meta.namespace or DEFAULT_NAMESPACE
    meta.annotations = {
        **meta.annotations,
        CONFIG_HASH: uid,
        CONFIG_SOURCE: SOURCE_FILE,
        CONFIG_SEEN: rfc3339_nano(seen),
    }
    pod.spec.node_name = node_name
    if _TOLERATE_NO_EXECUTE not in pod.spec.tolerations:
        pod.spec.tolerations = [*pod.spec.tolerations, _TOLERATE_NO_EXECUTE]
    pod.status = PodStatus(phase="Pending")
    return pod


def is_static_pod(pod: Pod) -> bool:
    """A pod the agent runs from a file (not from the store)."""
    return pod.metadata.annotations.get(CONFIG_SOURCE) == SOURCE_FILE


def is_mirror_pod(pod: Pod) -> bool:
    """A store object that mirrors a static pod."""
    return CONFIG_MIRROR in pod.metadata.annotations


def config_hash(pod: Pod) -> str:
    """The hash a static pod carries (its uid)."""
    return pod.metadata.annotations.get(CONFIG_HASH, "")


def mirror_pod(static: Pod, node_name: str, node_uid: str) -> Pod:
    """The store object for a static pod: the same metadata (labels!) and
    spec, annotation config.mirror = its hash, owned by the Node. Its uid
    and resourceVersion are left for the store to assign."""
    meta = static.metadata
    return Pod(
        metadata=ObjectMeta(
            name=meta.name,
            namespace=meta.namespace,
            labels=dict(meta.labels),
            annotations={**meta.annotations, CONFIG_MIRROR: config_hash(static)},
            owner_references=[
                OwnerReference(
                    api_version="v1",
                    kind="Node",
                    name=node_name,
                    uid=node_uid,
                    controller=True,
                )
            ],
        ),
        spec=msgspec.json.decode(msgspec.json.encode(static.spec), type=PodSpec),
        status=PodStatus(phase="Pending"),
    )


MirrorAction = Literal["create", "recreate", "keep"]


def mirror_pod_action(static: Pod, mirror: Pod | None) -> MirrorAction:
    """What to do with the store's copy of a static pod: create it when
    missing; delete and create it again when it is being deleted, is not a
    mirror, or mirrors another version of the file; otherwise keep it."""
    if mirror is None:
        return "create"
    if (
        mirror.metadata.deletion_timestamp is not None
        or not is_mirror_pod(mirror)
        or mirror.metadata.name != static.metadata.name
        or mirror.metadata.namespace != static.metadata.namespace
        or mirror.metadata.annotations.get(CONFIG_MIRROR) != config_hash(static)
    ):
        return "recreate"
    return "keep"


def orphaned_mirror_pods(mirrors: Iterable[Pod], statics: Iterable[Pod]) -> list[Pod]:
    """Mirror pods of this node whose static pod is gone: to delete."""
    live = {(p.metadata.namespace, p.metadata.name) for p in statics}
    return [
        m
        for m in mirrors
        if is_mirror_pod(m) and (m.metadata.namespace, m.metadata.name) not in live
    ]


def content_hash(content: bytes | str) -> str:
    """A file's content hash, for the scan map (sha256 hex)."""
    data = content.encode() if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    """Paths added, removed and changed between two scans, each sorted."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_manifests(previous: Mapping[str, str], current: Mapping[str, str]) -> ManifestDiff:
    """Compare two scans (path -> content hash). Dot-files in either map
    are ignored, so a caller may pass a raw listing."""

    def visible(scan: Mapping[str, str]) -> dict[str, str]:
        return {p: h for p, h in scan.items() if is_manifest_name(p.rsplit("/", 1)[-1])}

    before, after = visible(previous), visible(current)
    return ManifestDiff(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(p for p in after.keys() & before.keys() if after[p] != before[p])),
    )
