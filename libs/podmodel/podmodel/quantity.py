"""Kubernetes resource quantities ("250m", "128Mi", "1e3"), parsed exactly.

Owns the grammar and arithmetic of Kubernetes' `resource.Quantity`: a signed
decimal number followed by a binary suffix (Ki Mi Gi Ti Pi Ei), a decimal SI
suffix (n u m "" k M G T P E) or a decimal exponent (e3, E-3). Values are
`fractions.Fraction`, so "0.1" + "0.2" is exactly "0.3" and comparisons never
suffer float error.

As in Kubernetes, a value finer than a nano-unit is rounded up (away from
zero) to the next nano-unit ("you asked for some, you get some"), and
binary-suffixed values are capped at 2^63-1. `milli_value` and `int_value`
round up like Quantity.MilliValue / Value.

Deliberate differences: a value with no digit at all ("Mi", ".", "-") is
rejected, as the documented regular expression says, although Go's parser
reads it as 0; decimal values beyond 10^100 are rejected rather than held as
huge numbers.

Parsing is on the scheduler's hot path: strings are parsed once and cached.
Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache
from typing import Literal

QuantityFormat = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

QUANTITY_REGEX = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_MESSAGE = f"quantities must match the regular expression '{QUANTITY_REGEX}'"
SUFFIX_MESSAGE = "unable to parse quantity's suffix"

MAX_ALLOWED = 2**63 - 1
"""Kubernetes' cap for binary-suffixed quantities (an int64)."""

_NANO = Fraction(1, 10**9)
_MAX_DECIMAL_DIGITS = 100
_MAX_TEXT = 256

_BINARY_SUFFIXES: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXPONENT = {0: "", **{e // 10: s for s, e in _BINARY_SUFFIXES.items()}}

# Go's parseQuantityString, as one pattern: sign, integer digits, optional
# fraction, then suffix letters, an optional exponent sign and digits.
_SPLIT = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[-+]?[0-9]*)")
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
_INT32 = 2**31


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; the message says why."""


def _round_up_to_nano(value: Fraction) -> Fraction:
    """Kubernetes' inf.RoundUp at scale 9: away from zero, to a multiple of 1e-9."""
    if value.denominator == 1 or (10**9) % value.denominator == 0:
        return value
    scaled = value * 10**9
    magnitude = math.ceil(abs(scaled))
    return Fraction(magnitude if scaled > 0 else -magnitude, 10**9)


def _suffix(text: str, suffix: str) -> tuple[int, int, QuantityFormat]:
    """(base, exponent, format) of a suffix, as Go's suffixHandler.interpret."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], "BinarySI"
    m = _EXPONENT.fullmatch(suffix)
    if m is not None:
        exponent = int(m.group(1))
        if -_INT32 <= exponent < _INT32:
            return 10, exponent, "DecimalExponent"
    raise QuantityError(f"invalid quantity {text!r}: {SUFFIX_MESSAGE}")


@lru_cache(maxsize=8192)
def parse_quantity_with_format(text: str) -> tuple[Fraction, QuantityFormat]:
    """The exact value of a quantity string and the format its suffix implies
    (which canonical printing keeps). Cached: the same few strings recur."""
    if len(text) > _MAX_TEXT:
        raise QuantityError(
            f"invalid quantity {text[:32]!r}...: longer than {_MAX_TEXT} characters"
        )
    m = _SPLIT.fullmatch(text)
    if m is None or not (m.group(2) or m.group(3)):
        raise QuantityError(f"invalid quantity {text!r}: {FORMAT_MESSAGE}")
    sign, whole, frac, suffix = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    base, exponent, fmt = _suffix(text, suffix)
    mantissa = int(whole + frac) if (whole or frac) else 0
    if mantissa == 0:
        return Fraction(0), fmt
    if base == 2:
        value = Fraction(mantissa << exponent, 10 ** len(frac))
    else:
        power = exponent - len(frac)
        magnitude = len(str(mantissa)) + power  # value < 10**magnitude
        if magnitude > _MAX_DECIMAL_DIGITS:
            raise QuantityError(f"invalid quantity {text!r}: too large")
        if magnitude <= -9:
            value = _NANO  # below one nano-unit: rounded up to it
        else:
            value = Fraction(mantissa) * 10**power if power >= 0 else Fraction(mantissa, 10**-power)
    value = _round_up_to_nano(value)
    if fmt == "BinarySI":
        value = min(value, Fraction(MAX_ALLOWED))
        if value < 1:
            fmt = "DecimalSI"
    return (-value if sign == "-" else value), fmt


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity: a string as Kubernetes writes it, or a
    bare YAML/JSON number (read as its decimal text). Raises ValueError
    (QuantityError) with Kubernetes' message for anything else."""
    if isinstance(value, str):
        return parse_quantity_with_format(value)[0]
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}: {FORMAT_MESSAGE}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"invalid quantity {value!r}: {FORMAT_MESSAGE}")
        return parse_quantity_with_format(repr(value))[0]
    raise QuantityError(f"invalid quantity {value!r}: {FORMAT_MESSAGE}")


def _ceil_away_from_zero(value: Fraction) -> int:
    """Go's negativeScaleInt64 rounding: an inexact value rounds away from zero."""
    return math.ceil(value) if value >= 0 else math.floor(value)


def milli_value(q: Fraction | str | int | float) -> int:
    """Quantity.MilliValue: thousandths, rounded up (away from zero)."""
    value = q if isinstance(q, Fraction) else parse_quantity(q)
    return _ceil_away_from_zero(value * 1000)


def int_value(q: Fraction | str | int | float) -> int:
    """Quantity.Value: whole units, rounded up (away from zero)."""
    value = q if isinstance(q, Fraction) else parse_quantity(q)
    return _ceil_away_from_zero(value)


@lru_cache(maxsize=4096)
def _cpu_millis_of_text(text: str) -> int:
    return milli_value(parse_quantity_with_format(text)[0])


@lru_cache(maxsize=4096)
def _bytes_of_text(text: str) -> int:
    return int_value(parse_quantity_with_format(text)[0])


def cpu_millis(value: str | int | float) -> int:
    """CPU in millicores: "250m" -> 250, "1" -> 1000, "0.1" -> 100."""
    if isinstance(value, str):
        return _cpu_millis_of_text(value)
    return milli_value(parse_quantity(value))


def memory_bytes(value: str | int | float) -> int:
    """Memory (or any byte amount) in bytes: "128Mi" -> 134217728."""
    if isinstance(value, str):
        return _bytes_of_text(value)
    return int_value(parse_quantity(value))


# ------------------------------------------------------------------ canonical form


def format_quantity(value: Fraction | int, fmt: QuantityFormat = "DecimalSI") -> str:
    """Kubernetes' canonical text of a quantity (Quantity.String): the
    largest suffix that keeps an integer mantissa, decimal exponents in steps
    of three; BinarySI falls back to DecimalSI below 1024 or when not whole.
    The value is first rounded up to a nano-unit, as Kubernetes stores it."""
    q = _round_up_to_nano(Fraction(value))
    if q == 0:
        return "0"
    if fmt == "BinarySI":
        if -1024 < q < 1024 or q.denominator != 1:
            fmt = "DecimalSI"
        else:
            amount, times = int(q), 0
            while amount % 1024 == 0 and times < max(_BINARY_BY_EXPONENT):
                amount //= 1024
                times += 1
            return f"{amount}{_BINARY_BY_EXPONENT[times]}"
    amount = int(q * 10**9)
    exponent = -9
    while amount % 10 == 0:
        amount //= 10
        exponent += 1
    shift = exponent % 3
    amount *= 10**shift
    exponent -= shift
    if fmt == "DecimalExponent" or exponent not in _DECIMAL_BY_EXPONENT:
        return f"{amount}e{exponent}" if exponent else str(amount)
    return f"{amount}{_DECIMAL_BY_EXPONENT[exponent]}"


def canonical_quantity(value: str | int | float) -> str:
    """The text Kubernetes stores for a quantity as written: "1000m" -> "1",
    "1024Mi" -> "1Gi", 0.5 -> "500m", "1.5e3" -> "1500"."""
    if isinstance(value, str):
        q, fmt = parse_quantity_with_format(value)
        return format_quantity(q, fmt)
    return format_quantity(parse_quantity(value))


__all__ = [
    "FORMAT_MESSAGE",
    "MAX_ALLOWED",
    "QUANTITY_REGEX",
    "QuantityError",
    "QuantityFormat",
    "canonical_quantity",
    "cpu_millis",
    "format_quantity",
    "int_value",
    "memory_bytes",
    "milli_value",
    "parse_quantity",
    "parse_quantity_with_format",
]
