"""Requests and replies of the workload-controller's API subjects
(podbus.api.apply / delete / get / list / ephemeral). Any client may send
them as JSON or msgpack; podctl uses these types directly.
"""

from __future__ import annotations

from typing import Any

from podmodel.meta import Model
from podmodel.pod import EphemeralContainer


class ApplyRequest(Model):
    object: dict[str, Any]
    dry_run: bool = False


class ApplyReply(Model):
    object: dict[str, Any]
    warnings: list[str] = []
    created: bool = False


class DeleteRequest(Model):
    kind: str
    name: str
    namespace: str = "default"
    grace_period_seconds: int | None = None
    propagation_policy: str = "Background"


class GetRequest(Model):
    kind: str
    name: str
    namespace: str = "default"


class ListRequest(Model):
    kind: str
    namespace: str | None = None
    label_selector: str | None = None
    node: str | None = None


class EphemeralRequest(Model):
    name: str
    namespace: str = "default"
    ephemeral_containers: list[EphemeralContainer] = []
    container: EphemeralContainer | None = None


class RollbackRequest(Model):
    """podbus.api.rollback: `kubectl rollout undo deployment/<name>
    [--to-revision=N]` (0: the previous revision)."""

    name: str
    namespace: str = "default"
    to_revision: int = 0


class RollbackReply(Model):
    message: str
    object: dict[str, Any] = {}


class ListReply(Model):
    items: list[dict[str, Any]] = []
    resource_version: str = ""
