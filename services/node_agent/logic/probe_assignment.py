"""Which probes the prober of this node must run for one pod, and how the
prober's reports become the ProbeResults the pure decisions read.

- `pod_probe_assignments(pod, records, sandbox)`: one ProbeAssignment per
  probe of every *running* app container and native sidecar (init
  containers and ephemeral containers have no probes), with the attempt's
  container id, start time, the pod IP and the container's ports (named
  ports), and `started` as the pod status says, so a restarted prober does
  not run a passed startup probe again.
- `ProbeResultsBook`: the latest result per (container id, probe type) of
  each pod, fed by ProbeReports; `unknown` results are ignored (kubelet
  discards runs that could not be performed). A heartbeat carries the whole
  state and simply overwrites.
- `unhealthy_message` / `probe_event_reason`: the kubelet's event wording,
  `Liveness probe failed: HTTP probe failed with statuscode: 500`.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from podmodel.pod import Container, Pod, is_sidecar
from podmodel.probing import ProbeAssignment, ProbeResult, ProbeType

from services.node_agent.logic.records import ContainerRecord, ProbeResults, SandboxRecord
from services.node_agent.logic.timefmt import rfc3339_nano

_TYPES: tuple[ProbeType, ...] = ("startup", "liveness", "readiness")


def _probed_containers(pod: Pod) -> Iterable[Container]:
    yield from (c for c in pod.spec.init_containers if is_sidecar(c))
    yield from pod.spec.containers


def pod_probe_assignments(
    pod: Pod,
    records: Sequence[ContainerRecord],
    sandbox: SandboxRecord | None,
    *,
    traceparent: str = "",
) -> list[ProbeAssignment]:
    """The probes to run now for `pod` (empty while nothing with a probe
    runs, and once the pod is being deleted: a terminating pod is not
    probed)."""
    if pod.metadata.deletion_timestamp is not None:
        return []
    running = {r.name: r for r in records if r.state == "running"}
    if not running:
        return []
    started = {
        s.name: bool(s.started)
        for s in (*pod.status.init_container_statuses, *pod.status.container_statuses)
    }
    out: list[ProbeAssignment] = []
    pod_ip = sandbox.pod_ip if sandbox is not None else pod.status.pod_ip
    for container in _probed_containers(pod):
        record = running.get(container.name)
        if record is None:
            continue
        for probe_type in _TYPES:
            probe = getattr(container, f"{probe_type}_probe")
            if probe is None:
                continue
            out.append(
                ProbeAssignment(
                    pod_uid=pod.metadata.uid,
                    namespace=pod.metadata.namespace,
                    pod_name=pod.metadata.name,
                    container_name=container.name,
                    probe_type=probe_type,
                    probe=probe,
                    pod_ip=pod_ip or "",
                    container_id=record.container_id,
                    ports=list(container.ports),
                    started_at=rfc3339_nano(record.started_at) if record.started_at else None,
                    started=started.get(container.name, False),
                    traceparent=traceparent,
                )
            )
    return out


def unhealthy_message(result: ProbeResult) -> str:
    """The Unhealthy event's message, as the kubelet words it."""
    kind = result.probe_type.capitalize()
    if result.result == "unknown":
        return f"{kind} probe errored and resulted in unknown state: {result.message}"
    return f"{kind} probe failed: {result.message}"


class ProbeResultsBook:
    """The prober's latest results per pod uid. Not thread-safe (one loop)."""

    def __init__(self) -> None:
        self._pods: dict[str, dict[tuple[str, ProbeType], bool]] = {}

    def __len__(self) -> int:
        return len(self._pods)

    def record(self, result: ProbeResult) -> bool:
        """Take one result; True when it changed what the pod's worker sees."""
        if result.result == "unknown" or not result.container_id:
            return False
        value = result.result == "success"
        book = self._pods.setdefault(result.pod_uid, {})
        key = (result.container_id, result.probe_type)
        if book.get(key) is value:
            return False
        book[key] = value
        return True

    def results(self, pod_uid: str) -> ProbeResults:
        book = self._pods.get(pod_uid)
        if not book:
            return ProbeResults()
        by_type: dict[ProbeType, dict[str, bool]] = {t: {} for t in _TYPES}
        for (cid, probe_type), value in book.items():
            by_type[probe_type][cid] = value
        return ProbeResults(
            readiness=by_type["readiness"],
            liveness=by_type["liveness"],
            startup=by_type["startup"],
        )

    def keep_only(self, pod_uid: str, container_ids: Iterable[str]) -> None:
        """Forget results of container attempts that no longer exist."""
        book = self._pods.get(pod_uid)
        if not book:
            return
        live = set(container_ids)
        for key in [k for k in book if k[0] not in live]:
            del book[key]

    def forget(self, pod_uid: str) -> None:
        self._pods.pop(pod_uid, None)
