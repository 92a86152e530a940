"""HPACK (RFC 7541 examples) and the gRPC health call over HTTP/2, without sockets."""

from __future__ import annotations

import struct

import pytest

from services.prober.logic.grpc_health import (
    CONTINUATION,
    DATA,
    FLAG_ACK,
    FLAG_END_HEADERS,
    FLAG_END_STREAM,
    FLAG_PADDED,
    HEADERS,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    H2Call,
    H2Error,
    frame,
    go_duration,
    health_check_request,
    health_outcome,
)
from services.prober.logic.hpack import HpackDecoder, HpackError, huffman_decode
from tests.unit.prober.grpc_frames import (
    header_block,
    health_response,
    huffman_encode,
    server_reply,
)

RFC7541_HUFFMAN = [
    ("f1e3c2e5f23a6ba0ab90f4ff", "www.example.com"),
    ("a8eb10649cbf", "no-cache"),
    ("25a849e95ba97d7f", "custom-key"),
    ("25a849e95bb8e8b4bf", "custom-value"),
    ("6402", "302"),
    ("aec3771a4b", "private"),
    ("d07abe941054d444a8200595040b8166e082a62d1bff", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("9d29ad171863c78f0b97c8e9ae82ae43d3", "https://www.example.com"),
    (
        "94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ),
]


@pytest.mark.parametrize(("coded", "text"), RFC7541_HUFFMAN)
def test_huffman_decodes_rfc7541_examples(coded: str, text: str) -> None:
    assert huffman_decode(bytes.fromhex(coded)) == text.encode()


def test_huffman_round_trips_all_printable_ascii() -> None:
    text = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "\\")
    assert huffman_decode(huffman_encode(text)) == text.encode()


def test_huffman_refuses_bad_padding_and_long_codes() -> None:
    with pytest.raises(HpackError):
        huffman_decode(b"\x00")  # '0' then zero padding
    with pytest.raises(HpackError):
        huffman_decode(b"\xff\xff\xff\xff")  # EOS / a non-ASCII code


def test_hpack_decodes_rfc7541_request_sequence_with_dynamic_table() -> None:
    decoder = HpackDecoder()
    first = decoder.decode(bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))
    assert first == [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ]
    second = decoder.decode(bytes.fromhex("828684be5886a8eb10649cbf"))
    assert second[-2:] == [(":authority", "www.example.com"), ("cache-control", "no-cache")]
    third = decoder.decode(bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"))
    assert third[-1] == ("custom-key", "custom-value")


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out = []
    while data:
        length = int.from_bytes(data[:3], "big")
        out.append((data[3], data[4], int.from_bytes(data[5:9], "big"), data[9 : 9 + length]))
        data = data[9 + length :]
    return out


def test_request_is_preface_settings_headers_and_framed_message() -> None:
    raw = health_check_request("10.0.0.5:9090", "foo", 1.0, "kube-probe/1.31")
    assert raw.startswith(PREFACE)
    frames = frames_of(raw[len(PREFACE) :])
    assert [f[0] for f in frames] == [SETTINGS, HEADERS, DATA]
    headers = dict(HpackDecoder().decode(frames[1][3]))
    assert headers[":method"] == "POST"
    assert headers[":path"] == "/grpc.health.v1.Health/Check"
    assert headers[":authority"] == "10.0.0.5:9090"
    assert headers["content-type"] == "application/grpc"
    assert headers["te"] == "trailers"
    assert headers["user-agent"] == "kube-probe/1.31"
    assert headers["grpc-timeout"] == "1000m"
    assert frames[2][1] & FLAG_END_STREAM
    assert frames[2][3] == b"\x00" + struct.pack(">I", 5) + b"\x0a\x03foo"


def test_empty_service_sends_empty_message() -> None:
    raw = health_check_request("h:1", "", 1.0, "ua")
    assert frames_of(raw[len(PREFACE) :])[2][3] == b"\x00\x00\x00\x00\x00"


def run_call(data: bytes, split: int | None = None) -> tuple[H2Call, bytes]:
    call = H2Call()
    sent = b""
    if split is None:
        sent += call.feed(data)
    else:
        for i in range(0, len(data), split):
            sent += call.feed(data[i : i + split])
    return call, sent


def test_call_acknowledges_settings_and_ping() -> None:
    data = frame(SETTINGS, 0, 0) + frame(PING, 0, 0, b"12345678") + frame(SETTINGS, FLAG_ACK, 0)
    _, sent = run_call(data)
    assert frames_of(sent) == [(SETTINGS, FLAG_ACK, 0, b""), (PING, FLAG_ACK, 0, b"12345678")]


@pytest.mark.parametrize("split", [None, 1, 7])
def test_serving_is_success_whatever_the_segmentation(split: int | None) -> None:
    call, _ = run_call(server_reply(1), split)
    assert call.ended
    assert health_outcome(call).result == "success"


def test_not_serving_is_failure_with_status_name() -> None:
    call, _ = run_call(server_reply(2))
    outcome = health_outcome(call)
    assert (outcome.result, outcome.message) == (
        "failure",
        'service unhealthy (responded with "NOT_SERVING")',
    )


def test_unimplemented_trailers_only() -> None:
    call, _ = run_call(server_reply(None, 12, "unknown service grpc.health.v1.Health%21"))
    assert health_outcome(call).message == (
        "error: this server does not implement the grpc health protocol "
        "(grpc.health.v1.Health): unknown service grpc.health.v1.Health!"
    )


def test_other_grpc_errors_read_like_grpc_go() -> None:
    call, _ = run_call(server_reply(None, 5, "unknown service"))
    assert health_outcome(call).message == (
        "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
    )


def test_headers_split_into_continuation_and_padded_data() -> None:
    block = header_block([(":status", "200"), ("content-type", "application/grpc")])
    body = health_response(1)
    padded = bytes([3]) + body + b"\x00\x00\x00"
    data = (
        frame(HEADERS, 0, 1, block[:4])
        + frame(CONTINUATION, FLAG_END_HEADERS, 1, block[4:])
        + frame(DATA, FLAG_PADDED, 1, padded)
        + frame(
            HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, header_block([("grpc-status", "0")])
        )
    )
    call, _ = run_call(data)
    assert health_outcome(call).result == "success"


def test_rst_stream_fails_the_call() -> None:
    with pytest.raises(
        H2Error, match="stream terminated by RST_STREAM with error code: REFUSED_STREAM"
    ):
        run_call(frame(RST_STREAM, 0, 1, struct.pack(">I", 7)))


def test_http_error_without_grpc_status() -> None:
    call, _ = run_call(
        frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, header_block([(":status", "404")]))
    )
    with pytest.raises(
        H2Error,
        match="code = Unimplemented desc = unexpected HTTP status code received from server: 404",
    ):
        health_outcome(call)


def test_eof_before_the_end_is_an_error() -> None:
    call, _ = run_call(frame(SETTINGS, 0, 0))
    with pytest.raises(H2Error, match="Unavailable"):
        call.feed_eof()


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "1s"), (10, "10s"), (90, "1m30s"), (3600, "1h0m0s")]
)
def test_go_duration(seconds: int, text: str) -> None:
    assert go_duration(seconds) == text
