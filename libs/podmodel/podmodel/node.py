"""The Node kind: a machine (real or simulated) that runs pods.

The spec (taints, unschedulable, podCIDR) is what the scheduler filters on;
the status (capacity, allocatable, conditions, addresses, images) is written
only by the node's agent. Cluster-scoped: no namespace. Pure: no I/O.
"""

from __future__ import annotations

import msgspec

from podmodel.meta import KubeObject, Model
from podmodel.pod import Condition
from podmodel.registry import register


class Taint(Model):
    """effect is NoSchedule, PreferNoSchedule or NoExecute."""

    key: str = ""
    value: str = ""
    effect: str = ""
    time_added: str | None = None


class NodeSpec(Model):
    pod_cidr: str = msgspec.field(default="", name="podCIDR")
    pod_cidrs: list[str] = msgspec.field(default_factory=list, name="podCIDRs")
    provider_id: str = msgspec.field(default="", name="providerID")
    unschedulable: bool = False
    taints: list[Taint] = []


class NodeAddress(Model):
    """type is InternalIP, ExternalIP, Hostname, ..."""

    type: str = ""
    address: str = ""


class NodeSystemInfo(Model):
    machine_id: str = msgspec.field(default="", name="machineID")
    system_uuid: str = msgspec.field(default="", name="systemUUID")
    boot_id: str = msgspec.field(default="", name="bootID")
    kernel_version: str = ""
    os_image: str = ""
    container_runtime_version: str = ""
    kubelet_version: str = ""
    kube_proxy_version: str = ""
    operating_system: str = ""
    architecture: str = ""


class ContainerImage(Model):
    names: list[str] = []
    size_bytes: int = 0


class NodeStatus(Model):
    capacity: dict[str, str] = {}
    allocatable: dict[str, str] = {}
    phase: str = ""
    conditions: list[Condition] = []
    addresses: list[NodeAddress] = []
    node_info: NodeSystemInfo | None = None
    images: list[ContainerImage] = []

    def condition(self, type_: str) -> Condition | None:
        """The condition of this type, if present."""
        for cond in self.conditions:
            if cond.type == type_:
                return cond
        return None


@register("nodes", "no", namespaced=False)
class Node(KubeObject):
    API_VERSION = "v1"
    KIND = "Node"

    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)
