"""CRI log lines (what the shims write) read back with their timestamps."""

from __future__ import annotations

from services.node_agent.oci.runtime import parse_cri_log


def test_cri_lines_full_and_partial() -> None:
    data = (
        b"2026-11-25T10:00:00.250000000Z stdout F hello world\n"
        b"2026-11-25T10:00:01.000000000Z stderr P part-\n"
        b"2026-11-25T10:00:01.000000000Z stderr F two\n"
        b"2026-11-25T10:00:02.000000000Z stdout F \n"
        b"garbage\n"
    )
    lines = parse_cri_log(data)
    assert [t for _ts, t in lines] == [b"hello world\n", b"part-", b"two\n", b"\n"]
    assert lines[0][0] == 1795600800.25
    assert b"".join(t for _ts, t in lines) == b"hello world\npart-two\n\n"
