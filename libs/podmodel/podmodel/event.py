"""The Event kind: the Kubernetes core/v1 record that `describe` shows.

An Event tells what happened to an involved object (Scheduled, Pulled,
Started, Killing, BackOff, Unhealthy, FailedScheduling...), how often
(`count`) and when first and last. It has neither spec nor status. Pure: no
I/O; whoever records events names and aggregates them.
"""

from __future__ import annotations

import msgspec

from podmodel.meta import KubeObject, Model
from podmodel.registry import register


class ObjectReference(Model):
    """Which object an event is about; fieldPath points inside it, e.g.
    `spec.containers{nginx}` as Kubernetes writes it."""

    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""


class EventSource(Model):
    component: str = ""
    host: str = ""


@register("events", "ev")
class Event(KubeObject):
    """type is "Normal" or "Warning"."""

    API_VERSION = "v1"
    KIND = "Event"

    involved_object: ObjectReference = msgspec.field(default_factory=ObjectReference)
    reason: str = ""
    message: str = ""
    type: str = "Normal"
    count: int = 1
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    event_time: str | None = None
    source: EventSource = msgspec.field(default_factory=EventSource)
    reporting_component: str = ""
    reporting_instance: str = ""
    action: str = ""
