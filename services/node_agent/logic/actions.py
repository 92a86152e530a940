"""What a pod worker must do next, as a pure function of what it observed.

`compute_pod_actions(pod, records, now, backoff, sandbox=..., probes=...)`
follows kubelet's `computePodActions` / `computeInitContainerActions` (with
native sidecars) and the pod worker's termination rules:

1. The pod stops for good when it is being deleted (graceful: preStop,
   SIGTERM, grace period, SIGKILL; main containers first, then sidecars in
   reverse spec order), when its phase is already terminal, or when it is
   past activeDeadlineSeconds (Failed, DeadlineExceeded). Once nothing runs,
   a deleted pod's object may be removed.
2. No sandbox (or a dead one): create it and start over from the first init
   container — unless the containers already ran under restartPolicy Never,
   or all that would start is already done.
3. App containers ran and none runs or is due to start again (all done
   under Never / OnFailure): the pod is done; the remaining containers
   (sidecars) are stopped, never restarted, and the pod goes terminal.
4. Ephemeral containers without a record start, even during initialisation;
   they are never restarted.
5. Init containers, one at a time in spec order: a regular one must exit 0
   before the next starts (a failure under Never fails the pod, otherwise it
   is retried); a sidecar must be started — running and its startupProbe
   passed — before the next starts, and is restarted after every exit
   whatever the pod's restartPolicy. Probe failures of a sidecar kill it.
6. App containers start once initialised; a stopped one is restarted by
   restartPolicy (Always; OnFailure when it failed; Never not); a running one
   failing its liveness or startup probe is killed (and restarted unless the
   policy is Never).

Every (re)start of a container that exited before is held back while its
crash back-off runs (`CrashBackoff`, which this function only reads); those
holds are reported so the status shows CrashLoopBackOff, and `requeue_at`
says when to look again. A container being killed is not started in the same
pass: once its record shows it exited, the next pass restarts it through the
same back-off.

Records in state "created" mean a container the runtime created but never
started (kubelet starts such a container again); the pod worker does not
ask for actions while one of its own start calls is still in flight.

The driver performs the actions: it calls `CrashBackoff.record_restart` for
each `StartContainer` that has `previous_finished_at`, runs each
`KillContainer` (preStop for up to its grace, then waits for `wait_for` to
exit, then stops it with `stop_grace(...)` seconds before SIGKILL). A kill
is listed again on every pass until the container has exited: the driver
keys kills by container id and never starts a second one for the same
attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from podmodel.pod import Container, ContainerKind, Pod, is_sidecar

from services.node_agent.logic.backoff import CrashBackoff, backoff_message
from services.node_agent.logic.container_status import (
    CRASH_LOOP_BACK_OFF,
    WaitingReason,
    restart_policy,
    should_restart,
)
from services.node_agent.logic.phase import is_terminal
from services.node_agent.logic.records import (
    NO_PROBE_RESULTS,
    ContainerRecord,
    ProbeResults,
    SandboxRecord,
)
from services.node_agent.logic.timefmt import parse_rfc3339

KillReason = Literal[
    "LivenessProbe",
    "StartupProbe",
    "Unknown",
    "PodDeleting",
    "PodTerminal",
    "ActiveDeadline",
    "Evicted",
    "PodCompleted",
    "InitFailed",
    "SandboxChanged",
]

#: kubelet never stops a container with less than this (seconds): a preStop
#: hook that used the whole grace period still leaves this much for SIGTERM.
MINIMUM_GRACE_SECONDS = 2
DEFAULT_GRACE_SECONDS = 30

DEADLINE_EXCEEDED = "DeadlineExceeded"
DEADLINE_EXCEEDED_MESSAGE = "Pod was active on the node longer than the specified deadline"
#: the pod status reason (and event reason) of a pod the node evicted
EVICTED = "Evicted"


@dataclass(frozen=True, slots=True)
class StartContainer:
    """Create and start one container. `previous_finished_at` is set when
    it ran before: the driver records the restart in the back-off."""

    name: str
    kind: ContainerKind
    index: int
    previous_finished_at: float | None = None

    @property
    def is_restart(self) -> bool:
        return self.previous_finished_at is not None


@dataclass(frozen=True, slots=True)
class KillContainer:
    """Stop one container: run its preStop hook (if `run_pre_stop`) for up
    to `grace_seconds`, wait until every container in `wait_for` has exited
    (sidecars wait for the main containers and later sidecars), then send
    the stop signal with `stop_grace(grace_seconds, spent)` seconds before
    SIGKILL. `restart`: it will be started again (reported in the event
    message; the start comes in a later pass)."""

    name: str
    kind: ContainerKind
    reason: KillReason
    message: str
    grace_seconds: int
    run_pre_stop: bool = False
    wait_for: tuple[str, ...] = ()
    restart: bool = False


@dataclass(frozen=True, slots=True)
class BackoffWait:
    """A (re)start held back by crash back-off until `until`."""

    name: str
    kind: ContainerKind
    delay: float
    until: float
    message: str

    def waiting_reason(self) -> WaitingReason:
        return WaitingReason(reason=CRASH_LOOP_BACK_OFF, message=self.message)


@dataclass(frozen=True, slots=True)
class PodActions:
    """Everything the pod worker must do in this pass, in this order:
    kill (`kill`), create the sandbox, start init, ephemeral and app
    containers. `kill_pod`: the whole pod is being stopped (`kill` lists
    every container that may still run). `pod_terminal`: the pod will not
    run again, so its phase goes terminal once nothing runs.
    `delete_pod`: a deleted pod has nothing left running; write its final
    status and remove the object."""

    create_sandbox: bool = False
    kill_pod: bool = False
    kill_reason: KillReason | None = None
    start_init: tuple[StartContainer, ...] = ()
    start: tuple[StartContainer, ...] = ()
    start_ephemeral: tuple[StartContainer, ...] = ()
    kill: tuple[KillContainer, ...] = ()
    backoff: tuple[BackoffWait, ...] = ()
    pod_terminal: bool = False
    phase_reason: str = ""
    phase_message: str = ""
    delete_pod: bool = False
    requeue_at: float | None = None

    def waiting_reasons(self) -> dict[str, WaitingReason]:
        """CrashLoopBackOff for every container held back, for the status."""
        return {b.name: b.waiting_reason() for b in self.backoff}

    @property
    def idle(self) -> bool:
        """Nothing to do now (maybe later: see requeue_at)."""
        return not (
            self.create_sandbox
            or self.kill
            or self.start_init
            or self.start
            or self.start_ephemeral
            or self.delete_pod
        )


# ------------------------------------------------------------------ grace


def pod_grace_seconds(pod: Pod) -> int:
    """The pod's grace period: the deletion's own, else the spec's."""
    if pod.metadata.deletion_grace_period_seconds is not None:
        return max(pod.metadata.deletion_grace_period_seconds, 0)
    return max(pod.spec.termination_grace_period_seconds, 0)


def container_grace_seconds(pod: Pod, container: Container | None, reason: KillReason) -> int:
    """kubelet's setTerminationGracePeriod: the deletion's grace wins, then a
    probe's own terminationGracePeriodSeconds for a kill by that probe, then
    the pod spec's."""
    if pod.metadata.deletion_grace_period_seconds is not None:
        return max(pod.metadata.deletion_grace_period_seconds, 0)
    if container is not None:
        probe = None
        if reason == "LivenessProbe":
            probe = container.liveness_probe
        elif reason == "StartupProbe":
            probe = container.startup_probe
        if probe is not None and probe.termination_grace_period_seconds is not None:
            return max(probe.termination_grace_period_seconds, 0)
    return max(pod.spec.termination_grace_period_seconds, 0)


def stop_grace(grace_seconds: int, spent_seconds: float) -> int:
    """Seconds between the stop signal and SIGKILL, once `spent_seconds` of
    the grace went on preStop and on waiting for other containers: what is
    left (whole seconds), but never under MINIMUM_GRACE_SECONDS."""
    return max(grace_seconds - int(spent_seconds), MINIMUM_GRACE_SECONDS)


def _has_pre_stop(container: Container | None, kind: ContainerKind) -> bool:
    if container is None or kind == "ephemeral":
        return False
    if kind == "init" and not is_sidecar(container):
        return False
    return container.lifecycle is not None and container.lifecycle.pre_stop is not None


# ------------------------------------------------------------------ lookup


@dataclass(frozen=True, slots=True)
class _Spec:
    container: Container
    kind: ContainerKind
    index: int


def _spec_index(pod: Pod) -> dict[str, _Spec]:
    out: dict[str, _Spec] = {}
    for i, c in enumerate(pod.spec.init_containers):
        out[c.name] = _Spec(c, "init", i)
    for i, c in enumerate(pod.spec.containers):
        out[c.name] = _Spec(c, "app", i)
    for i, e in enumerate(pod.spec.ephemeral_containers):
        out[e.name] = _Spec(e, "ephemeral", i)
    return out


# ------------------------------------------------------------------ termination


def termination_plan(
    pod: Pod,
    records: Iterable[ContainerRecord],
    reason: KillReason,
    *,
    grace_override: int | None = None,
    message: str = "",
) -> tuple[KillContainer, ...]:
    """How to stop every container of the pod that may still run: all at
    once with one grace period, each running its preStop first (unless the
    grace is 0), but a sidecar receives its stop signal only after every
    main container and every later sidecar has exited (kubelet's
    terminationOrdering), so sidecars stop after the main containers, in
    reverse spec order. Main containers come first in the returned tuple."""
    specs = _spec_index(pod)
    grace = pod_grace_seconds(pod) if grace_override is None else max(grace_override, 0)
    live = {r.name for r in records if r.could_be_running}
    main_running = tuple(c.name for c in pod.spec.containers if c.name in live)
    sidecars = [c.name for c in pod.spec.init_containers if is_sidecar(c)]

    kills: list[KillContainer] = []
    ordered = sorted(live, key=lambda n: _stop_rank(n, specs, sidecars))
    for name in ordered:
        found = specs.get(name)
        container = found.container if found is not None else None
        kind: ContainerKind = found.kind if found is not None else "app"
        wait_for: tuple[str, ...] = ()
        if container is not None and kind == "init" and is_sidecar(container):
            later = sidecars[sidecars.index(name) + 1 :]
            wait_for = main_running + tuple(s for s in reversed(later) if s in live)
        kills.append(
            KillContainer(
                name=name,
                kind=kind,
                reason=reason,
                message=message or f"Stopping container {name}",
                grace_seconds=grace,
                run_pre_stop=grace > 0 and _has_pre_stop(container, kind),
                wait_for=wait_for,
            )
        )
    return tuple(kills)


def _stop_rank(name: str, specs: dict[str, _Spec], sidecars: list[str]) -> tuple[int, int]:
    found = specs.get(name)
    if found is None:
        return (1, 0)
    if found.kind == "init" and is_sidecar(found.container):
        return (2, -sidecars.index(name))  # last sidecar first
    order = {"ephemeral": 0, "app": 1, "init": 1}[found.kind]
    return (order, found.index)


# ------------------------------------------------------------------ the decision


@dataclass
class _Builder:
    """Accumulates one pass's actions."""

    pod: Pod
    records: dict[str, ContainerRecord]
    now: float
    backoff: CrashBackoff
    start_init: list[StartContainer] = field(default_factory=list)
    start: list[StartContainer] = field(default_factory=list)
    start_ephemeral: list[StartContainer] = field(default_factory=list)
    kill: list[KillContainer] = field(default_factory=list)
    waits: list[BackoffWait] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)

    def gate(self, container: Container, kind: ContainerKind, index: int) -> None:
        """Queue a (re)start, or a BackoffWait while crash back-off holds it."""
        record = self.records.get(container.name)
        finished = None
        if record is not None and record.state == "exited":
            finished = record.finished_at if record.finished_at is not None else self.now
            uid = self.pod.metadata.uid
            if self.backoff.in_backoff(uid, container.name, finished, self.now):
                until = self.backoff.restart_at(uid, container.name, finished)
                delay = self.backoff.delay(uid, container.name, finished)
                self.waits.append(
                    BackoffWait(
                        name=container.name,
                        kind=kind,
                        delay=delay,
                        until=until,
                        message=backoff_message(
                            delay,
                            container.name,
                            self.pod.metadata.name,
                            self.pod.metadata.namespace,
                            uid,
                        ),
                    )
                )
                self.requeue.append(until)
                return
        target = {"init": self.start_init, "app": self.start, "ephemeral": self.start_ephemeral}
        target[kind].append(StartContainer(container.name, kind, index, finished))

    def kill_one(
        self,
        container: Container,
        kind: ContainerKind,
        reason: KillReason,
        message: str,
        *,
        restart: bool,
    ) -> None:
        grace = container_grace_seconds(self.pod, container, reason)
        self.kill.append(
            KillContainer(
                name=container.name,
                kind=kind,
                reason=reason,
                message=(
                    f"{message}, will be restarted"
                    if restart and reason in ("LivenessProbe", "StartupProbe")
                    else message
                ),
                grace_seconds=grace,
                run_pre_stop=grace > 0 and _has_pre_stop(container, kind),
                restart=restart,
            )
        )

    def result(
        self,
        *,
        create_sandbox: bool = False,
        kill_pod: bool = False,
        kill_reason: KillReason | None = None,
    ) -> PodActions:
        return PodActions(
            create_sandbox=create_sandbox,
            kill_pod=kill_pod,
            kill_reason=kill_reason,
            start_init=tuple(self.start_init),
            start=tuple(self.start),
            start_ephemeral=tuple(self.start_ephemeral),
            kill=tuple(self.kill),
            backoff=tuple(self.waits),
            requeue_at=min(self.requeue) if self.requeue else None,
        )


def active_deadline(pod: Pod) -> float | None:
    """When the pod's activeDeadlineSeconds runs out (counted from
    status.startTime), or None."""
    seconds = pod.spec.active_deadline_seconds
    if seconds is None or not pod.status.start_time:
        return None
    return parse_rfc3339(pod.status.start_time) + seconds


def compute_pod_actions(
    pod: Pod,
    records: Sequence[ContainerRecord],
    now: float,
    backoff: CrashBackoff,
    *,
    sandbox: SandboxRecord | None = None,
    probes: ProbeResults = NO_PROBE_RESULTS,
    evict: str = "",
) -> PodActions:
    """The next actions for one pod from the current record of each of its
    containers (one per name), its sandbox and the latest probe results.
    `evict` is the node's eviction message when the pod must go (e.g. an
    emptyDir over its sizeLimit): kubelet's eviction manager kills it with
    no grace period and leaves it Failed, reason Evicted."""
    by_name = {r.name: r for r in records}
    live = [r for r in records if r.could_be_running]

    # 1. Stopping for good.
    deadline = active_deadline(pod)
    stop: KillReason | None = None
    if pod.metadata.deletion_timestamp is not None:
        stop = "PodDeleting"
    elif is_terminal(pod.status.phase):
        stop = "PodTerminal"
    elif evict:
        stop = "Evicted"
    elif deadline is not None and now >= deadline:
        stop = "ActiveDeadline"
    if stop is not None:
        grace_override: int | None = None
        phase_reason, phase_message = "", ""
        if stop == "ActiveDeadline":
            grace_override = pod.spec.termination_grace_period_seconds
            phase_reason, phase_message = DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE
        elif stop == "Evicted":
            grace_override = 0
            phase_reason, phase_message = EVICTED, evict
        return PodActions(
            kill_pod=bool(live),
            kill_reason=stop,
            kill=termination_plan(pod, live, stop, grace_override=grace_override),
            pod_terminal=True,
            phase_reason=phase_reason,
            phase_message=phase_message,
            delete_pod=stop == "PodDeleting" and not live,
        )

    b = _Builder(pod=pod, records=by_name, now=now, backoff=backoff)
    if deadline is not None:
        b.requeue.append(deadline)
    policy = restart_policy(pod)

    # 2. The sandbox.
    if sandbox is None or not sandbox.ready:
        return _sandbox_actions(pod, b, sandbox, live, policy)

    # 3. App containers: what each needs (applied once initialised).
    verdicts = _app_verdicts(pod, by_name, probes, policy)
    keep = sum(1 for v in verdicts if v.action == "keep")
    due = sum(1 for v in verdicts if v.action == "start" or (v.action == "kill" and v.restart))

    # 4. App containers ran and none runs or is due again: the pod is done
    # (kubelet's pod worker stops syncing a pod whose phase went terminal);
    # stop the rest, sidecars included, and never restart them.
    if keep == 0 and due == 0 and any(c.name in by_name for c in pod.spec.containers):
        for v in verdicts:
            if v.action == "kill":
                b.kill_one(v.container, "app", v.reason, v.message, restart=False)
        already = {k.name for k in b.kill}
        rest = [r for r in live if r.name not in already]
        return PodActions(
            kill_pod=True,
            kill_reason="PodCompleted",
            kill=tuple(b.kill) + termination_plan(pod, rest, "PodCompleted"),
            pod_terminal=True,
        )

    # 5. Ephemeral containers: never restarted, may start during init.
    for i, ec in enumerate(pod.spec.ephemeral_containers):
        if ec.name not in by_name:
            b.start_ephemeral.append(StartContainer(ec.name, "ephemeral", i))

    # 6. Init containers.
    initialized, failed = _init_actions(pod, b, probes, policy)
    if failed:
        return PodActions(
            kill_pod=bool(live),
            kill_reason="InitFailed",
            kill=termination_plan(pod, live, "InitFailed"),
            pod_terminal=True,
        )
    if not initialized:
        return b.result()

    # 7. Start, restart or kill app containers.
    for v in verdicts:
        if v.action == "start":
            b.gate(v.container, "app", v.index)
        elif v.action == "kill":
            b.kill_one(v.container, "app", v.reason, v.message, restart=v.restart)
    return b.result()


@dataclass(frozen=True, slots=True)
class _AppVerdict:
    container: Container
    index: int
    action: Literal["keep", "start", "kill", "none"]
    reason: KillReason = "Unknown"
    message: str = ""
    restart: bool = False


def _app_verdicts(
    pod: Pod, records: dict[str, ContainerRecord], probes: ProbeResults, policy: str
) -> list[_AppVerdict]:
    """Per app container: keep it running, (re)start it, kill it (a failed
    liveness or startup probe, or lost by the runtime), or nothing (done)."""
    out = []
    for idx, container in enumerate(pod.spec.containers):
        record = records.get(container.name)
        if record is None or record.state != "running":
            if not should_restart(pod, container, "app", record):
                out.append(_AppVerdict(container, idx, "none"))
            elif record is not None and record.state == "unknown":
                message = f'Container is in "{record.state}" state, try killing it before restart'
                out.append(_AppVerdict(container, idx, "kill", "Unknown", message, restart=True))
            else:
                out.append(_AppVerdict(container, idx, "start"))
            continue
        if probes.liveness.get(record.container_id) is False:
            reason: KillReason = "LivenessProbe"
            message = f"Container {container.name} failed liveness probe"
        elif probes.startup.get(record.container_id) is False:
            reason = "StartupProbe"
            message = f"Container {container.name} failed startup probe"
        else:
            out.append(_AppVerdict(container, idx, "keep"))
            continue
        out.append(_AppVerdict(container, idx, "kill", reason, message, policy != "Never"))
    return out


def _sandbox_actions(
    pod: Pod,
    b: _Builder,
    sandbox: SandboxRecord | None,
    live: list[ContainerRecord],
    policy: str,
) -> PodActions:
    ran_before = sandbox is not None and bool(b.records)
    if ran_before and policy == "Never":
        # The containers ran and may not run again: finish, do not recreate.
        return PodActions(
            kill_pod=bool(live),
            kill_reason="SandboxChanged",
            kill=termination_plan(pod, live, "SandboxChanged"),
            pod_terminal=True,
        )
    to_start = [
        (i, c)
        for i, c in enumerate(pod.spec.containers)
        if not (
            policy == "OnFailure"
            and (r := b.records.get(c.name)) is not None
            and r.state == "exited"
            and r.exit_code == 0
        )
    ]
    app_created = any(c.name in b.records for c in pod.spec.containers)
    if app_created and not to_start:
        return PodActions(
            kill_pod=bool(live),
            kill_reason="SandboxChanged",
            kill=termination_plan(pod, live, "SandboxChanged"),
            pod_terminal=True,
        )
    b.kill.extend(termination_plan(pod, live, "SandboxChanged"))
    if pod.spec.init_containers:
        b.gate(pod.spec.init_containers[0], "init", 0)
    else:
        for i, c in to_start:
            b.gate(c, "app", i)
    return b.result(
        create_sandbox=True,
        kill_pod=bool(live),
        kill_reason="SandboxChanged" if live else None,
    )


def _init_actions(pod: Pod, b: _Builder, probes: ProbeResults, policy: str) -> tuple[bool, bool]:
    """Init container actions (kubelet's computeInitContainerActions, read
    from the last init container backwards because earlier records may have
    been removed). Returns (initialised, init failed under Never)."""
    inits = pod.spec.init_containers
    if not inits:
        return True, False
    records = b.records
    initialized = any(
        (r := records.get(c.name)) is not None and r.state in ("created", "running")
        for c in pod.spec.containers
    )
    previously = initialized
    restart_on_failure = policy != "Never"
    starts: list[int] = []
    kills: list[tuple[Container, KillReason, str]] = []
    last = len(inits) - 1

    for i in range(last, -1, -1):
        container = inits[i]
        sidecar = is_sidecar(container)
        record = records.get(container.name)
        if record is None:
            if previously and sidecar:
                starts.append(i)
            continue
        if previously and not sidecar:
            continue  # finished earlier; only sidecars are kept running

        if record.state == "created":
            starts.append(i)
        elif record.state == "running":
            if sidecar:
                _running_sidecar(container, i, last, record, probes, previously, starts, kills)
                if i == last and _sidecar_started(container, record, probes):
                    initialized = True
        elif record.state == "exited":
            if sidecar:
                starts.append(i)
            elif record.exit_code != 0:
                if not restart_on_failure:
                    return False, True
                starts.append(i)
            elif i == last:
                initialized = True
            else:
                starts.append(i + 1)
        else:  # unknown
            if not sidecar and not restart_on_failure:
                return False, True
            kills.append((container, "Unknown", f'Container is in "{record.state}" state'))
            starts.append(i)
        previously = True

    if not previously:
        starts.append(0)

    killed = {c.name for c, _, _ in kills}
    for container, reason, message in kills:
        b.kill_one(container, "init", reason, message, restart=True)
    seen: set[int] = set()
    for i in reversed(starts):
        if i in seen or inits[i].name in killed:
            continue  # restarted in a later pass, once it has exited
        seen.add(i)
        b.gate(inits[i], "init", i)
    return initialized, False


def _sidecar_started(container: Container, record: ContainerRecord, probes: ProbeResults) -> bool:
    if container.startup_probe is None:
        return True
    return probes.startup.get(record.container_id) is True


def _running_sidecar(
    container: Container,
    i: int,
    last: int,
    record: ContainerRecord,
    probes: ProbeResults,
    previously: bool,
    starts: list[int],
    kills: list[tuple[Container, KillReason, str]],
) -> None:
    """A running sidecar: wait for its startupProbe (kill it if that
    failed), then let the next init container start, and kill it when its
    liveness probe failed."""
    if container.startup_probe is not None:
        result = probes.startup.get(record.container_id)
        if result is None:
            return  # not started yet: the next init container waits
        if result is False:
            kills.append(
                (container, "StartupProbe", f"Init container {container.name} failed startup probe")
            )
            return
    if i != last and not previously:
        starts.append(i + 1)
    if container.liveness_probe is not None and probes.liveness.get(record.container_id) is False:
        kills.append(
            (container, "LivenessProbe", f"Init container {container.name} failed liveness probe")
        )
