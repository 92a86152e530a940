"""How a container of the `simulated` runtime behaves, set by the pod's
annotations, and a pure model of one simulated run over time.

Annotations (values are Go durations such as "3s", "1m30s", "500ms", or
plain seconds):

    sim.podbus.io/<key>              applies to every app container
    sim.podbus.io/<container>.<key>  applies to that container (any kind:
                                     init, sidecar, app, ephemeral) and wins

Container names are DNS labels (no dots), so the first dot separates the
container from the key. Keys:

    start-delay          time from create to running (image pull, setup). 0
    exit-after           each run exits this long after it started. Default:
                         a regular init container exits at once, every other
                         container runs until it is stopped
    exit-code            exit code of a run ending by itself; a comma list
                         ("1,1,0") gives one per attempt, the last repeating. 0
    exit-reason          terminated reason reported instead of Completed /
                         Error, e.g. OOMKilled
    ready-after          readiness probe succeeds once the run is this old. 0
    unready-after        readiness probe fails again from this age on. never
    startup-after        startup probe succeeds from this age on. 0
    fail-liveness-after  liveness probe fails from this age on. never
    exec-fails-after     commands exec'd in the container (podctl exec, exec
                         probes run by a prober) exit 1 from this age on,
                         as `cat /tmp/healthy` does once the file is gone.
                         never
    stop-delay           time from the stop signal (SIGTERM) to exit. 0
    stop-exit-code       exit code after the stop signal. 0; a run still
                         alive when the grace period ends is killed: 137
    pre-stop-duration    how long the preStop hook runs. 0
    post-start-duration  how long the postStart hook runs. 0
    post-start-fails     "true": the postStart hook fails (the container is
                         killed with FailedPostStartHook)
    image-absent         "true": the image is not in the node's store, so the
                         container waits with ErrImageNeverPull
    log                  text the container writes to stdout when it starts

Unknown keys and bad values raise `BehaviourError` naming the annotation,
so a typo fails loudly instead of being ignored. Pure: no clock reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from podmodel.pod import ContainerKind

from services.node_agent.logic.records import RunState
from services.node_agent.logic.timefmt import parse_duration

PREFIX = "sim.podbus.io/"
SIGKILL_EXIT_CODE = 137

ProbeKind = Literal["readiness", "liveness", "startup"]

_DURATIONS = {
    "start-delay",
    "exit-after",
    "ready-after",
    "unready-after",
    "startup-after",
    "fail-liveness-after",
    "exec-fails-after",
    "stop-delay",
    "pre-stop-duration",
    "post-start-duration",
}
_FLAGS = {"post-start-fails", "image-absent"}
_TEXTS = {"exit-reason", "log"}
_INTS = {"stop-exit-code"}
KEYS = frozenset(_DURATIONS | _FLAGS | _TEXTS | _INTS | {"exit-code"})


class BehaviourError(ValueError):
    """An annotation under sim.podbus.io/ that cannot be used."""


@dataclass(frozen=True, slots=True)
class SimulatedBehaviour:
    """Everything one simulated container does; times in seconds."""

    start_delay: float = 0.0
    exit_after: float | None = None
    exit_codes: tuple[int, ...] = (0,)
    exit_reason: str = ""
    ready_after: float = 0.0
    unready_after: float | None = None
    startup_after: float = 0.0
    fail_liveness_after: float | None = None
    exec_fails_after: float | None = None
    stop_delay: float = 0.0
    stop_exit_code: int = 0
    pre_stop_duration: float = 0.0
    post_start_duration: float = 0.0
    post_start_fails: bool = False
    image_absent: bool = False
    log: str = ""

    def exit_code(self, attempt: int) -> int:
        """The exit code of the attempt (0-based) ending by itself."""
        return self.exit_codes[min(attempt, len(self.exit_codes) - 1)]


def _parse_value(annotation: str, key: str, raw: str) -> tuple[str, object]:
    field = key.replace("-", "_")
    try:
        if key in _DURATIONS:
            return field, parse_duration(raw)
        if key in _FLAGS:
            lowered = raw.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError("must be true or false")
            return field, lowered == "true"
        if key in _INTS:
            return field, int(raw)
        if key == "exit-code":
            codes = tuple(int(part) for part in raw.split(","))
            if any(not 0 <= c <= 255 for c in codes):
                raise ValueError("exit codes are 0..255")
            return "exit_codes", codes
        return field, raw
    except ValueError as exc:
        raise BehaviourError(f"{annotation}: invalid value {raw!r}: {exc}") from exc


def parse_behaviour(
    annotations: Mapping[str, str],
    container: str,
    kind: ContainerKind = "app",
    *,
    sidecar: bool = False,
) -> SimulatedBehaviour:
    """The behaviour of one container from the pod's annotations: pod-wide
    keys (app containers only), then `<container>.<key>` overrides."""
    pod_wide: dict[str, object] = {}
    own: dict[str, object] = {}
    for annotation, raw in annotations.items():
        if not annotation.startswith(PREFIX):
            continue
        rest = annotation[len(PREFIX) :]
        target, dot, key = rest.partition(".")
        if not dot:
            key, target = rest, ""
        if key not in KEYS:
            raise BehaviourError(f"{annotation}: unknown key {key!r}")
        field, value = _parse_value(annotation, key, raw)
        if not target:
            pod_wide[field] = value
        elif target == container:
            own[field] = value
    values: dict[str, object] = {}
    if kind == "init" and not sidecar:
        values["exit_after"] = 0.0  # an init container's job is to finish
    if kind == "app":
        values.update(pod_wide)
    values.update(own)
    return replace(SimulatedBehaviour(), **values)  # type: ignore[arg-type]


def validate_annotations(annotations: Mapping[str, str]) -> list[str]:
    """Every problem with the pod's sim.podbus.io/ annotations (empty if none)."""
    problems = []
    for annotation, raw in annotations.items():
        if not annotation.startswith(PREFIX):
            continue
        rest = annotation[len(PREFIX) :]
        key = rest.partition(".")[2] or rest
        if key not in KEYS:
            problems.append(f"{annotation}: unknown key {key!r}")
            continue
        try:
            _parse_value(annotation, key, raw)
        except BehaviourError as exc:
            problems.append(str(exc))
    return problems


# ------------------------------------------------------------------ one run over time


@dataclass(frozen=True, slots=True)
class SimulatedState:
    """What the runtime reports of a run at one instant."""

    state: RunState
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SimulatedRun:
    """One attempt (0-based `attempt`) of a simulated container, created at
    `created_at`; `stop(...)` records the stop signal and grace period."""

    behaviour: SimulatedBehaviour
    attempt: int
    created_at: float
    stop_requested_at: float | None = None
    stop_grace: float | None = None

    @property
    def started_at(self) -> float:
        return self.created_at + self.behaviour.start_delay

    def stop(self, at: float, grace: float) -> SimulatedRun:
        """The stop signal arrives at `at`; SIGKILL follows `grace` later.
        A second stop keeps the first (the deadline does not move)."""
        if self.stop_requested_at is not None:
            return self
        return replace(self, stop_requested_at=at, stop_grace=max(grace, 0.0))

    def end(self) -> tuple[float, int, str] | None:
        """(when, exit code, reason) of the run's end, or None while it
        would run forever."""
        b = self.behaviour
        natural: tuple[float, int, str] | None = None
        if b.exit_after is not None:
            natural = (self.started_at + b.exit_after, b.exit_code(self.attempt), b.exit_reason)
        if self.stop_requested_at is None:
            return natural
        signal_at = max(self.stop_requested_at, self.started_at)
        if self.stop_requested_at < self.started_at:
            # Stopped before it ever ran: it never starts.
            return (self.stop_requested_at, SIGKILL_EXIT_CODE, "")
        kill_at = signal_at + (self.stop_grace or 0.0)
        by_signal = (signal_at + b.stop_delay, b.stop_exit_code, "")
        if by_signal[0] > kill_at:
            by_signal = (kill_at, SIGKILL_EXIT_CODE, "")
        if natural is not None and natural[0] <= by_signal[0]:
            return natural
        return by_signal

    def state_at(self, t: float) -> SimulatedState:
        """The run as the runtime would report it at time t."""
        end = self.end()
        if end is not None and t >= end[0]:
            ran = end[0] >= self.started_at and (
                self.stop_requested_at is None or self.stop_requested_at >= self.started_at
            )
            return SimulatedState(
                state="exited",
                started_at=self.started_at if ran else None,
                finished_at=end[0],
                exit_code=end[1],
                reason=end[2],
            )
        if t >= self.started_at:
            return SimulatedState(state="running", started_at=self.started_at)
        return SimulatedState(state="created")

    def next_change_after(self, t: float) -> float | None:
        """The next instant after t when state_at changes, or None."""
        times = [self.started_at]
        end = self.end()
        if end is not None:
            times.append(end[0])
        later = [x for x in times if x > t]
        return min(later) if later else None

    def probe(self, kind: ProbeKind, t: float) -> bool:
        """The outcome of a probe of this kind run at time t (a run that is
        not running fails every probe)."""
        if self.state_at(t).state != "running":
            return False
        age = t - self.started_at
        b = self.behaviour
        if kind == "startup":
            return age >= b.startup_after
        if kind == "liveness":
            return b.fail_liveness_after is None or age < b.fail_liveness_after
        if age < b.ready_after:
            return False
        return b.unready_after is None or age < b.unready_after
