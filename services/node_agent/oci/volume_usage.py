"""emptyDir sizeLimit on disk, as kubelet's eviction manager enforces it:
a disk-backed emptyDir may grow past its limit (nothing stops a write), and
the node evicts the pod once it sees the usage above the limit (its
monitoring period is 10 s). A memory-backed emptyDir is a tmpfs of that
size instead, which refuses the write.

`disk_limits` and `eviction_message` are pure; `usage_bytes` reads the
disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from podmodel.pod import Pod
from podmodel.quantity import parse_quantity

#: kubelet's evictionMonitoringPeriod
MONITORING_PERIOD_S = 10.0


@dataclass(frozen=True)
class DiskLimit:
    volume: str
    limit: str  # as written in the spec: the message quotes it
    limit_bytes: int


def disk_limits(pod: Pod) -> list[DiskLimit]:
    """The pod's disk-backed emptyDirs that have a sizeLimit."""
    out = []
    for vol in pod.spec.volumes:
        ed = vol.empty_dir
        if ed is None or ed.medium == "Memory" or ed.size_limit is None:
            continue
        limit_bytes = int(parse_quantity(ed.size_limit))
        if limit_bytes > 0:  # kubelet: a zero limit is no limit
            out.append(DiskLimit(vol.name, str(ed.size_limit), limit_bytes))
    return out


def eviction_message(limit: DiskLimit) -> str:
    """kubelet's message, trailing space included (emptyDirMessageFmt)."""
    return f'Usage of EmptyDir volume "{limit.volume}" exceeds the limit "{limit.limit}". '


def usage_bytes(path: str) -> int:
    """What `du -s` counts: allocated blocks, each inode once, without
    following symlinks or crossing into other filesystems."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != top.st_dev:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total + top.st_blocks * 512
