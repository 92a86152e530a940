"""RFC 3339 timestamps as Kubernetes writes them (`2024-05-01T12:00:00Z`),
parsed to and formatted from timezone-aware UTC datetimes.

Owns only the conversion. Plans never read the clock: callers pass `now`.
Formatting keeps whole seconds, as metav1.Time does on the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

#: What a missing timestamp sorts as (metav1.Time's zero value is earliest).
EPOCH_MIN = datetime.min.replace(tzinfo=UTC)


def parse_time(text: str | None) -> datetime | None:
    """The instant `text` names, or None when it is missing or unparsable
    (an unparsable time is treated like an unset one, never an error)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def format_time(moment: datetime) -> str:
    """`moment` in UTC with whole seconds and a `Z` suffix."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(earlier: datetime, later: datetime) -> float:
    """later - earlier in seconds (negative when `later` is before)."""
    return (later - earlier).total_seconds()


def after(moment: datetime, seconds: float) -> datetime:
    """`moment` plus `seconds`."""
    return moment + timedelta(seconds=seconds)
