"""`OciRuntime`: the node-agent's Runtime protocol over runc.

A pod is a directory `<run>/pods/<uid>/` (pod.json, hosts, hostname,
resolv.conf, ns/ipc + ns/uts bind mounts), a named network namespace with
a veth into the node bridge and an address from the pod CIDR. A container
attempt is `<run>/pods/<uid>/c/<name>/<n>/` (the runc bundle: config.json
and the rootfs mount point; meta.json, started.json, exit.json) run by its
own shim (`shim.c` / `shim.py`, outliving the agent) through `runc run`.

Two places, split as containerd and the kubelet split theirs: the run dir
holds small files that are rewritten with every start and mean nothing
after a reboot, so it is a tmpfs (a file created there costs a fraction of
one on ext4, whose inode allocator slows down under create/delete churn);
its durable twin `<state>/pods/<uid>/` holds what may be large or must
stay on disk: emptyDir volumes, each attempt's writable layer (upper,
work), CRI log and termination log.

Restart rule (adoption): `adopt` rebuilds a pod from its run directory:
running attempts (shim alive) keep running and are watched again, finished
ones are read from exit.json, the sandbox is kept when its network
namespace still exists. IP allocations are files under the state dir, so
a restarted agent never hands out an address twice.
"""

# Stat()s and small reads of local state files (tmpfs, /proc, /sys) are
# cheaper than a thread hop: ASYNC240 does not apply here.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from podmodel.pod import Container, ContainerKind, Pod, Volume
from podmodel.quantity import parse_quantity

from services.node_agent.hooks import run_handler
from services.node_agent.logic.config_refs import (
    EMPTY_CONFIG,
    PodConfig,
    VolumeSourceError,
    is_projected,
    projected_files,
)
from services.node_agent.logic.container_status import WaitingReason
from services.node_agent.logic.env import EnvError, container_env
from services.node_agent.logic.records import ContainerRecord, SandboxRecord, new_attempt
from services.node_agent.oci import hostops, nat, volume_usage
from services.node_agent.oci.atomic_writer import write_payload
from services.node_agent.oci.attach import OciInteractive
from services.node_agent.oci.imageref import ReferenceError, never_pull_message
from services.node_agent.oci.images import DEFAULT_IMAGE_ROOT, ImageError, ImageRecord, ImageStore
from services.node_agent.oci.podfiles import (
    container_id,
    hosts_file,
    netns_name,
    pod_hostname,
    resolv_conf,
    short_id,
    veth_name,
)
from services.node_agent.oci.spec import (
    CREATE_CONTAINER_CONFIG_ERROR,
    CREATE_CONTAINER_ERROR,
    BuiltSpec,
    Mount,
    Namespaces,
    SpecError,
    SpecInput,
    build_spec,
    plan_volume_mounts,
)
from services.node_agent.runtime import ExecResult, Observation, OnChange, StartError

log = logging.getLogger(__name__)

SHIM = str(Path(__file__).with_name("shim.py"))
SHIM_C = Path(__file__).with_name("shim.c")
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
CONTAINER_CREATING = "ContainerCreating"
START_TIMEOUT_S = 30.0
TERMINATION_MESSAGE_MAX = 4096
FALLBACK_LOG_LINES = 80


@dataclass(frozen=True)
class OciConfig:
    """Where the runtime keeps things and how the pod network looks.
    Tests use their own values for everything so they never clash."""

    state_dir: str = "/var/lib/podbus/node"
    #: bundles and pod files (see the module docstring); a tmpfs of its own
    #: is mounted there when it is on disk (`run_dir_size` at most)
    run_dir: str = "/run/podbus/node"
    run_dir_size: str = "256m"
    #: runc's state (rewritten several times per container start); "" is
    #: `<run_dir>/runc`, on the same tmpfs
    runc_root: str = ""
    image_root: str = DEFAULT_IMAGE_ROOT
    #: where Localhost seccomp profiles are (kubelet: <root-dir>/seccomp)
    seccomp_root: str = "/var/lib/podbus/seccomp"
    bridge: str = "podbus0"
    pod_cidr: str = "10.88.0.0/16"
    netns_prefix: str = "pb"
    id_prefix: str = "pb"
    cgroup_parent: str = "/podbus"
    runc: str = "runc"
    busybox: str = "/bin/busybox"
    host_ip: str = "127.0.0.1"
    node_name: str = ""
    node_memory_bytes: int = 0
    pids_limit: int = 0
    #: None: overlayfs when the kernel allows, else a copy
    overlay: bool | None = None
    #: NAT pod traffic that leaves the pod CIDR (the CNI bridge plugin's ipMasq)
    masquerade: bool = True
    #: how often disk emptyDirs with a sizeLimit are measured (kubelet: 10 s)
    volume_monitoring_period_s: float = volume_usage.MONITORING_PERIOD_S
    #: "auto": the C shim (compiled once into <state>/bin) when a compiler is
    #: there, else the Python one; "c" / "python" force one
    shim: str = "auto"
    #: `runc run`s in flight at once (0: twice the usable CPUs). Fifty at
    #: once share the CPUs so that all finish late; a few at a time finish
    #: in turn, with less CPU lost to contention: on 2 cores, 50 pods' p50
    #: creation->Running 0.83 s -> 0.55 s, CPU per start 35 -> 30 ms
    parallel_starts: int = 0

    def __post_init__(self) -> None:
        if not self.runc_root:
            object.__setattr__(self, "runc_root", str(Path(self.run_dir) / "runc"))


def prerequisites(config: OciConfig) -> list[str]:
    """What is missing on this machine, said plainly (empty: all there)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the oci runtime must run as root (it creates namespaces and mounts)")
    if shutil.which(config.runc) is None:
        problems.append(f"runc not found ({config.runc!r}): apt-get install runc")
    if not Path(config.busybox).is_file():
        problems.append(
            f"{config.busybox} not found: apt-get install busybox-static "
            "(the built-in busybox image is built from it)"
        )
    for tool, pkg in (("ip", "iproute2"),):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found: apt-get install {pkg}")
    return problems


@dataclass(slots=True)
class _Attempt:
    record: ContainerRecord
    dir: Path  # in the run dir; its durable twin: OciRuntime._data(dir)
    stop_signal: int = signal.SIGTERM
    kind: str = "app"


@dataclass(slots=True)
class _OciPod:
    uid: str
    dir: Path
    sandbox: SandboxRecord | None = None
    info: dict[str, Any] = field(default_factory=dict)
    containers: dict[str, _Attempt] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: eviction verdict (kubelet's message) once given; when to measure next
    evict: str = ""
    next_usage_check: float = 0.0


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _write_files(directory: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        (directory / name).write_text(text)


def parse_cri_log(data: bytes) -> list[tuple[float, bytes]]:
    """CRI log lines -> (epoch seconds, text with its newline unless the
    line was partial)."""
    out: list[tuple[float, bytes]] = []
    for line in data.split(b"\n"):
        if not line:
            continue
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            continue
        stamp = parts[0].decode(errors="replace")
        text = parts[3] if len(parts) > 3 else b""
        try:
            base, _, frac = stamp.rstrip("Z").partition(".")
            t = float(calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")))
            t += float("0." + frac) if frac else 0.0
        except ValueError:
            t = 0.0
        out.append((t, text if parts[2] == b"P" else text + b"\n"))
    return out


def _pid_alive(pid: int, needle: bytes = b"") -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return needle in cmdline if needle else True


class OciRuntime:
    """Real containers through runc (see the module docstring)."""

    writes_volume_files = True

    def __init__(self, config: OciConfig) -> None:
        self.config = config
        self.on_change: OnChange | None = None
        self.state = Path(config.state_dir)
        self.run = Path(config.run_dir)
        self.run_tmpfs = hostops.ensure_run_tmpfs(self.run, config.run_dir_size)
        self.pods_dir = self.run / "pods"
        self.data_pods = self.state / "pods"
        self.local_volumes = self.state / "local-volumes"
        for d in (self.pods_dir, self.data_pods, self.local_volumes, Path(config.runc_root)):
            d.mkdir(parents=True, exist_ok=True)
        self.images = ImageStore(config.image_root, busybox=config.busybox)
        self.network = hostops.Network(
            config.bridge, config.pod_cidr, self.state, config.netns_prefix
        )
        self._pods: dict[str, _OciPod] = {}
        self._bridge_ready = False
        self._bridge_lock = asyncio.Lock()
        self._start_slots = asyncio.Semaphore(
            config.parallel_starts or 2 * max(1, len(os.sched_getaffinity(0)))
        )
        self._overlay = config.overlay if config.overlay is not None else self._overlay_works()
        self._host_hosts = self._read_host("/etc/hosts")
        self._host_resolv = self._read_host("/etc/resolv.conf")
        self._background: set[asyncio.Task[Any]] = set()
        self._shim = self._shim_command()

    def _shim_command(self) -> list[str]:
        """The shim to run: the compiled C one when possible (a Python
        interpreter per container costs ~50 ms of CPU at each start)."""
        python = [sys.executable, "-I", "-S", SHIM]
        if self.config.shim == "python":
            return python
        source = SHIM_C.read_bytes()
        binary = self.state / "bin" / f"podbus-shim-{hashlib.sha256(source).hexdigest()[:12]}"
        if binary.exists():
            return [str(binary)]
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is not None:
            binary.parent.mkdir(parents=True, exist_ok=True)
            tmp = binary.with_suffix(f".{os.getpid()}.tmp")
            built = subprocess.run(
                [compiler, "-O2", "-o", str(tmp), str(SHIM_C)], capture_output=True, check=False
            )
            if built.returncode == 0:
                tmp.replace(binary)
                return [str(binary)]
            tmp.unlink(missing_ok=True)
            log.warning(
                "compiling the C shim failed, using shim.py: %s", built.stderr.decode()[-500:]
            )
        if self.config.shim == "c":
            raise RuntimeError("the C shim was asked for but cannot be compiled (no cc/gcc?)")
        return python

    @property
    def shim(self) -> str:
        return "c" if self._shim[0] != sys.executable else "python"

    @staticmethod
    def _read_host(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    def _overlay_works(self) -> bool:
        probe = self.state / "overlay-probe"
        shutil.rmtree(probe, ignore_errors=True)
        for d in ("l", "u", "w", "m"):
            (probe / d).mkdir(parents=True)
        try:
            hostops.mount(
                "overlay",
                str(probe / "m"),
                "overlay",
                0,
                f"lowerdir={probe / 'l'},upperdir={probe / 'u'},workdir={probe / 'w'}",
            )
        except hostops.HostError as exc:
            log.warning("overlayfs unavailable (%s): container layers are copied", exc)
            return False
        finally:
            hostops.unmount_all_under(str(probe))
            shutil.rmtree(probe, ignore_errors=True)
        return True

    @property
    def uses_overlay(self) -> bool:
        return self._overlay

    # ------------------------------------------------------------ helpers

    def _pod(self, uid: str) -> _OciPod:
        found = self._pods.get(uid)
        if found is None:
            found = self._pods[uid] = _OciPod(uid=uid, dir=self.pods_dir / uid)
        return found

    def _data(self, run_path: Path) -> Path:
        """The durable twin (under the state dir) of a pod or attempt
        directory in the run dir."""
        return self.data_pods / run_path.relative_to(self.pods_dir)

    def _changed(self, uid: str) -> None:
        if self.on_change is not None:
            self.on_change(uid)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _cgroups_path(self, uid: str, cid: str) -> str:
        return f"{self.config.cgroup_parent}/pod{short_id(uid, 12)}/{cid}"

    def _pod_cgroup(self, uid: str) -> str:
        return f"{self.config.cgroup_parent}/pod{short_id(uid, 12)}"

    async def _runc(self, *args: str, check: bool = True) -> tuple[int, bytes, bytes]:
        return await hostops.run(
            [self.config.runc, "--root", self.config.runc_root, *args], check=check
        )

    # ------------------------------------------------------------ adopt

    async def adopt(self, pod: Pod) -> None:
        uid = pod.metadata.uid
        if uid in self._pods:
            return
        pdir = self.pods_dir / uid
        info = _read_json(pdir / "pod.json")
        if info is None:
            return
        p = self._pod(uid)
        p.info = info
        netns = info.get("netns", "")
        ready = not netns or Path(f"/run/netns/{netns}").exists()
        p.sandbox = SandboxRecord(
            ready=ready,
            attempt=int(info.get("attempt", 0)),
            pod_ips=tuple(info.get("pod_ips", [])),
            created_at=info.get("created_at"),
        )
        cdir = pdir / "c"
        if not cdir.is_dir():
            return
        for name_dir in cdir.iterdir():
            attempts = sorted(
                (int(d.name) for d in name_dir.iterdir() if d.name.isdigit()), reverse=True
            )
            if not attempts:
                continue
            previous = None
            if len(attempts) > 1:
                prev = self._load_attempt(name_dir / str(attempts[1]))
                previous = prev.record if prev else None
            current = self._load_attempt(name_dir / str(attempts[0]))
            if current is None:
                continue
            if previous is not None:
                current.record = replace(current.record, previous=replace(previous, previous=None))
            p.containers[current.record.name] = current
            if current.record.state == "running":
                self._spawn(self._watch_adopted(uid, current))

    def _load_attempt(self, adir: Path) -> _Attempt | None:
        meta = _read_json(adir / "meta.json")
        if meta is None:
            return None
        record = ContainerRecord(
            name=meta["name"],
            state="created",
            container_id=meta["container_id"],
            image=meta.get("image", ""),
            image_id=meta.get("image_id", ""),
            created_at=meta.get("created_at"),
            restart_count=int(meta.get("attempt", 0)),
        )
        attempt = _Attempt(record, adir, int(meta.get("stop_signal", 15)), meta.get("kind", "app"))
        started = _read_json(adir / "started.json")
        if started is not None:
            attempt.record = record.started(float(started["started_at"]))
            if not (adir / "exit.json").exists() and not _pid_alive(
                int(started.get("shim_pid", 0)), b"shim"
            ):
                # the shim died without a word: the container is gone or orphaned
                attempt.record = attempt.record.exited(
                    137, time.time(), reason="ContainerStatusUnknown",
                    message="The container could not be located when the pod was adopted",
                )  # fmt: skip
                return attempt
        elif meta.get("failed"):
            attempt.record = record.exited(
                128, float(meta.get("failed_at", time.time())), reason="StartError",
                message=str(meta["failed"]),
            )  # fmt: skip
            return attempt
        self._refresh(attempt)
        return attempt

    async def _watch_adopted(self, uid: str, attempt: _Attempt) -> None:
        """An adopted container's shim is not our child: poll for its exit."""
        started = _read_json(attempt.dir / "started.json") or {}
        shim_pid = int(started.get("shim_pid", 0))
        while not (attempt.dir / "exit.json").exists():
            if not _pid_alive(shim_pid, b"shim"):
                break
            await asyncio.sleep(0.5)
        self._changed(uid)

    # ------------------------------------------------------------ sandbox

    def _enable_masquerade(self) -> None:
        if not self.config.masquerade:
            return
        try:
            nat.enable(self.config.bridge, self.config.pod_cidr)
        except nat.NatError as exc:
            log.warning(
                "pod traffic is not masqueraded (pods reach only this node and each other): %s",
                exc,
            )

    async def prepare_sandbox(self, pod: Pod) -> SandboxRecord:
        uid = pod.metadata.uid
        p = self._pod(uid)
        async with p.lock:
            attempt = p.sandbox.attempt + 1 if p.sandbox is not None else 0
            await asyncio.to_thread((p.dir / "ns").mkdir, parents=True, exist_ok=True)
            host_net = pod.spec.host_network
            hostname, _fqdn = pod_hostname(pod, socket.gethostname())
            netns = "" if host_net else netns_name(self.config.netns_prefix, uid)
            if host_net:
                ips: tuple[str, ...] = (self.config.host_ip,)
            else:
                async with self._bridge_lock:  # pods start concurrently
                    if not self._bridge_ready:
                        await self.network.ensure_bridge()
                        self._enable_masquerade()
                        self._bridge_ready = True
                ip = await self.network.allocate(uid)
                await self.network.setup(netns, veth_name(uid), ip)
                ips = (ip,)
            ipc = None if pod.spec.host_ipc else p.dir / "ns" / "ipc"
            uts = None if host_net else p.dir / "ns" / "uts"
            for path in (ipc, uts):
                if path is not None and path.exists():
                    hostops.umount(str(path))
            await hostops.persistent_namespaces(ipc, uts, hostname)
            files = {
                "hosts": hosts_file(pod, ips, self._host_hosts),
                "hostname": hostname + "\n",
                "resolv.conf": resolv_conf(pod, self._host_resolv),
            }
            await asyncio.to_thread(_write_files, p.dir, files)
            now = time.time()
            p.info = {
                "uid": uid,
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "netns": netns,
                "veth": "" if host_net else veth_name(uid),
                "pod_ips": list(ips),
                "attempt": attempt,
                "created_at": now,
                "hostname": hostname,
                "ipc": str(ipc) if ipc else "",
                "uts": str(uts) if uts else "",
            }
            if pod.spec.share_process_namespace and not pod.spec.host_pid:
                p.info["pause"] = await self._start_pause(pod, p)
            await asyncio.to_thread(_write_json, p.dir / "pod.json", dict(p.info))
            p.sandbox = SandboxRecord(ready=True, attempt=attempt, pod_ips=ips, created_at=now)
            return p.sandbox

    async def _start_pause(self, pod: Pod, p: _OciPod) -> str:
        """shareProcessNamespace: a holder process owning the pod's PID
        namespace (busybox sleep as pid 1), run detached."""
        cid = f"{self.config.id_prefix}-{short_id(p.uid, 12)}-pause"
        await self._runc("delete", "--force", cid, check=False)
        bundle = p.dir / "pause"
        hostops.unmount_all_under(str(bundle))
        shutil.rmtree(bundle, ignore_errors=True)
        (bundle / "rootfs").mkdir(parents=True)
        image = self.images.ensure_busybox()
        hostops.mount(
            str(self.images.layer_dirs(image)[0]), str(bundle / "rootfs"), "", hostops.MS_BIND
        )
        ns = self._namespaces(p, pod, pid="")
        spec = {
            "ociVersion": "1.0.2",
            "process": {"terminal": False, "user": {"uid": 65534, "gid": 65534},
                        "args": ["/bin/sleep", "2147483647"], "cwd": "/",
                        "env": ["PATH=/bin"], "noNewPrivileges": True,
                        "capabilities": {"bounding": [], "effective": [], "permitted": []}},
            "root": {"path": str(bundle / "rootfs"), "readonly": True},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {
                "namespaces": [{"type": "mount"}, {"type": "pid"},
                               *({"type": k, "path": v} for k, v in
                                 (("network", ns.network), ("ipc", ns.ipc), ("uts", ns.uts)) if v)],
                "cgroupsPath": self._cgroups_path(p.uid, cid),
            },
        }  # fmt: skip
        _write_json(bundle / "config.json", spec)
        # the holder inherits runc's stdio: a file, never a pipe we would wait on
        with (bundle / "runc.log").open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                self.config.runc, "--root", self.config.runc_root, "run", "--detach",
                "--bundle", str(bundle), "--pid-file", str(bundle / "pid"), cid,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
            await proc.wait()
        if proc.returncode != 0:
            raise hostops.HostError(
                f"the pod's process-namespace holder did not start: "
                f"{(bundle / 'runc.log').read_text(errors='replace').strip()[-500:]}"
            )
        return f"/proc/{int((bundle / 'pid').read_text())}/ns/pid"

    def _namespaces(self, p: _OciPod, pod: Pod, pid: str | None = None) -> Namespaces:
        netns = p.info.get("netns", "")
        return Namespaces(
            network=f"/run/netns/{netns}" if netns else None,
            ipc=p.info.get("ipc") or None,
            uts=p.info.get("uts") or None,
            pid=None if pod.spec.host_pid else (pid if pid is not None else ""),
        )

    # ------------------------------------------------------------ volumes

    def _volume_paths(self, pod: Pod, p: _OciPod, config: PodConfig) -> dict[str, tuple[str, bool]]:
        """Set up the pod's volumes (idempotent); name -> (host path, ro)."""
        out: dict[str, tuple[str, bool]] = {}
        psc = pod.spec.security_context
        fs_group = psc.fs_group if psc is not None else None
        for vol in pod.spec.volumes:
            out[vol.name] = self._volume(pod, p, vol, fs_group, config)
        return out

    def _volume(
        self, pod: Pod, p: _OciPod, vol: Volume, fs_group: int | None, config: PodConfig
    ) -> tuple[str, bool]:
        def failed(why: str) -> StartError:
            return StartError(
                WaitingReason(
                    reason=CONTAINER_CREATING,
                    message=f'MountVolume.SetUp failed for volume "{vol.name}" : {why}',
                )
            )

        if vol.empty_dir is not None:
            path = self._data(p.dir) / "volumes" / vol.name
            fresh = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
            if vol.empty_dir.medium == "Memory" and not hostops.mounts_under(str(path)):
                opts = "mode=0777"
                if vol.empty_dir.size_limit is not None:
                    opts += f",size={int(parse_quantity(vol.empty_dir.size_limit))}"
                hostops.mount("tmpfs", str(path), "tmpfs", 0, opts)
                fresh = True
            if fresh:
                os.chmod(path, 0o777)
                self._apply_fs_group(path, fs_group)
            return str(path), False
        if vol.host_path is not None:
            return self._host_path(vol, failed), False
        if vol.persistent_volume_claim is not None:
            claim = vol.persistent_volume_claim.claim_name
            path = self.local_volumes / pod.metadata.namespace / claim
            if not path.exists():
                path.mkdir(parents=True)
                os.chmod(path, 0o777)
                self._apply_fs_group(path, fs_group)
            return str(path), vol.persistent_volume_claim.read_only
        if is_projected(vol):
            try:
                files = projected_files(pod, vol, config)
            except VolumeSourceError as exc:
                raise failed(str(exc)) from exc
            # in the run dir: in memory, as kubelet keeps secret volumes on a tmpfs
            path = p.dir / "volumes" / vol.name
            if write_payload(path, files):
                self._apply_fs_group(path, fs_group)
            return str(path), True  # always read-only, as in Kubernetes
        raise failed("this volume type is not supported by the podbus oci runtime")

    def _host_path(self, vol: Volume, failed: Any) -> str:
        assert vol.host_path is not None
        path = Path(vol.host_path.path)
        kind = vol.host_path.type or ""
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.touch(mode=0o644)
        checks = {
            "Directory": (path.is_dir, "is not a directory"),
            "File": (path.is_file, "is not a file"),
            "Socket": (path.is_socket, "is not a socket file"),
            "CharDevice": (path.is_char_device, "is not a character device"),
            "BlockDevice": (path.is_block_device, "is not a block device"),
        }
        if kind in checks:
            ok, why = checks[kind]
            if not path.exists():
                raise failed(f"hostPath type check failed: {path} does not exist")
            if not ok():
                raise failed(f"hostPath type check failed: {path} {why}")
        return str(path)

    @staticmethod
    def _apply_fs_group(path: Path, fs_group: int | None) -> None:
        """kubelet's SetVolumeOwnership: group fsGroup, group rw, setgid dirs."""
        if fs_group is None:
            return
        for dirpath, dirs, files in os.walk(path):
            for name in [*dirs, *files, ""]:
                target = os.path.join(dirpath, name) if name else dirpath
                with contextlib.suppress(OSError):
                    st = os.lstat(target)
                    os.lchown(target, -1, fs_group)
                    if not os.path.islink(target):
                        mode = st.st_mode | 0o060
                        if os.path.isdir(target):
                            mode |= 0o2010
                        os.chmod(target, mode & 0o7777)

    # ------------------------------------------------------------ containers

    async def start_container(
        self,
        pod: Pod,
        container: Container,
        kind: ContainerKind,
        previous: ContainerRecord | None,
        config: PodConfig = EMPTY_CONFIG,
    ) -> ContainerRecord:
        uid = pod.metadata.uid
        p = self._pod(uid)
        try:
            image = self.images.resolve(container.image)
        except (ReferenceError, ImageError) as exc:
            raise StartError(WaitingReason(reason="InvalidImageName", message=str(exc))) from exc
        if image is None:
            raise StartError(
                WaitingReason(
                    reason=ERR_IMAGE_NEVER_PULL, message=never_pull_message(container.image)
                )
            )
        ips = p.sandbox.pod_ips if p.sandbox is not None else ()
        try:
            cms, secrets = config.env_maps()
            env = container_env(
                pod,
                container,
                pod_ips=ips,
                host_ips=(self.config.host_ip,),
                config_maps=cms,
                secrets=secrets,
            )
        except EnvError as exc:
            raise StartError(
                WaitingReason(reason=CREATE_CONTAINER_CONFIG_ERROR, message=str(exc))
            ) from exc
        attempt_no = previous.restart_count + 1 if previous is not None else 0
        cid = container_id(self.config.id_prefix, uid, container.name, attempt_no)
        now = time.time()
        record = new_attempt(
            previous, container.name, container_id=f"runc://{cid}", at=now,
            image=container.image, image_id=image.id,
        )  # fmt: skip
        adir = p.dir / "c" / container.name / str(attempt_no)
        if adir.exists():  # a retried start: runc may still hold the old one
            await self._runc("delete", "--force", cid, check=False)
        # Files, mounts and the spec are blocking work (tens of syscalls, an
        # overlay mount): done in a worker thread so that pods starting
        # together overlap them and the loop goes on serving the others.
        built, meta = await asyncio.to_thread(
            self._prepare_attempt,
            pod, p, container, kind, image, env, cid, adir, record, now, config,
        )  # fmt: skip
        attempt = _Attempt(record, adir, built.stop_signal, kind)
        p.containers[container.name] = attempt
        await self._run_shim(uid, attempt, cid, meta)
        return attempt.record

    def _prepare_attempt(
        self,
        pod: Pod,
        p: _OciPod,
        container: Container,
        kind: ContainerKind,
        image: ImageRecord,
        env: list[tuple[str, str]],
        cid: str,
        adir: Path,
        record: ContainerRecord,
        now: float,
        config: PodConfig,
    ) -> tuple[BuiltSpec, dict[str, Any]]:
        """The attempt's directory, root filesystem, volumes and runc bundle
        (config.json, meta.json). Blocking; run in a worker thread. Raises
        StartError with the attempt's directory removed."""
        uid = pod.metadata.uid
        attempt_no = int(adir.name)
        data = self._data(adir)
        self._prune_attempts(adir.parent, keep_from=attempt_no - 1)
        for d in (adir, data):
            if d.exists():
                hostops.remove_tree(d)
            d.mkdir(parents=True)
        termination_log = data / "termination-log"
        try:
            volume_paths = self._volume_paths(pod, p, config)
            rootfs = self._rootfs(adir, data, self.images.layer_dirs(image))
            passwd, group = self._user_files(rootfs)
            termination_log.touch(mode=0o666)
            os.chmod(termination_log, 0o666)
            mounts = [
                Mount("/etc/hosts", str(p.dir / "hosts")),
                Mount("/etc/hostname", str(p.dir / "hostname")),
                Mount("/etc/resolv.conf", str(p.dir / "resolv.conf")),
            ]
            if container.termination_message_path:
                mounts.append(Mount(container.termination_message_path, str(termination_log)))
            mounts.extend(plan_volume_mounts(container, volume_paths, env))
            for m in mounts:
                if m.type == "bind" and not Path(m.source).exists():
                    Path(m.source).mkdir(parents=True, exist_ok=True)
            pid_ns = ""
            if pod.spec.share_process_namespace and p.info.get("pause"):
                pid_ns = str(p.info["pause"])
            target = getattr(container, "target_container_name", "")
            if kind == "ephemeral" and target:
                tpid = self._init_pid(p, target)
                if tpid:
                    pid_ns = f"/proc/{tpid}/ns/pid"
            built = build_spec(
                SpecInput(
                    pod=pod,
                    container=container,
                    kind=kind,
                    image=image.config,
                    env=env,
                    rootfs=str(rootfs),
                    namespaces=self._namespaces(p, pod, pid_ns),
                    cgroups_path=self._cgroups_path(uid, cid),
                    mounts=mounts,
                    passwd=passwd,
                    group=group,
                    hostname=str(p.info.get("hostname", "")),
                    pids_limit=self.config.pids_limit,
                    node_memory_bytes=self.config.node_memory_bytes,
                    annotations={
                        "io.podbus.pod.uid": uid,
                        "io.podbus.container.name": container.name,
                    },
                    load_seccomp=self._load_seccomp,
                )
            )
        except SpecError as exc:
            hostops.remove_tree(adir)
            hostops.remove_tree(data)
            raise StartError(WaitingReason(reason=exc.reason, message=exc.message)) from exc
        except StartError:
            hostops.remove_tree(adir)
            hostops.remove_tree(data)
            raise
        _write_json(adir / "config.json", built.config)
        meta = {
            "name": container.name,
            "container_id": record.container_id,
            "runc_id": cid,
            "image": container.image,
            "image_id": image.id,
            "created_at": now,
            "attempt": attempt_no,
            "stop_signal": built.stop_signal,
            "kind": kind,
            "cgroups_path": self._cgroups_path(uid, cid),
            "fallback_to_logs": container.termination_message_policy == "FallbackToLogsOnError",
        }
        _write_json(adir / "meta.json", meta)
        return built, meta

    def _load_seccomp(self, localhost_profile: str) -> Mapping[str, Any]:
        """A Localhost profile from the seccomp root, as containerd loads it."""
        root = Path(self.config.seccomp_root)
        path = root / localhost_profile
        if not path.resolve().is_relative_to(root.resolve()):
            raise SpecError(
                f"failed to generate spec: seccomp profile {localhost_profile!r} is outside {root}",
                CREATE_CONTAINER_ERROR,
            )
        try:
            data = json.loads(path.read_bytes())
        except OSError as exc:
            why = (exc.strerror or str(exc)).lower()
            raise SpecError(
                f'failed to generate spec: cannot load seccomp profile "{path}": '
                f"open {path}: {why}",
                CREATE_CONTAINER_ERROR,
            ) from exc
        except ValueError as exc:
            raise SpecError(
                f'failed to generate spec: decoding seccomp profile "{path}" failed: {exc}',
                CREATE_CONTAINER_ERROR,
            ) from exc
        if not isinstance(data, dict):
            raise SpecError(
                f'failed to generate spec: seccomp profile "{path}" is not a JSON object',
                CREATE_CONTAINER_ERROR,
            )
        return data

    def _prune_attempts(self, cdir: Path, keep_from: int) -> None:
        for parent in (cdir, self._data(cdir)):
            if not parent.is_dir():
                continue
            for d in parent.iterdir():
                if d.name.isdigit() and int(d.name) < keep_from:
                    hostops.remove_tree(d)

    def _rootfs(self, adir: Path, data: Path, layers: list[Path]) -> Path:
        """On overlayfs: the mount point in the bundle, the writable layer
        on disk. A copy goes on disk whole."""
        if self._overlay:
            rootfs = adir / "rootfs"
            rootfs.mkdir()
            (data / "upper").mkdir()
            (data / "work").mkdir()
            lower = ":".join(str(d) for d in reversed(layers))
            hostops.mount(
                "overlay", str(rootfs), "overlay", 0,
                f"lowerdir={lower},upperdir={data / 'upper'},workdir={data / 'work'}",
            )  # fmt: skip
            return rootfs
        rootfs = data / "rootfs"
        rootfs.mkdir()
        for layer in layers:
            _copy_layer(layer, rootfs)
        return rootfs

    @staticmethod
    def _user_files(rootfs: Path) -> tuple[str, str]:
        def read(rel: str) -> str:
            try:
                return (rootfs / rel).read_text()
            except (OSError, UnicodeDecodeError):
                return ""

        return read("etc/passwd"), read("etc/group")

    def _init_pid(self, p: _OciPod, name: str) -> int:
        attempt = p.containers.get(name)
        if attempt is None or attempt.record.state != "running":
            return 0
        started = _read_json(attempt.dir / "started.json") or {}
        return int(started.get("pid", 0))

    async def _run_shim(self, uid: str, attempt: _Attempt, cid: str, meta: dict[str, Any]) -> None:
        """The shim and its `runc run`, in one of the start slots."""
        async with self._start_slots:
            await self._run_shim_now(uid, attempt, cid, meta)

    async def _run_shim_now(
        self, uid: str, attempt: _Attempt, cid: str, meta: dict[str, Any]
    ) -> None:
        adir = attempt.dir
        with (adir / "shim.err").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *self._shim,
                self.config.runc, self.config.runc_root, cid, str(adir), str(adir),
                hostops.oom_file(meta["cgroups_path"]), str(self._data(adir) / "log"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )  # fmt: skip
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                line = (await proc.stdout.readline()).decode(errors="replace").strip()
        except TimeoutError:
            line = "failed the container did not start within 30s"
        word, _, rest = line.partition(" ")
        if word == "started":
            _pid, _, at = rest.partition(" ")
            attempt.record = attempt.record.started(float(at))
            self._spawn(self._watch_child(uid, proc))
            return
        message = rest or (adir / "shim.err").read_text(errors="replace")[-2000:] or "runc failed"
        message = _runc_message(message)
        meta["failed"] = message
        meta["failed_at"] = time.time()
        _write_json(adir / "meta.json", meta)
        attempt.record = attempt.record.exited(
            128, time.time(), reason="StartError", message=message
        )
        self._spawn(self._reap(proc))

    async def _watch_child(self, uid: str, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self._changed(uid)

    @staticmethod
    async def _reap(proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()

    def _refresh(self, attempt: _Attempt) -> None:
        """A running attempt whose exit.json appeared becomes exited."""
        rec = attempt.record
        if rec.state == "exited":
            return
        result = _read_json(attempt.dir / "exit.json")
        if result is None:
            return
        code = int(result.get("exit_code", 255))
        reason = "OOMKilled" if result.get("oom_killed") else ""
        message = self._termination_message(attempt, code)
        if rec.state == "created":
            rec = rec.started(float(result.get("started_at", time.time())))
        attempt.record = rec.exited(
            code, float(result.get("finished_at", time.time())), reason=reason,
            message=message, signal=int(result.get("signal", 0)),
        )  # fmt: skip

    def _termination_message(self, attempt: _Attempt, code: int) -> str:
        try:
            text = (self._data(attempt.dir) / "termination-log").read_bytes()[
                :TERMINATION_MESSAGE_MAX
            ]
        except OSError:
            text = b""
        message = text.decode(errors="replace")
        policy = _read_json(attempt.dir / "meta.json") or {}
        if not message and code != 0 and policy.get("fallback_to_logs"):
            lines = parse_cri_log(self._read_log(self._data(attempt.dir)))[-FALLBACK_LOG_LINES:]
            message = b"".join(t for _ts, t in lines).decode(errors="replace")[
                -TERMINATION_MESSAGE_MAX:
            ]
        return message

    async def refresh_volumes(self, pod: Pod, config: PodConfig) -> None:
        p = self._pods.get(pod.metadata.uid)
        if p is None or p.sandbox is None:
            return
        psc = pod.spec.security_context
        fs_group = psc.fs_group if psc is not None else None

        def refresh() -> None:
            for vol in pod.spec.volumes:
                path = p.dir / "volumes" / vol.name
                if not is_projected(vol) or not path.is_dir():
                    continue  # (not set up yet: the next start does it)
                try:
                    files = projected_files(pod, vol, config)
                except VolumeSourceError as exc:
                    # kubelet keeps the files it had when the source went away
                    log.debug("volume %s of pod %s kept as it was: %s", vol.name, p.uid, exc)
                    continue
                if write_payload(path, files):
                    self._apply_fs_group(path, fs_group)

        await asyncio.to_thread(refresh)

    async def stop_container(
        self, pod: Pod, record: ContainerRecord, grace_seconds: float, *, pre_stop: bool
    ) -> None:
        p = self._pods.get(pod.metadata.uid)
        attempt = p.containers.get(record.name) if p is not None else None
        if p is None or attempt is None or attempt.record.container_id != record.container_id:
            return
        self._refresh(attempt)
        if attempt.record.state == "exited":
            return
        cid = record.container_id.removeprefix("runc://")
        task = asyncio.ensure_future(
            self._stop(pod, p, attempt, cid, max(grace_seconds, 0.0), pre_stop)
        )
        p.tasks.add(task)
        task.add_done_callback(p.tasks.discard)
        if not pre_stop:
            await asyncio.sleep(0)  # the stop signal goes out before we return

    async def _stop(
        self, pod: Pod, p: _OciPod, attempt: _Attempt, cid: str, grace: float, pre_stop: bool
    ) -> None:
        deadline = time.monotonic() + grace
        container = next(
            (
                c
                for c in [*pod.spec.init_containers, *pod.spec.containers]
                if c.name == attempt.record.name
            ),
            None,
        )
        handler = container.lifecycle.pre_stop if container and container.lifecycle else None
        if pre_stop and handler is not None and container is not None and grace > 0:
            with contextlib.suppress(TimeoutError, Exception):
                async with asyncio.timeout(grace):
                    await run_handler(self, pod, container, attempt.record, handler,
                                      p.sandbox.pod_ip if p.sandbox else "")  # fmt: skip
        await self._runc("kill", cid, str(attempt.stop_signal), check=False)
        while time.monotonic() < deadline:
            if (attempt.dir / "exit.json").exists():
                return
            await asyncio.sleep(min(0.1, max(deadline - time.monotonic(), 0.01)))
        if not (attempt.dir / "exit.json").exists():
            await self._runc("kill", "--all", cid, "KILL", check=False)

    async def observe(self, pod: Pod) -> Observation:
        p = self._pods.get(pod.metadata.uid)
        if p is None:
            return Observation(sandbox=None)
        netns = p.info.get("netns") if p.sandbox is not None else ""
        if (
            p.sandbox is not None
            and netns
            and p.sandbox.ready
            and not Path(f"/run/netns/{netns}").exists()
        ):
            p.sandbox = replace(p.sandbox, ready=False)
        records = []
        for attempt in p.containers.values():
            self._refresh(attempt)
            records.append(attempt.record)
        next_check = await self._check_volume_usage(pod, p)
        return Observation(
            sandbox=p.sandbox, records=tuple(records), next_change_at=next_check, evict=p.evict
        )

    async def _check_volume_usage(self, pod: Pod, p: _OciPod) -> float | None:
        """Measure the pod's disk emptyDirs that have a sizeLimit once per
        monitoring period; over its limit, the pod is to be evicted (the
        verdict stays). When to look again, or None."""
        if (
            p.evict
            or p.sandbox is None
            or pod.metadata.deletion_timestamp is not None
            or pod.status.phase in ("Succeeded", "Failed")
        ):
            return None  # nothing more to evict
        limits = volume_usage.disk_limits(pod)
        if not limits:
            return None
        now = time.time()
        if now < p.next_usage_check:
            return p.next_usage_check
        p.next_usage_check = now + self.config.volume_monitoring_period_s
        volumes = self._data(p.dir) / "volumes"
        paths = [str(volumes / lim.volume) for lim in limits]
        used = await asyncio.to_thread(lambda: [volume_usage.usage_bytes(x) for x in paths])
        for lim, nbytes in zip(limits, used, strict=True):
            if nbytes > lim.limit_bytes:
                p.evict = volume_usage.eviction_message(lim)
                log.info("evicting pod %s: %s", p.uid, p.evict)
                return None
        return p.next_usage_check

    async def exec(self, pod: Pod, container: str, command: list[str]) -> ExecResult:
        p = self._pods.get(pod.metadata.uid)
        attempt = p.containers.get(container) if p is not None else None
        if attempt is not None:
            self._refresh(attempt)
        if attempt is None or attempt.record.state != "running":
            return ExecResult(exit_code=126, stderr=b"container not running\n")
        cid = attempt.record.container_id.removeprefix("runc://")
        pid_file = attempt.dir / f"exec-{time.monotonic_ns()}.pid"
        proc = await asyncio.create_subprocess_exec(
            self.config.runc, "--root", self.config.runc_root, "exec", "--pid-file",
            str(pid_file), cid, *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
            raise
        finally:
            pid_file.unlink(missing_ok=True)
        return ExecResult(exit_code=proc.returncode or 0, stdout=out, stderr=err)

    async def exec_interactive(
        self, pod: Pod, container: str, command: list[str], *, tty: bool, rows: int, cols: int
    ) -> OciInteractive:
        """Run a command with stdin forwarded (attach sessions; oci/attach.py)."""
        p = self._pods.get(pod.metadata.uid)
        attempt = p.containers.get(container) if p is not None else None
        if attempt is not None:
            self._refresh(attempt)
        if attempt is None or attempt.record.state != "running":
            raise RuntimeError(f'container "{container}" is not running')
        return await OciInteractive.start(
            [self.config.runc, "--root", self.config.runc_root],
            attempt.record.container_id.removeprefix("runc://"),
            command,
            tty=tty, rows=rows, cols=cols,
            pid_file=attempt.dir / f"attach-{time.monotonic_ns()}.pid",
        )  # fmt: skip

    @staticmethod
    def _read_log(adir: Path) -> bytes:
        try:
            return (adir / "log").read_bytes()
        except OSError:
            return b""

    def _log_dir(self, pod: Pod, container: str, previous: bool) -> Path | None:
        """The durable attempt directory holding the container's log."""
        p = self._pods.get(pod.metadata.uid)
        attempt = p.containers.get(container) if p is not None else None
        if attempt is None:
            return None
        data = self._data(attempt.dir)
        if not previous:
            return data
        prev = data.parent / str(int(data.name) - 1)
        return prev if prev.is_dir() else None

    async def logs(self, pod: Pod, container: str, *, previous: bool = False) -> bytes:
        adir = self._log_dir(pod, container, previous)
        if adir is None:
            return b""
        return b"".join(t for _ts, t in parse_cri_log(self._read_log(adir)))

    async def logs_timestamped(
        self, pod: Pod, container: str, *, previous: bool = False
    ) -> list[tuple[float, bytes]]:
        adir = self._log_dir(pod, container, previous)
        return parse_cri_log(self._read_log(adir)) if adir is not None else []

    # ------------------------------------------------------------ removal

    async def remove_pod(self, pod_uid: str) -> None:
        p = self._pods.pop(pod_uid, None)
        pdir = self.pods_dir / pod_uid
        if p is None and not pdir.exists() and not self._data(pdir).exists():
            return
        if p is not None:
            for task in list(p.tasks):
                task.cancel()
            info = p.info or (_read_json(pdir / "pod.json") or {})
        else:
            info = _read_json(pdir / "pod.json") or {}
        await self._destroy_pod_dir(pod_uid, pdir, info)

    async def _destroy_pod_dir(self, uid: str, pdir: Path, info: Mapping[str, Any]) -> None:
        prefix = f"{self.config.id_prefix}-{short_id(uid, 12)}-"
        await self._kill_containers(prefix)
        for adir in pdir.glob("c/*/*"):
            started = _read_json(adir / "started.json") or {}
            shim = int(started.get("shim_pid", 0))
            deadline = time.monotonic() + 5.0
            while shim and _pid_alive(shim, b"shim") and time.monotonic() < deadline:  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.05)
        netns = str(info.get("netns", ""))
        if netns:
            await self.network.teardown(netns, str(info.get("veth", "")) or veth_name(uid))
        self.network.release(uid)
        hostops.remove_tree(pdir)
        hostops.remove_tree(self._data(pdir))
        hostops.remove_cgroups(self._pod_cgroup(uid))

    def _pod_dirs(self) -> list[Path]:
        """Every pod's run directory, also of pods of which only the durable
        twin is left (the run dir is emptied by a reboot)."""
        uids: set[str] = set()
        for parent in (self.pods_dir, self.data_pods):
            if parent.is_dir():
                uids.update(d.name for d in parent.iterdir())
        return [self.pods_dir / uid for uid in sorted(uids)]

    async def _kill_containers(self, prefix: str) -> None:
        _rc, out, _ = await self._runc("list", "--format", "json", check=False)
        try:
            listed = json.loads(out or b"null") or []
        except ValueError:
            listed = []
        ids = [c["id"] for c in listed if str(c.get("id", "")).startswith(prefix)]
        await asyncio.gather(
            *(self._runc("kill", "--all", cid, "KILL", check=False) for cid in ids)
        )
        await asyncio.gather(*(self._runc("delete", "--force", cid, check=False) for cid in ids))

    async def remove_orphans(self, known: set[str], min_age_s: float = 30.0) -> list[str]:
        """Remove pods on disk that no worker owns (deleted while the agent
        was down): not in `known`, not adopted, and older than min_age_s."""
        removed = []
        now = time.time()
        for d in self._pod_dirs():
            uid = d.name
            if uid in known or uid in self._pods:
                continue
            try:
                age = now - (d if d.exists() else self._data(d)).stat().st_mtime
            except OSError:
                continue
            if age < min_age_s:
                continue
            info = _read_json(d / "pod.json") or {}
            log.info(
                "removing orphaned pod %s/%s (%s)", info.get("namespace"), info.get("name"), uid
            )
            await self._destroy_pod_dir(uid, d, info)
            removed.append(uid)
        return removed

    async def cleanup(self) -> list[str]:
        """Remove everything a crashed agent left (containers, shims,
        mounts, namespaces, veths, allocations, cgroups, the bridge);
        returns what was removed."""
        done: list[str] = []
        await self._kill_containers(self.config.id_prefix + "-")
        for d in self._pod_dirs():
            info = _read_json(d / "pod.json") or {}
            await self._destroy_pod_dir(d.name, d, info)
            done.append(f"pod {info.get('namespace', '?')}/{info.get('name', d.name)}")
        for netns in self.network.our_netns():
            await hostops.run(["ip", "netns", "del", netns], check=False)
            done.append(f"netns {netns}")
        self.network.release_all()
        hostops.remove_cgroups(self.config.cgroup_parent)
        if nat.disable(self.config.bridge):
            done.append(f"nftables table {nat.table_name(self.config.bridge)}")
        if Path(f"/sys/class/net/{self.config.bridge}").exists():
            await self.network.delete_bridge()
            done.append(f"bridge {self.config.bridge}")
        self._pods.clear()
        hostops.release_run_tmpfs(self.run)  # mounted again by the next runtime
        return done

    async def close(self) -> None:
        """Stop background watchers (containers keep running)."""
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _runc_message(text: str) -> str:
    """The useful part of runc's error output."""
    text = text.strip()
    for marker in ("exec: ", "runc create failed: ", "error: "):
        if marker in text:
            return text[text.rindex(marker) :][:1000]
    return text[-1000:]


def _copy_layer(layer: Path, dest: Path) -> None:
    """Apply one layer onto a copied root filesystem (whiteouts remove)."""
    for dirpath, dirs, files in os.walk(layer):
        rel = os.path.relpath(dirpath, layer)
        target_dir = dest / rel if rel != "." else dest
        with contextlib.suppress(OSError):
            if os.getxattr(dirpath, "trusted.overlay.opaque") == b"y" and target_dir.exists():
                shutil.rmtree(target_dir)
        target_dir.mkdir(exist_ok=True)
        shutil.copystat(dirpath, target_dir, follow_symlinks=False)
        for name in [*files, *[d for d in dirs if os.path.islink(os.path.join(dirpath, d))]]:
            src = os.path.join(dirpath, name)
            dst = target_dir / name
            st = os.lstat(src)
            if os.path.exists(dst) or os.path.islink(dst):
                if dst.is_dir() and not dst.is_symlink():
                    shutil.rmtree(dst)
                else:
                    dst.unlink()
            if (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0:
                continue  # whiteout
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst, follow_symlinks=False)
            with contextlib.suppress(OSError):
                os.lchown(dst, st.st_uid, st.st_gid)
