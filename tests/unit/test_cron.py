"""Cron schedules as a CronJob reads them: fields, names, steps, the two
day fields, descriptors, the next firing time, and the problems."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from podmodel.cron import CronError, parse_schedule


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("* * * * *", at(2026, 12, 6, 8, 0, 30), at(2026, 12, 6, 8, 1)),
        ("*/15 * * * *", at(2026, 12, 6, 8, 1), at(2026, 12, 6, 8, 15)),
        ("30 9 * * MON-FRI", at(2026, 12, 5, 10, 0), at(2026, 12, 7, 9, 30)),  # Sat -> Mon
        ("0 0 1 jan *", at(2026, 12, 6), at(2027, 1, 1)),
        ("0 12 13 * 5", at(2026, 12, 6), at(2026, 12, 11, 12)),  # either day field
        ("0 0 * * 7", at(2026, 12, 6, 1), at(2026, 12, 13)),  # 7 is Sunday
        ("5-10/5 1,2 * * ?", at(2026, 12, 6, 1, 5), at(2026, 12, 6, 1, 10)),
        ("@hourly", at(2026, 12, 6, 8, 59, 59), at(2026, 12, 6, 9)),
        ("@weekly", at(2026, 12, 6, 0, 0), at(2026, 12, 13)),
        ("0 0 29 2 *", at(2026, 3, 1), at(2028, 2, 29)),
    ],
)
def test_next_firing_time(schedule: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(schedule).next_after(after) == expected


def test_impossible_dates_never_fire_and_zones_are_wall_clock() -> None:
    assert parse_schedule("0 0 30 2 *").next_after(at(2026, 1, 1)) is None
    berlin = ZoneInfo("Europe/Berlin")
    got = parse_schedule("0 9 * * *").next_after(datetime(2026, 12, 6, 8, 0, tzinfo=berlin))
    assert got == datetime(2026, 12, 6, 9, 0, tzinfo=berlin)


@pytest.mark.parametrize(
    ("schedule", "why"),
    [
        ("* * * *", "expected exactly 5 fields, found 4"),
        ("61 * * * *", "beyond the range 0-59"),
        ("* * * FOO *", "failed to parse int from FOO"),
        ("*/0 * * * *", "invalid step"),
        ("5-1 * * * *", "beginning of range (5) beyond end (1)"),
        ("@sometimes", "unrecognized descriptor"),
    ],
)
def test_problems_say_what_is_wrong(schedule: str, why: str) -> None:
    with pytest.raises(CronError, match=re.escape(why)):
        parse_schedule(schedule)
