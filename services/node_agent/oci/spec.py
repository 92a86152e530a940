"""Pure: a runc `config.json` from a Pod, one of its containers and the
image config, the way kubelet + containerd's CRI plugin build it.

- argv: Kubernetes' command/args rules over the image's Entrypoint/Cmd
  (`logic.env.effective_argv`), `$(VAR)` expanded; env: image Env, then the
  container's; working dir: the container's, the image's, or /.
- user: runAsUser / runAsGroup (container over pod), else the image USER
  (`uid`, `uid:gid`, `name`, `name:group` resolved against the image's
  /etc/passwd and /etc/group); additional groups: the user's /etc/group
  memberships, fsGroup, supplementalGroups. runAsNonRoot is checked with
  kubelet's exact messages (`verifyRunAsNonRoot`) -> CreateContainerConfigError.
- capabilities: containerd's default set with add/drop (`ALL` understood),
  everything when privileged; allowPrivilegeEscalation false ->
  noNewPrivileges; readOnlyRootFilesystem -> root.readonly.
- seccomp: RuntimeDefault / Localhost (a Docker-format or OCI profile under
  the node's seccomp root, read through `SpecInput.load_seccomp`) /
  Unconfined (the default when unset, as kubelet without SeccompDefault).
- cgroups: memory limit, cpu quota from the limit and shares from the
  request (kubelet's MilliCPUToQuota / MilliCPUToShares), pids limit;
  oom_score_adj by QoS class.
- namespaces: network, ipc and uts joined from the pod sandbox (paths), pid
  joined when the pod shares its process namespace or an ephemeral
  container targets another container, host namespaces for hostNetwork /
  hostPID / hostIPC; a private mount and cgroup namespace.
- mounts: /proc, /dev, ... as runc's default spec, then the pod's files
  (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev/termination-log)
  and the volume mounts (`plan_volume_mounts`).
"""

from __future__ import annotations

import posixpath
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from podmodel.pod import Container, ContainerKind, Pod, SecurityContext, qos_class
from podmodel.quantity import QuantityError, parse_quantity

from services.node_agent.logic.env import (
    EnvError,
    effective_argv,
    expand,
    expand_command_and_args,
    mapping_for,
    merge_image_env,
)
from services.node_agent.oci.imageref import ImageConfig

CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"


class SpecError(Exception):
    """The container cannot be configured; `reason` is the waiting reason
    (CreateContainerConfigError or CreateContainerError)."""

    def __init__(self, message: str, reason: str = CREATE_CONTAINER_CONFIG_ERROR) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# containerd's (and Docker's) default capability set
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

ALL_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

#: bit numbers (for checking /proc/<pid>/status in tests and tools)
CAPABILITY_BITS = {name: i for i, name in enumerate(
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
        "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]
)}  # fmt: skip

#: RuntimeDefault: everything allowed but what Docker's and containerd's
#: default profiles refuse to an unprivileged container (EPERM)
SECCOMP_DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "get_kernel_syms", "get_mempolicy", "init_module",
    "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mbind", "move_pages", "nfsservctl", "open_by_handle_at", "perf_event_open",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "reboot", "request_key", "set_mempolicy", "settimeofday", "stime", "swapon", "swapoff",
    "sysfs", "_sysctl", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
)  # fmt: skip
#: refused unless the container has CAP_SYS_ADMIN
SECCOMP_SYS_ADMIN = (
    "mount", "umount", "umount2", "unshare", "setns", "pivot_root", "name_to_handle_at",
    "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree", "syslog",
    "setdomainname", "sethostname", "clone3",
)  # fmt: skip

CPU_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000
MIN_SHARES = 2
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class Mount:
    """One bind (or tmpfs) mount into the container."""

    destination: str
    source: str
    read_only: bool = False
    type: str = "bind"
    options: tuple[str, ...] = ()

    def to_oci(self) -> dict[str, Any]:
        if self.type == "bind":
            opts = ["rbind", "ro" if self.read_only else "rw", *self.options]
        else:
            opts = [*self.options, *(["ro"] if self.read_only else [])]
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": opts,
        }


@dataclass(frozen=True, slots=True)
class Namespaces:
    """Paths of the sandbox namespaces a container joins; None means the
    host's (hostNetwork, hostIPC), "" a new one."""

    network: str | None = ""
    ipc: str | None = ""
    uts: str | None = ""
    pid: str | None = ""


@dataclass(frozen=True, slots=True)
class SpecInput:
    pod: Pod
    container: Container
    kind: ContainerKind
    image: ImageConfig
    env: Sequence[tuple[str, str]]
    rootfs: str
    namespaces: Namespaces
    cgroups_path: str
    mounts: Sequence[Mount] = ()
    passwd: str = ""
    group: str = ""
    hostname: str = ""
    pids_limit: int = 0
    node_memory_bytes: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: reads a Localhost seccomp profile by its localhostProfile path (raises
    #: SpecError); None: Localhost profiles cannot be used
    load_seccomp: Callable[[str], Mapping[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class BuiltSpec:
    config: dict[str, Any]
    argv: tuple[str, ...]
    uid: int
    gid: int
    stop_signal: int


# ------------------------------------------------------------------ security


def pod_ref(pod: Pod) -> str:
    """kubelet's format.Pod: name_namespace(uid)."""
    m = pod.metadata
    return f"{m.name}_{m.namespace}({m.uid})"


def effective_security_context(pod: Pod, container: Container) -> SecurityContext:
    """DetermineEffectiveSecurityContext: the container's fields over the pod's."""
    psc = pod.spec.security_context
    csc = container.security_context or SecurityContext()

    def pick(name: str) -> Any:
        own = getattr(csc, name)
        if own is not None:
            return own
        return getattr(psc, name) if psc is not None else None

    return SecurityContext(
        run_as_user=pick("run_as_user"),
        run_as_group=pick("run_as_group"),
        run_as_non_root=pick("run_as_non_root"),
        se_linux_options=pick("se_linux_options"),
        seccomp_profile=pick("seccomp_profile"),
        app_armor_profile=pick("app_armor_profile"),
        privileged=csc.privileged,
        capabilities=csc.capabilities,
        read_only_root_filesystem=csc.read_only_root_filesystem,
        allow_privilege_escalation=csc.allow_privilege_escalation,
        proc_mount=csc.proc_mount,
    )


def image_user(user: str) -> tuple[int | None, str]:
    """kubelet's view of the image USER: (uid, "") when numeric (before any
    `:group`), (None, name) for a name, (0, "") when unset (root)."""
    name = user.split(":", 1)[0]
    if not name:
        return 0, ""
    if name.isdigit():
        return int(name), ""
    return None, name


def verify_run_as_non_root(pod: Pod, container: Container, image_user_field: str) -> None:
    """kubelet's verifyRunAsNonRoot, with its messages."""
    sc = effective_security_context(pod, container)
    if not sc.run_as_non_root:
        return
    if sc.run_as_user is not None:
        if sc.run_as_user == 0:
            raise SpecError(
                f'container\'s runAsUser breaks non-root policy (pod: "{pod_ref(pod)}", '
                f"container: {container.name})"
            )
        return
    uid, username = image_user(image_user_field)
    if uid == 0:
        raise SpecError(
            f'container has runAsNonRoot and image will run as root (pod: "{pod_ref(pod)}", '
            f"container: {container.name})"
        )
    if uid is None and username:
        raise SpecError(
            f"container has runAsNonRoot and image has non-numeric user ({username}), cannot "
            f'verify user is non-root (pod: "{pod_ref(pod)}", container: {container.name})'
        )


def _passwd_entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(
    pod: Pod, container: Container, image_user_field: str, passwd: str, group: str
) -> tuple[int, int, list[int]]:
    """(uid, gid, additional gids) as containerd's CRI plugin resolves them."""
    sc = effective_security_context(pod, container)
    users = [e for e in _passwd_entries(passwd) if len(e) >= 4]
    groups = [e for e in _passwd_entries(group) if len(e) >= 3]
    username = ""
    gid: int | None = None
    if sc.run_as_user is not None:
        uid = sc.run_as_user
        for e in users:
            if e[2] == str(uid):
                username = e[0]
                gid = int(e[3]) if e[3].isdigit() else 0
                break
    else:
        name, _, grp = image_user_field.partition(":")
        if not name:
            uid = 0
        elif name.isdigit():
            uid = int(name)
        else:
            uid = -1
        for e in users:
            if (uid >= 0 and e[2] == str(uid)) or (uid < 0 and e[0] == name):
                username = e[0]
                uid = int(e[2])
                gid = int(e[3]) if e[3].isdigit() else 0
                break
        if uid < 0:
            raise SpecError(
                f"failed to generate spec: unable to find user {name}: no matching entries "
                "in passwd file",
                CREATE_CONTAINER_ERROR,
            )
        if grp:
            if grp.isdigit():
                gid = int(grp)
            else:
                found = [int(g[2]) for g in groups if g[0] == grp and g[2].isdigit()]
                if not found:
                    raise SpecError(
                        f"failed to generate spec: unable to find group {grp}: no matching "
                        "entries in group file",
                        CREATE_CONTAINER_ERROR,
                    )
                gid = found[0]
    if sc.run_as_group is not None:
        gid = sc.run_as_group
    extra: list[int] = []
    if username:
        for g in groups:
            members = g[3].split(",") if len(g) > 3 else []
            if username in members and g[2].isdigit():
                extra.append(int(g[2]))
    psc = pod.spec.security_context
    if psc is not None:
        if psc.fs_group is not None:
            extra.append(psc.fs_group)
        extra.extend(psc.supplemental_groups)
    final_gid = gid if gid is not None else 0
    seen: list[int] = []
    for extra_gid in extra:
        if extra_gid not in seen:
            seen.append(extra_gid)
    return uid, final_gid, seen


def _cap_name(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"


def capabilities(sc: SecurityContext) -> list[str]:
    """containerd's TweakCapabilities over the default set; all when privileged."""
    if sc.privileged:
        return list(ALL_CAPABILITIES)
    adds = [_cap_name(c) for c in (sc.capabilities.add if sc.capabilities else [])]
    drops = [_cap_name(c) for c in (sc.capabilities.drop if sc.capabilities else [])]
    for c in [*adds, *drops]:
        if c != "ALL" and c not in ALL_CAPABILITIES:
            raise SpecError(f"failed to generate spec: unknown capability {c!r}",
                            CREATE_CONTAINER_ERROR)  # fmt: skip
    basics: Sequence[str] = ALL_CAPABILITIES if "ALL" in adds else DEFAULT_CAPABILITIES
    out = [] if "ALL" in drops else [c for c in basics if c not in drops]
    for c in adds:
        if c != "ALL" and c not in out:
            out.append(c)
    return out


#: Docker profile arch names of this machine (archMap / includes.arches)
_HOST_ARCHES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
}
_SYSCALL_KEYS = ("names", "action", "errnoRet", "args")


def _applies(rule: Mapping[str, Any], caps: Sequence[str], arches: Sequence[str]) -> bool:
    """A Docker profile rule's includes / excludes (caps, arches); minKernel
    is not checked (any kernel runc runs on here is newer)."""
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if inc.get("arches") and not any(a in arches for a in inc["arches"]):
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    return not (exc.get("arches") and any(a in arches for a in exc["arches"]))


def seccomp_from_profile(
    raw: Mapping[str, Any], caps: Sequence[str], machine: str = "x86_64"
) -> dict[str, Any]:
    """A Localhost profile (Docker's format, as containerd reads it, or the
    OCI section itself) as runc's linux.seccomp: architectures from archMap
    for this machine, rules kept when their includes/excludes match the
    container's capabilities, `name` read as `names`."""
    if not isinstance(raw.get("defaultAction"), str):
        raise SpecError(
            "failed to generate spec: seccomp profile has no defaultAction",
            CREATE_CONTAINER_ERROR,
        )
    host = _HOST_ARCHES.get(machine, (machine, ""))
    out: dict[str, Any] = {"defaultAction": raw["defaultAction"]}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if key in raw:
            out[key] = raw[key]
    arches = list(raw.get("architectures") or [])
    for entry in raw.get("archMap") or []:
        if entry.get("architecture") == host[1] and not arches:
            arches = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    if arches:
        out["architectures"] = arches
    syscalls = []
    for rule in raw.get("syscalls") or []:
        if not _applies(rule, caps, (host[0], *arches)):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            continue
        syscalls.append({**{k: rule[k] for k in _SYSCALL_KEYS if k in rule}, "names": names})
    out["syscalls"] = syscalls
    return out


def seccomp_profile(
    sc: SecurityContext,
    caps: Sequence[str],
    load: Callable[[str], Mapping[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """None (unconfined) or the runc seccomp section."""
    profile = sc.seccomp_profile
    kind = profile.type if profile is not None else ""
    if sc.privileged or kind in ("", "Unconfined"):
        return None
    if kind == "Localhost":
        assert profile is not None
        if load is None:
            raise SpecError(
                "failed to generate spec: this node cannot load Localhost seccomp profiles",
                CREATE_CONTAINER_ERROR,
            )
        return seccomp_from_profile(load(profile.localhost_profile or ""), caps)
    if kind != "RuntimeDefault":
        raise SpecError(f"failed to generate spec: unknown seccomp profile type {kind!r}",
                        CREATE_CONTAINER_ERROR)  # fmt: skip
    denied = list(SECCOMP_DENIED)
    if "CAP_SYS_ADMIN" not in caps:
        denied.extend(SECCOMP_SYS_ADMIN)
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }


# ------------------------------------------------------------------ resources


def _quantity(values: Mapping[str, Any], key: str) -> Fraction | None:
    raw = values.get(key)
    if raw is None:
        return None
    try:
        return parse_quantity(raw)
    except QuantityError as exc:
        raise SpecError(f"resources {key}: {exc}") from exc


def milli_cpu_to_shares(milli: int) -> int:
    if milli == 0:
        return MIN_SHARES
    return max(milli * 1024 // 1000, MIN_SHARES)


def milli_cpu_to_quota(milli: int, period: int = CPU_PERIOD_US) -> int:
    if milli == 0:
        return 0
    return max(milli * period // 1000, MIN_QUOTA_US)


def oom_score_adj(pod: Pod, container: Container, node_memory_bytes: int) -> int:
    """kubelet's GetContainerOOMScoreAdjust."""
    qos = qos_class(pod.spec)
    if qos == "Guaranteed":
        return -997
    if qos == "BestEffort":
        return 1000
    req = _quantity(container.resources.requests, "memory")
    if not node_memory_bytes or req is None:
        return 999
    adj = 1000 - int(1000 * req / node_memory_bytes)
    return max(min(adj, 999), 2)


def resources(container: Container, pids_limit: int) -> dict[str, Any]:
    limits = container.resources.limits
    requests = container.resources.requests
    out: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    mem = _quantity(limits, "memory")
    if mem is not None:
        out["memory"] = {"limit": int(mem)}
    cpu_req = _quantity(requests, "cpu")
    cpu_lim = _quantity(limits, "cpu")
    if cpu_req is None and cpu_lim is not None:
        cpu_req = cpu_lim
    cpu: dict[str, Any] = {"shares": milli_cpu_to_shares(int(cpu_req * 1000) if cpu_req else 0)}
    if cpu_lim is not None:
        cpu["quota"] = milli_cpu_to_quota(int(cpu_lim * 1000))
        cpu["period"] = CPU_PERIOD_US
    out["cpu"] = cpu
    if pids_limit > 0:
        out["pids"] = {"limit": pids_limit}
    return out


# ------------------------------------------------------------------ signals


def parse_signal(name: str, default: int = signal.SIGTERM) -> int:
    """`SIGQUIT`, `QUIT`, `3` -> 3; empty -> default."""
    text = name.strip().upper()
    if not text:
        return default
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError as exc:
        raise SpecError(f"invalid stop signal {name!r}", CREATE_CONTAINER_ERROR) from exc


def stop_signal(container: Container, image: ImageConfig) -> int:
    lifecycle = container.lifecycle
    if lifecycle is not None and lifecycle.stop_signal:
        return parse_signal(lifecycle.stop_signal)
    return parse_signal(image.stop_signal)


# ------------------------------------------------------------------ mounts


def safe_subpath(sub: str) -> str:
    """A volumeMount subPath: relative, no `..`."""
    if sub.startswith("/"):
        raise SpecError(f"subPath {sub!r} must be a relative path")
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise SpecError(f"subPath {sub!r} must not contain '..'")
    return "/".join(parts)


def plan_volume_mounts(
    container: Container,
    volume_paths: Mapping[str, tuple[str, bool]],
    env: Sequence[tuple[str, str]],
) -> list[Mount]:
    """The container's volumeMounts as bind mounts. `volume_paths`: the
    pod's volumes by name -> (host path, read-only source)."""
    out: list[Mount] = []
    lookup = mapping_for(dict(env))
    for vm in container.volume_mounts:
        found = volume_paths.get(vm.name)
        if found is None:
            raise SpecError(
                f"cannot find volume {vm.name!r} to mount into container {container.name!r}"
            )
        source, ro = found
        sub = vm.sub_path
        if vm.sub_path_expr:
            sub = expand(vm.sub_path_expr, lookup)
        if sub:
            source = posixpath.join(source, safe_subpath(sub))
        if not vm.mount_path.startswith("/"):
            raise SpecError(f"volumeMount {vm.name!r}: mountPath {vm.mount_path!r} is not absolute")
        out.append(Mount(vm.mount_path, source, read_only=vm.read_only or ro))
    return out


def default_mounts(privileged: bool) -> list[dict[str, Any]]:
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]  # fmt: skip


MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
]  # fmt: skip
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


# ------------------------------------------------------------------ the spec


def build_spec(si: SpecInput) -> BuiltSpec:
    """The runc config for one container attempt; raises SpecError."""
    pod, container = si.pod, si.container
    sc = effective_security_context(pod, container)
    verify_run_as_non_root(pod, container, si.image.user)
    uid, gid, extra_gids = resolve_user(pod, container, si.image.user, si.passwd, si.group)
    try:
        command, args = expand_command_and_args(container, si.env)
        argv = effective_argv(command, args, si.image.entrypoint, si.image.cmd)
    except EnvError as exc:
        raise SpecError(f"failed to generate spec: {exc}", CREATE_CONTAINER_ERROR) from exc
    env = merge_image_env(si.image.env, si.env)
    if not any(k == "PATH" for k, _v in env):
        env.insert(0, ("PATH", DEFAULT_PATH))
    if si.hostname and not any(k == "HOSTNAME" for k, _v in env):
        env.append(("HOSTNAME", si.hostname))
    caps = capabilities(sc)
    privileged = bool(sc.privileged)
    no_new_privs = sc.allow_privilege_escalation is False and not privileged
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": uid, "gid": gid, **({"additionalGids": extra_gids} if extra_gids else {})},
        "args": list(argv),
        "env": [f"{k}={v}" for k, v in env],
        "cwd": container.working_dir or si.image.working_dir or "/",
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "noNewPrivileges": no_new_privs,
        "oomScoreAdj": oom_score_adj(pod, container, si.node_memory_bytes),
    }
    ns = si.namespaces
    namespaces: list[dict[str, str]] = [{"type": "mount"}, {"type": "cgroup"}]
    for kind, path in (
        ("network", ns.network),
        ("ipc", ns.ipc),
        ("uts", ns.uts),
        ("pid", ns.pid),
    ):
        if path is None:
            continue  # the host's
        namespaces.append({"type": kind, **({"path": path} if path else {})})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": si.cgroups_path,
        "resources": resources(container, si.pids_limit),
    }
    if privileged:
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    seccomp = seccomp_profile(sc, caps, si.load_seccomp)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    mounts = default_mounts(privileged)
    taken = {m.destination for m in si.mounts}
    mounts = [m for m in mounts if m["destination"] not in taken]
    mounts.extend(m.to_oci() for m in si.mounts)
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": si.rootfs, "readonly": bool(sc.read_only_root_filesystem)},
        "mounts": mounts,
        "linux": linux,
        "annotations": dict(si.annotations),
    }
    if ns.uts == "" and si.hostname:
        config["hostname"] = si.hostname
    return BuiltSpec(
        config=config,
        argv=tuple(argv),
        uid=uid,
        gid=gid,
        stop_signal=stop_signal(container, si.image),
    )
