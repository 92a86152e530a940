"""What a gRPC health server sends, built by hand for the prober's tests:
HTTP/2 frames, HPACK with incremental indexing and Huffman-coded strings
(as grpc-go encodes), protobuf HealthCheckResponse."""

from __future__ import annotations

import struct

from services.prober.logic.grpc_health import (
    DATA,
    FLAG_END_HEADERS,
    FLAG_END_STREAM,
    HEADERS,
    SETTINGS,
    frame,
)
from services.prober.logic.hpack import HUFFMAN_CODES, encode_integer

_ENCODE = {symbol: (length, code) for (length, code), symbol in HUFFMAN_CODES.items()}


def huffman_encode(text: str) -> bytes:
    bits = 0
    count = 0
    for byte in text.encode("ascii"):
        length, code = _ENCODE[byte]
        bits = (bits << length) | code
        count += length
    pad = -count % 8
    bits = (bits << pad) | ((1 << pad) - 1)
    count += pad
    return bits.to_bytes(count // 8, "big") if count else b""


def indexed_literal(name: str, value: str) -> bytes:
    """Literal with incremental indexing, new name, both Huffman-coded."""
    out = bytearray([0x40])
    for text in (name, value):
        coded = huffman_encode(text)
        out += encode_integer(len(coded), 7, 0x80) + coded
    return bytes(out)


def header_block(headers: list[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in headers:
        if (name, value) == (":status", "200"):
            out.append(0x88)  # static table index 8
        else:
            out += indexed_literal(name, value)
    return bytes(out)


def health_response(status: int) -> bytes:
    message = b"\x08" + bytes([status]) if status else b""
    return b"\x00" + struct.pack(">I", len(message)) + message


def server_reply(serving: int | None, grpc_status: int = 0, grpc_message: str = "") -> bytes:
    """SETTINGS, then either a full response (headers, message, trailers) or
    a trailers-only response when `serving` is None."""
    out = frame(SETTINGS, 0, 0)
    ok = [(":status", "200"), ("content-type", "application/grpc")]
    trailers = [("grpc-status", str(grpc_status))]
    if grpc_message:
        trailers.append(("grpc-message", grpc_message))
    if serving is None:
        out += frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, header_block(ok + trailers))
        return out
    out += frame(HEADERS, FLAG_END_HEADERS, 1, header_block(ok))
    out += frame(DATA, 0, 1, health_response(serving))
    out += frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, header_block(trailers))
    return out
