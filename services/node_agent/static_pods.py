"""Static pods of one node: the manifest directory as a pod source, and
their mirror pods in the store (K8S_SEMANTICS.md section 7; the pure rules
are in logic/static_pods.py).

The directory is scanned every `rescan_s` seconds (20 s, as the kubelet's
file source) and, more cheaply, its listing and file mtimes are looked at
every `watch_s` seconds (1 s), so an edit shows within about a second
without inotify. Each scan is diffed against the last one:
- a new file: its pods are started (one static pod worker each, through
  `StaticHost.start_static`);
- a removed file: its pods are stopped gracefully (a deletion of the
  static pod) and their mirrors removed;
- a changed file: the pods of the old content stop, those of the new start
  (a new uid: the hash covers the content), and the mirror is replaced.
A file that cannot be read as pods is logged once per content and skipped
(its running pods, if any, keep running until the file is fixed or gone).

Mirrors: after every scan, and when the informer shows a mirror of this node
changed or was deleted, `mirror_pod_action` decides: create the missing,
recreate one that was deleted (through the API: graceful deletion, so it
carries a deletionTimestamp) or is stale; orphaned mirrors (no static pod
behind them) are removed. The static pod never stops because its mirror
went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from podmodel.node import Node
from podmodel.pod import Pod
from servicekit.store import AlreadyExists, Store

from services.node_agent.logic.static_pods import (
    RESCAN_SECONDS,
    StaticPodError,
    content_hash,
    diff_manifests,
    is_manifest_name,
    is_mirror_pod,
    mirror_pod,
    mirror_pod_action,
    static_pods_from_manifest,
)

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0

Key = tuple[str, str]


class StaticHost(Protocol):
    """What the source asks of its NodeAgent."""

    def start_static(self, pod: Pod) -> None:
        """Run this static pod (a new worker)."""
        ...

    def stop_static(self, pod: Pod) -> None:
        """Stop this static pod gracefully (its worker removes the mirror)."""
        ...

    def set_mirror(self, static_uid: str, mirror: Pod | None) -> None:
        """Tell the static pod's worker about its mirror object."""
        ...


@dataclass
class _File:
    hash: str
    pods: list[Pod] = field(default_factory=list)


class StaticPodSource:
    """The manifest directory of one node; `run()` until cancelled."""

    def __init__(
        self,
        node: str,
        directory: str,
        store: Store,
        host: StaticHost,
        *,
        rescan_s: float = RESCAN_SECONDS,
        watch_s: float = WATCH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.directory = directory
        self.store = store
        self.host = host
        self.rescan_s = rescan_s
        self.watch_s = watch_s
        self.clock = clock
        self.files: dict[str, _File] = {}
        self.statics: dict[Key, Pod] = {}  # (ns, name) -> static pod
        self.mirrors: dict[Key, Pod] = {}  # what the informer shows
        self._bad: dict[str, str] = {}  # path -> hash of content logged as bad
        self._node_uid = ""
        self._kick = asyncio.Event()
        self._listing: tuple[tuple[str, float, int], ...] = ()
        self.scans = 0

    # -------------------------------------------------------------- informer side

    def mirror_seen(self, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        self.mirrors[key] = pod
        static = self.statics.get(key)
        if static is not None and mirror_pod_action(static, pod) == "keep":
            self.host.set_mirror(static.metadata.uid, pod)
        else:
            self._kick.set()

    def mirror_gone(self, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        current = self.mirrors.get(key)
        if current is not None and current.metadata.uid != pod.metadata.uid:
            return  # an older mirror went; the current one stays
        self.mirrors.pop(key, None)
        static = self.statics.get(key)
        if static is not None:
            self.host.set_mirror(static.metadata.uid, None)
            self._kick.set()

    # -------------------------------------------------------------- scanning

    def _list(self) -> dict[str, tuple[float, int]]:
        out: dict[str, tuple[float, int]] = {}
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return out
        for entry in entries:
            if not is_manifest_name(entry.name) or not entry.is_file():
                continue
            with contextlib.suppress(OSError):
                st = entry.stat()
                out[entry.path] = (st.st_mtime, st.st_size)
        return out

    def _listing_key(self) -> tuple[tuple[str, float, int], ...]:
        return tuple(sorted((p, m, s) for p, (m, s) in self._list().items()))

    def scan(self) -> None:
        """Read the directory and start/stop/replace static pods."""
        self.scans += 1
        contents: dict[str, bytes] = {}
        for path in self._list():
            with contextlib.suppress(OSError), open(path, "rb") as fh:
                contents[path] = fh.read()
        current = {p: content_hash(c) for p, c in contents.items()}
        previous = {p: f.hash for p, f in self.files.items()}
        diff = diff_manifests(previous, current)
        for path in diff.removed:
            self._drop(path)
        for path in (*diff.changed, *diff.added):
            self._load(path, contents[path], current[path])

    def _load(self, path: str, content: bytes, digest: str) -> None:
        try:
            pods = static_pods_from_manifest(path, content, self.node, seen=self.clock())
        except StaticPodError as exc:
            if self._bad.get(path) != digest:
                self._bad[path] = digest
                log.warning("static pod manifest %s skipped: %s", path, exc)
            if path in self.files:
                self.files[path].hash = digest  # keep its pods until fixed or gone
            return
        self._bad.pop(path, None)
        old = self.files.get(path)
        old_uids = {p.metadata.uid for p in old.pods} if old is not None else set()
        new_uids = {p.metadata.uid for p in pods}
        if old is not None:
            for pod in old.pods:
                if pod.metadata.uid not in new_uids:
                    self._stop(pod)
        for pod in pods:
            key = (pod.metadata.namespace, pod.metadata.name)
            if pod.metadata.uid in old_uids:
                continue
            clash = self.statics.get(key)
            if clash is not None and clash.metadata.uid != pod.metadata.uid:
                log.warning("static pod %s/%s defined twice; %s wins", *key, path)
                self._stop(clash)
            self.statics[key] = pod
            self.host.start_static(pod)
        self.files[path] = _File(digest, pods)

    def _drop(self, path: str) -> None:
        found = self.files.pop(path, None)
        self._bad.pop(path, None)
        if found is None:
            return
        for pod in found.pods:
            self._stop(pod)

    def _stop(self, pod: Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        if self.statics.get(key) is pod or (
            key in self.statics and self.statics[key].metadata.uid == pod.metadata.uid
        ):
            del self.statics[key]
        self.host.stop_static(pod)

    # -------------------------------------------------------------- mirrors

    async def _node_uid_now(self) -> str:
        if not self._node_uid:
            node = await self.store.get(Node, "", self.node)
            self._node_uid = node.metadata.uid if node is not None else ""
        return self._node_uid

    async def sync_mirrors(self) -> None:
        """Create, recreate or delete mirror pods to match the static pods."""
        node_uid = await self._node_uid_now()
        for key, static in list(self.statics.items()):
            mirror = self.mirrors.get(key)
            action = mirror_pod_action(static, mirror)
            if action == "keep":
                assert mirror is not None
                self.host.set_mirror(static.metadata.uid, mirror)
                continue
            if action == "recreate" and mirror is not None:
                await self.store.remove(Pod, *key, mirror.metadata.resource_version)
                self.mirrors.pop(key, None)
                self.host.set_mirror(static.metadata.uid, None)
            try:
                created = await self.store.create(mirror_pod(static, self.node, node_uid))
            except AlreadyExists:
                fresh = await self.store.get(Pod, *key)
                if fresh is not None:
                    self.mirrors[key] = fresh
                    self._kick.set()  # decide again next round
                continue
            self.mirrors[key] = created
            self.host.set_mirror(static.metadata.uid, created)
        for key, mirror in list(self.mirrors.items()):
            if key not in self.statics and is_mirror_pod(mirror):
                log.info("removing orphaned mirror pod %s/%s", *key)
                await self.store.remove(Pod, *key, mirror.metadata.resource_version)
                self.mirrors.pop(key, None)

    async def load_mirrors(self) -> None:
        pods, _rv = await self.store.list(Pod, node=self.node)
        for pod in pods:
            if is_mirror_pod(pod):
                self.mirrors[(pod.metadata.namespace, pod.metadata.name)] = pod

    async def run(self) -> None:
        await self.load_mirrors()
        last_full = -1e18
        while True:
            now = time.monotonic()
            listing = self._listing_key()
            if now - last_full >= self.rescan_s or listing != self._listing:
                self._listing = listing
                last_full = now
                self.scan()
            try:
                await self.sync_mirrors()
            except Exception as exc:  # Redis down: next round
                log.warning("mirror pods of %s not synced: %s", self.node, exc)
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.watch_s):
                    await self._kick.wait()
