"""What the scheduler needs to know about one pod, computed once per pod version.

Owns `PodInfo` (resource requests as integers, host ports, normalised image
names, compiled pod-affinity terms, priority) and the request arithmetic of
Kubernetes' `resourcehelper.PodRequests`: app containers add up, native
sidecars add up and also stack under every later init container, the pod
needs the larger of that and its biggest init step, plus `overhead`.

Parsing quantities and compiling selectors costs microseconds; a scheduling
cycle may look at a pod's requests thousands of times, so everything here is
plain ints, tuples and frozensets, built once by `PodInfo.of(pod)` (the
driver keeps one per queued or bound pod version). Pure: no I/O.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol

from podmodel.pod import Container, Pod, PodAffinityTerm, Toleration, WeightedPodAffinityTerm
from podmodel.quantity import cpu_millis, memory_bytes
from podmodel.selector import LabelSelector, LabelSelectorRequirement, selector_matches

from services.scheduler.priority_classes import pod_priority

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

DEFAULT_MILLI_CPU_REQUEST = 100
"""schedutil.DefaultMilliCPURequest: what scoring counts for a container with no cpu request."""
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
"""schedutil.DefaultMemoryRequest: the same for memory (200 MiB)."""

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label every Kubernetes namespace carries; podbus has no Namespace
objects, so a namespaceSelector is matched against this label alone."""

_NATIVE = frozenset({CPU, MEMORY, EPHEMERAL_STORAGE, PODS, "storage"})


@functools.lru_cache(maxsize=4096)
def _quantity_int(name: str, value: str | int | float) -> int:
    """cpu in millicores, everything else in whole units (bytes, devices).
    Memoised: a cluster's pods repeat a handful of quantities ("100m",
    "500Mi"), and parsing one costs microseconds."""
    return cpu_millis(value) if name == CPU else memory_bytes(value)


def container_requests(c: Container) -> dict[str, int]:
    """One container's requests as ints; a limit without a request counts
    as the request, as API defaulting would have made it."""
    out: dict[str, int] = {}
    for name, value in c.resources.limits.items():
        out[name] = _quantity_int(name, value)
    for name, value in c.resources.requests.items():
        out[name] = _quantity_int(name, value)
    return out


def _add(into: dict[str, int], more: Mapping[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def _max_into(into: dict[str, int], more: Mapping[str, int]) -> None:
    for k, v in more.items():
        if v > into.get(k, 0):
            into[k] = v


def pod_requests(pod: Pod, non_missing: Mapping[str, int] | None = None) -> dict[str, int]:
    """Kubernetes' PodRequests: sum(app) + sum(sidecars) against the largest
    init step (an init container runs with every earlier sidecar), plus
    overhead. `non_missing` fills a resource a container does not mention
    at all (scoring's 100m / 200Mi defaults)."""
    app = [container_requests(c) for c in pod.spec.containers]
    init = [container_requests(c) for c in pod.spec.init_containers]
    return _pod_requests(pod, app, init, non_missing)


def _pod_requests(
    pod: Pod,
    app: list[dict[str, int]],
    init: list[dict[str, int]],
    non_missing: Mapping[str, int] | None,
) -> dict[str, int]:
    def filled(r: dict[str, int]) -> dict[str, int]:
        if not non_missing:
            return r
        out = dict(r)
        for k, v in non_missing.items():
            out.setdefault(k, v)
        return out

    total: dict[str, int] = {}
    for r in app:
        _add(total, filled(r))
    sidecars: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c, raw in zip(pod.spec.init_containers, init, strict=True):
        r = filled(raw)
        if c.restart_policy == "Always":
            _add(total, r)
            _add(sidecars, r)
            step = dict(sidecars)
        else:
            step = dict(r)
            _add(step, sidecars)
        _max_into(init_max, step)
    _max_into(total, init_max)
    for name, value in pod.spec.overhead.items():
        total[name] = total.get(name, 0) + _quantity_int(name, value)
    return total


_NON_MISSING = {CPU: DEFAULT_MILLI_CPU_REQUEST, MEMORY: DEFAULT_MEMORY_REQUEST}


def requests_and_nonzero(pod: Pod) -> tuple[dict[str, int], dict[str, int]]:
    """The pod's requests, and the same with scoring's defaults for
    containers that do not mention cpu or memory (one parse for both)."""
    app = [container_requests(c) for c in pod.spec.containers]
    init = [container_requests(c) for c in pod.spec.init_containers]
    return _pod_requests(pod, app, init, None), _pod_requests(pod, app, init, _NON_MISSING)


def normalized_image_name(name: str) -> str:
    """ImageLocality's normalizedImageName: add ":latest" when no tag."""
    if name.rfind(":") <= name.rfind("/"):
        return name + ":latest"
    return name


# ------------------------------------------------------------------ affinity terms


def namespace_labels(namespace: str) -> dict[str, str]:
    """The labels a namespaceSelector sees for `namespace`."""
    return {NAMESPACE_NAME_LABEL: namespace}


class Labelled(Protocol):
    """Anything with a namespace and labels: a PodInfo, or a group of pods
    sharing both (cluster_snapshot.LabelGroup)."""

    @property
    def namespace(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def labels_key(self) -> frozenset[tuple[str, str]]: ...


@dataclass(eq=False, slots=True)
class AffinityTerm:
    """A PodAffinityTerm resolved against its owner: which namespaces it
    looks at, its selector (with matchLabelKeys / mismatchLabelKeys merged
    from the owner's labels), and its topology key. `matches` is memoised by
    (namespace, labels) because the same few label sets recur."""

    namespaces: frozenset[str]
    namespace_selector: LabelSelector | None
    selector: LabelSelector | None
    topology_key: str
    weight: int = 0
    _memo: dict[tuple[str, frozenset[tuple[str, str]]], bool] = field(default_factory=dict)

    @classmethod
    def of(
        cls, owner_ns: str, owner_labels: Mapping[str, str], term: PodAffinityTerm, weight: int = 0
    ) -> AffinityTerm:
        if not term.namespaces and term.namespace_selector is None:
            namespaces = frozenset({owner_ns})
        else:
            namespaces = frozenset(term.namespaces)
        selector = term.label_selector
        if selector is not None and (term.match_label_keys or term.mismatch_label_keys):
            extra = [
                LabelSelectorRequirement(key=k, operator="In", values=[owner_labels[k]])
                for k in term.match_label_keys
                if k in owner_labels
            ] + [
                LabelSelectorRequirement(key=k, operator="NotIn", values=[owner_labels[k]])
                for k in term.mismatch_label_keys
                if k in owner_labels
            ]
            selector = LabelSelector(
                match_labels=dict(selector.match_labels),
                match_expressions=[*selector.match_expressions, *extra],
            )
        return cls(namespaces, term.namespace_selector, selector, term.topology_key, weight)

    def matches(self, pod: Labelled) -> bool:
        """Whether `pod` (or a label group standing for pods) is one of the
        pods this term selects."""
        memo_key = (pod.namespace, pod.labels_key)
        hit = self._memo.get(memo_key)
        if hit is not None:
            return hit
        in_ns = pod.namespace in self.namespaces or (
            self.namespace_selector is not None
            and selector_matches(self.namespace_selector, namespace_labels(pod.namespace))
        )
        result = in_ns and selector_matches(self.selector, pod.labels)
        if len(self._memo) < 4096:
            self._memo[memo_key] = result
        return result

    @property
    def signature(self) -> tuple[object, ...]:
        """Terms with equal signatures select the same pods in the same domains."""
        return (
            self.namespaces,
            _selector_key(self.namespace_selector),
            _selector_key(self.selector),
            self.topology_key,
        )


def _selector_key(sel: LabelSelector | None) -> object:
    if sel is None:
        return None
    return (
        tuple(sorted(sel.match_labels.items())),
        tuple((r.key, r.operator, tuple(r.values)) for r in sel.match_expressions),
    )


def _terms(pod: Pod, terms: Sequence[PodAffinityTerm]) -> tuple[AffinityTerm, ...]:
    return tuple(
        AffinityTerm.of(pod.metadata.namespace, pod.metadata.labels, t)
        for t in terms
        if t.topology_key
    )


def _weighted(pod: Pod, terms: Sequence[WeightedPodAffinityTerm]) -> tuple[AffinityTerm, ...]:
    return tuple(
        AffinityTerm.of(pod.metadata.namespace, pod.metadata.labels, t.pod_affinity_term, t.weight)
        for t in terms
        if t.pod_affinity_term.topology_key
    )


# ------------------------------------------------------------------ PodInfo


HostPort = tuple[str, str, int]
"""(hostIP with "" as 0.0.0.0, protocol, hostPort)."""


@dataclass(eq=False, slots=True)
class PodInfo:
    """A pod as the scheduler sees it. Build with `PodInfo.of(pod)`."""

    pod: Pod
    key: str
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    labels_key: frozenset[tuple[str, str]]
    priority: int
    preemption_policy: str
    node_name: str
    nominated_node_name: str
    terminating: bool
    start_time: str
    cpu: int
    memory: int
    ephemeral_storage: int
    scalars: tuple[tuple[str, int], ...]
    nonzero_cpu: int
    nonzero_memory: int
    host_ports: tuple[HostPort, ...]
    images: tuple[str, ...]
    tolerations: tuple[Toleration, ...]
    required_affinity: tuple[AffinityTerm, ...]
    required_anti_affinity: tuple[AffinityTerm, ...]
    preferred_affinity: tuple[AffinityTerm, ...]
    preferred_anti_affinity: tuple[AffinityTerm, ...]

    @classmethod
    def of(cls, pod: Pod) -> PodInfo:
        meta, spec = pod.metadata, pod.spec
        req, nz = requests_and_nonzero(pod)
        scalars = tuple(sorted((k, v) for k, v in req.items() if k not in _NATIVE and v != 0))
        ports: list[HostPort] = []
        for c in (
            *spec.containers,
            *(c for c in spec.init_containers if c.restart_policy == "Always"),
        ):
            for p in c.ports:
                if p.host_port > 0:
                    ports.append((p.host_ip or "0.0.0.0", p.protocol or "TCP", p.host_port))
        images = tuple(
            normalized_image_name(c.image)
            for c in (*spec.init_containers, *spec.containers)
            if c.image
        )
        aff = spec.affinity
        pa = aff.pod_affinity if aff is not None else None
        paa = aff.pod_anti_affinity if aff is not None else None
        return cls(
            pod=pod,
            key=f"{meta.namespace}/{meta.name}",
            namespace=meta.namespace,
            name=meta.name,
            uid=meta.uid,
            labels=meta.labels,
            labels_key=frozenset(meta.labels.items()),
            priority=pod_priority(pod),
            preemption_policy=spec.preemption_policy or "PreemptLowerPriority",
            node_name=spec.node_name,
            nominated_node_name=pod.status.nominated_node_name,
            terminating=meta.deletion_timestamp is not None,
            start_time=pod.status.start_time or "",
            cpu=req.get(CPU, 0),
            memory=req.get(MEMORY, 0),
            ephemeral_storage=req.get(EPHEMERAL_STORAGE, 0),
            scalars=scalars,
            nonzero_cpu=nz.get(CPU, 0),
            nonzero_memory=nz.get(MEMORY, 0),
            host_ports=tuple(ports),
            images=images,
            tolerations=tuple(spec.tolerations),
            required_affinity=_terms(pod, pa.required_during_scheduling_ignored_during_execution)
            if pa
            else (),
            required_anti_affinity=_terms(
                pod, paa.required_during_scheduling_ignored_during_execution
            )
            if paa
            else (),
            preferred_affinity=_weighted(
                pod, pa.preferred_during_scheduling_ignored_during_execution
            )
            if pa
            else (),
            preferred_anti_affinity=_weighted(
                pod, paa.preferred_during_scheduling_ignored_during_execution
            )
            if paa
            else (),
        )

    @property
    def requests_nothing(self) -> bool:
        """No cpu, memory, ephemeral storage or extended resource requested."""
        return not (self.cpu or self.memory or self.ephemeral_storage or self.scalars)

    @property
    def has_affinity(self) -> bool:
        """Any pod (anti-)affinity term at all: InterPodAffinity scoring must
        look at this pod when others are scheduled."""
        return bool(
            self.required_affinity
            or self.required_anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
        )

    def bound_to(self, node_name: str) -> PodInfo:
        """A copy that says it runs on `node_name` (the assumed pod)."""
        copy = PodInfo(*_FIELDS(self))
        copy.node_name = node_name
        return copy


_FIELDS = operator.attrgetter(*(f.name for f in fields(PodInfo)))


def more_important(a: PodInfo, b: PodInfo) -> bool:
    """util.MoreImportantPod: higher priority, then the earlier start time."""
    if a.priority != b.priority:
        return a.priority > b.priority
    if a.start_time and b.start_time:
        return a.start_time < b.start_time
    return bool(a.start_time) and not b.start_time
