"""The scheduling framework's contracts: statuses, plugin interfaces, cycle state.

Modelled on Kubernetes' pkg/scheduler/framework/interface.go. A plugin has
one job; the scheduling cycle (scheduling_cycle.py) composes them in the
profile's order. What differs, for speed in pure Python: a plugin's
PreFilter / PreScore says *what its answer depends on* for this pod:

- `Scope.STATIC`: only the node's interned NodeStatic (labels but the
  hostname, taints, unschedulable, images). Evaluated once per static class.
- `Scope.RESOURCES`: only the node's interned NodeResources. Once per
  resource state.
- `Scope.NODE`: the node itself (its name, hostname, pods, ports). Once per
  node.
- `None`: the plugin does not apply to this pod (Kubernetes' Skip).

The plugin then implements the matching `filter_static` / `filter_resources`
/ `filter_node` (and `score_*`). A filter answers None for "fits" or a
`Failure` carrying Kubernetes' exact reason strings and code. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from services.scheduler.cluster_snapshot import (
        ClusterSnapshot,
        NodeInfo,
        NodeResources,
        NodeStatic,
    )
    from services.scheduler.pod_info import PodInfo

MAX_NODE_SCORE = 100


class Code(enum.IntEnum):
    """framework.Code values that a filter can answer with."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3


class Scope(enum.Enum):
    """What a plugin's answer for one pod depends on (see module doc)."""

    STATIC = "static"
    RESOURCES = "resources"
    NODE = "node"


class Failure:
    """A rejected node (or pod, at PreFilter): the plugin, the code, and the
    reasons as Kubernetes words them. Compared by identity: plugins keep
    constant instances for fixed reasons, and the cycle counts them fast."""

    __slots__ = ("code", "plugin", "reasons")

    def __init__(self, plugin: str, code: Code, *reasons: str) -> None:
        self.plugin = plugin
        self.code = code
        self.reasons: tuple[str, ...] = reasons

    @property
    def resolvable(self) -> bool:
        """Could preemption (removing pods) help? Only for Unschedulable."""
        return self.code == Code.UNSCHEDULABLE

    def __repr__(self) -> str:
        return f"Failure({self.plugin}, {self.code.name}, {self.reasons!r})"


@dataclass(eq=False)
class CycleState:
    """Per-pod, per-cycle scratch space: the pod, the snapshot, and each
    plugin's pre-computed state under its name. `clone` copies plugin states
    that define `clone()` (preemption's what-if runs mutate them).

    `node_names`: Kubernetes' PreFilterResult.NodeNames: a pre-filter that
    knows only these nodes can fit (a DaemonSet pod's matchFields) narrows
    the walk to them; None is every node."""

    pod: PodInfo
    snapshot: ClusterSnapshot
    data: dict[str, Any] = field(default_factory=dict)
    node_names: frozenset[str] | None = None

    def restrict_nodes(self, names: frozenset[str]) -> None:
        self.node_names = names if self.node_names is None else self.node_names & names

    def clone(self) -> CycleState:
        copied = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in self.data.items()}
        return CycleState(self.pod, self.snapshot, copied, self.node_names)


class FilterPlugin:
    """PreFilter + Filter (+ the AddPod/RemovePod extensions). Subclasses set
    NAME and implement the `filter_*` method for each scope they return."""

    NAME: ClassVar[str] = ""

    def pre_filter(self, cycle: CycleState) -> Scope | Failure | None:
        """Prepare `cycle.data[NAME]`; answer the scope, None to skip, or a
        Failure that rejects the pod on every node."""
        raise NotImplementedError

    def filter_static(self, cycle: CycleState, static: NodeStatic) -> Failure | None:
        raise NotImplementedError(f"{self.NAME} has no static filter")

    def filter_resources(self, cycle: CycleState, res: NodeResources) -> Failure | None:
        raise NotImplementedError(f"{self.NAME} has no resources filter")

    def filter_node(self, cycle: CycleState, node: NodeInfo) -> Failure | None:
        raise NotImplementedError(f"{self.NAME} has no node filter")

    def add_pod(self, cycle: CycleState, pod: PodInfo, node: NodeInfo) -> None:
        """PreFilterExtensions.AddPod: `pod` is now assumed on `node` for a
        what-if evaluation; adjust this plugin's pre-filter state."""

    def remove_pod(self, cycle: CycleState, pod: PodInfo, node: NodeInfo) -> None:
        """PreFilterExtensions.RemovePod: the opposite of add_pod."""


class ScorePlugin:
    """PreScore + Score + NormalizeScore. Raw scores are ints; after
    normalisation each is in 0..MAX_NODE_SCORE and is multiplied by the
    profile's weight for this plugin."""

    NAME: ClassVar[str] = ""

    def pre_score(self, cycle: CycleState, feasible: Sequence[NodeInfo]) -> Scope | None:
        """Prepare scoring state; answer the scope or None to skip."""
        raise NotImplementedError

    def score_static(self, cycle: CycleState, static: NodeStatic) -> int:
        raise NotImplementedError(f"{self.NAME} has no static score")

    def score_resources(self, cycle: CycleState, res: NodeResources) -> int:
        raise NotImplementedError(f"{self.NAME} has no resources score")

    def score_node(self, cycle: CycleState, node: NodeInfo) -> int:
        raise NotImplementedError(f"{self.NAME} has no node score")

    def normalize(
        self, cycle: CycleState, scores: list[int], nodes: Sequence[NodeInfo] | None
    ) -> list[int] | None:
        """NormalizeScore over every scored node's raw score (or, for class
        scopes, each distinct class's: every normalisation Kubernetes uses
        depends only on the minimum and maximum). `nodes` are the matching
        nodes when the scope is NODE. None: no normalisation."""
        return None


def default_normalize(scores: list[int], reverse: bool) -> list[int]:
    """helper.DefaultNormalizeScore: scale to 0..100 by the maximum;
    `reverse` turns the highest raw score into the lowest."""
    top = max(scores) if scores else 0
    if top == 0:
        return [MAX_NODE_SCORE] * len(scores) if reverse else [0] * len(scores)
    if reverse:
        return [MAX_NODE_SCORE - MAX_NODE_SCORE * s // top for s in scores]
    return [MAX_NODE_SCORE * s // top for s in scores]


@dataclass(frozen=True)
class Profile:
    """A scheduler profile: filter plugins in Kubernetes' order, score
    plugins with weights, and percentageOfNodesToScore (0 = adaptive)."""

    filters: tuple[FilterPlugin, ...]
    scores: tuple[tuple[ScorePlugin, int], ...]
    percentage_of_nodes_to_score: int = 0
    name: str = "default-scheduler"
