"""What the node-agent observed of a pod, in a form no runtime owns: the
sandbox, one record per container attempt, and the prober's latest results.

Runtimes (oci, simulated) report into these records; the pure decisions of
this package (actions, container statuses, phase and conditions) read them.
Times are epoch seconds. Records are frozen: a change is a new record
(`dataclasses.replace`, or the helpers below that the driver uses as
containers move through created -> running -> exited).

Kept small on purpose: one current attempt per container plus the attempt
before it (`previous`, which becomes the API's lastState), because a
thousand hollow nodes hold tens of thousands of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

RunState = Literal["created", "running", "exited", "unknown"]
"""kubecontainer.State: created (not yet started), running, exited, unknown
(the runtime lost track of it)."""


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """One attempt of one container, as the runtime saw it.

    `reason` is the runtime's terminated reason when it knows better than the
    exit code (OOMKilled); empty means Completed for exit 0 and Error
    otherwise. `message` is the termination message. `restart_count` counts
    the attempts before this one."""

    name: str
    state: RunState
    container_id: str = ""
    image: str = ""
    image_id: str = ""
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    signal: int = 0
    reason: str = ""
    message: str = ""
    restart_count: int = 0
    previous: ContainerRecord | None = None

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def could_be_running(self) -> bool:
        """Created, running or unknown: something may still hold resources."""
        return self.state != "exited"

    @property
    def failed(self) -> bool:
        """Exited with a non-zero code (or an unknown one)."""
        return self.state == "exited" and self.exit_code != 0

    def started(self, at: float) -> ContainerRecord:
        """This attempt began running."""
        return replace(self, state="running", started_at=at)

    def exited(
        self, exit_code: int, at: float, *, reason: str = "", message: str = "", signal: int = 0
    ) -> ContainerRecord:
        """This attempt finished."""
        return replace(
            self,
            state="exited",
            exit_code=exit_code,
            finished_at=at,
            reason=reason,
            message=message,
            signal=signal,
        )


def new_attempt(
    previous: ContainerRecord | None,
    name: str,
    *,
    container_id: str,
    at: float,
    image: str = "",
    image_id: str = "",
) -> ContainerRecord:
    """The record of a container being created: restart_count is one more
    than the attempt before (if any), which is kept as `previous` without its
    own history so records never grow."""
    if previous is not None:
        previous = replace(previous, previous=None)
    return ContainerRecord(
        name=name,
        state="created",
        container_id=container_id,
        image=image,
        image_id=image_id,
        created_at=at,
        restart_count=previous.restart_count + 1 if previous is not None else 0,
        previous=previous,
    )


@dataclass(frozen=True, slots=True)
class SandboxRecord:
    """The pod's sandbox (network namespace and IPs; a no-op in the simulated
    runtime). `ready` is False once it died; `attempt` counts re-creations."""

    ready: bool = True
    attempt: int = 0
    pod_ips: tuple[str, ...] = ()
    created_at: float | None = None

    @property
    def pod_ip(self) -> str:
        return self.pod_ips[0] if self.pod_ips else ""


@dataclass(frozen=True, slots=True)
class ProbeResults:
    """The prober's latest result per probe kind, keyed by container id, so
    a result of an earlier attempt never applies to the next one. A missing
    key means the probe has not reported yet; True is Success, False Failure."""

    readiness: Mapping[str, bool] = field(default_factory=dict)
    liveness: Mapping[str, bool] = field(default_factory=dict)
    startup: Mapping[str, bool] = field(default_factory=dict)


NO_PROBE_RESULTS = ProbeResults()
