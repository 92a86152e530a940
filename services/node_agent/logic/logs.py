"""Shaping a container's output for a LogsRequest (podmodel.node_api):
which container is meant, the last N lines, timestamps. Pure.

Timestamps: the Runtime interface hands over bytes, not timed lines. A
runtime that keeps times per line may offer the optional method
`logs_timestamped(pod, container, *, previous) -> list[tuple[float, bytes]]`
(epoch seconds, one line each), which the agent then uses; otherwise every
line of an attempt is stamped with that attempt's start time (the simulated
runtime writes its whole log at start, so that is exact there), and
followed output with the time it was read.
"""

from __future__ import annotations

from podmodel.pod import Pod

from services.node_agent.logic.timefmt import rfc3339_nano


class LogsError(ValueError):
    """The request names nothing that has logs; the message says what."""


def default_container(pod: Pod, name: str) -> str:
    """The container the request means: its name, or the pod's first app
    container (kubectl's default-container rule without the annotation)."""
    known = [
        *(c.name for c in pod.spec.containers),
        *(c.name for c in pod.spec.init_containers),
        *(e.name for e in pod.spec.ephemeral_containers),
    ]
    if not name:
        default = pod.metadata.annotations.get("kubectl.kubernetes.io/default-container")
        if default in known:
            return default
        return pod.spec.containers[0].name
    if name not in known:
        raise LogsError(
            f"container {name} is not valid for pod {pod.metadata.name}: "
            f"choose one of [{' '.join(known)}]"
        )
    return name


def tail(data: bytes, lines: int) -> bytes:
    """The last `lines` lines (all when lines < 0)."""
    if lines < 0 or not data:
        return data
    if lines == 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def stamp_lines(data: bytes, at: float) -> bytes:
    """Prefix each line with `at` in RFC 3339 (nanoseconds) and a space."""
    if not data:
        return data
    prefix = rfc3339_nano(at).encode() + b" "
    return b"".join(prefix + line for line in data.splitlines(keepends=True))
