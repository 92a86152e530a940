"""The files of a configMap / secret volume, laid out as kubelet's
AtomicWriter lays them out, so that programs that watch them (for the
`..data` symlink to move) behave as they do on Kubernetes:

    <dir>/..2026_12_06_08_15_00.123456789/<key>   the payload, one dir per write
    <dir>/..data -> ..2026_12_06_08_15_00.123456789   swapped by rename(2)
    <dir>/<key> -> ..data/<key>   one symlink per top-level name

A rewrite with the same payload changes nothing; a different one is a new
timestamped dir, then `..data` is swapped in one rename, then the old dir
and the symlinks of names no longer there go.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from services.node_agent.logic.config_refs import VolumeFile

DATA = "..data"


def _current(directory: Path) -> dict[str, tuple[bytes, int]]:
    target = directory / DATA
    out: dict[str, tuple[bytes, int]] = {}
    if not target.is_dir():
        return out
    for root, _dirs, files in os.walk(target):
        for name in files:
            full = Path(root, name)
            rel = str(full.relative_to(target))
            out[rel] = (full.read_bytes(), full.stat().st_mode & 0o7777)
    return out


def write_payload(directory: Path, files: Sequence[VolumeFile]) -> bool:
    """Make `directory` hold exactly `files`; True if anything changed."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {f.path: (f.data, f.mode) for f in files}
    if (directory / DATA).exists() and _current(directory) == wanted:
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{time.time_ns() % 10**9}"
    new = directory / stamp
    new.mkdir(mode=0o755)
    for f in files:
        target = new / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.data)
        os.chmod(target, f.mode)
    old = os.readlink(directory / DATA) if (directory / DATA).is_symlink() else None
    tmp = directory / "..data_tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(stamp, tmp)
    os.replace(tmp, directory / DATA)
    names = {f.path.split("/", 1)[0] for f in files}
    for name in names:
        link = directory / name
        if not link.is_symlink():
            os.symlink(f"{DATA}/{name}", link)
    for entry in directory.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in names:
            entry.unlink()
    if old and old != stamp:
        shutil.rmtree(directory / old, ignore_errors=True)
    return True
