"""The scheduler's picture of the cluster: nodes, the pods on them (bound and
assumed), nominations, and the indexes that make a scheduling cycle cheap.

Owns `ClusterSnapshot`, `NodeInfo` and the two interned node classes:

- `NodeStatic`: what a node *is* (labels except its hostname, taints,
  unschedulable, images). Thousands of nodes share a handful of these.
- `NodeResources`: what a node *has left* (allocatable, requested,
  non-zero requested, pod count). Nodes in the same state share one object.

Every node carries an int class key `(resources.id << 20) | static.id`, kept
in the flat list `class_keys` in node order. Filters and scores that read only
one of the two classes are evaluated once per class per cycle instead of once
per node; the cycle then walks `class_keys` with C-level `map` over dicts.
This is the vectorisation that pays in pure Python (numpy is not a
dependency): thousands of nodes collapse to a few dozen evaluations.

All updates are O(1) in the number of nodes: add/update/remove node,
add/assume/forget/remove pod. Indexes kept incrementally for inter-pod
affinity and topology spread: pods grouped by (namespace, labels) with counts
per node, existing pods' required anti-affinity terms and scoring terms
grouped by signature, nodes per label value. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from podmodel.node import Node, Taint
from podmodel.quantity import cpu_millis, memory_bytes
from podmodel.selector import LabelSelector

from services.scheduler.pod_info import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    PODS,
    AffinityTerm,
    HostPort,
    PodInfo,
    normalized_image_name,
)

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"

STATIC_BITS = 20
STATIC_MASK = (1 << STATIC_BITS) - 1

_NATIVE_NODE = frozenset({CPU, MEMORY, EPHEMERAL_STORAGE, PODS, "storage"})


class NodeStatic:
    """What a node is, shared by every node that looks the same. Labels here
    leave out `kubernetes.io/hostname` (unique per node); plugins that need
    it are evaluated per node (see framework.Scope)."""

    __slots__ = (
        "filter_taints",
        "id",
        "images",
        "labels",
        "prefer_taints",
        "taints",
        "unschedulable",
    )

    def __init__(
        self,
        id_: int,
        labels: dict[str, str],
        taints: tuple[Taint, ...],
        unschedulable: bool,
        images: dict[str, int],
    ) -> None:
        self.id = id_
        self.labels = labels
        self.taints = taints
        self.unschedulable = unschedulable
        self.images = images
        self.filter_taints = tuple(t for t in taints if t.effect in ("NoSchedule", "NoExecute"))
        self.prefer_taints = tuple(t for t in taints if t.effect == "PreferNoSchedule")


Scalars = tuple[tuple[str, int], ...]
ResourceKey = tuple[int, int, int, int, Scalars, int, int, int, Scalars, int, int, int]
"""alloc cpu, memory, ephemeral, pods, scalars; requested cpu, memory,
ephemeral, scalars; non-zero requested cpu, memory; pod count."""


class NodeResources:
    """A node's resource state: allocatable, requested (what Fit checks),
    non-zero requested (what LeastAllocated scores) and the pod count.
    Interned: equal states share one object and one id."""

    __slots__ = (
        "alloc_cpu",
        "alloc_ephemeral",
        "alloc_memory",
        "alloc_pods",
        "alloc_scalars",
        "id",
        "nonzero_cpu",
        "nonzero_memory",
        "pod_count",
        "req_cpu",
        "req_ephemeral",
        "req_memory",
        "req_scalars",
    )

    def __init__(self, id_: int, key: ResourceKey) -> None:
        self.id = id_
        self.alloc_cpu: int = key[0]
        self.alloc_memory: int = key[1]
        self.alloc_ephemeral: int = key[2]
        self.alloc_pods: int = key[3]
        self.alloc_scalars: dict[str, int] = dict(key[4])
        self.req_cpu: int = key[5]
        self.req_memory: int = key[6]
        self.req_ephemeral: int = key[7]
        self.req_scalars: dict[str, int] = dict(key[8])
        self.nonzero_cpu: int = key[9]
        self.nonzero_memory: int = key[10]
        self.pod_count: int = key[11]


def _allocatable(node: Node) -> dict[str, int]:
    """Allocatable as ints (cpu in millicores). A node that states only
    capacity (a hand-written manifest) is taken at its capacity."""
    raw = node.status.allocatable or node.status.capacity
    out: dict[str, int] = {}
    for name, value in raw.items():
        out[name] = cpu_millis(value) if name == CPU else memory_bytes(value)
    return out


def _image_sizes(node: Node) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for image in node.status.images:
        for name in image.names:
            sizes[normalized_image_name(name)] = image.size_bytes
    return sizes


class NodeInfo:
    """One node and what runs on it. `static` and `res` are the interned
    classes; the mutable sums below are what `res` is rebuilt from."""

    __slots__ = (
        "_alloc",
        "images",
        "index",
        "labels",
        "name",
        "node",
        "nonzero_cpu",
        "nonzero_memory",
        "pods",
        "req_cpu",
        "req_ephemeral",
        "req_memory",
        "req_scalars",
        "res",
        "static",
        "used_ports",
    )

    def __init__(self, node: Node) -> None:
        self.index = -1
        self.name = node.metadata.name
        self.node = node
        self.labels: dict[str, str] = node.metadata.labels
        self.images: dict[str, int] = _image_sizes(node)
        self._alloc = _allocatable(node)
        self.pods: dict[str, PodInfo] = {}
        self.used_ports: Counter[HostPort] = Counter()
        self.req_cpu = 0
        self.req_memory = 0
        self.req_ephemeral = 0
        self.req_scalars: Counter[str] = Counter()
        self.nonzero_cpu = 0
        self.nonzero_memory = 0
        self.static: NodeStatic = _UNSET_STATIC
        self.res: NodeResources = _UNSET_RES

    # -------------------------------------------------------------- pods

    def add_pod(self, pi: PodInfo) -> None:
        """Account for a pod on this node (requests, ports)."""
        self.pods[pi.key] = pi
        self.req_cpu += pi.cpu
        self.req_memory += pi.memory
        self.req_ephemeral += pi.ephemeral_storage
        for name, value in pi.scalars:
            self.req_scalars[name] += value
        self.nonzero_cpu += pi.nonzero_cpu
        self.nonzero_memory += pi.nonzero_memory
        for port in pi.host_ports:
            self.used_ports[port] += 1

    def remove_pod(self, pi: PodInfo) -> None:
        """Undo `add_pod` for the pod with this key."""
        if self.pods.pop(pi.key, None) is None:
            return
        self.req_cpu -= pi.cpu
        self.req_memory -= pi.memory
        self.req_ephemeral -= pi.ephemeral_storage
        for name, value in pi.scalars:
            self.req_scalars[name] -= value
            if not self.req_scalars[name]:
                del self.req_scalars[name]
        self.nonzero_cpu -= pi.nonzero_cpu
        self.nonzero_memory -= pi.nonzero_memory
        for port in pi.host_ports:
            self.used_ports[port] -= 1
            if self.used_ports[port] <= 0:
                del self.used_ports[port]

    def resource_key(self) -> ResourceKey:
        """The interning key of this node's resource state."""
        a = self._alloc
        return (
            a.get(CPU, 0),
            a.get(MEMORY, 0),
            a.get(EPHEMERAL_STORAGE, 0),
            a.get(PODS, 0),
            tuple(sorted((k, v) for k, v in a.items() if k not in _NATIVE_NODE)),
            self.req_cpu,
            self.req_memory,
            self.req_ephemeral,
            tuple(sorted(self.req_scalars.items())),
            self.nonzero_cpu,
            self.nonzero_memory,
            len(self.pods),
        )

    def static_key(self) -> tuple[object, ...]:
        """The interning key of what this node is (hostname left out)."""
        return (
            frozenset((k, v) for k, v in self.labels.items() if k != HOSTNAME_LABEL),
            tuple((t.key, t.value, t.effect) for t in self.node.spec.taints),
            self.node.spec.unschedulable,
            frozenset(self.images.items()),
        )

    def clone(self) -> NodeInfo:
        """An independent copy for what-if evaluation (preemption, nominated
        pods). Its `res` is recomputed by `refresh_resources` and is not
        interned (id -1), so class caches never see it."""
        c = NodeInfo.__new__(NodeInfo)
        c.index = self.index
        c.name = self.name
        c.node = self.node
        c.labels = self.labels
        c.images = self.images
        c._alloc = self._alloc
        c.pods = dict(self.pods)
        c.used_ports = Counter(self.used_ports)
        c.req_cpu = self.req_cpu
        c.req_memory = self.req_memory
        c.req_ephemeral = self.req_ephemeral
        c.req_scalars = Counter(self.req_scalars)
        c.nonzero_cpu = self.nonzero_cpu
        c.nonzero_memory = self.nonzero_memory
        c.static = self.static
        c.res = self.res
        return c

    def refresh_resources(self) -> None:
        """Rebuild `res` (uninterned) after changing a clone's pods."""
        self.res = NodeResources(-1, self.resource_key())


_UNSET_STATIC = NodeStatic(-1, {}, (), False, {})
_UNSET_RES = NodeResources(-1, (0, 0, 0, 0, (), 0, 0, 0, (), 0, 0, 0))


# ------------------------------------------------------------------ indexes


@dataclass(eq=False)
class LabelGroup:
    """Pods of one namespace with one exact label set, counted per node.
    `live` leaves out terminating pods (topology spread ignores them)."""

    namespace: str
    labels: dict[str, str]
    labels_key: frozenset[tuple[str, str]]
    all: Counter[NodeInfo] = field(default_factory=Counter)
    live: Counter[NodeInfo] = field(default_factory=Counter)


@dataclass(eq=False)
class TermGroup:
    """Existing pods' affinity terms with one signature (and weight),
    counted per node of the pods that carry them."""

    term: AffinityTerm
    weight: int
    nodes: Counter[NodeInfo] = field(default_factory=Counter)


HARD_POD_AFFINITY_WEIGHT = 1
"""InterPodAffinityArgs.hardPodAffinityWeight default."""


class ClusterSnapshot:
    """Nodes and pods as the scheduler currently believes them to be,
    including pods it assumed but whose binding is not yet observed."""

    def __init__(self) -> None:
        self.nodes: list[NodeInfo] = []
        self.names: list[str] = []
        self.class_keys: list[int] = []
        self.by_name: dict[str, NodeInfo] = {}
        self.pods: dict[str, PodInfo] = {}
        self.assumed: set[str] = set()
        self.next_start_index = 0
        self.statics_by_id: list[NodeStatic] = []
        self.resources_by_id: list[NodeResources] = []
        self._static_intern: dict[tuple[object, ...], NodeStatic] = {}
        self._res_intern: dict[ResourceKey, NodeResources] = {}
        self._orphans: dict[str, dict[str, PodInfo]] = {}
        self.image_nodes: Counter[str] = Counter()
        self.label_nodes: dict[str, Counter[str]] = {}
        self.label_groups: dict[tuple[str, frozenset[tuple[str, str]]], LabelGroup] = {}
        self.anti_affinity_groups: dict[tuple[object, ...], TermGroup] = {}
        self.affinity_score_groups: dict[tuple[object, ...], TermGroup] = {}
        self.nominated: dict[str, dict[str, PodInfo]] = {}
        self._nominated_node_of: dict[str, str] = {}
        self.workload_selectors: dict[str, list[tuple[str, LabelSelector]]] = {}
        self.has_taints = 0
        self.pods_with_affinity = 0

    # -------------------------------------------------------------- reading

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> NodeInfo | None:
        return self.by_name.get(name)

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self.nodes)

    def nodes_with_label(self, key: str) -> int:
        """How many nodes carry label `key` (any value)."""
        values = self.label_nodes.get(key)
        return sum(values.values()) if values else 0

    # -------------------------------------------------------------- interning

    def _intern_static(self, ni: NodeInfo) -> None:
        key = ni.static_key()
        st = self._static_intern.get(key)
        if st is None:
            if len(self.statics_by_id) > STATIC_MASK:
                self._reintern_all()
                st = self._static_intern.get(key)
            if st is None:
                st = NodeStatic(
                    len(self.statics_by_id),
                    {k: v for k, v in ni.labels.items() if k != HOSTNAME_LABEL},
                    tuple(ni.node.spec.taints),
                    ni.node.spec.unschedulable,
                    ni.images,
                )
                self.statics_by_id.append(st)
                self._static_intern[key] = st
        ni.static = st

    def _intern_res(self, ni: NodeInfo) -> None:
        key = ni.resource_key()
        res = self._res_intern.get(key)
        if res is None:
            if len(self.resources_by_id) > max(65536, 8 * len(self.nodes)):
                self._reintern_resources()
            res = NodeResources(len(self.resources_by_id), key)
            self.resources_by_id.append(res)
            self._res_intern[key] = res
        ni.res = res
        if ni.index >= 0:
            self.class_keys[ni.index] = (res.id << STATIC_BITS) | ni.static.id

    def _reintern_resources(self) -> None:
        """Forget resource states no node is in any more (ids restart)."""
        self._res_intern.clear()
        self.resources_by_id.clear()
        for ni in self.nodes:
            key = ni.resource_key()
            res = self._res_intern.get(key)
            if res is None:
                res = NodeResources(len(self.resources_by_id), key)
                self.resources_by_id.append(res)
                self._res_intern[key] = res
            ni.res = res
            self.class_keys[ni.index] = (res.id << STATIC_BITS) | ni.static.id

    def _reintern_all(self) -> None:
        self._static_intern.clear()
        self.statics_by_id.clear()
        for ni in self.nodes:
            self._intern_static(ni)
        self._reintern_resources()

    # -------------------------------------------------------------- nodes

    def add_node(self, node: Node) -> NodeInfo:
        """A node appeared (or is re-listed: then it is an update)."""
        name = node.metadata.name
        if name in self.by_name:
            return self.update_node(node)
        ni = NodeInfo(node)
        self._intern_static(ni)
        ni.index = len(self.nodes)
        self.nodes.append(ni)
        self.names.append(name)
        self.class_keys.append(0)
        self.by_name[name] = ni
        self._count_node(ni, +1)
        for pi in self._orphans.pop(name, {}).values():
            ni.add_pod(pi)
            self._index_pod(pi, ni, +1)
        self._intern_res(ni)
        return ni

    def update_node(self, node: Node) -> NodeInfo:
        """Labels, taints, allocatable or images changed. Pods stay."""
        ni = self.by_name.get(node.metadata.name)
        if ni is None:
            return self.add_node(node)
        pods = list(ni.pods.values())
        for pi in pods:
            self._index_pod(pi, ni, -1)
        self._count_node(ni, -1)
        ni.node = node
        ni.labels = node.metadata.labels
        ni.images = _image_sizes(node)
        ni._alloc = _allocatable(node)
        self._intern_static(ni)
        self._count_node(ni, +1)
        for pi in pods:
            self._index_pod(pi, ni, +1)
        self._intern_res(ni)
        return ni

    def remove_node(self, name: str) -> None:
        """The node is gone. Its pods are kept aside (as Kubernetes keeps a
        node-less NodeInfo) until they are deleted or the node returns."""
        ni = self.by_name.pop(name, None)
        if ni is None:
            return
        for pi in ni.pods.values():
            self._index_pod(pi, ni, -1)
        if ni.pods:
            self._orphans[name] = dict(ni.pods)
        self._count_node(ni, -1)
        last = self.nodes.pop()
        self.names.pop()
        key = self.class_keys.pop()
        if last is not ni:
            last.index = ni.index
            self.nodes[ni.index] = last
            self.names[ni.index] = last.name
            self.class_keys[ni.index] = key
        ni.index = -1
        if self.nodes:
            self.next_start_index %= len(self.nodes)
        else:
            self.next_start_index = 0
        for key_ in list(self.nominated.get(name, {})):
            self.clear_nomination(key_)

    def _count_node(self, ni: NodeInfo, sign: int) -> None:
        for k, v in ni.labels.items():
            values = self.label_nodes.setdefault(k, Counter())
            values[v] += sign
            if values[v] <= 0:
                del values[v]
                if not values:
                    del self.label_nodes[k]
        for image in ni.images:
            self.image_nodes[image] += sign
            if self.image_nodes[image] <= 0:
                del self.image_nodes[image]
        if ni.node.spec.taints:
            self.has_taints += sign

    # -------------------------------------------------------------- pods

    def add_pod(self, pi: PodInfo) -> None:
        """A bound pod was observed (informer add or update). Confirms an
        assumed pod on the same node; moves it if it landed elsewhere."""
        if not pi.node_name:
            return
        self.remove_pod(pi.key)
        self.assumed.discard(pi.key)
        self._place(pi)

    update_pod = add_pod

    def assume_pod(self, pi: PodInfo, node_name: str) -> PodInfo:
        """Reserve `node_name` for the pod before its binding is stored, so
        the next cycle already sees the node's requests. Returns the assumed
        PodInfo (bound to the node)."""
        bound = pi.bound_to(node_name)
        self.remove_pod(pi.key)
        self._place(bound)
        self.assumed.add(pi.key)
        self.clear_nomination(pi.key)
        return bound

    def forget_pod(self, key: str) -> None:
        """The binding failed: release an assumed pod's reservation."""
        if key in self.assumed:
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def remove_pod(self, key: str) -> None:
        """The pod was deleted (or is being re-placed)."""
        self.assumed.discard(key)
        pi = self.pods.pop(key, None)
        if pi is None:
            return
        ni = self.by_name.get(pi.node_name)
        if ni is not None:
            ni.remove_pod(pi)
            self._index_pod(pi, ni, -1)
            self._intern_res(ni)
        else:
            orphans = self._orphans.get(pi.node_name)
            if orphans is not None:
                orphans.pop(key, None)
                if not orphans:
                    del self._orphans[pi.node_name]
        if pi.has_affinity:
            self.pods_with_affinity -= 1

    def _place(self, pi: PodInfo) -> None:
        self.pods[pi.key] = pi
        if pi.has_affinity:
            self.pods_with_affinity += 1
        ni = self.by_name.get(pi.node_name)
        if ni is None:
            self._orphans.setdefault(pi.node_name, {})[pi.key] = pi
            return
        ni.add_pod(pi)
        self._index_pod(pi, ni, +1)
        self._intern_res(ni)

    def _index_pod(self, pi: PodInfo, ni: NodeInfo, sign: int) -> None:
        gkey = (pi.namespace, pi.labels_key)
        group = self.label_groups.get(gkey)
        if group is None:
            group = self.label_groups[gkey] = LabelGroup(
                pi.namespace, dict(pi.labels), pi.labels_key
            )
        group.all[ni] += sign
        if group.all[ni] <= 0:
            del group.all[ni]
        if not pi.terminating:
            group.live[ni] += sign
            if group.live[ni] <= 0:
                del group.live[ni]
        if not group.all:
            del self.label_groups[gkey]
        for term in pi.required_anti_affinity:
            _bump(self.anti_affinity_groups, term.signature, term, 1, ni, sign)
        for term in pi.required_affinity:
            sig = ("hard", *term.signature)
            _bump(self.affinity_score_groups, sig, term, HARD_POD_AFFINITY_WEIGHT, ni, sign)
        for term in pi.preferred_affinity:
            sig = ("pref", term.weight, *term.signature)
            _bump(self.affinity_score_groups, sig, term, term.weight, ni, sign)
        for term in pi.preferred_anti_affinity:
            sig = ("anti", term.weight, *term.signature)
            _bump(self.affinity_score_groups, sig, term, -term.weight, ni, sign)

    # -------------------------------------------------------------- nominations

    def nominate(self, pi: PodInfo, node_name: str) -> None:
        """Record that `pi` is expected on `node_name` after preemption:
        lower-priority pods must leave it room."""
        self.clear_nomination(pi.key)
        self.nominated.setdefault(node_name, {})[pi.key] = pi
        self._nominated_node_of[pi.key] = node_name

    def clear_nomination(self, key: str) -> None:
        node_name = self._nominated_node_of.pop(key, None)
        if node_name is None:
            return
        pods = self.nominated.get(node_name)
        if pods is not None:
            pods.pop(key, None)
            if not pods:
                del self.nominated[node_name]

    def nominated_node_of(self, key: str) -> str | None:
        return self._nominated_node_of.get(key)

    # -------------------------------------------------------------- workloads

    def set_workload_selector(
        self, namespace: str, owner: str, selector: LabelSelector | None
    ) -> None:
        """Register (or with None, drop) the selector of a ReplicaSet or
        StatefulSet: PodTopologySpread's system default constraints spread
        the pods it selects."""
        entries = [e for e in self.workload_selectors.get(namespace, []) if e[0] != owner]
        if selector is not None:
            entries.append((owner, selector))
        if entries:
            self.workload_selectors[namespace] = entries
        else:
            self.workload_selectors.pop(namespace, None)

    # -------------------------------------------------------------- building

    @classmethod
    def build(cls, nodes: Iterable[Node], pods: Iterable[PodInfo] = ()) -> ClusterSnapshot:
        """A snapshot of these nodes and bound pods (tests, informer resync)."""
        snap = cls()
        for n in nodes:
            snap.add_node(n)
        for pi in pods:
            snap.add_pod(pi)
        return snap


def _bump(
    groups: dict[tuple[object, ...], TermGroup],
    sig: tuple[object, ...],
    term: AffinityTerm,
    weight: int,
    ni: NodeInfo,
    sign: int,
) -> None:
    group = groups.get(sig)
    if group is None:
        if sign < 0:
            return
        group = groups[sig] = TermGroup(term, weight)
    group.nodes[ni] += sign
    if group.nodes[ni] <= 0:
        del group.nodes[ni]
    if not group.nodes:
        del groups[sig]
