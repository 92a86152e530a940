"""The ReplicaSet plan: keep `spec.replicas` active pods matching the
selector, adopting orphans and releasing pods that stopped matching, and
report status. Follows pkg/controller/replicaset/replica_set.go.

Owns `plan_replicaset`. Pure: pods, `now` and the random source come in;
actions come out (see actions.py for the driver contract).

- Active pods only count: terminal pods and pods being deleted
  (deletionTimestamp) are neither replicas nor deletion candidates.
- Missing pods are created up to `burst_replicas` per sync (Kubernetes'
  burstReplicas, 500); when more are missing the plan asks to be requeued at
  once. The driver sends the creates in slow-start batches
  (`actions.slow_start_batches`, initial batch `slow_start_initial_batch`).
  Both numbers are tunable: Kubernetes' values protect an API server from
  error storms; a podbus scale-up of 10,000 pods wants larger ones
  (e.g. burst 10,000, initial batch 100), which keeps the storm guard
  (the first failure stops the run) at a cost of a few round trips.
- Surplus pods are deleted in Kubernetes' preference order
  (pod_state.deletion_order_key): unscheduled, pending, not ready, fewer
  ready seconds, more restarts, newer first; pods doubled up on a node with
  other pods of this ReplicaSet go before lone ones.
- Status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
  (minReadySeconds), observedGeneration, counted over the pods observed
  before this sync's creates and deletes, as Kubernetes does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from podmodel.pod import Pod
from podmodel.workloads import ReplicaSet, ReplicaSetStatus

from services.workload_controller.logic.actions import (
    Action,
    CreatePod,
    DeletePod,
    Requeue,
    UpdateStatus,
    event,
)
from services.workload_controller.logic.ownership import claim_active_pods
from services.workload_controller.logic.pod_state import (
    deletion_order_key,
    is_available,
    is_ready,
    seconds_until_available,
)
from services.workload_controller.logic.pod_template import PodFactory
from services.workload_controller.logic.snapshots import clone


@dataclass(frozen=True)
class ReplicaSetTuning:
    """How much one sync may do. Defaults are Kubernetes' (burstReplicas 500,
    SlowStartInitialBatchSize 1)."""

    burst_replicas: int = 500
    slow_start_initial_batch: int = 1


DEFAULT_TUNING = ReplicaSetTuning()


def plan_replicaset(
    rs: ReplicaSet,
    pods: Iterable[Pod],
    now: datetime,
    rng: random.Random,
    tuning: ReplicaSetTuning = DEFAULT_TUNING,
) -> list[Action]:
    """Actions that move `rs` toward `spec.replicas` pods, then its status.

    `pods`: the pods the driver indexed under this ReplicaSet's uid plus the
    namespace's orphans (others are ignored anyway)."""
    candidates = list(pods)
    claimed = claim_active_pods(rs, rs.spec.selector, candidates)
    actions: list[Action] = list(claimed.actions)
    owned = claimed.owned

    if rs.metadata.deletion_timestamp is None:
        diff = len(owned) - rs.spec.replicas
        if diff < 0:
            want = -diff
            count = min(want, tuning.burst_replicas)
            actions.extend(_creates(rs, candidates, count, rng))
            if want > count:
                actions.append(Requeue(0.0))
        elif diff > 0:
            count = min(diff, tuning.burst_replicas)
            actions.extend(_deletes(rs, owned, count, now))
            if diff > count:
                actions.append(Requeue(0.0))

    status = replica_set_status(rs, owned, now)
    if status != rs.status:
        updated = clone(rs)
        updated.status = status
        actions.append(UpdateStatus(updated))

    # A ready pod becomes available minReadySeconds later with no event to
    # wake us: look again then (Kubernetes requeues after minReadySeconds).
    min_ready = rs.spec.min_ready_seconds
    if min_ready > 0:
        waits = [w for p in owned if (w := seconds_until_available(p, min_ready, now)) is not None]
        if waits:
            actions.append(Requeue(min(waits) + 0.001))
    return actions


def _creates(rs: ReplicaSet, candidates: list[Pod], count: int, rng: random.Random) -> list[Action]:
    factory = PodFactory(rs.spec.template, rs)
    taken = {p.metadata.name for p in candidates}
    out: list[Action] = []
    for _ in range(count):
        pod = factory.make_generated(rng, taken)
        out.append(
            CreatePod(pod, event=event(rs, "SuccessfulCreate", f"Created pod: {pod.metadata.name}"))
        )
    return out


def _deletes(rs: ReplicaSet, owned: list[Pod], count: int, now: datetime) -> list[Action]:
    victims = pods_to_delete(owned, count, now)
    return [
        DeletePod(
            namespace=p.metadata.namespace,
            name=p.metadata.name,
            uid=p.metadata.uid,
            reason="scale down",
            event=event(rs, "SuccessfulDelete", f"Deleted pod: {p.metadata.name}"),
        )
        for p in victims
    ]


def pods_to_delete(pods: list[Pod], count: int, now: datetime) -> list[Pod]:
    """The `count` pods Kubernetes would delete first (getPodsToDelete). The
    rank of a pod is how many of `pods` share its node (0 when unscheduled)."""
    if count >= len(pods):
        return list(pods)
    per_node = Counter(p.spec.node_name for p in pods if p.spec.node_name)
    ranked = sorted(
        pods,
        key=lambda p: deletion_order_key(
            p, now, per_node[p.spec.node_name] if p.spec.node_name else 0
        ),
    )
    return ranked[:count]


def replica_set_status(rs: ReplicaSet, owned: list[Pod], now: datetime) -> ReplicaSetStatus:
    """calculateStatus over the claimed active pods."""
    template_labels = rs.spec.template.metadata.labels.items()
    fully_labeled = ready = available = 0
    min_ready = rs.spec.min_ready_seconds
    for pod in owned:
        labels = pod.metadata.labels
        if all(labels.get(k) == v for k, v in template_labels):
            fully_labeled += 1
        if is_ready(pod):
            ready += 1
            if is_available(pod, min_ready, now):
                available += 1
    return ReplicaSetStatus(
        replicas=len(owned),
        fully_labeled_replicas=fully_labeled,
        ready_replicas=ready,
        available_replicas=available,
        observed_generation=rs.metadata.generation,
        conditions=list(rs.status.conditions),
    )
