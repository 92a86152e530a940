"""Object metadata shared by every kind: ObjectMeta, OwnerReference and the
base every stored object derives from.

Owns the Kubernetes-compatible shape of `metadata` only. The store (servicekit)
fills uid, resourceVersion, generation and timestamps; nothing here does I/O.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class Model(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """Base of every wire type: camelCase on the wire, defaults omitted."""


class OwnerReference(Model):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ManagedFieldsEntry(Model):
    manager: str = ""
    operation: str = ""


class ObjectMeta(Model):
    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    owner_references: list[OwnerReference] = []
    finalizers: list[str] = []


class ListMeta(Model):
    resource_version: str = ""
    continue_: str = msgspec.field(default="", name="continue")


class KubeObject(Model):
    """Base of every top-level kind. Subclasses set the class variables
    API_VERSION and KIND and add `spec` / `status` (Event has neither).

    apiVersion and kind are plain fields defaulting to "" and filled from the
    class variables after construction and after decoding, so that they are
    always present on the wire although `omit_defaults` is on.
    """

    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = ""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)

    def __post_init__(self) -> None:
        if not self.api_version:
            self.api_version = self.API_VERSION
        if not self.kind:
            self.kind = self.KIND

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace, name): the identity the store and subjects use."""
        return (self.kind, self.metadata.namespace, self.metadata.name)


def controller_of(meta: ObjectMeta) -> OwnerReference | None:
    """The owner reference marked controller=true, if any."""
    for ref in meta.owner_references:
        if ref.controller:
            return ref
    return None
