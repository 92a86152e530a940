"""Encoding between services (msgpack) and for clients (JSON), exact round trip.

Owns the envelope types that travel on the bus: watch events, API requests and
replies, errors with field paths. Decoding a payload whose first byte is '{'
takes JSON, anything else msgpack, so any client may publish JSON.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

from podmodel.meta import KubeObject, Model
from podmodel.registry import kind_type

T = TypeVar("T")

_MSGPACK_ENC = msgspec.msgpack.Encoder()
_JSON_ENC = msgspec.json.Encoder()

JSON_CONTENT_TYPE = "application/json"
MSGPACK_CONTENT_TYPE = "application/msgpack"


class DecodeError(ValueError):
    """A payload that is not valid for its type; the message names the field path."""


def encode(obj: Any, *, json: bool = False) -> bytes:
    return _JSON_ENC.encode(obj) if json else _MSGPACK_ENC.encode(obj)


def encode_json(obj: Any) -> bytes:
    return _JSON_ENC.encode(obj)


def is_json(data: bytes | bytearray | memoryview | msgspec.Raw) -> bool:
    """JSON is recognised by its first non-blank byte being '{' or '['."""
    for b in bytes(memoryview(data)[:64]):
        if b in b" \t\r\n":
            continue
        return b in b"{["
    return False


def decode(data: bytes | bytearray | memoryview | msgspec.Raw, type: type[T]) -> T:
    """Decode JSON or msgpack into `type`, raising DecodeError with the path."""
    try:
        if is_json(data):
            return msgspec.json.decode(data, type=type)
        return msgspec.msgpack.decode(data, type=type)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(str(exc)) from exc


def decode_raw(data: bytes | bytearray | memoryview | msgspec.Raw) -> Any:
    """Decode into plain Python values (dicts, lists), JSON or msgpack."""
    try:
        if is_json(data):
            return msgspec.json.decode(data)
        return msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(str(exc)) from exc


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


def convert(raw: Any, type: type[T]) -> T:
    """Convert plain values (from YAML or a raw decode) into `type`."""
    try:
        return msgspec.convert(raw, type=type)
    except msgspec.ValidationError as exc:
        raise DecodeError(str(exc)) from exc


def decode_object(data: bytes | bytearray | memoryview | msgspec.Raw) -> KubeObject:
    """Decode any registered kind, choosing the type from its `kind` field."""
    raw = decode_raw(data)
    return object_from_raw(raw)


def object_from_raw(raw: Any) -> KubeObject:
    if not isinstance(raw, dict):
        raise DecodeError("Expected an object with `kind`")
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        raise DecodeError("Object missing required field `kind`")
    cls = kind_type(kind)
    if cls is None:
        raise DecodeError(f"kind: unknown kind {kind!r}")
    return convert(raw, cls)


# ---------------------------------------------------------------- envelopes

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class WatchEvent(Model):
    """What the store publishes after every committed write."""

    type: EventType
    kind: str
    resource_version: int
    object: msgspec.Raw  # the object's own encoding, decoded lazily by kind

    def decode_object(self) -> KubeObject:
        return decode_object(self.object)


class FieldError(Model):
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ErrorReply(Model):
    """An error reply: a reason like Kubernetes' (Invalid, NotFound, Conflict,
    AlreadyExists, BadRequest, Forbidden, InternalError), a message, and every
    field error."""

    error: str
    reason: str = "BadRequest"
    code: int = 400
    details: list[FieldError] = []

    def __str__(self) -> str:
        if self.details:
            return f"{self.error}: " + "; ".join(str(d) for d in self.details)
        return self.error
