"""Interactive sessions without servers: the frames on the wire, the
node-agent's session state (what each input frame does, when a silent
client is gone, numbered output) and the client's loss check."""

from __future__ import annotations

import json

import pytest
from podmodel.codec import DecodeError, decode, encode
from podmodel.node_api import ATTACH_CHUNK_BYTES, AttachFrame, AttachReply, AttachRequest
from podmodel.subjects import node_attach, node_attach_input, node_attach_output

from clients.podctl.attach_client import check_sequence
from services.node_agent.logic.attach_session import EOT, Action, Session


def session(tty: bool = True, stdin: bool = True) -> Session:
    return Session(tty=tty, stdin=stdin, heartbeat_s=5.0, last_heard=0.0)


def test_frames_carry_bytes_in_msgpack_and_json() -> None:
    frame = AttachFrame(kind="stdout", data=b"\x1b[1mhi\r\n\xff", seq=7)
    assert decode(encode(frame), AttachFrame) == frame
    as_json = encode(frame, json=True)
    assert json.loads(as_json)["kind"] == "stdout"  # bytes travel as base64 in JSON
    assert decode(as_json, AttachFrame) == frame
    assert encode(AttachFrame(kind="ping")) == encode({"kind": "ping"})  # defaults left out


def test_unknown_frame_kinds_are_refused_by_decoding() -> None:
    with pytest.raises(DecodeError, match="kind"):
        decode(encode({"kind": "shout"}), AttachFrame)


def test_request_and_reply_use_camel_case() -> None:
    req = AttachRequest(namespace="ns", pod="p", container="c", command=["sh"], tty=True, rows=3)
    wire = json.loads(encode(req, json=True))
    assert wire == {"namespace": "ns", "pod": "p", "container": "c", "command": ["sh"],
                    "tty": True, "rows": 3}  # fmt: skip
    reply = AttachReply(unsupported=True, error="no")
    assert json.loads(encode(reply, json=True))["unsupported"] is True


def test_session_subjects_live_under_the_node_attach_subject() -> None:
    assert node_attach("n.1") == "podbus.node.n%2E1.attach"
    assert node_attach_input("n.1", "ab12") == "podbus.node.n%2E1.attach.ab12.in"
    assert node_attach_output("n.1", "ab12") == "podbus.node.n%2E1.attach.ab12.out"


def test_nothing_runs_before_start_and_start_happens_once() -> None:
    s = session()
    assert s.on_input(AttachFrame(kind="stdin", data=b"ls\n"), 1.0).kind == "none"
    assert s.on_input(AttachFrame(kind="start", rows=40, cols=100), 1.0) == Action(
        "start", rows=40, cols=100
    )
    assert s.on_input(AttachFrame(kind="start"), 1.0).kind == "none"
    assert s.on_input(AttachFrame(kind="stdin", data=b"ls\n"), 1.0) == Action("write", b"ls\n")


def test_start_without_a_size_keeps_the_requested_one() -> None:
    s = Session(tty=True, stdin=True, heartbeat_s=5.0, last_heard=0.0, rows=30, cols=90)
    assert s.on_input(AttachFrame(kind="start"), 0.0) == Action("start", rows=30, cols=90)


def test_eof_types_ctrl_d_on_a_tty_and_closes_a_pipe() -> None:
    t = session(tty=True)
    t.on_input(AttachFrame(kind="start"), 0.0)
    assert t.on_input(AttachFrame(kind="eof"), 0.0) == Action("write", EOT)
    p = session(tty=False)
    p.on_input(AttachFrame(kind="start"), 0.0)
    assert p.on_input(AttachFrame(kind="eof"), 0.0) == Action("close_stdin")
    # stdin is closed for good: later input is dropped
    assert p.on_input(AttachFrame(kind="stdin", data=b"x"), 0.0).kind == "none"
    assert p.on_input(AttachFrame(kind="eof"), 0.0).kind == "none"


def test_input_is_dropped_when_the_session_has_no_stdin() -> None:
    s = session(stdin=False)
    s.on_input(AttachFrame(kind="start"), 0.0)
    assert s.on_input(AttachFrame(kind="stdin", data=b"x"), 0.0).kind == "none"


def test_resize_only_matters_with_a_tty_and_a_real_size() -> None:
    t = session(tty=True)
    t.on_input(AttachFrame(kind="start"), 0.0)
    assert t.on_input(AttachFrame(kind="resize", rows=50, cols=132), 0.0) == Action(
        "resize", rows=50, cols=132
    )
    assert t.on_input(AttachFrame(kind="resize", rows=0, cols=132), 0.0).kind == "none"
    p = session(tty=False)
    p.on_input(AttachFrame(kind="start"), 0.0)
    assert p.on_input(AttachFrame(kind="resize", rows=50, cols=132), 0.0).kind == "none"


def test_close_kills_and_ends_the_session() -> None:
    s = session()
    s.on_input(AttachFrame(kind="start"), 0.0)
    assert s.on_input(AttachFrame(kind="close"), 0.0) == Action("kill")
    assert s.state == "ended"
    assert s.on_input(AttachFrame(kind="stdin", data=b"x"), 0.0).kind == "none"


def test_a_client_silent_for_three_heartbeats_is_gone() -> None:
    s = session()
    s.on_input(AttachFrame(kind="ping"), 100.0)
    assert not s.expired(114.9)
    assert s.expired(115.1)
    s.on_input(AttachFrame(kind="ping"), 115.0)  # any frame counts as a heartbeat
    assert not s.expired(115.1)


def test_output_frames_are_numbered_and_chunked() -> None:
    s = session()
    big = b"x" * (ATTACH_CHUNK_BYTES * 2 + 1)
    frames = s.output("stdout", big)
    assert [len(f.data) for f in frames] == [ATTACH_CHUNK_BYTES, ATTACH_CHUNK_BYTES, 1]
    assert [f.seq for f in frames] == [1, 2, 3]
    assert s.output("stderr", b"e")[0] == AttachFrame(kind="stderr", data=b"e", seq=4)
    assert s.output("stdout", b"") == []
    end = s.exit(3)
    assert end == AttachFrame(kind="exit", exit_code=3) and s.state == "ended"


def test_the_client_counts_lost_output_frames() -> None:
    expected, lost = check_sequence(1, AttachFrame(kind="stdout", seq=1))
    assert (expected, lost) == (2, 0)
    expected, lost = check_sequence(expected, AttachFrame(kind="stdout", seq=5))
    assert (expected, lost) == (6, 3)
    assert check_sequence(6, AttachFrame(kind="ping")) == (6, 0)
