"""`selfheal rules test` against `promtool test rules`: same verdicts, same report, same notation.

The corpus in `promtool_corpus/` is the golden data: every `*.test.yml` is run by both
tools and must get the same exit code. File names carry the verdict promtool gives
(`fail_*` and `malformed_*` exit 1, the rest 0), so the verdicts stay pinned even where
promtool is not installed.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from selfheal.cli.rules_cmd import rules_app
from selfheal.domain.model import AlertState
from selfheal.telemetry import TSDB, ruletest, series_notation
from selfheal.telemetry.rules import RuleEvaluator, load_rule_file
from selfheal.telemetry.tsdb import STALE_NAN, Labels, is_stale, quote

CORPUS = Path(__file__).parent / "promtool_corpus"
TEST_FILES = sorted(CORPUS.glob("*.test.yml"))

# Files where selfheal is known to disagree with promtool; each is reported, and strict
# xfail flags the day it gets fixed. None at the moment.
KNOWN_GAPS: dict[str, str] = {}


def corpus_params() -> list[object]:
    return [
        pytest.param(
            path,
            id=path.name,
            marks=[pytest.mark.xfail(reason=KNOWN_GAPS[path.name], strict=True)]
            if path.name in KNOWN_GAPS
            else [],
        )
        for path in TEST_FILES
    ]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not on PATH, and CI must compare verdicts with it")
        pytest.skip("promtool is not on PATH (install Prometheus' promtool to compare)")
    return found


def run_promtool(*names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "test", "rules", *names],
        cwd=CORPUS,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def run_selfheal(*names: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = ruletest.run_files([str(CORPUS / name) for name in names], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# -- verdicts --------------------------------------------------------------------------------


def test_the_corpus_is_large_enough_to_mean_something() -> None:
    """At least 25 test files, with passing, failing and malformed ones among them."""
    names = [path.name for path in TEST_FILES]
    assert len(names) >= 25
    assert any(name.startswith("fail_") for name in names)
    assert any(name.startswith("malformed_") for name in names)


@pytest.mark.parametrize("path", corpus_params())
def test_selfheal_gives_the_verdict_promtool_gives(path: Path) -> None:
    """`selfheal rules test FILE` exits with the code `promtool test rules FILE` exits with."""
    reference = run_promtool(path.name)
    result = CliRunner().invoke(rules_app, ["test", str(path)])
    assert result.exit_code == reference.returncode, (
        f"promtool:\n{reference.stdout}{reference.stderr}\nselfheal:\n{result.output}"
    )


@pytest.mark.parametrize("path", corpus_params())
def test_each_corpus_file_has_the_verdict_its_name_promises(path: Path) -> None:
    """fail_* and malformed_* files fail, every other file passes (no promtool needed)."""
    expected_to_fail = path.name.startswith(("fail_", "malformed_"))
    result = ruletest.run_file(path)
    assert result.passed is not expected_to_fail, "\n".join(result.failures) or result.error
    assert (result.error is not None) is path.name.startswith("malformed_")


# -- the report ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        ("alert_for.test.yml",),
        ("fail_wrong_value.test.yml",),
        ("fail_missing_annotation.test.yml", "absent.test.yml"),
        ("fail_pending_is_not_firing.test.yml",),
        ("fail_unexpected_extra_sample.test.yml",),
        ("fail_float_exactness.test.yml", "fail_nan_never_equals.test.yml"),
    ],
    ids="+".join,
)
def test_the_report_is_promtools_byte_for_byte(names: tuple[str, ...], monkeypatch) -> None:
    """The report on stdout and stderr is promtool's, byte for byte, passing or failing."""
    reference = run_promtool(*names)
    monkeypatch.chdir(CORPUS)
    out, err = io.StringIO(), io.StringIO()
    code = ruletest.run_files(list(names), out=out, err=err)
    assert (code, out.getvalue(), err.getvalue()) == (
        reference.returncode,
        reference.stdout,
        reference.stderr,
    )


def test_a_passing_file_prints_success_on_stdout_only() -> None:
    """A passing file prints its name and SUCCESS, then a blank line, and nothing on stderr."""
    code, out, err = run_selfheal("alert_for.test.yml")
    assert code == 0
    assert out == f"Unit Testing:  {CORPUS / 'alert_for.test.yml'}\n  SUCCESS\n\n"
    assert err == ""


def test_a_failed_alert_test_shows_expected_and_got_alerts() -> None:
    """The alert block names the group, the alert and the time, then both alert lists."""
    code, out, err = run_selfheal("fail_missing_annotation.test.yml")
    assert code == 1
    assert out.endswith("\n\n\n")  # one blank line per failure, one per file
    assert err == (
        "  FAILED:\n"
        "    name: annotations must all be listed,\n"
        "    alertname: InstanceDown, time: 5m, \n"
        "        exp:[\n"
        "            0:\n"
        '              Labels:{alertname="InstanceDown", instance="a", job="node", '
        'severity="page"}\n'
        "              Annotations:{}\n"
        "            ], \n"
        "        got:[\n"
        "            0:\n"
        '              Labels:{alertname="InstanceDown", instance="a", job="node", '
        'severity="page"}\n'
        '              Annotations:{summary="Instance a of node is down"}\n'
        "            ]\n"
    )


def test_a_failed_expression_test_shows_samples_in_go_float_notation() -> None:
    """Samples print as `{labels} 6E+01`, sorted by labels, `nil` when there are none."""
    code, _, err = run_selfheal("fail_wrong_value.test.yml")
    assert code == 1
    assert err == (
        "  FAILED:\n"
        '    expr: "rate(jobs_processed_total[5m])", time: 10m,\n'
        '        exp: {worker="w1"} 6E+01\n'
        '        got: {worker="w1"} 1E+00\n'
    )


def test_a_malformed_file_names_file_line_and_column() -> None:
    """A malformed test file fails with one ConfigError pointing at the offending text."""
    result = ruletest.run_file(CORPUS / "malformed_series_values.test.yml")
    assert result.error is not None
    assert result.error.location is not None
    assert (result.error.location.line, result.error.location.column) == (6, 23)
    assert "repetition count" in str(result.error)


def test_a_malformed_rule_file_is_reported_with_its_own_position() -> None:
    """A rule file that does not parse fails the test file, naming the rule file's line."""
    result = ruletest.run_file(CORPUS / "malformed_rule_file.test.yml")
    assert result.error is not None
    assert result.error.location is not None
    assert result.error.location.source.endswith("malformed_rule_file.rules.yml")
    assert result.error.location.line == 5


def test_a_rule_file_pattern_matching_nothing_warns_and_goes_on(tmp_path: Path) -> None:
    """As promtool: a WARNING on stderr, and the tests still run (and may pass)."""
    test_file = tmp_path / "t.test.yml"
    test_file.write_text(
        "rule_files: [nothing_*.yml]\n"
        "tests:\n"
        "  - interval: 1m\n"
        "    input_series: [{series: up, values: '1'}]\n"
        "    promql_expr_test: [{expr: up, eval_time: 0, exp_samples: [{labels: up, value: 1}]}]\n",
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    assert ruletest.run_files([test_file], out=out, err=err) == 0
    assert err.getvalue() == f"  WARNING: no file match pattern {tmp_path / 'nothing_*.yml'}\n"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1E+00"),
        (0.3, "3E-01"),
        (0.1 + 0.2, "3.0000000000000004E-01"),
        (16.0, "1.6E+01"),
        (0.0, "0E+00"),
        (-0.0, "-0E+00"),
        (-2.5, "-2.5E+00"),
        (1e-5, "1E-05"),
        (1.5e300, "1.5E+300"),
        (123456789.0, "1.23456789E+08"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_floats_print_as_gos_shortest_e_format(value: float, text: str) -> None:
    """format_float matches Go's strconv.FormatFloat(v, 'E', -1, 64)."""
    assert ruletest.format_float(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_e_format_reads_back_to_the_same_float(value: float) -> None:
    """The shortest E form is exact: parsing it gives the same float back."""
    assert float(ruletest.format_float(value)) == value


# -- the command -----------------------------------------------------------------------------


def test_rules_test_exits_0_when_every_file_passes() -> None:
    """`rules test` over passing files exits 0."""
    paths = [str(CORPUS / "alert_for.test.yml"), str(CORPUS / "sort.test.yml")]
    result = CliRunner().invoke(rules_app, ["test", *paths])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("  SUCCESS") == 2


def test_rules_test_exits_1_when_any_file_fails() -> None:
    """One failing file among passing ones makes the exit code 1, and all are still run."""
    paths = [str(CORPUS / name) for name in ("sort.test.yml", "fail_wrong_value.test.yml")]
    result = CliRunner().invoke(rules_app, ["test", *paths])
    assert result.exit_code == 1
    assert result.stdout.count("Unit Testing:") == 2
    assert "FAILED:" in result.stderr


def test_rules_test_refuses_a_missing_file_with_exit_code_1() -> None:
    """As promtool, a path that does not exist is an error before any test runs."""
    result = CliRunner().invoke(rules_app, ["test", str(CORPUS / "no-such.test.yml")])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert "Unit Testing" not in result.stdout


def test_rules_test_without_files_exits_1_as_promtool_does() -> None:
    """No file at all is refused with exit code 1 (promtool's), not Click's usage error 2."""
    result = CliRunner().invoke(rules_app, ["test"])
    assert result.exit_code == 1
    assert "at least one test file" in result.stderr


def test_rules_test_prints_a_malformed_file_as_one_line_with_its_place() -> None:
    """A malformed file shows file:line:col and the problem, never a traceback."""
    result = CliRunner().invoke(rules_app, ["test", str(CORPUS / "malformed_duration.test.yml")])
    assert result.exit_code == 1
    assert "malformed_duration.test.yml:9:20" in result.stderr
    assert "Traceback" not in result.output


# -- the notation ----------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(
    lambda value: round(value, 3)
)
counts = st.integers(min_value=0, max_value=40)


@given(start=finite, step=finite.map(abs), count=counts)
def test_a_plus_b_x_n_is_n_plus_1_values_each_b_more_than_the_last(
    start: float, step: float, count: int
) -> None:
    """`a+bxn` expands to n+1 values by repeated addition, as Go's parser accumulates."""
    values = series_notation.expand_values(f"{start!r}+{step!r}x{count}")
    assert len(values) == count + 1
    assert values[0] == start
    for before, after in itertools.pairwise(values):
        assert before is not None
        assert after == before + step


@given(start=finite, step=finite.map(abs), count=counts)
def test_a_minus_b_x_n_counts_down(start: float, step: float, count: int) -> None:
    """`a-bxn` is `a+(-b)xn`."""
    values = series_notation.expand_values(f"{start!r}-{step!r}x{count}")
    assert len(values) == count + 1
    for before, after in itertools.pairwise(values):
        assert before is not None
        assert after == before - step


@given(value=finite, count=counts)
def test_a_x_n_is_shorthand_for_a_plus_0_x_n(value: float, count: int) -> None:
    """`axn` repeats a n+1 times, like `a+0xn`."""
    expected = series_notation.expand_values(f"{value!r}+0x{count}")
    assert series_notation.expand_values(f"{value!r}x{count}") == expected == [value] * (count + 1)


@given(count=counts)
def test_blank_x_n_is_n_missing_samples_not_n_plus_1(count: int) -> None:
    """`_xn` leaves n intervals empty (promtool's rule, unlike `axn`)."""
    assert series_notation.expand_values(f"_x{count} 1") == [None] * count + [1.0]


item = st.one_of(
    st.builds(lambda v: (repr(v), [v]), finite),
    st.builds(lambda v, n: (f"{v!r}x{n}", [v] * (n + 1)), finite, counts),
    st.just(("_", [None])),
    st.builds(lambda n: (f"_x{n}", [None] * n), counts),
    st.just(("Inf", [math.inf])),
    st.just(("-Inf", [-math.inf])),
)


@given(st.lists(item, max_size=8), st.sampled_from([" ", "  ", "\t", " \n "]))
def test_items_expand_independently_and_concatenate(items: list, separator: str) -> None:
    """A values string is its items' expansions in order, however they are spaced."""
    text = separator.join(written for written, _ in items)
    assert series_notation.expand_values(text) == [v for _, values in items for v in values]


def test_stale_and_nan_are_different_kinds_of_not_a_number() -> None:
    """`stale` is the stale marker (by its bits); `NaN` is an ordinary NaN sample."""
    stale, nan = series_notation.expand_values("stale NaN")
    assert stale is not None
    assert is_stale(stale)
    assert nan is not None
    assert math.isnan(nan)
    assert not is_stale(nan)


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("0x10", [0.0] * 11),  # not hexadecimal: ten more zeros
        ("1e2x1", [100.0, 100.0]),
        ("1e-2+1x1", [0.01, 1.01]),
        ("-Inf+1x1", [-math.inf, -math.inf]),
        ("5.", [5.0]),
        (".5x1", [0.5, 0.5]),
        ("1 2x0", [1.0, 2.0]),
        ("1+1x02", [1.0, 2.0, 3.0]),
        ("", []),
    ],
)
def test_the_notation_reads_edge_cases_as_promtool(text: str, expanded: list[float]) -> None:
    """Cases checked against promtool 2.42 by loading them and querying the samples."""
    assert series_notation.expand_values(text) == expanded


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("1+1", 3),
        ("1 2 3 a", 6),
        ("Infx2", 0),
        ("1+Infx1", 0),
        ("1x2x3", 0),
        ("1+-1x2", 0),
        ("1_000", 0),
        ("STALE", 0),
        ("1 + 1x2", 2),
        ("_x", 0),
    ],
)
def test_malformed_values_are_refused_at_their_offset(text: str, position: int) -> None:
    """Each of these is an error to promtool too; the error says where."""
    with pytest.raises(series_notation.NotationError) as caught:
        series_notation.expand_values(text)
    assert caught.value.position == position


def test_an_absurd_repetition_count_is_refused_before_it_fills_memory() -> None:
    """`1x1000000000` would need gigabytes; it is refused with the limit named."""
    with pytest.raises(series_notation.NotationError, match="limit"):
        series_notation.expand_values("1x1000000000")


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name != "__name__"
)


@given(
    name=st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", fullmatch=True),
    labels=st.dictionaries(label_names, st.text(min_size=1, max_size=8), max_size=4),
)
def test_a_label_set_written_as_promtool_reads_back_the_same(
    name: str, labels: dict[str, str]
) -> None:
    """`name{k="v", ...}` with Go-escaped values parses to the same label set."""
    inner = ", ".join(f"{key}={quote(value)}" for key, value in labels.items())
    parsed = series_notation.parse_labels(f"{name}{{{inner}}}")
    assert parsed == Labels({**labels, "__name__": name})


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("", {}),
        ("{}", {}),
        ('{a="1"}', {"a": "1"}),
        ('m{a="1",}', {"__name__": "m", "a": "1"}),
        ('m{__name__="n"}', {"__name__": "m"}),
        ('m{a=""}', {"__name__": "m"}),
        ('sum{on="x"}', {"__name__": "sum", "on": "x"}),
    ],
)
def test_expected_sample_labels_read_as_promtool_reads_them(text: str, labels: dict) -> None:
    """Empty means no labels, a name before braces wins, empty values vanish, keywords pass."""
    assert series_notation.parse_labels(text, allow_empty=True) == Labels(labels)


@pytest.mark.parametrize("text", ['m{a!="1"}', 'm{a=~"1"}', "m[5m]", "sum(m)", 'm{a="1"} 5', "{"])
def test_a_series_takes_exact_labels_only(text: str) -> None:
    """Matchers, ranges, calls and trailing text are not label sets."""
    with pytest.raises(series_notation.NotationError):
        series_notation.parse_labels(text)


# -- regressions in the rule engine, found by the corpus -------------------------------------

RULES = """\
groups:
  - name: regressions
    rules:
      - record: hot
        expr: load > 10
      - alert: Hot
        expr: load > 10
        for: 0s
        keep_firing_for: 20s
        labels:
          severity: page
          owner: '{{ $labels.team }}'
        annotations:
          summary: '[{{ $labels.severity }}] {{ $labels.__name__ }} on {{ $labels.pod }}'
"""


def evaluator_and_db(tmp_path: Path) -> tuple[RuleEvaluator, TSDB]:
    path = tmp_path / "rules.yml"
    path.write_text(RULES, encoding="utf-8")
    db = TSDB()
    return RuleEvaluator(load_rule_file(path), storage=db), db


def feed(db: TSDB, at: float, value: float, **labels: str) -> None:
    db.append({"__name__": "load", "pod": "a", **labels}, timestamp=at, value=value)


def test_keep_firing_for_counts_from_the_first_evaluation_without_the_condition(
    tmp_path: Path,
) -> None:
    """Gone at 10 s with keep_firing_for 20s: firing at 10 and 20, resolved at 30 (promtool)."""
    evaluator, db = evaluator_and_db(tmp_path)
    states = []
    for at, value in ((0, 20), (10, 1), (20, 1), (30, 1)):
        feed(db, at, value)
        states.append([alert.state for alert in evaluator.evaluate(at=at)])
    assert states == [
        [AlertState.FIRING],
        [AlertState.FIRING],
        [AlertState.FIRING],
        [AlertState.RESOLVED],
    ]


def test_a_recorded_series_the_rule_stops_returning_is_marked_stale(tmp_path: Path) -> None:
    """The recorded series ends with a stale marker instead of lingering 5 minutes."""
    evaluator, db = evaluator_and_db(tmp_path)
    feed(db, 0, 20)
    evaluator.evaluate(at=0)
    feed(db, 10, 1)
    evaluator.evaluate(at=10)
    [(first_time, first_value), (stale_time, marker)] = db.samples({"__name__": "hot", "pod": "a"})
    assert (first_time, first_value, stale_time) == (0, 20, 10)
    assert is_stale(marker)


def test_a_recording_rule_that_fails_keeps_its_series(tmp_path: Path) -> None:
    """A failed evaluation is not an empty result: nothing recorded is marked stale."""
    path = tmp_path / "rules.yml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n      - record: ratio\n"
        "        expr: load / on(pod) other\n",
        encoding="utf-8",
    )
    db = TSDB()
    evaluator = RuleEvaluator(load_rule_file(path), storage=db)
    feed(db, 0, 4)
    db.append({"__name__": "other", "pod": "a"}, timestamp=0, value=2)
    evaluator.evaluate(at=0)
    feed(db, 10, 4)
    db.append({"__name__": "other", "pod": "a", "x": "1"}, timestamp=10, value=2)
    db.append({"__name__": "other", "pod": "a"}, timestamp=10, value=2)
    evaluator.evaluate(at=10)  # many-to-many: an error
    assert evaluator.errors
    assert db.samples({"__name__": "ratio", "pod": "a"}) == [(0, 2.0)]


def test_templates_see_the_series_labels_and_name_but_not_the_rule_labels(
    tmp_path: Path,
) -> None:
    """`$labels.severity` (a rule label) is empty in an annotation; `__name__` is there."""
    evaluator, db = evaluator_and_db(tmp_path)
    feed(db, 0, 20, team="core")
    [alert] = evaluator.evaluate(at=0)
    assert alert.annotations["summary"] == "[] load on a"
    assert alert.labels["owner"] == "core"


def test_a_rule_label_that_renders_empty_removes_the_label(tmp_path: Path) -> None:
    """`owner: '{{ $labels.team }}'` on a series without team leaves no owner label."""
    evaluator, db = evaluator_and_db(tmp_path)
    feed(db, 0, 20)
    [alert] = evaluator.evaluate(at=0)
    assert dict(alert.labels) == {"alertname": "Hot", "pod": "a", "severity": "page"}


def test_a_template_that_cannot_expand_still_fires_with_the_error_as_text(
    tmp_path: Path,
) -> None:
    """`humanize` of a non-number does not stop evaluation: the text carries the error."""
    path = tmp_path / "rules.yml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: load > 0\n"
        "        annotations: {size: '{{ $labels.pod | humanize }}'}\n",
        encoding="utf-8",
    )
    db = TSDB()
    evaluator = RuleEvaluator(load_rule_file(path), storage=db)
    feed(db, 0, 1)
    [alert] = evaluator.evaluate(at=0)
    assert alert.state is AlertState.FIRING
    assert alert.annotations["size"].startswith("<error expanding template: humanize")


def test_stale_markers_from_the_notation_end_series_in_a_run() -> None:
    """The `stale` item stores the bit-exact marker the engine recognises."""
    [value] = series_notation.expand_values("stale")
    assert value is not None
    assert is_stale(value)
    assert math.isnan(STALE_NAN)
