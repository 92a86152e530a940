"""One grpc.health.v1.Health/Check call over cleartext HTTP/2 (h2c with
prior knowledge, as gRPC's insecure transport), without I/O.

`health_check_request` gives the bytes a client sends at once (connection
preface, SETTINGS, HEADERS, DATA with the gRPC-framed protobuf request);
`H2Call` is fed what the server sends, answers SETTINGS and PING, and
collects the response headers, message and trailers; `health_outcome`
judges the call as the kubelet does (pkg/probe/grpc): SERVING is success,
another status `service unhealthy (responded with "NOT_SERVING")`,
Unimplemented `error: this server does not implement the grpc health
protocol (grpc.health.v1.Health): <message>`, other errors `error: health
rpc probe failed: rpc error: code = <Code> desc = <message>`. Pure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from urllib.parse import unquote

from services.prober.logic.hpack import HpackDecoder, HpackError, encode_headers
from services.prober.logic.thresholds import SUCCESS, Outcome

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check"

(
    DATA,
    HEADERS,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    PUSH_PROMISE,
    PING,
    GOAWAY,
    WINDOW_UPDATE,
    CONTINUATION,
) = range(10)
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20
SETTINGS_ENABLE_PUSH = 0x2
STREAM_ID = 1

SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
GRPC_CODES = (
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
)
UNIMPLEMENTED = 12
H2_ERRORS = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)
# grpc-go's mapping of HTTP statuses without a grpc-status.
_HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


class H2Error(Exception):
    """The call failed at the HTTP/2 or gRPC framing level; the message is
    in grpc-go's words (`rpc error: code = ... desc = ...`)."""


def rpc_error(code: int, desc: str) -> str:
    name = GRPC_CODES[code] if 0 <= code < len(GRPC_CODES) else f"Code({code})"
    return f"rpc error: code = {name} desc = {desc}"


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def grpc_timeout(timeout: float) -> str:
    """The grpc-timeout header: at most 8 digits and a unit."""
    millis = max(1, int(timeout * 1000))
    if millis < 100_000_000:
        return f"{millis}m"
    return f"{min(99_999_999, int(timeout))}S"


def health_check_request(authority: str, service: str, timeout: float, user_agent: str) -> bytes:
    """Everything the client sends, in one write."""
    message = b""
    if service:
        raw = service.encode("utf-8")
        message = b"\x0a" + _varint(len(raw)) + raw  # field 1 (service), wire type 2
    block = encode_headers(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", HEALTH_CHECK_PATH),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("user-agent", user_agent),
            ("te", "trailers"),
            ("grpc-timeout", grpc_timeout(timeout)),
        ]
    )
    body = b"\x00" + struct.pack(">I", len(message)) + message
    return (
        PREFACE
        + frame(SETTINGS, 0, 0, struct.pack(">HI", SETTINGS_ENABLE_PUSH, 0))
        + frame(HEADERS, FLAG_END_HEADERS, STREAM_ID, block)
        + frame(DATA, FLAG_END_STREAM, STREAM_ID, body)
    )


@dataclass(slots=True)
class H2Call:
    """The client side of the one call on stream 1."""

    decoder: HpackDecoder = field(default_factory=HpackDecoder)
    headers: dict[str, str] | None = None
    trailers: dict[str, str] | None = None
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    _buf: bytes = b""
    _block: bytearray = field(default_factory=bytearray)
    _block_ends_stream: bool = False
    _in_block: bool = False

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the server; return bytes to send back (ACKs)."""
        buf = self._buf + data if self._buf else data
        out = bytearray()
        pos = 0
        while len(buf) - pos >= 9 and not self.ended:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            if len(buf) - pos < 9 + length:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            stream = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = buf[pos + 9 : pos + 9 + length]
            pos += 9 + length
            out += self._frame(kind, flags, stream, payload)
        self._buf = buf[pos:]
        return bytes(out)

    def feed_eof(self) -> None:
        if not self.ended:
            raise H2Error(
                rpc_error(14, "connection closed before server preface received")
                if self.headers is None
                else rpc_error(13, "server closed the stream without sending trailers")
            )

    def _frame(self, kind: int, flags: int, stream: int, payload: bytes) -> bytes:
        if self._in_block and kind != CONTINUATION:
            raise H2Error(rpc_error(13, "protocol error: expected CONTINUATION frame"))
        if kind == SETTINGS:
            return b"" if flags & FLAG_ACK else frame(SETTINGS, FLAG_ACK, 0)
        if kind == PING:
            return b"" if flags & FLAG_ACK else frame(PING, FLAG_ACK, 0, payload)
        if kind == GOAWAY:
            last_stream = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if last_stream < STREAM_ID:
                code = int.from_bytes(payload[4:8], "big")
                raise H2Error(
                    rpc_error(14, f"the connection is draining (GOAWAY {_h2_error(code)})")
                )
            return b""
        if stream != STREAM_ID:
            return b""
        if kind == RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            grpc_code = {7: 14, 8: 1, 11: 8, 12: 7}.get(code, 13)
            raise H2Error(
                rpc_error(
                    grpc_code, f"stream terminated by RST_STREAM with error code: {_h2_error(code)}"
                )
            )
        if kind == DATA:
            self.data += _unpad(flags, payload)
            if flags & FLAG_END_STREAM:
                self.ended = True
            return b""
        if kind == HEADERS:
            payload = _unpad(flags, payload)
            if flags & FLAG_PRIORITY:
                payload = payload[5:]
            self._block = bytearray(payload)
            self._block_ends_stream = bool(flags & FLAG_END_STREAM)
            self._in_block = True
        elif kind == CONTINUATION:
            if not self._in_block:
                raise H2Error(rpc_error(13, "protocol error: unexpected CONTINUATION frame"))
            self._block += payload
        else:
            return b""
        if flags & FLAG_END_HEADERS:
            self._in_block = False
            self._header_block(bytes(self._block))
            if self._block_ends_stream:
                self.ended = True
        return b""

    def _header_block(self, block: bytes) -> None:
        try:
            fields = self.decoder.decode(block)
        except HpackError as exc:
            raise H2Error(rpc_error(13, f"transport: {exc}")) from None
        decoded: dict[str, str] = {}
        for name, value in fields:
            decoded.setdefault(name, value)
        if self.headers is None:
            self.headers = decoded
        else:
            self.trailers = decoded


def _h2_error(code: int) -> str:
    return H2_ERRORS[code] if 0 <= code < len(H2_ERRORS) else f"0x{code:x}"


def _unpad(flags: int, payload: bytes) -> bytes:
    if flags & FLAG_PADDED:
        if not payload:
            raise H2Error(rpc_error(13, "protocol error: bad padding"))
        pad = payload[0]
        return payload[1 : len(payload) - pad]
    return payload


def _serving_status(message: bytes) -> int:
    """HealthCheckResponse.status (field 1, varint); absent = 0 (UNKNOWN)."""
    status = 0
    pos = 0
    while pos < len(message):
        key, pos = _read_varint(message, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(message, pos)
            if number == 1:
                status = value
        elif wire == 2:
            length, pos = _read_varint(message, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise H2Error(rpc_error(13, "grpc: failed to unmarshal the received message"))
    return status


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise H2Error(rpc_error(13, "grpc: failed to unmarshal the received message"))
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def health_outcome(call: H2Call) -> Outcome:
    """The kubelet's verdict on a finished call (raises H2Error for calls
    that failed below the health protocol)."""
    headers = call.headers or {}
    http_status = headers.get(":status", "")
    trailers = call.trailers if call.trailers is not None else headers
    if "grpc-status" not in trailers:
        if http_status and http_status != "200":
            code = _HTTP_TO_GRPC.get(int(http_status) if http_status.isdigit() else 0, 2)
            raise H2Error(
                rpc_error(code, f"unexpected HTTP status code received from server: {http_status}")
            )
        raise H2Error(rpc_error(13, "server closed the stream without sending trailers"))
    status_text = trailers["grpc-status"]
    code = int(status_text) if status_text.isdigit() else 2
    desc = unquote(trailers.get("grpc-message", ""))
    if code == UNIMPLEMENTED:
        return Outcome(
            "failure",
            "error: this server does not implement the grpc health protocol "
            f"(grpc.health.v1.Health): {desc}",
        )
    if code != 0:
        return Outcome("failure", f"error: health rpc probe failed: {rpc_error(code, desc)}")
    data = bytes(call.data)
    if len(data) < 5:
        raise H2Error(rpc_error(13, "grpc: no response message"))
    if data[0] != 0:
        raise H2Error(rpc_error(13, "grpc: compressed response without grpc-encoding"))
    length = int.from_bytes(data[1:5], "big")
    status = _serving_status(data[5 : 5 + length])
    if status != 1:
        name = SERVING_STATUS.get(status, str(status))
        return Outcome("failure", f'service unhealthy (responded with "{name}")')
    return SUCCESS


def go_duration(seconds: float) -> str:
    """Go's time.Duration formatting for whole seconds: 1s, 1m30s, 1h0m0s."""
    total = int(seconds)
    if total != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
