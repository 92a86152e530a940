"""Cron schedules as a CronJob's `schedule` reads them (the standard five
fields of robfig/cron's ParseStandard, which Kubernetes uses, and the
@yearly / @annually / @monthly / @weekly / @daily / @midnight / @hourly
descriptors), and the next time a schedule fires. Pure: no I/O.

Fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC,
day of week 0-6 or SUN-SAT (7 is Sunday too); `*` or `?`, lists `a,b`,
ranges `a-b`, steps `*/n`, `a-b/n`, `a/n`. When both day fields are
restricted a day matches either, as in every cron.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
)}  # fmt: skip
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


class CronError(ValueError):
    """Not a schedule; the message says which field and why."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month was `*`
    any_weekday: bool

    def matches_day(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime) -> datetime | None:
        """The first time after `t` (to the minute, in t's zone) the
        schedule fires; None if none within five years (Feb 30th)."""
        t = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t.year + 5
        while t.year <= limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self.matches_day(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        return None


def _value(text: str, names: dict[str, int], field: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}: {field}")
    return int(text)


def _parse_field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"invalid step {step_text!r} in {field} {text!r}")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, names, field), _value(b, names, field)
        else:
            start = _value(base, names, field)
            end = high if step_text else start
        if start < low or end > high:
            raise CronError(f"{field} {text!r}: beyond the range {low}-{high}")
        if start > end:
            raise CronError(f"{field} {text!r}: beginning of range ({start}) beyond end ({end})")
        out.update(range(start, end + 1, step))
    return out


def parse_schedule(text: str) -> Schedule:
    """The schedule, or CronError with what is wrong."""
    spec = _DESCRIPTORS.get(text.strip(), text.strip())
    if spec.startswith("@"):
        raise CronError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    sets = [
        _parse_field(f, name, low, high, names)
        for f, (name, low, high, names) in zip(fields, _FIELDS, strict=True)
    ]
    weekdays = {d % 7 for d in sets[4]}
    return Schedule(
        minutes=frozenset(sets[0]),
        hours=frozenset(sets[1]),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=frozenset(weekdays),
        any_day=fields[2] in ("*", "?"),
        any_weekday=fields[4] in ("*", "?"),
    )
