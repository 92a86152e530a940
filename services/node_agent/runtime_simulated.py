"""The `simulated` runtime: containers that "run" without processes, their
behaviour taken from the pod's `sim.podbus.io/` annotations
(`logic.simulated_behaviour`). Each attempt is a pure `SimulatedRun`; this
module only keeps them per pod and answers the Runtime calls with what the
run looks like at the current time, so one process can hold thousands of
hollow pods.

Probes are evaluated here from the behaviour (ready-after, startup-after,
fail-liveness-after): a hollow node has no prober.

Restart rule (adoption): the state lives in this process only. When the
agent restarts, `adopt` rebuilds a pod's containers from the container
statuses in the store: a container shown running keeps running (same
container id, restart count and start time, its run's clock continuing from
that start), a terminated one (or one waiting after a terminated attempt) is
an exited attempt, so back-off and restart policy continue, and the sandbox
is ready with the pod's IPs. Nothing is started twice.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from podmodel.pod import (
    Container,
    ContainerKind,
    ContainerStatus,
    LifecycleHandler,
    Pod,
    is_sidecar,
)

from services.node_agent.logic.config_refs import (
    EMPTY_CONFIG,
    PodConfig,
    VolumeSourceError,
    check_container_config,
)
from services.node_agent.logic.container_status import (
    CONTAINER_CREATING,
    CREATE_CONTAINER_CONFIG_ERROR,
    WaitingReason,
)
from services.node_agent.logic.env import EnvError
from services.node_agent.logic.records import (
    ContainerRecord,
    ProbeResults,
    SandboxRecord,
    new_attempt,
)
from services.node_agent.logic.simulated_behaviour import (
    BehaviourError,
    SimulatedBehaviour,
    SimulatedRun,
    parse_behaviour,
)
from services.node_agent.logic.timefmt import parse_rfc3339
from services.node_agent.runtime import ExecResult, Observation, OnChange, StartError

ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
CREATE_CONFIG_ERROR = "CreateContainerConfigError"


@dataclass(slots=True)
class _Attempt:
    record: ContainerRecord  # as created; observe() derives the live state
    run: SimulatedRun | None  # None: adopted as exited, nothing more happens
    probe_kinds: tuple[str, ...] = ()


@dataclass(slots=True)
class _SimPod:
    sandbox: SandboxRecord | None = None
    containers: dict[str, _Attempt] = field(default_factory=dict)


def ip_block_of(node_name: str) -> int:
    """A node's /24 inside 10.0.0.0/8 from its name, so that node-agent
    processes that know nothing of each other rarely hand out the same IPs."""
    return zlib.crc32(node_name.encode()) & 0xFFFF


class SimulatedRuntime:
    """Hollow containers of one node. `clock` is epoch seconds."""

    writes_volume_files = False

    def __init__(self, ip_base: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.on_change: OnChange | None = None
        self.clock = clock
        self._pods: dict[str, _SimPod] = {}
        self._ip_base = ip_base
        self._ip_next = 0

    # ---------------------------------------------------------------- helpers

    def _pod(self, pod: Pod) -> _SimPod:
        found = self._pods.get(pod.metadata.uid)
        if found is None:
            found = self._pods[pod.metadata.uid] = _SimPod()
        return found

    def _next_ip(self) -> str:
        """10.<block>.<n>: each node its own /24 (block = ip_base), hosts 1..254
        reused in turn; hollow pods need distinct, not routable, addresses."""
        self._ip_next = self._ip_next % 254 + 1
        block = self._ip_base & 0xFFFF
        return f"10.{block >> 8}.{block & 255}.{self._ip_next}"

    @staticmethod
    def _spec(pod: Pod, name: str) -> tuple[Container | None, ContainerKind, bool]:
        for c in pod.spec.init_containers:
            if c.name == name:
                return c, "init", is_sidecar(c)
        for c in pod.spec.containers:
            if c.name == name:
                return c, "app", False
        for e in pod.spec.ephemeral_containers:
            if e.name == name:
                return None, "ephemeral", False
        return None, "app", False

    def _behaviour(self, pod: Pod, name: str) -> SimulatedBehaviour:
        """The container's behaviour; bad annotations make the container
        wait with CreateContainerConfigError (retried) rather than fail."""
        _c, kind, sidecar = self._spec(pod, name)
        try:
            return parse_behaviour(pod.metadata.annotations, name, kind, sidecar=sidecar)
        except BehaviourError as exc:
            raise StartError(WaitingReason(reason=CREATE_CONFIG_ERROR, message=str(exc))) from exc

    @staticmethod
    def _probe_kinds(container: Container | None) -> tuple[str, ...]:
        if container is None:
            return ()
        kinds = []
        if container.readiness_probe is not None:
            kinds.append("readiness")
        if container.liveness_probe is not None:
            kinds.append("liveness")
        if container.startup_probe is not None:
            kinds.append("startup")
        return tuple(kinds)

    # ---------------------------------------------------------------- Runtime

    def has_pod(self, uid: str) -> bool:
        return uid in self._pods

    async def adopt(self, pod: Pod) -> None:
        if pod.metadata.uid in self._pods:
            return
        statuses = [
            *(("init", s) for s in pod.status.init_container_statuses),
            *(("app", s) for s in pod.status.container_statuses),
            *(("ephemeral", s) for s in pod.status.ephemeral_container_statuses),
        ]
        if not any(s.container_id for _k, s in statuses):
            return  # nothing ever ran here
        sim = self._pod(pod)
        ips = tuple(ip.ip for ip in pod.status.pod_ips) or (
            (pod.status.pod_ip,) if pod.status.pod_ip else ()
        )
        sim.sandbox = SandboxRecord(ready=True, pod_ips=ips, created_at=self.clock())
        for _kind, status in statuses:
            attempt = self._adopted(pod, status)
            if attempt is not None:
                sim.containers[status.name] = attempt

    def _adopted(self, pod: Pod, status: ContainerStatus) -> _Attempt | None:
        container, _kind, _sidecar = self._spec(pod, status.name)
        base = ContainerRecord(
            name=status.name,
            state="exited",
            container_id=status.container_id,
            image=status.image,
            image_id=status.image_id,
            restart_count=status.restart_count,
        )
        running = status.state.running
        if running is not None and status.container_id:
            started = parse_rfc3339(running.started_at) if running.started_at else self.clock()
            try:
                behaviour = self._behaviour(pod, status.name)
            except StartError:
                behaviour = SimulatedBehaviour()
            run = SimulatedRun(behaviour, status.restart_count, started - behaviour.start_delay)
            record = replace(base, state="created", created_at=run.created_at)
            return _Attempt(record, run, self._probe_kinds(container))
        term = status.state.terminated or status.last_state.terminated
        if term is None:
            return None
        if status.state.terminated is None:
            base = replace(base, restart_count=max(status.restart_count - 1, 0))
        record = replace(
            base,
            container_id=term.container_id or base.container_id,
            exit_code=term.exit_code,
            reason=term.reason,
            message=term.message,
            started_at=parse_rfc3339(term.started_at) if term.started_at else None,
            finished_at=parse_rfc3339(term.finished_at) if term.finished_at else self.clock(),
        )
        return _Attempt(record, None)

    async def prepare_sandbox(self, pod: Pod) -> SandboxRecord:
        sim = self._pod(pod)
        attempt = sim.sandbox.attempt + 1 if sim.sandbox is not None else 0
        ips = sim.sandbox.pod_ips if sim.sandbox is not None else (self._next_ip(),)
        sim.sandbox = SandboxRecord(
            ready=True, attempt=attempt, pod_ips=ips, created_at=self.clock()
        )
        return sim.sandbox

    async def start_container(
        self,
        pod: Pod,
        container: Container,
        kind: ContainerKind,
        previous: ContainerRecord | None,
        config: PodConfig = EMPTY_CONFIG,
    ) -> ContainerRecord:
        if config is not EMPTY_CONFIG:  # the pod names ConfigMaps or Secrets
            try:
                check_container_config(pod, container, config)
            except EnvError as exc:
                raise StartError(
                    WaitingReason(reason=CREATE_CONTAINER_CONFIG_ERROR, message=str(exc))
                ) from exc
            except VolumeSourceError as exc:
                raise StartError(
                    WaitingReason(reason=CONTAINER_CREATING, message=str(exc))
                ) from exc
        behaviour = self._behaviour(pod, container.name)
        if behaviour.image_absent:
            raise StartError(
                WaitingReason(
                    reason=ERR_IMAGE_NEVER_PULL,
                    message=(
                        f'Container image "{container.image}" is not present with pull '
                        "policy of Never"
                    ),
                )
            )
        now = self.clock()
        record = new_attempt(
            previous,
            container.name,
            container_id=f"sim://{secrets.token_hex(16)}",
            at=now,
            image=container.image,
            image_id=f"sim://{container.image}",
        )
        run = SimulatedRun(behaviour, record.restart_count, now)
        self._pod(pod).containers[container.name] = _Attempt(
            record, run, self._probe_kinds(container)
        )
        return self._observed(self._pod(pod).containers[container.name], now)

    async def refresh_volumes(self, pod: Pod, config: PodConfig) -> None:
        return None  # no files

    async def stop_container(
        self, pod: Pod, record: ContainerRecord, grace_seconds: float, *, pre_stop: bool
    ) -> None:
        sim = self._pods.get(pod.metadata.uid)
        if sim is None:
            return
        attempt = sim.containers.get(record.name)
        if attempt is None or attempt.run is None:
            return
        if attempt.record.container_id != record.container_id:
            return
        now = self.clock()
        spent = attempt.run.behaviour.pre_stop_duration if pre_stop else 0.0
        spent = min(spent, grace_seconds)
        attempt.run = attempt.run.stop(now + spent, max(grace_seconds - spent, 0.0))

    def _observed(self, attempt: _Attempt, now: float) -> ContainerRecord:
        if attempt.run is None:
            return attempt.record
        st = attempt.run.state_at(now)
        return replace(
            attempt.record,
            state=st.state,
            started_at=st.started_at,
            finished_at=st.finished_at,
            exit_code=st.exit_code,
            reason=st.reason,
        )

    async def observe(self, pod: Pod) -> Observation:
        sim = self._pods.get(pod.metadata.uid)
        if sim is None:
            return Observation(sandbox=None)
        now = self.clock()
        records = []
        readiness: dict[str, bool] = {}
        liveness: dict[str, bool] = {}
        startup: dict[str, bool] = {}
        wake: list[float] = []
        for attempt in sim.containers.values():
            record = self._observed(attempt, now)
            records.append(record)
            run = attempt.run
            if run is None:
                continue
            change = run.next_change_after(now)
            if change is not None:
                wake.append(change)
            if record.state != "running" or not attempt.probe_kinds:
                continue
            b = run.behaviour
            cid = record.container_id
            for kind in attempt.probe_kinds:
                if kind == "readiness":
                    readiness[cid] = run.probe("readiness", now)
                    marks = [b.ready_after, b.unready_after]
                elif kind == "liveness":
                    liveness[cid] = run.probe("liveness", now)
                    marks = [b.fail_liveness_after]
                else:
                    startup[cid] = run.probe("startup", now)
                    marks = [b.startup_after]
                wake.extend(
                    run.started_at + m for m in marks if m is not None and run.started_at + m > now
                )
        probes = ProbeResults(readiness=readiness, liveness=liveness, startup=startup)
        return Observation(
            sandbox=sim.sandbox,
            records=tuple(records),
            probes=probes,
            next_change_at=min(wake) if wake else None,
        )

    async def exec(self, pod: Pod, container: str, command: list[str]) -> ExecResult:
        sim = self._pods.get(pod.metadata.uid)
        attempt = sim.containers.get(container) if sim is not None else None
        now = self.clock()
        if attempt is None or self._observed(attempt, now).state != "running":
            return ExecResult(exit_code=126, stderr=b"container not running\n")
        run = attempt.run
        fails_after = run.behaviour.exec_fails_after if run is not None else None
        if run is not None and fails_after is not None and now - run.started_at >= fails_after:
            prog, what = (command[0], command[-1]) if command else ("sh", "")
            message = f"{prog}: can't open '{what}': No such file or directory\n"
            return ExecResult(exit_code=1, stderr=message.encode())
        return ExecResult(exit_code=0, stdout=(" ".join(command) + "\n").encode())

    async def run_post_start(
        self, pod: Pod, container: Container, record: ContainerRecord, handler: LifecycleHandler
    ) -> str | None:
        """The postStart hook as the annotations say (hooks.run_handler
        calls this instead of exec'ing the handler): it takes
        post-start-duration, and fails when post-start-fails is true."""
        try:
            behaviour = self._behaviour(pod, container.name)
        except StartError:
            return None
        if behaviour.post_start_duration > 0:
            await asyncio.sleep(behaviour.post_start_duration)
        if not behaviour.post_start_fails:
            return None
        command = handler.exec.command if handler.exec is not None else []
        return (
            f'Exec lifecycle hook ({command}) for Container "{container.name}" in Pod '
            f'"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})" failed - '
            "error: command exited with 1, message: 'simulated postStart failure'"
        )

    async def logs(self, pod: Pod, container: str, *, previous: bool = False) -> bytes:
        sim = self._pods.get(pod.metadata.uid)
        attempt = sim.containers.get(container) if sim is not None else None
        if attempt is None or attempt.run is None:
            return b""
        text = attempt.run.behaviour.log
        return (text + "\n").encode() if text else b""

    async def remove_pod(self, pod_uid: str) -> None:
        self._pods.pop(pod_uid, None)
