"""The state of one probe worker: gating, thresholds and transitions.

Follows the kubelet's prober worker (pkg/kubelet/prober/worker.go, doProbe):
- a new container attempt (new container id) resets the result to the probe
  type's initial value: readiness Failure, liveness Success, startup Unknown
  (and, unlike the kubelet, the consecutive-run counter, so a new attempt
  needs its full successThreshold);
- nothing is probed before initialDelaySeconds since the container started
  (readiness therefore stays Failure);
- startup gates the others: while the container has not started, only the
  startup probe runs; once started, the startup probe stops;
- a result changes only after failureThreshold consecutive failures or
  successThreshold consecutive successes (liveness and startup: always 1);
- after a liveness or startup Failure the worker holds until the next
  container attempt (the container is being killed);
- a run that could not be performed (`unknown`) is discarded.

Results are reported on transitions only. Pure: no clock reads (`now` is
passed in, epoch seconds), no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from podmodel.pod import Probe
from podmodel.probing import ProbeResultValue, ProbeType

INITIAL_RESULT: dict[ProbeType, ProbeResultValue] = {
    "readiness": "failure",
    "liveness": "success",
    "startup": "unknown",
}
"""The result of a probe before it has crossed a threshold (kubelet's
worker.initialValue)."""


class Gate(enum.Enum):
    """Why a due probe run does (RUN) or does not happen."""

    RUN = "run"
    NOT_RUNNING = "not-running"
    """No running container to probe."""
    ON_HOLD = "on-hold"
    """Liveness/startup failed; waiting for the next container attempt."""
    INITIAL_DELAY = "initial-delay"
    AWAIT_STARTUP = "await-startup"
    """Liveness/readiness while the startup probe has not passed."""
    STARTED = "started"
    """A startup probe whose container has started: nothing left to do."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run of a handler found (kubelet's probe.Result + output).
    A kubelet Warning is a success with `warning=True`."""

    result: ProbeResultValue
    message: str = ""
    warning: bool = False


SUCCESS = Outcome("success")


@dataclass(frozen=True, slots=True)
class Transition:
    """A result to report: the probe's thresholded result changed (or a run
    could not be performed, `unknown`, with a new reason)."""

    result: ProbeResultValue
    message: str
    warning: bool
    consecutive: int


def container_started(
    has_startup_probe: bool, agent_says_started: bool, startup: ProbeState | None
) -> bool:
    """Whether liveness and readiness may run for a container: it has no
    startup probe, or the node-agent reports it started, or our own startup
    probe succeeded for the current attempt."""
    if not has_startup_probe or agent_says_started:
        return True
    return startup is not None and startup.result == "success"


@dataclass(slots=True)
class ProbeState:
    """One probe of one container, across container attempts."""

    probe_type: ProbeType
    initial_delay: float
    success_threshold: int
    failure_threshold: int
    container_id: str = ""
    started_at: float | None = None
    result: ProbeResultValue = "unknown"
    """The current (thresholded) result of this attempt."""
    reported: ProbeResultValue | None = None
    """The result last returned as a Transition for this attempt."""
    last_run: ProbeResultValue | None = None
    run_length: int = 0
    """How many runs in a row gave `last_run`."""
    on_hold: bool = False
    message: str = ""
    warning: bool = False
    error: str = ""
    """The reason of the last `unknown` run reported, so that a persisting
    error is reported once, not every period."""

    @classmethod
    def for_probe(cls, probe_type: ProbeType, probe: Probe) -> ProbeState:
        success = probe.success_threshold if probe_type == "readiness" else 1
        return cls(
            probe_type=probe_type,
            initial_delay=float(probe.initial_delay_seconds),
            success_threshold=max(1, success),
            failure_threshold=max(1, probe.failure_threshold),
            result=INITIAL_RESULT[probe_type],
        )

    def observe_container(self, container_id: str, started_at: float | None) -> bool:
        """Take the container facts of a (new) assignment. A different
        container id is a new attempt: back to the initial result. Returns
        whether it was a new attempt."""
        self.started_at = started_at
        if container_id == self.container_id:
            return False
        self.container_id = container_id
        self.result = INITIAL_RESULT[self.probe_type]
        self.reported = None
        self.last_run = None
        self.run_length = 0
        self.on_hold = False
        self.message = ""
        self.warning = False
        self.error = ""
        return True

    def gate(self, now: float, started: bool) -> Gate:
        """Whether a run due at `now` happens. `started`: see
        `container_started`."""
        if self.started_at is None or not self.container_id:
            return Gate.NOT_RUNNING
        if self.on_hold:
            return Gate.ON_HOLD
        # kubelet: int32(time.Since(startedAt).Seconds()) < initialDelaySeconds
        if now - self.started_at < self.initial_delay:
            return Gate.INITIAL_DELAY
        if started:
            if self.probe_type == "startup":
                return Gate.STARTED
        elif self.probe_type != "startup":
            return Gate.AWAIT_STARTUP
        return Gate.RUN

    def record(self, outcome: Outcome) -> Transition | None:
        """Count one run's outcome; return what to report, if anything."""
        result = outcome.result
        if result == "unknown":
            if outcome.message == self.error:
                return None
            self.error = outcome.message
            return Transition("unknown", outcome.message, False, 0)
        self.error = ""
        if result == self.last_run:
            self.run_length += 1
        else:
            self.last_run = result
            self.run_length = 1
        threshold = self.failure_threshold if result == "failure" else self.success_threshold
        if self.run_length < threshold:
            return None
        self.result = result
        self.message = outcome.message
        self.warning = outcome.warning
        consecutive = self.run_length
        if result == "failure" and self.probe_type != "readiness":
            # The container will be killed: stop probing it (kubelet onHold).
            self.on_hold = True
            self.run_length = 0
        if result == self.reported:
            return None
        self.reported = result
        return Transition(result, outcome.message, outcome.warning, consecutive)
