"""The exposition parser reads what prometheus_client's reference parser reads, faster."""

from __future__ import annotations

import math
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from selfheal.telemetry.text_format import parse_samples
from selfheal.twin import exposition, scenario
from selfheal.twin.simulation import Simulation


def reference(text: str) -> list[tuple[dict[str, str], float]]:
    return [
        ({"__name__": sample.name, **sample.labels}, float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_the_twins_exposition_parses_as_the_reference_parser_reads_it() -> None:
    simulation = Simulation(scenario.load("flash-sale"), epoch=1.7e9)
    simulation.advance_to(120.0)
    text = exposition.render(simulation)
    assert parse_samples(text) == reference(text)


EDGE_CASES = """\
# HELP odd_total A counter.
# TYPE odd_total counter
odd_total{path="/a,b",quote="say \\"hi\\"",slash="c:\\\\tmp",nl="two\\nlines"} 3
odd_total{path="{braces}"} 1e3 1700000000000
trailing_comma{a="1",} -2.5
spaced { a = "1" , b="2" } 7
no_labels 42
infinite +Inf
negative_infinite -Inf

gauge_with_ts 1.5 -1
"""


def test_escapes_braces_timestamps_and_special_values_match_the_reference() -> None:
    ours = parse_samples(EDGE_CASES)
    theirs = reference(EDGE_CASES)
    assert ours == theirs
    assert ours[0][0]["quote"] == 'say "hi"'
    assert ours[0][0]["nl"] == "two\nlines"


def test_nan_is_a_value() -> None:
    [(labels, value)] = parse_samples('x{a="1"} NaN\n')
    assert labels == {"__name__": "x", "a": "1"}
    assert math.isnan(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ok 1\nbad{a="1" 2\n', "line 2: not a sample"),
        ("ok 1\n\nbad{a=1} 2\n", "line 3: not a sample"),
        ('x{a="1" b="2"} 1\n', "line 1: not a sample"),
        ('x{a="1",a="2"} 1\n', "line 1: a label is given twice"),
        ("x one\n", "line 1: 'one' is not a sample value"),
        ('x{a="\\q"} 1\n', "line 1: invalid escape \\q"),
        ("x 1 2 3\n", "line 1: not a sample"),
    ],
)
def test_a_malformed_line_is_refused_with_its_line_number(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_samples(text)
