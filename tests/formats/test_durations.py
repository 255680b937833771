"""Durations as users write them in scenarios, rules and runbooks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfheal.formats.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("2d", 172800),
        ("1.5", 1.5),
        (90, 90),
        (0, 0),
    ],
)
def test_parse_duration_reads_prometheus_style_and_plain_numbers(
    text: str | int, seconds: float
) -> None:
    """Prometheus-style units and plain numbers of seconds are both understood."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "-3s", "", "1h-2m", True, None, -1])
def test_parse_duration_refuses_what_is_not_a_duration(bad: object) -> None:
    """Anything that is not a non-negative duration is refused with a ValueError."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=10_000_000))
def test_format_then_parse_gives_back_whole_seconds(seconds: int) -> None:
    """Formatting whole seconds and parsing the text returns the same number."""
    assert parse_duration(format_duration(seconds)) == seconds
