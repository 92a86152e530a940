"""Pure reconcile logic of the workload-controller: one plan function per
controller (observed objects and `now` in, a list of actions out), the
action types, and what they share (pod templates and hashes, pod state,
ownership claims, event correlation).

Nothing here does I/O or reads the clock: no nats, redis or asyncio imports.
A thin driver (the service's I/O side) feeds informer state in and performs
the returned actions against the store and the bus, keeping the contract
written in `actions`.

Modules: actions, pod_template, pod_state, ownership, snapshots, timestamps,
replicaset, deployment, statefulset, job, gc, node_lifecycle, events.
"""

from services.workload_controller.logic.actions import (
    Action,
    CreateObject,
    CreatePod,
    DeleteObject,
    DeletePod,
    DeleteRevision,
    EmitEvent,
    PatchMetadata,
    RecordClaimNode,
    Requeue,
    SaveRevision,
    UpdateObject,
    UpdateStatus,
    slow_start_batches,
)
from services.workload_controller.logic.cronjob import plan_cronjob
from services.workload_controller.logic.daemonset import plan_daemonset
from services.workload_controller.logic.deployment import (
    Rollback,
    RollbackError,
    collision_status,
    plan_deployment,
    plan_rollback,
    restart_template,
)
from services.workload_controller.logic.events import EventCorrelator, EventWrite
from services.workload_controller.logic.gc import plan_garbage_collection
from services.workload_controller.logic.job import JobTuning, plan_job
from services.workload_controller.logic.node_lifecycle import (
    NodeLifecycleTuning,
    plan_node_lifecycle,
)
from services.workload_controller.logic.replicaset import ReplicaSetTuning, plan_replicaset
from services.workload_controller.logic.statefulset import StoredRevision, plan_statefulset

__all__ = [
    "Action",
    "CreateObject",
    "CreatePod",
    "DeleteObject",
    "DeletePod",
    "DeleteRevision",
    "EmitEvent",
    "EventCorrelator",
    "EventWrite",
    "JobTuning",
    "NodeLifecycleTuning",
    "PatchMetadata",
    "RecordClaimNode",
    "ReplicaSetTuning",
    "Requeue",
    "Rollback",
    "RollbackError",
    "SaveRevision",
    "StoredRevision",
    "UpdateObject",
    "UpdateStatus",
    "collision_status",
    "plan_cronjob",
    "plan_daemonset",
    "plan_deployment",
    "plan_garbage_collection",
    "plan_job",
    "plan_node_lifecycle",
    "plan_replicaset",
    "plan_rollback",
    "plan_statefulset",
    "restart_template",
    "slow_start_batches",
]
