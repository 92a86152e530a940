"""The scheduling queue: which pending pod to try next, and when to retry.

Owns kube-scheduler's three queues as pure data driven by an injected `now`
(seconds, any monotonic origin; no clock is read here):

- activeQ: pods ready to be tried, highest priority first, then the
  earliest enqueued (PrioritySort);
- backoffQ: pods waiting out their back-off, 1 s doubling per attempt up to
  10 s, counted from when they were put back;
- unschedulable pods: parked until a cluster event that matters to a plugin
  that rejected them (a node added, a pod deleted, ...) moves them back, or
  until they have waited 5 minutes.

A pod that fails while a relevant event arrived during its own cycle goes
to backoffQ rather than being parked, so an event is never lost to a race.
The driver calls `flush(now)` periodically (kube-scheduler: every second)
or at `next_wakeup()`. Pure: no I/O.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from podmodel.node import Node

from services.scheduler.plugins.priority_sort import sort_key
from services.scheduler.pod_info import PodInfo

DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0
DEFAULT_MAX_IN_UNSCHEDULABLE = 300.0
"""podMaxInUnschedulablePodsDuration: 5 minutes."""


class ClusterEvent(enum.Enum):
    """The cluster changes the queue distinguishes (framework.ClusterEvent)."""

    NODE_ADD = "NodeAdd"
    NODE_DELETE = "NodeDelete"
    NODE_ALLOCATABLE = "UpdateNodeAllocatable"
    NODE_LABEL = "UpdateNodeLabel"
    NODE_TAINT = "UpdateNodeTaint"
    ASSIGNED_POD_ADD = "AssignedPodAdd"
    ASSIGNED_POD_LABEL = "AssignedPodUpdateLabel"
    ASSIGNED_POD_DELETE = "AssignedPodDelete"


E = ClusterEvent
EVENTS_BY_PLUGIN: dict[str, frozenset[ClusterEvent]] = {
    "NodeUnschedulable": frozenset({E.NODE_ADD, E.NODE_TAINT}),
    "NodeName": frozenset({E.NODE_ADD}),
    "TaintToleration": frozenset({E.NODE_ADD, E.NODE_TAINT}),
    "NodeAffinity": frozenset({E.NODE_ADD, E.NODE_LABEL}),
    "NodePorts": frozenset({E.NODE_ADD, E.ASSIGNED_POD_DELETE}),
    "NodeResourcesFit": frozenset({E.NODE_ADD, E.NODE_ALLOCATABLE, E.ASSIGNED_POD_DELETE}),
    "PodTopologySpread": frozenset(
        {
            E.NODE_ADD,
            E.NODE_DELETE,
            E.NODE_LABEL,
            E.NODE_TAINT,
            E.ASSIGNED_POD_ADD,
            E.ASSIGNED_POD_LABEL,
            E.ASSIGNED_POD_DELETE,
        }
    ),
    "InterPodAffinity": frozenset(
        {
            E.NODE_ADD,
            E.NODE_LABEL,
            E.ASSIGNED_POD_ADD,
            E.ASSIGNED_POD_LABEL,
            E.ASSIGNED_POD_DELETE,
        }
    ),
}
"""EventsToRegister of each filter plugin: which events may make a pod that
plugin rejected schedulable."""


def node_update_events(old: Node, new: Node) -> set[ClusterEvent]:
    """Which NodeUpdate events a change from `old` to `new` is."""
    events: set[ClusterEvent] = set()
    if old.status.allocatable != new.status.allocatable:
        events.add(E.NODE_ALLOCATABLE)
    if old.metadata.labels != new.metadata.labels:
        events.add(E.NODE_LABEL)
    if old.spec.taints != new.spec.taints or old.spec.unschedulable != new.spec.unschedulable:
        events.add(E.NODE_TAINT)
    return events


def event_matters(event: ClusterEvent, plugins: Iterable[str]) -> bool:
    """Whether `event` may help a pod rejected by `plugins` (no plugin
    recorded: any event may)."""
    names = list(plugins)
    if not names:
        return True
    return any(event in EVENTS_BY_PLUGIN.get(name, frozenset()) for name in names)


@dataclass(eq=False)
class QueuedPodInfo:
    """A pod in the queue, with its attempt count and the plugins that
    rejected it last time."""

    pod_info: PodInfo
    timestamp: float
    initial_attempt_timestamp: float | None = None
    attempts: int = 0
    unschedulable_plugins: frozenset[str] = frozenset()
    cycle: int = 0

    @property
    def key(self) -> str:
        return self.pod_info.key


class SchedulingQueue:
    """activeQ + backoffQ + unschedulable pods (see module doc)."""

    def __init__(
        self,
        initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_in_unschedulable: float = DEFAULT_MAX_IN_UNSCHEDULABLE,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_in_unschedulable = max_in_unschedulable
        self._seq = itertools.count()
        # Heap entries carry a sequence number; an entry is current only
        # while the key's dict entry holds the same number (lazy deletion).
        self._active: list[tuple[tuple[int, float, int], QueuedPodInfo]] = []
        self._active_keys: dict[str, tuple[QueuedPodInfo, int]] = {}
        self._backoff: list[tuple[float, int, QueuedPodInfo]] = []
        self._backoff_keys: dict[str, tuple[QueuedPodInfo, int]] = {}
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        # How many parked pods have each set of rejecting plugins: an event
        # that matters to none of the sets costs O(sets), not O(parked pods)
        # (binds fire AssignedPodAdd for every pod the scheduler places).
        self._unschedulable_sets: Counter[frozenset[str]] = Counter()
        self._in_flight: dict[str, QueuedPodInfo] = {}
        self._deleted_in_flight: set[str] = set()
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._event_cycle: dict[ClusterEvent, int] = {}  # event -> last cycle it arrived in

    # -------------------------------------------------------------- sizes

    def __len__(self) -> int:
        return len(self._active_keys) + len(self._backoff_keys) + len(self._unschedulable)

    def __contains__(self, key: object) -> bool:
        return key in self._active_keys or key in self._backoff_keys or key in self._unschedulable

    @property
    def active_count(self) -> int:
        return len(self._active_keys)

    @property
    def backoff_count(self) -> int:
        return len(self._backoff_keys)

    @property
    def unschedulable_count(self) -> int:
        return len(self._unschedulable)

    def where(self, key: str) -> str | None:
        """ "active", "backoff", "unschedulable", "in-flight" or None."""
        if key in self._active_keys:
            return "active"
        if key in self._backoff_keys:
            return "backoff"
        if key in self._unschedulable:
            return "unschedulable"
        if key in self._in_flight:
            return "in-flight"
        return None

    # -------------------------------------------------------------- back-off

    def backoff_duration(self, attempts: int) -> float:
        """calculateBackoffDuration: initial, doubled per further attempt, capped."""
        duration = self.initial_backoff
        for _ in range(1, attempts):
            if duration > self.max_backoff - duration:
                return self.max_backoff
            duration += duration
        return min(duration, self.max_backoff)

    def backoff_expiry(self, q: QueuedPodInfo) -> float:
        return q.timestamp + self.backoff_duration(q.attempts)

    # -------------------------------------------------------------- internal moves

    def _push_active(self, q: QueuedPodInfo) -> None:
        seq = next(self._seq)
        self._active_keys[q.key] = (q, seq)
        heapq.heappush(self._active, (sort_key(q.pod_info.priority, q.timestamp, seq), q))

    def _push_backoff(self, q: QueuedPodInfo) -> None:
        seq = next(self._seq)
        self._backoff_keys[q.key] = (q, seq)
        heapq.heappush(self._backoff, (self.backoff_expiry(q), seq, q))

    def _requeue(self, q: QueuedPodInfo, now: float) -> None:
        """Back to backoffQ if its back-off is still running, else activeQ."""
        if q.attempts and self.backoff_expiry(q) > now:
            self._push_backoff(q)
        else:
            self._push_active(q)

    def _remove_everywhere(self, key: str) -> QueuedPodInfo | None:
        entry = self._active_keys.pop(key, None) or self._backoff_keys.pop(key, None)
        if entry is not None:
            return entry[0]
        return self._unpark(key)

    def _park(self, q: QueuedPodInfo) -> None:
        self._unschedulable[q.key] = q
        self._unschedulable_sets[q.unschedulable_plugins] += 1

    def _unpark(self, key: str) -> QueuedPodInfo | None:
        q = self._unschedulable.pop(key, None)
        if q is not None:
            sets = self._unschedulable_sets
            sets[q.unschedulable_plugins] -= 1
            if sets[q.unschedulable_plugins] <= 0:
                del sets[q.unschedulable_plugins]
        return q

    # -------------------------------------------------------------- pod events

    def add(self, pi: PodInfo, now: float) -> None:
        """A new pending pod (or one seen again): to activeQ."""
        if pi.key in self._in_flight:
            self._in_flight[pi.key].pod_info = pi
            return
        old = self._remove_everywhere(pi.key)
        if old is not None:
            old.pod_info = pi
            self._requeue(old, now)
            return
        self._push_active(QueuedPodInfo(pi, now))

    def update(self, pi: PodInfo, now: float) -> None:
        """The pending pod changed: the new version replaces the old; a
        parked pod gets another chance (its own change may help it)."""
        self.add(pi, now)

    def refresh(self, pi: PodInfo) -> bool:
        """A change that cannot make the pod schedulable (its status, say,
        after the scheduler's own PodScheduled write): keep the pod where it
        is with the newer version, so a later binding compares against the
        current resourceVersion. False when the pod is not queued."""
        entry = self._active_keys.get(pi.key) or self._backoff_keys.get(pi.key)
        q = entry[0] if entry is not None else None
        if q is None:
            q = self._unschedulable.get(pi.key) or self._in_flight.get(pi.key)
        if q is None:
            return False
        q.pod_info = pi
        return True

    def requeue_in_flight(self, now: float) -> int:
        """Every pod whose cycle was interrupted (leadership lost mid-batch)
        goes back to activeQ or backoffQ. Returns how many."""
        moved = list(self._in_flight.values())
        self._in_flight.clear()
        for q in moved:
            if q.key in self._deleted_in_flight or q.key in self:
                continue
            self._requeue(q, now)
        self._deleted_in_flight.clear()
        return len(moved)

    def delete(self, key: str) -> None:
        """The pod was deleted or bound by someone else: forget it."""
        self._remove_everywhere(key)
        if key in self._in_flight:
            self._deleted_in_flight.add(key)

    # -------------------------------------------------------------- scheduling

    def pop(self, now: float) -> QueuedPodInfo | None:
        """The next pod to try, or None. Flushes completed back-offs first
        (pods parked too long are `flush`'s job: a scan of every parked pod
        per pop would cost O(parked) per cycle)."""
        self._flush_backoff(now)
        while self._active:
            (_, _, seq), q = heapq.heappop(self._active)
            entry = self._active_keys.get(q.key)
            if entry is None or entry[1] != seq:
                continue  # superseded entry
            del self._active_keys[q.key]
            self.scheduling_cycle += 1
            q.cycle = self.scheduling_cycle
            q.attempts += 1
            if q.initial_attempt_timestamp is None:
                q.initial_attempt_timestamp = now
            self._in_flight[q.key] = q
            return q
        return None

    def done(self, key: str) -> None:
        """The pod's cycle ended with a binding (or it left the queue)."""
        self._in_flight.pop(key, None)
        self._deleted_in_flight.discard(key)

    def add_unschedulable(
        self, q: QueuedPodInfo, unschedulable_plugins: Iterable[str], now: float
    ) -> None:
        """The cycle found no node. Parked, unless a cluster event arrived
        during the cycle (then backoffQ)."""
        self._in_flight.pop(q.key, None)
        if q.key in self._deleted_in_flight:
            self._deleted_in_flight.discard(q.key)
            return
        if q.key in self:
            return
        q.unschedulable_plugins = frozenset(unschedulable_plugins)
        q.timestamp = now
        if self._event_during(q):
            self._push_backoff(q)
        else:
            self._park(q)

    def _event_during(self, q: QueuedPodInfo) -> bool:
        """Did an event that may help this pod arrive while its cycle ran?
        (kube-scheduler's in-flight event check: an unrelated event, such
        as another pod's binding for a pod rejected by NodeAffinity, does
        not send it to back-off.) Without plugins recorded: any event."""
        if not q.unschedulable_plugins:
            return self.move_request_cycle >= q.cycle
        plugins = q.unschedulable_plugins
        return any(
            cycle >= q.cycle and event_matters(event, plugins)
            for event, cycle in self._event_cycle.items()
        )

    def add_backoff(self, q: QueuedPodInfo, now: float) -> None:
        """An error (e.g. a binding conflict): retry after the back-off."""
        self._in_flight.pop(q.key, None)
        if q.key in self._deleted_in_flight:
            self._deleted_in_flight.discard(q.key)
            return
        if q.key in self:
            return
        q.timestamp = now
        self._push_backoff(q)

    # -------------------------------------------------------------- cluster events

    def on_event(self, event: ClusterEvent, now: float) -> int:
        """A cluster change: move parked pods it may help. Returns how many moved."""
        self.move_request_cycle = self.scheduling_cycle
        self._event_cycle[event] = self.scheduling_cycle
        helped = {s for s in self._unschedulable_sets if event_matters(event, s)}
        if not helped:
            return 0
        moved = [q for q in self._unschedulable.values() if q.unschedulable_plugins in helped]
        for q in moved:
            self._unpark(q.key)
            self._requeue(q, now)
        return len(moved)

    def move_all(self, now: float) -> int:
        """MoveAllToActiveOrBackoffQueue for any event (e.g. after a resync)."""
        self.move_request_cycle = self.scheduling_cycle
        moved = list(self._unschedulable.values())
        self._unschedulable.clear()
        self._unschedulable_sets.clear()
        for q in moved:
            self._requeue(q, now)
        return len(moved)

    def flush(self, now: float) -> None:
        """Completed back-offs to activeQ; pods parked too long back too."""
        self._flush_backoff(now)
        if self._unschedulable:
            stale = [
                q
                for q in self._unschedulable.values()
                if now - q.timestamp > self.max_in_unschedulable
            ]
            for q in stale:
                self._unpark(q.key)
                self._requeue(q, now)

    def _flush_backoff(self, now: float) -> None:
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, q = heapq.heappop(self._backoff)
            entry = self._backoff_keys.get(q.key)
            if entry is None or entry[1] != seq:
                continue
            del self._backoff_keys[q.key]
            self._push_active(q)

    def next_wakeup(self) -> float | None:
        """When the earliest back-off completes (None: nothing backing off)."""
        while self._backoff:
            expiry, seq, q = self._backoff[0]
            entry = self._backoff_keys.get(q.key)
            if entry is not None and entry[1] == seq:
                return expiry
            heapq.heappop(self._backoff)
        return None

    def pending(self) -> list[QueuedPodInfo]:
        """Every queued pod (not in flight), for inspection."""
        return [
            *(q for q, _ in self._active_keys.values()),
            *(q for q, _ in self._backoff_keys.values()),
            *self._unschedulable.values(),
        ]
