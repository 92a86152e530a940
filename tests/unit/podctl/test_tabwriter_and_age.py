"""kubectl's column alignment and duration format, reproduced exactly."""

from __future__ import annotations

import pytest

from clients.podctl.age import age, describe_time, human_duration, parse_duration, parse_time
from clients.podctl.tabwriter import DESCRIBE_MINWIDTH, DESCRIBE_PADDING, table, tabwrite


def test_get_table_pads_columns_to_widest_cell_plus_three() -> None:
    text = table(["NAME", "READY", "STATUS"], [["web-1", "1/1", "Running"]])
    assert text == "NAME    READY   STATUS\nweb-1   1/1     Running\n"


def test_short_columns_get_kubectl_minimum_width_of_six() -> None:
    assert table(["A", "B"], [["x", "y"]]) == "A     B\nx     y\n"


def test_describe_blocks_align_only_consecutive_lines_with_cells() -> None:
    text = "Name:\tweb\nNamespace:\tdefault\nIPs:\n  IP:\t10.0.0.1\n"
    out = tabwrite(text, DESCRIBE_MINWIDTH, DESCRIBE_PADDING)
    assert out == "Name:       web\nNamespace:  default\nIPs:\n  IP:  10.0.0.1\n"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (3 * 86400, "3d"),
        (30 * 86400, "30d"),
        (2 * 365 * 86400 + 5 * 86400, "2y5d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_age_of_timestamps() -> None:
    now = parse_time("2024-01-01T00:05:00Z")
    assert now is not None
    assert age("2024-01-01T00:00:00Z", now) == "5m"
    assert age(None, now) == "<unknown>"
    assert describe_time("2024-01-01T00:00:00Z") == "Mon, 01 Jan 2024 00:00:00 +0000"


def test_parse_duration_accepts_kubectl_timeouts_and_names_bad_ones() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2") == 2
    with pytest.raises(ValueError, match="3x"):
        parse_duration("3x")
