"""Host operations the oci runtime needs: mounts (through libc, no process
per mount), commands (`ip`, `unshare`, runc) run asynchronously, the
node's bridge, the pods' network namespaces and veths, IPC/UTS namespaces
kept alive as bind mounts, cgroup clean-up and IP allocations on disk.

Every function here is I/O; the decisions live in `podfiles` and `spec`.
"""

# Stat()s and small reads of local state files (tmpfs, /proc, /sys) are
# cheaper than a thread hop: ASYNC240 does not apply here.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import functools
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from services.node_agent.oci import netconf
from services.node_agent.oci.podfiles import gateway_of, next_free_ip
from services.node_agent.oci.threads import in_fresh_thread

MS_RDONLY = 1
MS_BIND = 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
log = logging.getLogger(__name__)


class HostError(Exception):
    """A host operation failed; the message names what and why."""


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    rc = _libc.mount(
        source.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise HostError(f"mount {fstype} {source} on {target}: {os.strerror(err)}")


def umount(target: str) -> bool:
    """Lazy unmount; False when it was not mounted."""
    rc = _libc.umount2(target.encode(), MNT_DETACH)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return False
        raise HostError(f"umount {target}: {os.strerror(err)}")
    return True


def _mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, fstype, source) of every mount this process sees."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) > 4:
            fstype, source = [*rparts, "", ""][:2]
            out.append((parts[4].replace("\\040", " "), fstype, source))
    return out


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below prefix, deepest first."""
    prefix = prefix.rstrip("/")
    found = {p for p, _fs, _src in _mountinfo() if p == prefix or p.startswith(prefix + "/")}
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def unmount_all_under(prefix: str) -> None:
    for _round in range(3):
        points = mounts_under(prefix)
        if not points:
            return
        for point in points:
            with contextlib.suppress(HostError):
                umount(point)


RUN_TMPFS_SOURCE = "podbus-run"


def mount_of(path: str) -> tuple[str, str, str]:
    """(mount point, fstype, source) of the mount holding `path`."""
    best = ("/", "", "")
    for point, fstype, source in _mountinfo():
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype, source)
    return best


def ensure_run_tmpfs(path: Path, size: str) -> bool:
    """Keep `path` (the node's volatile run state) on a tmpfs, as /run is
    on a systemd machine: where it is on disk, mount a tmpfs of our own
    there (source "podbus-run", mode 0700, `size`). True if ours is (now)
    mounted; False if the place was already a tmpfs or mounting failed
    (logged: the node works on, slower)."""
    path.mkdir(parents=True, exist_ok=True)
    point, fstype, source = mount_of(str(path.resolve()))
    if fstype == "tmpfs":
        return source == RUN_TMPFS_SOURCE and point == str(path.resolve())
    try:
        mount(RUN_TMPFS_SOURCE, str(path), "tmpfs", 0, f"mode=0700,size={size}")
    except HostError as exc:
        log.warning("%s stays on %s (no tmpfs of its own: %s)", path, fstype or "disk", exc)
        return False
    return True


def release_run_tmpfs(path: Path) -> bool:
    """Unmount the tmpfs `ensure_run_tmpfs` put at `path` (only ours)."""
    point, fstype, source = mount_of(str(path.resolve()))
    if fstype == "tmpfs" and source == RUN_TMPFS_SOURCE and point == str(path.resolve()):
        unmount_all_under(point)
        for d in (path, path.parent):  # made by ensure_run_tmpfs; only if empty
            with contextlib.suppress(OSError):
                d.rmdir()
        return True
    return False


def remove_tree(path: Path) -> None:
    """rm -rf after unmounting everything below (never follows a mount)."""
    if not path.exists():
        return
    unmount_all_under(str(path))
    if mounts_under(str(path)):
        raise HostError(f"{path}: still has mounts below it, not removed")
    shutil.rmtree(path, ignore_errors=True)


async def run(
    argv: Sequence[str], *, stdin: bytes | None = None, check: bool = True
) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    rc = proc.returncode if proc.returncode is not None else -1
    if check and rc != 0:
        raise HostError(f"{' '.join(argv[:4])}: {err.decode(errors='replace').strip() or rc}")
    return rc, out, err


# ------------------------------------------------------------------ network


class Network:
    """The node's bridge and the pods' network namespaces and addresses.
    Allocations are files `<state>/ipam/<ip>` holding the pod uid (as the
    host-local CNI plugin keeps them), so they survive an agent restart."""

    def __init__(self, bridge: str, cidr: str, state_dir: Path, netns_prefix: str) -> None:
        self.bridge = bridge
        self.cidr = cidr
        self.gateway, self.prefixlen = gateway_of(cidr)
        self.ipam = state_dir / "ipam"
        self.ipam.mkdir(parents=True, exist_ok=True)
        self.netns_prefix = netns_prefix
        self._lock = asyncio.Lock()
        self._known: dict[str, str] | None = None
        self._last: str | None = None
        self._setups: list[tuple[str, str, str, asyncio.Future[None]]] = []
        self._setup_task: asyncio.Task[None] | None = None

    async def ensure_bridge(self) -> None:
        if Path(f"/sys/class/net/{self.bridge}").exists():
            _rc, out, _ = await run(["ip", "-o", "addr", "show", "dev", self.bridge], check=False)
            if f"{self.gateway}/{self.prefixlen}" in out.decode():
                return
            await run(["ip", "addr", "add", f"{self.gateway}/{self.prefixlen}", "dev", self.bridge],
                      check=False)  # fmt: skip
            await run(["ip", "link", "set", self.bridge, "up"])
            return
        batch = (
            f"link add {self.bridge} type bridge\n"
            f"addr add {self.gateway}/{self.prefixlen} dev {self.bridge}\n"
            f"link set {self.bridge} up\n"
        )
        await run(["ip", "-batch", "-"], stdin=batch.encode())

    async def delete_bridge(self) -> None:
        if Path(f"/sys/class/net/{self.bridge}").exists():
            await run(["ip", "link", "del", self.bridge], check=False)

    def allocations(self) -> dict[str, str]:
        """ip -> pod uid."""
        out = {}
        for f in self.ipam.iterdir():
            if f.name.startswith("last"):
                continue
            with contextlib.suppress(OSError):
                out[f.name] = f.read_text().strip()
        return out

    def _table(self) -> dict[str, str]:
        """ip -> pod uid, read from disk once and then kept up to date here
        (the files stay the record an agent restart reads): reading every
        allocation for every new pod cost 1.6 ms a pod with 50 pods."""
        if self._known is None:
            self._known = self.allocations()
        return self._known

    async def allocate(self, uid: str) -> str:
        async with self._lock:
            taken = self._table()
            for ip, owner in taken.items():
                if owner == uid:
                    return ip
            last_file = self.ipam / "last_reserved"
            if self._last is None:
                self._last = last_file.read_text().strip() if last_file.exists() else ""
            while True:
                ip = next_free_ip(self.cidr, taken, after=self._last)
                try:
                    fd = os.open(self.ipam / ip, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:  # not ours to know: read it back
                    with contextlib.suppress(OSError):
                        taken[ip] = (self.ipam / ip).read_text().strip() or "?"
                    taken.setdefault(ip, "?")
                    continue
                with os.fdopen(fd, "w") as f:
                    f.write(uid)
                taken[ip] = uid
                last_file.write_text(ip)
                self._last = ip
                return ip

    def release(self, uid: str) -> None:
        taken = self._table()
        for ip, owner in list(taken.items()):
            if owner == uid:
                (self.ipam / ip).unlink(missing_ok=True)
                del taken[ip]

    def release_all(self) -> None:
        """Forget every allocation (the node's clean-up)."""
        for f in self.ipam.iterdir():
            f.unlink(missing_ok=True)
        self._known = {}
        self._last = ""

    async def setup(self, netns: str, veth: str, ip: str) -> None:
        """A named netns with lo up and eth0 (veth peer on the bridge) at
        `ip`, default route via the bridge. Pods starting together share
        the work: while one batch is being set up the next gathers, and a
        batch costs one `ip -batch` process for the host side and one
        thread for the inside (netconf), not two processes per pod."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._setups.append((netns, veth, ip, done))
        if self._setup_task is None:
            self._setup_task = loop.create_task(self._drain_setups())
        await done

    async def _drain_setups(self) -> None:
        try:
            while self._setups:
                batch = self._setups[:]
                del self._setups[:]
                await self._setup_batch(batch)
        finally:
            self._setup_task = None
            for *_rest, fut in self._setups:  # cancelled mid-way: fail, never hang
                if not fut.done():
                    fut.set_exception(HostError("network set-up stopped"))
            self._setups.clear()

    async def _setup_batch(self, batch: list[tuple[str, str, str, asyncio.Future[None]]]) -> None:
        def host_lines(netns: str, veth: str) -> str:
            stale = f"link del {veth}\n" if Path(f"/sys/class/net/{veth}").exists() else ""
            add = "" if Path(f"/run/netns/{netns}").exists() else f"netns add {netns}\n"
            return (
                stale + add + f"link add {veth} type veth peer name eth0 netns {netns}\n"
                f"link set {veth} master {self.bridge} up\n"
            )

        failed: dict[int, str] = {}
        try:
            rc, _out, _err = await run(
                ["ip", "-batch", "-"],
                stdin="".join(host_lines(n, v) for n, v, _ip, _f in batch).encode(),
                check=False,
            )
            if rc != 0:  # find out whose it was: each pod on its own
                for i, (netns, veth, _ip, _f) in enumerate(batch):
                    try:
                        await run(["ip", "-batch", "-"], stdin=host_lines(netns, veth).encode())
                    except HostError as exc:
                        failed[i] = f"network namespace {netns} (veth {veth}): {exc}"
            configs = [
                netconf.InsideConfig(f"/run/netns/{netns}", ip, self.prefixlen, self.gateway)
                for i, (netns, _veth, ip, _f) in enumerate(batch)
                if i not in failed
            ]
            results = iter(await netconf.configure(configs))
        except BaseException as exc:
            for *_rest, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else HostError(str(exc)))
            raise
        for i, (_netns, _veth, _ip, fut) in enumerate(batch):
            error = failed.get(i) or (None if i in failed else next(results))
            if fut.done():
                continue
            if error:
                fut.set_exception(HostError(error))
            else:
                fut.set_result(None)

    async def teardown(self, netns: str, veth: str) -> None:
        if Path(f"/run/netns/{netns}").exists():
            await run(["ip", "netns", "del", netns], check=False)
        if Path(f"/sys/class/net/{veth}").exists():
            await run(["ip", "link", "del", veth], check=False)

    def our_netns(self) -> list[str]:
        try:
            names = os.listdir("/run/netns")
        except FileNotFoundError:
            return []
        return [n for n in names if n.startswith(self.netns_prefix + "-")]


# ------------------------------------------------------------------ namespaces


CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000


def _unshare_in_this_thread(ipc: Path | None, uts: Path | None, hostname: str) -> None:
    """Runs in a thread of its own that ends right after: unshare(2) gives
    this thread (only) new IPC/UTS namespaces, which are then bind-mounted
    to the given paths so they outlive it."""
    flags = (CLONE_NEWIPC if ipc is not None else 0) | (CLONE_NEWUTS if uts is not None else 0)
    if _libc.unshare(flags) != 0:
        raise HostError(f"unshare: {os.strerror(ctypes.get_errno())}")
    if uts is not None and hostname:
        name = hostname.encode()
        if _libc.sethostname(name, len(name)) != 0:
            raise HostError(f"sethostname {hostname!r}: {os.strerror(ctypes.get_errno())}")
    tid = threading.get_native_id()
    for kind, path in (("ipc", ipc), ("uts", uts)):
        if path is not None:
            mount(f"/proc/self/task/{tid}/ns/{kind}", str(path), "", MS_BIND)


async def persistent_namespaces(ipc: Path | None, uts: Path | None, hostname: str) -> None:
    """New IPC and/or UTS namespaces kept alive as bind mounts at the given
    paths (the hostname set inside the UTS one). No process is started: a
    short-lived thread unshares and bind-mounts its own namespaces (the
    thread is never reused, so no other work runs in them)."""
    if ipc is None and uts is None:
        return
    for path in (ipc, uts):
        if path is not None:
            path.touch()
    await in_fresh_thread(lambda: _unshare_in_this_thread(ipc, uts, hostname), "podbus-unshare")


# ------------------------------------------------------------------ cgroups


def cgroup_mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of each cgroup hierarchy."""
    out = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0] if right else ""
        if fstype in ("cgroup", "cgroup2"):
            out.append((left.split()[4], fstype))
    return out


@functools.cache
def _memory_hierarchy() -> tuple[str, str]:
    """(mount point, file) of the memory controller: cgroup v2's
    memory.events or v1's memory.oom_control (both count oom_kill)."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "/sys/fs/cgroup", "memory.events"
    for point, fstype in cgroup_mounts():
        if fstype == "cgroup" and point.rstrip("/").endswith("/memory"):
            return point, "memory.oom_control"
    return "", ""


def oom_file(cgroups_path: str) -> str:
    """Where the oom_kill count of a container's cgroup is read ("-": nowhere)."""
    point, name = _memory_hierarchy()
    return f"{point}/{cgroups_path.lstrip('/')}/{name}" if point else "-"


def remove_cgroups(cgroups_path: str) -> None:
    """rmdir the cgroup (and its empty children) in every hierarchy."""
    rel = cgroups_path.strip("/")
    if not rel:
        return
    for point, _fstype in cgroup_mounts():
        base = Path(point) / rel
        if not base.is_dir():
            continue
        dirs = sorted(
            (Path(d) for d, _subs, _files in os.walk(base)),
            key=lambda p: len(p.parts),
            reverse=True,
        )
        for d in dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
