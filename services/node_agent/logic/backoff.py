"""Crash loop back-off: how long a container that exited must wait before it
is started again.

The model is kubelet's `flowcontrol.Backoff` as the kuberuntime manager uses
it (`doBackOff`), per (pod uid, container name):

- The first restart after an exit happens at once and opens an entry whose
  delay is `initial` (10 s).
- Every later restart waits until `finished_at + delay` of the attempt that
  exited; when it happens the delay doubles, capped at `cap` (300 s).
- An attempt that ran cleanly for longer than `reset_after` (10 min: kubelet's
  "twice the cap") before it exited starts the sequence over.

So a container crashing at once restarts after about 0 s, 10 s, 20 s, 40 s,
... 300 s, and the waiting reason in between is CrashLoopBackOff with
kubelet's message `back-off 20s restarting failed container=app
pod=web-0_default(uid)`.

State lives in a `CrashBackoff` owned by the node-agent; every method takes
`now`, none reads a clock, so tests drive time by hand. Not thread-safe: one
event loop owns it.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.node_agent.logic.timefmt import go_duration

BackoffKey = tuple[str, str]
"""(pod uid, container name)."""


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """The three timings, in seconds; tests shorten them."""

    initial: float = 10.0
    cap: float = 300.0
    reset_after: float = 600.0


@dataclass(frozen=True, slots=True)
class BackoffEntry:
    """The delay owed after the next exit, and when the last restart happened."""

    delay: float
    last_restart: float


class CrashBackoff:
    """Per-container back-off entries of every pod on one node."""

    def __init__(self, config: BackoffConfig | None = None) -> None:
        self.config = config or BackoffConfig()
        self._entries: dict[BackoffKey, BackoffEntry] = {}

    def entry(self, uid: str, name: str) -> BackoffEntry | None:
        """The entry of one container, if it has restarted before."""
        return self._entries.get((uid, name))

    def _expired(self, entry: BackoffEntry, finished_at: float) -> bool:
        # The attempt ran longer than reset_after since its restart: clean.
        return finished_at - entry.last_restart > self.config.reset_after

    def delay(self, uid: str, name: str, finished_at: float) -> float:
        """The back-off that applies to an attempt that finished at
        `finished_at`: 0 when the container may restart at once."""
        entry = self._entries.get((uid, name))
        if entry is None or self._expired(entry, finished_at):
            return 0.0
        return entry.delay

    def restart_at(self, uid: str, name: str, finished_at: float) -> float:
        """The earliest time the container may start again."""
        return finished_at + self.delay(uid, name, finished_at)

    def in_backoff(self, uid: str, name: str, finished_at: float, now: float) -> bool:
        """True while a restart must still wait (kubelet's IsInBackOffSince)."""
        return now < self.restart_at(uid, name, finished_at)

    def record_restart(self, uid: str, name: str, finished_at: float, now: float) -> float:
        """Note that the container is being started again after the attempt
        that finished at `finished_at`; returns the delay the next exit will
        owe. The driver calls this each time it restarts a container that ran
        before (kubelet's Backoff.Next)."""
        key = (uid, name)
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            delay = self.config.initial
        else:
            delay = min(entry.delay * 2, self.config.cap)
        self._entries[key] = BackoffEntry(delay=delay, last_restart=now)
        return delay

    def forget_pod(self, uid: str) -> None:
        """Drop every entry of a pod that is gone."""
        for key in [k for k in self._entries if k[0] == uid]:
            del self._entries[key]

    def collect(self, now: float) -> None:
        """Drop entries idle for longer than reset_after, which could never
        apply again (kubelet's periodic GC of its back-off)."""
        stale = [
            key
            for key, entry in self._entries.items()
            if now - entry.last_restart > self.config.reset_after
        ]
        for key in stale:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def backoff_message(delay: float, container: str, pod_name: str, namespace: str, uid: str) -> str:
    """kubelet's CrashLoopBackOff message: `back-off 10s restarting failed
    container=app pod=web-0_default(uid)` (format.Pod is name_namespace(uid))."""
    return (
        f"back-off {go_duration(delay)} restarting failed container={container} "
        f"pod={pod_name}_{namespace}({uid})"
    )
