"""Alert label and annotation templates: the Prometheus template subset rules use."""

from __future__ import annotations

import pytest

from selfheal.telemetry.templates import Template, TemplateError, format_value


def test_labels_and_value_are_filled_in() -> None:
    """`$labels.x` and `$value` render as Prometheus renders them."""
    template = Template("{{ $labels.pod }} throttled at {{ $value }}")
    assert template.render(labels={"pod": "web-1"}, value=0.25) == "web-1 throttled at 0.25"


def test_dot_forms_and_missing_labels() -> None:
    """`.Labels.x` and `.Value` work too; a missing label renders empty, as in Go templates."""
    template = Template("{{ .Labels.service }}/{{ .Labels.nope }}={{ .Value }}")
    assert template.render(labels={"service": "api"}, value=2.0) == "api/=2"


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("{{ $value | humanizePercentage }}", 0.4567, "45.67%"),
        ("{{ $value | humanize }}", 1234567.0, "1.235M"),
        ("{{ $value | humanizeDuration }}", 0.25, "250ms"),
        ("{{ $value | humanizeDuration }}", 3725.0, "1h 2m 5s"),
        ('{{ printf "%.1f" $value }}', 0.987, "1.0"),
    ],
)
def test_pipes_and_printf(text: str, value: float, expected: str) -> None:
    """The humanize family and printf format numbers the Prometheus way."""
    assert Template(text).render(labels={}, value=value) == expected


def test_unsupported_functions_are_refused_at_load() -> None:
    """A function outside the subset is refused when the template is built, naming it."""
    with pytest.raises(TemplateError, match="query"):
        Template('{{ query "up" | first | value }}')
    with pytest.raises(TemplateError, match="reReplaceAll"):
        Template("{{ $value | reReplaceAll }}")


def test_values_print_in_shortest_round_trip_form() -> None:
    """Whole numbers lose their `.0`, others keep every digit needed to round-trip."""
    assert format_value(3.0) == "3"
    assert format_value(0.1 + 0.2) == "0.30000000000000004"
    assert format_value(float("inf")) == "+Inf"


def test_large_and_tiny_values_print_in_go_exponent_form() -> None:
    """From 1e6 up and below 1e-4, `$value` uses Go's exponent form with two digits."""
    assert format_value(1e6) == "1e+06"
    assert format_value(123456.0) == "123456"
    assert format_value(1234567.0) == "1.234567e+06"
    assert format_value(0.00001) == "1e-05"


def test_humanize_keeps_values_between_one_and_a_thousand_unprefixed() -> None:
    """42.5 stays 42.5; 1234.5 becomes 1.234k; 0.0025 becomes 2.5m."""
    assert Template("{{ $value | humanize }}").render(labels={}, value=42.5) == "42.5"
    assert Template("{{ $value | humanize }}").render(labels={}, value=1234.5) == "1.234k"
    assert Template("{{ $value | humanize }}").render(labels={}, value=0.0025) == "2.5m"
