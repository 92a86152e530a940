"""Disk emptyDir sizeLimit: which volumes are measured, kubelet's message,
and usage counted as `du -s` does."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
from podmodel.pod import Pod

from services.node_agent.oci.volume_usage import (
    DiskLimit,
    disk_limits,
    eviction_message,
    usage_bytes,
)


def pod_with(volumes: list[dict[str, object]]) -> Pod:
    return msgspec.convert(
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes},
        },
        Pod,
    )


def test_only_disk_empty_dirs_with_a_positive_limit_are_measured() -> None:
    pod = pod_with(
        [
            {"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}},
            {"name": "plain", "emptyDir": {}},
            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "zero", "emptyDir": {"sizeLimit": "0"}},
            {"name": "host", "hostPath": {"path": "/tmp"}},
        ]
    )
    assert disk_limits(pod) == [DiskLimit("scratch", "1Mi", 1024 * 1024)]


def test_the_message_is_kubelets() -> None:
    assert (
        eviction_message(DiskLimit("scratch", "1Mi", 1 << 20))
        == 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    )


def test_usage_counts_allocated_blocks_once_per_inode(tmp_path: Path) -> None:
    empty = usage_bytes(str(tmp_path))
    (tmp_path / "sub").mkdir()
    data = tmp_path / "sub" / "data"
    data.write_bytes(os.urandom(256 * 1024))
    os.link(data, tmp_path / "again")  # a hard link is not counted twice
    (tmp_path / "link").symlink_to("/usr")  # nor followed
    used = usage_bytes(str(tmp_path))
    assert 256 * 1024 <= used - empty < 2 * 256 * 1024
    assert usage_bytes(str(tmp_path / "missing")) == 0
