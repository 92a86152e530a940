"""Times and durations in Kubernetes' textual forms."""

from __future__ import annotations

import pytest

from services.node_agent.logic.timefmt import (
    parse_duration,
    parse_rfc3339,
    rfc3339,
    rfc3339_nano,
)


def test_rfc3339_round_trips_whole_seconds() -> None:
    assert rfc3339(1_700_000_000.9) == "2023-11-14T22:13:20Z"
    assert parse_rfc3339("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert parse_rfc3339("2023-11-14T23:13:20+01:00") == 1_700_000_000.0


def test_rfc3339_nano_trims_trailing_zeros() -> None:
    assert rfc3339_nano(1_700_000_000.25) == "2023-11-14T22:13:20.25Z"
    assert rfc3339_nano(1_700_000_000.0) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3s", 3),
        ("1m30s", 90),
        ("500ms", 0.5),
        ("2h", 7200),
        ("3", 3),
        ("0.25", 0.25),
        ("1.5m", 90),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "3x", "-1s", "s", "-2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
