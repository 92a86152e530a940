"""Times as kubectl prints them: ages (`5s`, `3m20s`, `2d`), RFC 3339
timestamps from the store, and describe's `Mon, 02 Jan 2006 15:04:05 -0700`.

`human_duration` is a port of k8s.io/apimachinery/pkg/util/duration
.HumanDuration, so an age reads exactly as kubectl would print it. Pure: the
current time is always passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(value: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp, None when unset or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def human_duration(seconds: float) -> str:
    """kubectl's duration format: 45s, 119s, 2m5s, 12m, 3h5m, 20h, 2d3h, 30d, 2y5d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: float) -> str:
    """The AGE column: time since `timestamp`, `<unknown>` when unset."""
    when = parse_time(timestamp)
    if when is None:
        return "<unknown>"
    return human_duration(now - when)


def describe_time(timestamp: str | None) -> str:
    """describe's time format (Go's RFC 1123 with numeric zone), in UTC."""
    when = parse_time(timestamp)
    if when is None:
        return "<unset>"
    return datetime.fromtimestamp(when, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def parse_duration(text: str) -> float:
    """A kubectl timeout (`30s`, `5m`, `1h30m`, `500ms`, or plain seconds).
    Raises ValueError naming the text."""
    value = text.strip()
    if not value:
        raise ValueError(f"invalid duration {text!r}")
    try:
        return float(value)
    except ValueError:
        pass
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, number = 0.0, ""
    i = 0
    while i < len(value):
        ch = value[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if value.startswith("ms", i) else ch
        if unit not in units or not number:
            raise ValueError(f"invalid duration {text!r}")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f"invalid duration {text!r}: missing unit")
    return total
