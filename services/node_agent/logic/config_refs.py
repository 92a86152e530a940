"""What a pod reads from ConfigMaps and Secrets, and the files of its
configMap / secret volumes, resolved as the kubelet resolves them. Pure:
the agent fetches the objects (`referenced` says which, so a pod that
names none costs no store read) and the runtimes get them as `PodConfig`.

Messages are the kubelet's: a missing object in env is
CreateContainerConfigError `configmap "x" not found` (logic.env); a missing
volume source keeps the container ContainerCreating with
`MountVolume.SetUp failed for volume "v" : configmap "x" not found`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from podmodel.pod import Container, KeyToPath, Pod, Volume

from services.node_agent.logic.env import (
    EnvError,
    container_env,
    field_ref_value,
    resource_field_value,
)

#: kubelet's default file mode for configMap / secret volumes (0644)
DEFAULT_MODE = 0o644


@dataclass(frozen=True, slots=True)
class PodConfig:
    """The pod namespace's ConfigMaps and Secrets the pod names, by name;
    values as bytes. A name that is absent was not found."""

    config_maps: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)

    def env_maps(
        self,
    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """(config maps, secrets) with text values, as logic.env takes them
        (bytes that are not UTF-8 are replaced, as an env var is text)."""

        def text(objs: Mapping[str, Mapping[str, bytes]]) -> dict[str, dict[str, str]]:
            return {
                name: {k: v.decode(errors="replace") for k, v in data.items()}
                for name, data in objs.items()
            }

        return text(self.config_maps), text(self.secrets)


EMPTY_CONFIG = PodConfig()


def _containers(pod: Pod) -> Iterator[Container]:
    yield from pod.spec.init_containers
    yield from pod.spec.containers
    yield from pod.spec.ephemeral_containers


def referenced(pod: Pod) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) the pod's env, envFrom and volumes name."""
    cms: set[str] = set()
    secrets: set[str] = set()
    for c in _containers(pod):
        for source in c.env_from:
            if source.config_map_ref is not None and source.config_map_ref.name:
                cms.add(source.config_map_ref.name)
            if source.secret_ref is not None and source.secret_ref.name:
                secrets.add(source.secret_ref.name)
        for var in c.env:
            vf = var.value_from
            if vf is None:
                continue
            if vf.config_map_key_ref is not None and vf.config_map_key_ref.name:
                cms.add(vf.config_map_key_ref.name)
            if vf.secret_key_ref is not None and vf.secret_key_ref.name:
                secrets.add(vf.secret_key_ref.name)
    for vol in pod.spec.volumes:
        if vol.config_map is not None and vol.config_map.name:
            cms.add(vol.config_map.name)
        if vol.secret is not None and vol.secret.secret_name:
            secrets.add(vol.secret.secret_name)
    return cms, secrets


class VolumeSourceError(Exception):
    """The volume cannot be set up; the message follows kubelet's
    `MountVolume.SetUp failed for volume ... : ` prefix."""


@dataclass(frozen=True, slots=True)
class VolumeFile:
    path: str  # relative, normalised
    data: bytes
    mode: int


def _safe_path(path: str) -> str | None:
    """The relative path normalised, or None when it would leave the volume."""
    if not path or path.startswith("/"):
        return None
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../") or norm == "." or norm.startswith("..data"):
        return None
    return norm


def volume_files(vol: Volume, config: PodConfig) -> list[VolumeFile]:
    """The files of a configMap or secret volume (kubelet's
    MakePayload): every key, or the listed items; modes from the item, the
    volume's defaultMode, or 0644. Raises VolumeSourceError."""
    if vol.config_map is not None:
        src = vol.config_map
        name, what, objects = src.name, "configmap", config.config_maps
        items, default_mode, optional = src.items, src.default_mode, src.optional
    elif vol.secret is not None:
        s = vol.secret
        name, what, objects = s.secret_name, "secret", config.secrets
        items, default_mode, optional = s.items, s.default_mode, s.optional
    else:
        raise VolumeSourceError(f"volume {vol.name!r} is not a configMap or secret volume")
    data = objects.get(name)
    if data is None:
        if optional:
            return []
        raise VolumeSourceError(f'{what} "{name}" not found')
    mode = DEFAULT_MODE if default_mode is None else default_mode
    if not items:
        return [VolumeFile(key, value, mode) for key, value in sorted(data.items())]
    # an optional source's missing keys are left out; a required one's fail
    wanted = [item for item in items if item.key in data or not optional]
    return [_item_file(item, data, what, mode) for item in wanted]


def _item_file(item: KeyToPath, data: Mapping[str, bytes], what: str, mode: int) -> VolumeFile:
    if item.key not in data:
        noun = "config" if what == "configmap" else "secret"
        raise VolumeSourceError(f"{what} references non-existent {noun} key: {item.key}")
    path = _safe_path(item.path)
    if path is None:
        raise VolumeSourceError(f"invalid path {item.path!r} for key {item.key}")
    return VolumeFile(path, data[item.key], mode if item.mode is None else item.mode)


def downward_api_files(
    pod: Pod, vol: Volume, node_allocatable: Mapping[str, str] | None = None
) -> list[VolumeFile]:
    """The files of a downwardAPI volume: each item's fieldRef (labels and
    annotations as sorted `key="value"` lines, as kubelet writes them) or
    resourceFieldRef (of the named container). Raises VolumeSourceError."""
    src = vol.downward_api
    if src is None:
        raise VolumeSourceError(f"volume {vol.name!r} is not a downwardAPI volume")
    mode = DEFAULT_MODE if src.default_mode is None else src.default_mode
    files: list[VolumeFile] = []
    for item in src.items:
        path = _safe_path(item.path)
        if path is None:
            raise VolumeSourceError(f"invalid path {item.path!r}")
        try:
            if item.field_ref is not None:
                value = field_ref_value(pod, item.field_ref.field_path)
            elif item.resource_field_ref is not None:
                ref = item.resource_field_ref
                container = pod.spec.container(ref.container_name)
                if container is None:
                    raise VolumeSourceError(f"container {ref.container_name!r} not found")
                value = resource_field_value(ref, pod, container, node_allocatable=node_allocatable)
            else:
                continue
        except EnvError as exc:
            raise VolumeSourceError(str(exc)) from exc
        files.append(VolumeFile(path, value.encode(), mode if item.mode is None else item.mode))
    return files


def projected_files(pod: Pod, vol: Volume, config: PodConfig) -> list[VolumeFile]:
    """The files of a configMap, secret or downwardAPI volume (raises
    VolumeSourceError)."""
    if vol.downward_api is not None:
        return downward_api_files(pod, vol)
    return volume_files(vol, config)


def is_projected(vol: Volume) -> bool:
    """A volume whose files the node writes from a source (configMap,
    secret, downwardAPI) and keeps following it."""
    return vol.config_map is not None or vol.secret is not None or vol.downward_api is not None


def has_refreshed_volumes(pod: Pod) -> bool:
    return any(is_projected(v) for v in pod.spec.volumes)


def mount_failure(volume: str, why: str) -> str:
    """kubelet's FailedMount message."""
    return f'MountVolume.SetUp failed for volume "{volume}" : {why}'


def check_container_config(pod: Pod, container: Container, config: PodConfig) -> None:
    """What a runtime that writes no files (simulated) checks before a
    start: the container's env resolves (EnvError) and the configMap /
    secret volumes it mounts can be made (VolumeSourceError, with kubelet's
    FailedMount message)."""
    cms, secrets = config.env_maps()
    container_env(pod, container, config_maps=cms, secrets=secrets)
    mounted = {m.name for m in container.volume_mounts}
    for vol in pod.spec.volumes:
        if vol.name in mounted and (vol.config_map is not None or vol.secret is not None):
            try:
                volume_files(vol, config)
            except VolumeSourceError as exc:
                raise VolumeSourceError(mount_failure(vol.name, str(exc))) from exc
