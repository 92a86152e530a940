"""The StatefulSet plan: ordinals, ordering, updates, volumes, status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from podmodel.pod import Condition, NodeSelectorRequirement, Pod
from podmodel.workloads import PersistentVolumeClaim, StatefulSet, StatefulSetStatus

from services.workload_controller.logic.actions import (
    Action,
    CreatePod,
    DeletePod,
    DeleteRevision,
    EmitEvent,
    PatchMetadata,
    RecordClaimNode,
    SaveRevision,
    UpdateStatus,
)
from services.workload_controller.logic.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    REVISION_LABEL,
    StoredRevision,
    ordinal_of,
    plan_statefulset,
)
from tests.unit.workload_controller.sample_objects import NOW, stateful_set, ts


@dataclass
class Cluster:
    """A StatefulSet, its pods, saved revisions and claim locations, with a
    kubelet that starts a pod (Running, Ready) one step after creation and
    finishes a deletion one step after it was requested."""

    sts: StatefulSet
    pods: dict[str, Pod] = field(default_factory=dict)
    revisions: dict[str, StoredRevision] = field(default_factory=dict)
    claim_nodes: dict[str, str] = field(default_factory=dict)
    now: datetime = NOW
    serial: int = 0
    start_pods: bool = True
    history: list[list[Action]] = field(default_factory=list)

    def plan(self) -> list[Action]:
        return plan_statefulset(
            self.sts, list(self.pods.values()), self.revisions, self.claim_nodes, self.now
        )

    def apply(self, actions: Sequence[Action]) -> None:
        for a in actions:
            if isinstance(a, CreatePod):
                assert a.pod.metadata.name not in self.pods, "two pods of one ordinal"
                self.serial += 1
                p = a.pod
                p.metadata.uid = f"{p.metadata.name}-{self.serial}"
                p.metadata.creation_timestamp = ts((self.now - NOW).total_seconds())
                p.status.phase = "Pending"
                self.pods[p.metadata.name] = p
            elif isinstance(a, DeletePod):
                self.pods[a.name].metadata.deletion_timestamp = ts()
            elif isinstance(a, UpdateStatus):
                assert isinstance(a.obj, StatefulSet)
                self.sts.status = a.obj.status
            elif isinstance(a, SaveRevision):
                self.revisions[a.name] = StoredRevision(a.name, a.revision, a.template)
            elif isinstance(a, DeleteRevision):
                del self.revisions[a.name]
            elif isinstance(a, RecordClaimNode):
                self.claim_nodes[a.claim_name] = a.node_name

    def kubelet(self) -> None:
        for name, p in list(self.pods.items()):
            if p.metadata.deletion_timestamp is not None:
                del self.pods[name]
            elif p.status.phase == "Pending" and self.start_pods:
                p.status.phase = "Running"
                p.spec.node_name = p.spec.node_name or "node-1"
                p.status.conditions = [
                    Condition(type="Ready", status="True", last_transition_time=ts(-100))
                ]

    def step(self) -> list[Action]:
        actions = self.plan()
        self.history.append(actions)
        self.apply(actions)
        self.kubelet()
        self.now += timedelta(seconds=1)
        return actions

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()


def created(actions: list[Action]) -> list[str]:
    return [a.pod.metadata.name for a in actions if isinstance(a, CreatePod)]


def deleted(actions: list[Action]) -> list[str]:
    return [a.name for a in actions if isinstance(a, DeletePod)]


def test_ordinal_names_parse_strictly() -> None:
    assert ordinal_of("web", "web-0") == 0
    assert ordinal_of("web", "web-12") == 12
    assert ordinal_of("web", "web-01") is None
    assert ordinal_of("web", "web-x") is None
    assert ordinal_of("web", "webby-1") is None


def test_statefulset_pods_get_identity_labels_hostname_and_subdomain() -> None:
    cluster = Cluster(stateful_set(replicas=1))
    (create,) = [a for a in cluster.plan() if isinstance(a, CreatePod)]
    p = create.pod
    assert p.metadata.name == "web-0"
    assert p.spec.hostname == "web-0" and p.spec.subdomain == "nginx"
    assert p.metadata.labels[POD_NAME_LABEL] == "web-0"
    assert p.metadata.labels[POD_INDEX_LABEL] == "0"
    assert p.metadata.labels[REVISION_LABEL].startswith("web-")
    assert p.metadata.owner_references[0].kind == "StatefulSet"
    assert create.event is not None
    assert create.event.message == "create Pod web-0 in StatefulSet web successful"


def test_ordered_ready_creates_each_pod_after_predecessors_are_ready() -> None:
    cluster = Cluster(stateful_set(replicas=3))
    order: list[str] = []
    for _ in range(10):
        actions = cluster.step()
        made = created(actions)
        assert len(made) <= 1
        order.extend(made)
    assert order == ["web-0", "web-1", "web-2"]
    status = cluster.sts.status
    assert (status.replicas, status.ready_replicas, status.available_replicas) == (3, 3, 3)


def test_ordered_ready_waits_while_a_pod_is_not_ready() -> None:
    cluster = Cluster(stateful_set(replicas=3))
    cluster.start_pods = False
    cluster.run(5)
    assert sorted(cluster.pods) == ["web-0"]


def test_ordered_ready_scales_down_highest_ordinal_first_one_at_a_time() -> None:
    cluster = Cluster(stateful_set(replicas=4))
    cluster.run(10)
    cluster.sts.spec.replicas = 1
    removed: list[str] = []
    for _ in range(10):
        gone = deleted(cluster.step())
        assert len(gone) <= 1
        removed.extend(gone)
    assert removed == ["web-3", "web-2", "web-1"]
    assert sorted(cluster.pods) == ["web-0"]


def test_scale_down_waits_for_the_successor_to_be_gone() -> None:
    cluster = Cluster(stateful_set(replicas=3))
    cluster.run(8)
    cluster.sts.spec.replicas = 1
    cluster.pods["web-2"].metadata.deletion_timestamp = ts()  # still terminating
    assert deleted(cluster.plan()) == []


def test_parallel_creates_and_deletes_without_waiting() -> None:
    cluster = Cluster(stateful_set(replicas=3, policy="Parallel"))
    cluster.start_pods = False
    assert sorted(created(cluster.step())) == ["web-0", "web-1", "web-2"]
    cluster.start_pods = True
    cluster.run(2)
    cluster.sts.spec.replicas = 0
    assert sorted(deleted(cluster.step())) == ["web-0", "web-1", "web-2"]


def test_statefulset_never_two_pods_of_one_ordinal() -> None:
    cluster = Cluster(stateful_set(replicas=2, policy="Parallel"))
    cluster.run(4)
    # web-1 is being deleted (by a user, an eviction, a crash recovery...).
    cluster.pods["web-1"].metadata.deletion_timestamp = ts()
    actions = cluster.plan()
    assert "web-1" not in created(actions)
    # Once the old object is gone, the ordinal is recreated.
    del cluster.pods["web-1"]
    assert created(cluster.plan()) == ["web-1"]
    # Cluster.apply asserts the name is free for every create over a long run.
    cluster.run(10)


def test_failed_pod_is_deleted_then_recreated_after_it_is_gone() -> None:
    cluster = Cluster(stateful_set(replicas=2))
    cluster.run(6)
    cluster.pods["web-0"].status.phase = "Failed"
    actions = cluster.plan()
    assert deleted(actions) == ["web-0"]
    assert created(actions) == []
    events = [a for a in actions if isinstance(a, EmitEvent)]
    assert events[0].reason == "RecreatingFailedPod" and events[0].type == "Warning"
    cluster.apply(actions)
    cluster.kubelet()  # the old pod object goes away
    assert created(cluster.plan()) == ["web-0"]


def test_rolling_update_goes_highest_ordinal_first_waiting_for_ready() -> None:
    cluster = Cluster(stateful_set(replicas=3))
    cluster.run(8)
    old_revision = cluster.sts.status.update_revision
    cluster.sts.spec.template.spec.containers[0].image = "nginx:1.26"
    deletions: list[str] = []
    for _ in range(20):
        gone = deleted(cluster.step())
        assert len(gone) <= 1
        deletions.extend(gone)
    assert deletions == ["web-2", "web-1", "web-0"]
    status = cluster.sts.status
    assert status.update_revision != old_revision
    assert status.current_revision == status.update_revision
    assert status.updated_replicas == status.current_replicas == 3
    images = {p.spec.containers[0].image for p in cluster.pods.values()}
    assert images == {"nginx:1.26"}


def test_rolling_update_partition_keeps_lower_ordinals_on_the_current_revision() -> None:
    cluster = Cluster(stateful_set(replicas=4))
    cluster.run(10)
    assert cluster.sts.spec.update_strategy.rolling_update is not None
    cluster.sts.spec.update_strategy.rolling_update.partition = 2
    cluster.sts.spec.template.spec.containers[0].image = "nginx:1.26"
    cluster.run(20)
    images = {n: p.spec.containers[0].image for n, p in cluster.pods.items()}
    assert images == {
        "web-0": "nginx:1.25",
        "web-1": "nginx:1.25",
        "web-2": "nginx:1.26",
        "web-3": "nginx:1.26",
    }
    status = cluster.sts.status
    assert (status.current_replicas, status.updated_replicas) == (2, 2)
    assert status.current_revision != status.update_revision
    # A pod below the partition that is deleted comes back at the current revision.
    del cluster.pods["web-0"]
    cluster.run(3)
    assert cluster.pods["web-0"].spec.containers[0].image == "nginx:1.25"


def test_on_delete_updates_only_deleted_pods() -> None:
    cluster = Cluster(stateful_set(replicas=2))
    cluster.sts.spec.update_strategy.type = "OnDelete"
    cluster.sts.spec.update_strategy.rolling_update = None
    cluster.run(6)
    cluster.sts.spec.template.spec.containers[0].image = "nginx:1.26"
    cluster.run(6)
    assert {p.spec.containers[0].image for p in cluster.pods.values()} == {"nginx:1.25"}
    del cluster.pods["web-1"]
    cluster.run(3)
    assert cluster.pods["web-1"].spec.containers[0].image == "nginx:1.26"
    assert cluster.pods["web-0"].spec.containers[0].image == "nginx:1.25"


def test_volume_claim_templates_give_each_ordinal_its_claim() -> None:
    sts = stateful_set(replicas=2)
    sts.spec.volume_claim_templates = [PersistentVolumeClaim()]
    sts.spec.volume_claim_templates[0].metadata.name = "data"
    cluster = Cluster(sts)
    cluster.run(6)
    for i in (0, 1):
        vols = {v.name: v for v in cluster.pods[f"web-{i}"].spec.volumes}
        claim = vols["data"].persistent_volume_claim
        assert claim is not None and claim.claim_name == f"data-web-{i}"
    # The node holding each claim is recorded once its pod is bound.
    assert cluster.claim_nodes == {"data-web-0": "node-1", "data-web-1": "node-1"}


def test_pod_is_pinned_to_the_node_holding_its_volume() -> None:
    sts = stateful_set(replicas=1)
    sts.spec.volume_claim_templates = [PersistentVolumeClaim()]
    sts.spec.volume_claim_templates[0].metadata.name = "data"
    cluster = Cluster(sts, claim_nodes={"data-web-0": "node-7"})
    (create,) = [a for a in cluster.plan() if isinstance(a, CreatePod)]
    affinity = create.pod.spec.affinity
    assert affinity is not None and affinity.node_affinity is not None
    required = affinity.node_affinity.required_during_scheduling_ignored_during_execution
    assert required is not None
    (term,) = required.node_selector_terms
    assert term.match_fields == [
        NodeSelectorRequirement(key="metadata.name", operator="In", values=["node-7"])
    ]


def test_claims_survive_scale_down() -> None:
    sts = stateful_set(replicas=2)
    sts.spec.volume_claim_templates = [PersistentVolumeClaim()]
    sts.spec.volume_claim_templates[0].metadata.name = "data"
    cluster = Cluster(sts)
    cluster.run(6)
    cluster.sts.spec.replicas = 1
    cluster.run(4)
    assert "data-web-1" in cluster.claim_nodes
    cluster.sts.spec.replicas = 2
    actions = cluster.plan()
    (create,) = [a for a in actions if isinstance(a, CreatePod)]
    assert create.pod.spec.affinity is not None  # back beside its data


def test_statefulset_status_fields_and_revisions() -> None:
    cluster = Cluster(stateful_set(replicas=2))
    cluster.run(6)
    status: StatefulSetStatus = cluster.sts.status
    assert status.observed_generation == 1
    assert status.current_revision == status.update_revision
    assert status.update_revision in cluster.revisions
    assert (status.replicas, status.ready_replicas, status.current_replicas) == (2, 2, 2)
    assert (status.updated_replicas, status.available_replicas) == (2, 2)


def test_revision_history_is_truncated_to_the_limit() -> None:
    cluster = Cluster(stateful_set(replicas=1))
    cluster.sts.spec.revision_history_limit = 1
    for version in range(4):
        cluster.sts.spec.template.spec.containers[0].image = f"nginx:2.{version}"
        cluster.run(6)
    # current/update revision plus at most one unused one.
    assert len(cluster.revisions) <= 2


def test_identity_labels_are_restored() -> None:
    cluster = Cluster(stateful_set(replicas=1))
    cluster.run(3)
    del cluster.pods["web-0"].metadata.labels[POD_INDEX_LABEL]
    patches = [a for a in cluster.plan() if isinstance(a, PatchMetadata)]
    assert patches and patches[0].set_labels == {POD_INDEX_LABEL: "0"}


def test_rolling_back_to_an_old_template_renumbers_its_revision() -> None:
    cluster = Cluster(stateful_set(replicas=1))
    cluster.run(3)
    first = cluster.sts.status.update_revision
    cluster.sts.spec.template.spec.containers[0].image = "nginx:1.26"
    cluster.run(6)
    cluster.sts.spec.template.spec.containers[0].image = "nginx:1.25"
    actions = cluster.plan()
    saves = [a for a in actions if isinstance(a, SaveRevision)]
    assert [(s.name, s.revision) for s in saves] == [(first, 3)]
    cluster.apply(actions)
    cluster.run(6)
    assert cluster.sts.status.current_revision == first
    assert cluster.pods["web-0"].spec.containers[0].image == "nginx:1.25"
