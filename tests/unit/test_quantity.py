"""Resource quantities: Kubernetes' grammar, exact values, rounding like
MilliValue/Value, canonical printing, and the parse cache."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podmodel.quantity import (
    FORMAT_MESSAGE,
    MAX_ALLOWED,
    canonical_quantity,
    cpu_millis,
    format_quantity,
    int_value,
    memory_bytes,
    milli_value,
    parse_quantity,
    parse_quantity_with_format,
)

SUFFIX_VALUES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
    "e3": Fraction(1000),
    "E3": Fraction(1000),
    "e-3": Fraction(1, 1000),
    "e+2": Fraction(100),
    "e0": Fraction(1),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250m", Fraction(1, 4)),
        ("0.5", Fraction(1, 2)),
        ("1", Fraction(1)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1Gi", Fraction(2**30)),
        ("1G", Fraction(10**9)),
        ("1k", Fraction(1000)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("12e-3", Fraction(12, 1000)),
        ("+1", Fraction(1)),
        ("-1.5", Fraction(-3, 2)),
        ("1Ki", Fraction(1024)),
        ("1E", Fraction(10**18)),
        ("1.5Gi", Fraction(3 * 2**29)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("007", Fraction(7)),
        ("0", Fraction(0)),
        ("0Mi", Fraction(0)),
        ("0.1", Fraction(1, 10)),
    ],
)
def test_quantity_strings_parse_to_their_exact_value(text: str, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


def test_decimal_fractions_add_up_exactly() -> None:
    assert parse_quantity("0.1") + parse_quantity("0.2") == parse_quantity("0.3")
    assert sum(parse_quantity("100m") for _ in range(10)) == parse_quantity("1")


@pytest.mark.parametrize("text", ["", "Mi", ".", "-", "abc", "1.2.3", " 1", "1 ", "0x10", "1,5"])
def test_malformed_quantity_is_rejected_with_the_kubernetes_regex(text: str) -> None:
    with pytest.raises(ValueError, match="quantities must match the regular expression") as err:
        parse_quantity(text)
    assert FORMAT_MESSAGE in str(err.value)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize("text", ["1K", "1e", "1Mi3", "5-1", "1kk", "1mi", "1e99999999999"])
def test_unknown_suffix_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="unable to parse quantity's suffix"):
        parse_quantity(text)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), None, [1]])
def test_non_quantity_values_are_rejected(value: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(value)  # type: ignore[arg-type]


def test_absurdly_large_or_long_quantities_are_rejected_not_computed() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_quantity("1e2000000000")
    with pytest.raises(ValueError, match="longer than"):
        parse_quantity("1" * 1000)


def test_bare_yaml_numbers_are_quantities() -> None:
    assert parse_quantity(2) == 2
    assert parse_quantity(0.5) == Fraction(1, 2)
    assert parse_quantity(0.1) == Fraction(1, 10)  # its decimal text, not the binary float
    assert parse_quantity(1e16) == 10**16


def test_values_finer_than_a_nano_unit_round_up_away_from_zero() -> None:
    assert parse_quantity("0.1n") == Fraction(1, 10**9)
    assert parse_quantity("1e-20") == Fraction(1, 10**9)
    assert parse_quantity("-0.1n") == Fraction(-1, 10**9)
    assert parse_quantity("1.0000000001") == 1 + Fraction(1, 10**9)


def test_binary_quantities_are_capped_at_int64() -> None:
    assert parse_quantity("100Ei") == MAX_ALLOWED
    assert parse_quantity("1e19") == 10**19  # decimal ones are not, as in Kubernetes


def test_milli_and_int_values_round_up_like_kubernetes() -> None:
    assert milli_value(parse_quantity("0.1m")) == 1
    assert milli_value(parse_quantity("1n")) == 1
    assert milli_value(parse_quantity("1")) == 1000
    assert int_value(parse_quantity("0.5")) == 1
    assert int_value(parse_quantity("1001m")) == 2
    assert int_value(parse_quantity("-0.5")) == -1  # away from zero, as negativeScaleInt64
    assert milli_value("1.5") == 1500
    assert int_value("1Ki") == 1024


def test_cpu_in_millicores_and_memory_in_bytes() -> None:
    assert cpu_millis("250m") == 250
    assert cpu_millis("1") == 1000
    assert cpu_millis("0.1") == 100
    assert cpu_millis(2) == 2000
    assert cpu_millis(0.5) == 500
    assert memory_bytes("128Mi") == 128 * 1024 * 1024
    assert memory_bytes("1G") == 10**9
    assert memory_bytes(1024) == 1024
    assert memory_bytes("0.5") == 1


def test_repeated_strings_hit_the_parse_cache() -> None:
    parse_quantity("777m")
    before = parse_quantity_with_format.cache_info().hits
    for _ in range(5):
        parse_quantity("777m")
    assert parse_quantity_with_format.cache_info().hits == before + 5


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1000m", "1"),
        ("1000", "1k"),
        ("100", "100"),
        ("1024Mi", "1Gi"),
        ("2048Ki", "2Mi"),
        ("1000Ki", "1000Ki"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("0.5Ki", "512"),
        ("1Ki", "1Ki"),
        ("0.5", "500m"),
        ("1.1", "1100m"),
        ("0.0001", "100u"),
        ("100m", "100m"),
        ("1.5e3", "1500"),
        ("12e-3", "12e-3"),
        ("1E3", "1e3"),
        ("1e-20", "1e-9"),
        ("0.00001n", "1n"),
        ("-1.5", "-1500m"),
        ("0", "0"),
        ("0Gi", "0"),
        ("1E", "1E"),
        ("10G", "10G"),
    ],
)
def test_quantities_print_in_kubernetes_canonical_form(text: str, canonical: str) -> None:
    assert canonical_quantity(text) == canonical


def test_bare_numbers_print_canonically() -> None:
    assert canonical_quantity(0.5) == "500m"
    assert canonical_quantity(2) == "2"
    assert format_quantity(Fraction(3 * 2**30), "BinarySI") == "3Gi"
    assert format_quantity(Fraction(10**21)) == "1e21"  # beyond the E suffix


# ------------------------------------------------------------------ properties

SUFFIXES = sorted(SUFFIX_VALUES)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=0, max_value=10**6), suffix=st.sampled_from(SUFFIXES))
def test_integer_with_any_suffix_equals_its_exact_value(n: int, suffix: str) -> None:
    expected = n * SUFFIX_VALUES[suffix]
    if suffix.endswith("i"):
        expected = min(expected, Fraction(MAX_ALLOWED))  # Kubernetes' cap on binary values
    for sign, factor in (("", 1), ("+", 1), ("-", -1)):
        assert parse_quantity(f"{sign}{n}{suffix}") == factor * expected


@settings(max_examples=200, deadline=None)
@given(
    whole=st.integers(min_value=0, max_value=10**9),
    frac=st.integers(min_value=0, max_value=10**6 - 1),
    digits=st.integers(min_value=6, max_value=9),
    suffix=st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi"]),
)
def test_decimal_point_numbers_are_exact(whole: int, frac: int, digits: int, suffix: str) -> None:
    text = f"{whole}.{frac:0{digits}d}{suffix}"
    expected = (whole + Fraction(frac, 10**digits)) * SUFFIX_VALUES[suffix]
    assert parse_quantity(text) == expected


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=-(10**12), max_value=10**12), suffix=st.sampled_from(SUFFIXES))
def test_canonical_form_round_trips(n: int, suffix: str) -> None:
    text = f"{n}{suffix}"
    canonical = canonical_quantity(text)
    assert parse_quantity(canonical) == parse_quantity(text)
    assert canonical_quantity(canonical) == canonical


@settings(max_examples=300, deadline=None)
@given(
    nanos=st.integers(min_value=-(2**62), max_value=2**62),
    fmt=st.sampled_from(["DecimalSI", "BinarySI", "DecimalExponent"]),
)
def test_formatting_any_nano_multiple_parses_back(nanos: int, fmt: str) -> None:
    value = Fraction(nanos, 10**9)
    assert parse_quantity(format_quantity(value, fmt)) == value  # type: ignore[arg-type]
