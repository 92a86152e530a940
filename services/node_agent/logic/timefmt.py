"""Kubernetes' textual forms of times and durations.

Times inside the node-agent's logic are epoch seconds (float); the API writes
them as RFC 3339 with second precision (`metav1.Time`), and kubelet messages
print durations the way Go's `time.Duration.String` does ("10s", "1m20s",
"5m0s", "500ms"). This module converts both ways and reads the duration
strings that annotations use. Pure: no clock reads.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def rfc3339(ts: float) -> str:
    """`2024-05-01T12:00:03Z`: whole seconds, UTC, as metav1.Time marshals."""
    return datetime.fromtimestamp(int(ts // 1), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 time (`Z` or an offset, fractions allowed)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_duration(text: str) -> float:
    """Seconds of a Go duration ("1m30s", "500ms", "2h") or a bare number of
    seconds ("3", "0.5"). Raises ValueError on anything else or a negative."""
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    try:
        seconds = float(value)
    except ValueError:
        seconds = _parse_go_duration(value)
    if seconds < 0 or seconds != seconds:  # negative or NaN
        raise ValueError(f"invalid duration {text!r}")
    return seconds


def _parse_go_duration(value: str) -> float:
    sign = 1.0
    if value[0] in "+-":
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    pos = 0
    total = 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            raise ValueError(f"invalid duration {value!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"invalid duration {value!r}")
    return sign * total


def go_duration(seconds: float) -> str:
    """Go's `time.Duration.String`: "10s", "1m20s", "5m0s", "1h0m0s",
    "1.5s", "100ms", "0s" — so kubelet's messages read the same here."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size or unit == "ns":
                return sign + _fraction(nanos, size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(frac).rjust(digits, '0').rstrip('0')}"


def rfc3339_nano(ts: float) -> str:
    """Go's RFC3339Nano in UTC (`2024-05-01T12:00:03.123456Z`, trailing
    zeros of the fraction dropped), as kubelet writes config.seen."""
    whole = int(ts // 1)
    micros = round((ts - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    base = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{micros:06d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"
