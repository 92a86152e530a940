"""Pod templates: the pod-template-hash that names a Deployment's ReplicaSets
(and a StatefulSet's revisions), and turning a template into pods for an
owner with Kubernetes' naming, labels and controller reference.

Owns hashing, name generation and GetPodFromTemplate. Randomness comes from
an injected `random.Random`, so plans stay deterministic under test.

The hash follows Kubernetes' `controller.ComputeHash`: FNV-32a over the
template, then the collision count as 8 little-endian bytes, the decimal
value rendered through `rand.SafeEncodeString`'s alphabet. Kubernetes feeds
FNV a `spew` dump of the Go struct, which Python cannot reproduce byte for
byte; podbus feeds it the template's JSON with sorted keys and defaults
omitted, which is stable across processes, versions of the object that only
differ in map order, and whether or not constant defaults were written out.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Mapping

import msgspec
from podmodel.meta import KubeObject, ObjectMeta, OwnerReference
from podmodel.pod import Pod, PodSpec, PodTemplateSpec

#: rand.SafeEncodeString's alphabet: no vowels, no 0/1/3, so no words appear.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
#: The API server's SimpleNameGenerator: 5 random characters after a base
#: of at most 63 - 5 characters.
RANDOM_SUFFIX_LENGTH = 5
_MAX_GENERATED_BASE = 63 - RANDOM_SUFFIX_LENGTH

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes, seed: int = _FNV32_OFFSET) -> int:
    """FNV-1a, 32 bit (hash/fnv.New32a); `seed` continues an earlier sum."""
    h = seed
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each character mapped into SAFE_ALPHABET."""
    n = len(SAFE_ALPHABET)
    return "".join(SAFE_ALPHABET[ord(ch) % n] for ch in text)


def compute_hash(template: PodTemplateSpec, collision_count: int | None = None) -> str:
    """The pod-template-hash of `template` (see the module docstring)."""
    h = fnv32a(msgspec.json.encode(template, order="sorted"))
    if collision_count is not None:
        h = fnv32a(struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0\0\0\0", h)
    return safe_encode(str(h))


def random_suffix(rng: random.Random, length: int = RANDOM_SUFFIX_LENGTH) -> str:
    """`length` characters of SAFE_ALPHABET (utilrand.String)."""
    return "".join(rng.choices(SAFE_ALPHABET, k=length))


def generate_name(base: str, rng: random.Random, taken: set[str] | None = None) -> str:
    """A pod name from a generateName `base` and a random suffix, avoiding
    names in `taken` (which it then extends), as the API server does."""
    base = base[:_MAX_GENERATED_BASE]
    while True:
        name = base + random_suffix(rng)
        if taken is None:
            return name
        if name not in taken:
            taken.add(name)
            return name


def controller_reference(owner: KubeObject) -> OwnerReference:
    """metav1.NewControllerRef: controller=true, blockOwnerDeletion=true."""
    return OwnerReference(
        api_version=owner.api_version or owner.API_VERSION,
        kind=owner.kind or owner.KIND,
        name=owner.metadata.name,
        uid=owner.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )


def template_without_hash(template: PodTemplateSpec) -> PodTemplateSpec:
    """`template` with the pod-template-hash label dropped (a shallow copy)."""
    labels = template.metadata.labels
    if POD_TEMPLATE_HASH_LABEL not in labels:
        return template
    meta = msgspec.structs.replace(
        template.metadata,
        labels={k: v for k, v in labels.items() if k != POD_TEMPLATE_HASH_LABEL},
    )
    return msgspec.structs.replace(template, metadata=meta)


def equal_ignore_hash(a: PodTemplateSpec, b: PodTemplateSpec) -> bool:
    """deploymentutil.EqualIgnoreHash: equal apart from pod-template-hash."""
    return template_without_hash(a) == template_without_hash(b)


class PodFactory:
    """Makes pods from one template for one owner, fast: the spec is encoded
    once and decoded per pod (an independent deep copy each time), which
    keeps a 10,000-pod scale-up to a few hundred milliseconds of planning.

    Pods get the template's labels, annotations and finalizers, generateName
    `<owner>-`, the owner's namespace and a controller reference
    (GetPodFromTemplate)."""

    def __init__(
        self,
        template: PodTemplateSpec,
        owner: KubeObject,
        *,
        extra_labels: Mapping[str, str] | None = None,
        extra_annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.owner = owner
        self.namespace = owner.metadata.namespace
        self.generate_name = owner.metadata.name + "-"
        self.labels = dict(template.metadata.labels)
        if extra_labels:
            self.labels.update(extra_labels)
        self.annotations = dict(template.metadata.annotations)
        if extra_annotations:
            self.annotations.update(extra_annotations)
        self.finalizers = list(template.metadata.finalizers)
        self._ref = controller_reference(owner)
        self._spec = msgspec.msgpack.encode(template.spec)
        self._spec_decoder = msgspec.msgpack.Decoder(PodSpec)

    def spec(self) -> PodSpec:
        """A fresh deep copy of the template's pod spec."""
        return self._spec_decoder.decode(self._spec)

    def make(self, name: str, *, generate_name: str | None = None) -> Pod:
        """A pod named `name` (the plan picks names so they are known before
        the create; `generateName` is recorded as Kubernetes would)."""
        ref = self._ref
        return Pod(
            metadata=ObjectMeta(
                name=name,
                generate_name=self.generate_name if generate_name is None else generate_name,
                namespace=self.namespace,
                labels=dict(self.labels),
                annotations=dict(self.annotations),
                finalizers=list(self.finalizers),
                owner_references=[
                    OwnerReference(
                        api_version=ref.api_version,
                        kind=ref.kind,
                        name=ref.name,
                        uid=ref.uid,
                        controller=True,
                        block_owner_deletion=True,
                    )
                ],
            ),
            spec=self.spec(),
        )

    def make_generated(self, rng: random.Random, taken: set[str] | None = None) -> Pod:
        """A pod named `<owner>-<5 random characters>`."""
        return self.make(generate_name(self.generate_name, rng, taken))
