"""The runtime interface of the node-agent: what the pod workers ask of
whatever runs containers (`oci` through runc, `simulated` for hollow
nodes). Kept small on purpose so those two are its only implementations.

A runtime reports what it observed as the pure records of
`logic.records`; every decision is taken by `logic.actions` from them.
Waiting for exits is `observe` plus `next_change_at` / `on_change`: a
runtime wakes the pod worker through the `on_change` callback it was
given (oci: a container exited) or tells it when to look again
(simulated: the next scheduled transition).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from podmodel.pod import Container, ContainerKind, Pod

from services.node_agent.logic.config_refs import EMPTY_CONFIG, PodConfig
from services.node_agent.logic.container_status import WaitingReason
from services.node_agent.logic.records import (
    NO_PROBE_RESULTS,
    ContainerRecord,
    ProbeResults,
    SandboxRecord,
)

OnChange = Callable[[str], None]
"""Called with a pod uid when something of that pod changed in the runtime."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One look at a pod in the runtime: its sandbox (None: none yet), the
    current record of each container, the probe results the runtime knows
    (the simulated runtime evaluates probes itself; with oci the prober
    supplies them), and when the next change is due (None: only on_change)."""

    sandbox: SandboxRecord | None
    records: tuple[ContainerRecord, ...] = ()
    probes: ProbeResults = NO_PROBE_RESULTS
    next_change_at: float | None = None
    #: the node's verdict that the pod must be evicted (kubelet's eviction
    #: message), kept once given; "" while the pod may stay
    evict: str = ""


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


class StartError(Exception):
    """A container could not be created; the status shows `waiting` (e.g.
    ErrImageNeverPull, CreateContainerConfigError) and the start is retried."""

    def __init__(self, waiting: WaitingReason) -> None:
        super().__init__(f"{waiting.reason}: {waiting.message}")
        self.waiting = waiting


class Runtime(Protocol):
    """What a pod worker calls. Every method is keyed by the pod (its uid)."""

    on_change: OnChange | None
    #: whether the runtime writes configMap / secret / downwardAPI files
    #: (and so wants refresh_volumes; the simulated one writes none)
    writes_volume_files: bool

    async def adopt(self, pod: Pod) -> None:
        """Take over what may already run for this pod (agent restart)."""

    async def prepare_sandbox(self, pod: Pod) -> SandboxRecord:
        """Create (or re-create) the pod's sandbox."""

    async def start_container(
        self,
        pod: Pod,
        container: Container,
        kind: ContainerKind,
        previous: ContainerRecord | None,
        config: PodConfig = EMPTY_CONFIG,
    ) -> ContainerRecord:
        """Create and start one container attempt after `previous`; `config`:
        the ConfigMaps and Secrets the pod names (EMPTY_CONFIG when none)."""

    async def refresh_volumes(self, pod: Pod, config: PodConfig) -> None:
        """Bring the files of the pod's configMap, secret and downwardAPI
        volumes up to date (kubelet's periodic remount); a source that is
        gone leaves the files as they were."""

    async def stop_container(
        self, pod: Pod, record: ContainerRecord, grace_seconds: float, *, pre_stop: bool
    ) -> None:
        """Run the preStop hook (when asked), send the stop signal, and
        SIGKILL after the grace period. Returns once the stop is under way;
        the exit shows in a later observation."""

    async def observe(self, pod: Pod) -> Observation:
        """The pod's sandbox and containers now."""

    async def exec(self, pod: Pod, container: str, command: list[str]) -> ExecResult:
        """Run a command in a running container."""

    async def logs(self, pod: Pod, container: str, *, previous: bool = False) -> bytes:
        """What the container wrote."""

    async def remove_pod(self, pod_uid: str) -> None:
        """Forget everything of the pod (containers must have exited)."""
