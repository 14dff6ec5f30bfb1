"""Durations and fractions: what a user may write, and the messages for unit slips."""

import pytest

from autoscaler.units import parse_duration, parse_fraction


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(300, 300.0), (1.5, 1.5), ("300s", 300.0), ("5m", 300.0), ("1h", 3600.0),
     ("1.5h", 5400.0), ("250ms", 0.25), ("2d", 172800.0), (" 30 s ", 30.0), ("45", 45.0)],
)
def test_durations_accept_seconds_and_unit_strings(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("5 minutes", "is not a duration"), (-1, ">= 0"), ("1w", "is not a duration"),
     (True, "number of seconds"), (float("nan"), "finite"), ([1], "number of seconds")],
)
def test_durations_reject_wrong_units_with_a_hint(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value"), [(0.7, 0.7), ("70%", 0.7), ("0.5", 0.5), (1, 1.0), ("100%", 1.0)]
)
def test_fractions_accept_shares_and_percent_strings(text, value):
    assert parse_fraction(text) == pytest.approx(value)


def test_a_percentage_written_as_a_number_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"write 0\.7 or '70%'"):
        parse_fraction(70)


@pytest.mark.parametrize("text", ["abc", "x%", float("inf")])
def test_fractions_reject_non_numbers(text):
    with pytest.raises(ValueError):
        parse_fraction(text)
