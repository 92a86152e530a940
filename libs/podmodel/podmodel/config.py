"""ConfigMap and Secret: the core/v1 kinds a pod reads configuration from
(env `configMapKeyRef` / `secretKeyRef` / `envFrom`, and `configMap` /
`secret` volumes).

Secret values are bytes; on the wire, as in Kubernetes' JSON, `data` holds
them base64-encoded. `stringData` is write-only: defaulting folds it into
`data` (its keys win) and clears it, as the API server does, so stored
secrets only ever have `data`. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii

from podmodel.meta import KubeObject
from podmodel.registry import register

#: Kubernetes' cap on a ConfigMap's or Secret's data (MaxSecretSize / the
#: ConfigMap total)
MAX_DATA_BYTES = 1024 * 1024
SECRET_TYPE_OPAQUE = "Opaque"


@register("configmaps", "cm")
class ConfigMap(KubeObject):
    API_VERSION = "v1"
    KIND = "ConfigMap"

    data: dict[str, str] = {}
    #: base64 on the wire
    binary_data: dict[str, str] = {}
    immutable: bool | None = None

    def values(self) -> dict[str, bytes]:
        """Every key's value as bytes (binaryData decoded)."""
        out = {k: v.encode() for k, v in self.data.items()}
        for k, v in self.binary_data.items():
            out[k] = decode_base64(v) or b""
        return out


@register("secrets")
class Secret(KubeObject):
    API_VERSION = "v1"
    KIND = "Secret"

    #: base64 on the wire
    data: dict[str, str] = {}
    string_data: dict[str, str] = {}
    type: str = ""
    immutable: bool | None = None

    def values(self) -> dict[str, bytes]:
        """Every key's value as bytes (data decoded; stringData, which a
        stored secret no longer has, on top)."""
        out = {k: decode_base64(v) or b"" for k, v in self.data.items()}
        for k, v in self.string_data.items():
            out[k] = v.encode()
        return out


def decode_base64(text: str) -> bytes | None:
    """Standard base64 with padding, as Kubernetes' JSON []byte; None if
    it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def encode_base64(value: bytes) -> str:
    return base64.b64encode(value).decode()
