"""Rule unit tests in promtool's format, run the way `promtool test rules` runs them.

A test file names rule files and, per test group, input series (`series_notation`), then
asks what alerts fire and what expressions return at given times. Each group gets a fresh
TSDB; the input samples sit at `i * interval`; every rule group is evaluated at every
`evaluation_interval` step from 0 to the group's last `eval_time`, so `for`,
`keep_firing_for` and recording rules feeding alerts behave as in a running Prometheus.

promtool (Prometheus 2.42) is the reference for everything a user can observe, down to
its quirks, because teams keep one test file for both tools:

- input samples are loaded only up to the evaluation step being run, so after the loop an
  `@` or negative `offset` cannot see past the last step;
- an alert test at an `eval_time` between steps sees the alerts of the step before it;
  only *firing* alerts count, with their labels (rule labels and `alertname` included)
  and annotations;
- expected samples compare exactly (NaN never equals NaN), in any order;
- the report goes to stdout (`Unit Testing:  FILE`, `  SUCCESS`) and stderr (`  FAILED:`
  and one block per failure), and the exit code is 1 when anything failed.

What differs on purpose is listed in docs/rules.md; the two a user meets first: a group
without `interval` uses `evaluation_interval` (2.42 used 0, piling every sample onto t=0;
later promtool releases default as here), and a malformed file is refused whole with a
`ConfigError` naming file:line:col rather than Go's YAML message.

The module is long (~700 lines) on purpose: the file format, the run and the report are
one contract with promtool, each part meaningful only with the others, and the sections
below (reading, preparing, running, printing) keep it navigable. The value and label-set
notations, which stand alone, are in `series_notation`.
"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import pydantic
import yaml

from selfheal.domain.errors import ConfigError, SelfhealError, SourceLocation
from selfheal.domain.model import Alert, AlertState
from selfheal.formats import guarded_yaml, sourced_yaml, text_files
from selfheal.telemetry import promql, rules, series_notation
from selfheal.telemetry.tsdb import METRIC_NAME, TSDB, Labels, quote

DEFAULT_EVALUATION_INTERVAL_MS = 60_000
T = TypeVar("T")
Pairs = tuple[tuple[str, str], ...]


# -- reading the file ----------------------------------------------------------------------

# yaml.v2 (promtool's YAML) reads `2e6` and `1.5e3` as numbers; YAML 1.1 in PyYAML needs a
# dot and a signed exponent. Resolving them as floats keeps `value: 2e6` a number here too.
_GO_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")


class _Loader(guarded_yaml.GuardedLoader):
    """PyYAML's safe loader (with our limits), reading scalars as Go's yaml.v2 does.

    Numbers remember the text they were written as, because yaml.v2 fills a string field
    with that text: `value: 2.5e+06` in `exp_annotations` is the string "2.5e+06", not
    "2500000.0". Booleans and dates are only ever wanted as text here.
    """


class _Float(float):
    text: str


class _Int(int):
    text: str


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    number = _Float(yaml.SafeLoader.construct_yaml_float(loader, node))
    number.text = node.value
    return number


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    number = _Int(yaml.SafeLoader.construct_yaml_int(loader, node))
    number.text = node.value
    return number


def _construct_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _GO_FLOAT, list("-+0123456789."))
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_text)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)


def _load_document(text: str, *, source: str) -> sourced_yaml.SourcedDocument:
    document = sourced_yaml.load_yaml(text, source=source, loader=_Loader)
    if document.root is not None:
        _refuse_duplicate_keys(document.root, source=source)
    if document.data is None:
        return sourced_yaml.SourcedDocument(source=source, data={}, root=document.root)
    return document


def _refuse_duplicate_keys(node: yaml.Node, *, source: str) -> None:
    """Refuse a key given twice, as promtool does; PyYAML would keep the last silently."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    mark = key.start_mark
                    where = SourceLocation(source, mark.line + 1, mark.column + 1)
                    raise ConfigError(f"field {key.value!r} is already set", location=where)
                seen.add(key.value)
            _refuse_duplicate_keys(value, source=source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, source=source)


_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_DURATION_MS = (31_536_000_000, 604_800_000, 86_400_000, 3_600_000, 60_000, 1000, 1)


def parse_duration_ms(value: object) -> int:
    """A Prometheus duration (`1m`, `1h30m`, `0`) in milliseconds, strict as promtool."""
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return 0
    if not isinstance(value, str):
        raise ValueError(f"not a valid duration: {value!r}; write it with a unit, like 90s or 5m")
    if value == "0":
        return 0
    if not value:
        raise ValueError("empty duration string")
    found = _DURATION.fullmatch(value)
    if found is None or not any(found.groups()):
        raise ValueError(f"not a valid duration string: {value!r}; use units like 1h30m or 90s")
    return sum(int(n) * size for n, size in zip(found.groups(), _DURATION_MS, strict=True) if n)


def _go_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"expected a number, got {value!r}; write it unquoted (.inf, -.inf, .nan for the "
            "special values)"
        )
    return float(value)


def _scalar_text(value: object) -> object:
    """yaml.v2 reads any scalar into a string field as written: `code: 500` is "500"."""
    if isinstance(value, _Int | _Float):
        return value.text
    return value


DurationMs = Annotated[int, pydantic.BeforeValidator(parse_duration_ms)]
Number = Annotated[float, pydantic.BeforeValidator(_go_float)]
Text = Annotated[str, pydantic.BeforeValidator(_scalar_text)]


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        # `exp_alerts:` with nothing after it is YAML null; promtool reads it as empty.
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class SeriesSpec(_Strict):
    """One input series: a label set and its values in the expanding notation."""

    series: Text = ""
    values: Text = ""


class ExpectedAlert(_Strict):
    """One alert an alert test expects to be firing."""

    exp_labels: dict[str, Text] = pydantic.Field(default_factory=dict)
    exp_annotations: dict[str, Text] = pydantic.Field(default_factory=dict)


class AlertCase(_Strict):
    """`alert_rule_test`: the firing alerts of one name at one time."""

    eval_time: DurationMs = 0
    alertname: Text = ""
    exp_alerts: tuple[ExpectedAlert, ...] = ()


class ExpectedSample(_Strict):
    """One sample an expression test expects."""

    labels: Text = ""
    value: Number = 0.0


class ExprCase(_Strict):
    """`promql_expr_test`: an instant query's result at one time."""

    expr: Text = ""
    eval_time: DurationMs = 0
    exp_samples: tuple[ExpectedSample, ...] = ()


class RuleTestGroup(_Strict):
    """One entry of `tests`: input series and the checks made on them."""

    interval: DurationMs = 0
    input_series: tuple[SeriesSpec, ...] = ()
    alert_rule_test: tuple[AlertCase, ...] = ()
    promql_expr_test: tuple[ExprCase, ...] = ()
    external_labels: dict[str, Text] = pydantic.Field(default_factory=dict)
    external_url: Text = ""
    name: Text = ""


class RuleTestFile(_Strict):
    """A whole test file."""

    rule_files: tuple[Text, ...] = ()
    evaluation_interval: DurationMs = 0
    group_eval_order: tuple[Text, ...] = ()
    tests: tuple[RuleTestGroup, ...] = ()


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    """The verdict on one test file.

    `failures` are promtool-style blocks, one per failed check; `error` is set instead when
    the file (or a rule file it names) is malformed; `warnings` are rule-file patterns that
    matched nothing.
    """

    path: str
    failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error: ConfigError | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failures


def run_files(paths: Sequence[str | Path], *, out: TextIO, err: TextIO) -> int:
    """Test every file, printing promtool's report; return promtool's exit code (0 or 1)."""
    failed = False
    for path in paths:
        print(f"Unit Testing:  {path}", file=out)
        result = run_file(path)
        for pattern in result.warnings:
            print(f"  WARNING: no file match pattern {pattern}", file=err)
        blocks = result.failures if result.error is None else (str(result.error),)
        if blocks:
            failed = True
            print("  FAILED:", file=err)
            for block in blocks:
                print(block, file=err)
                print(file=out)
        else:
            print("  SUCCESS", file=out)
        print(file=out)
    return 1 if failed else 0


def run_file(path: str | Path) -> FileResult:
    """Run one test file; a malformed file gives a result with `error` set, not an exception."""
    warnings: list[str] = []
    try:
        spec, document = _read(Path(path))
        evaluation_ms = spec.evaluation_interval or DEFAULT_EVALUATION_INTERVAL_MS
        groups = _ordered_groups(
            rules.load_rule_files(_rule_paths(Path(path), spec.rule_files, warnings)),
            order=spec.group_eval_order,
            document=document,
        )
        prepared = [
            _prepare(test, index=index, default_interval_ms=evaluation_ms, document=document)
            for index, test in enumerate(spec.tests)
        ]
    except ConfigError as exc:
        return FileResult(str(path), warnings=tuple(warnings), error=exc)
    failures: list[str] = []
    for test in prepared:
        failures += _GroupRun(test, groups=groups, evaluation_ms=evaluation_ms).run()
    return FileResult(str(path), failures=tuple(failures), warnings=tuple(warnings))


def _read(path: Path) -> tuple[RuleTestFile, sourced_yaml.SourcedDocument]:
    text = text_files.read_text(path, kind=text_files.RULE_TESTS)
    document = _load_document(text, source=str(path))
    return sourced_yaml.load_model(RuleTestFile, document), document


def _rule_paths(test_file: Path, patterns: Sequence[str], warnings: list[str]) -> list[Path]:
    """Rule files relative to the test file, globs expanded in sorted order, as promtool."""
    found: list[Path] = []
    for pattern in patterns:
        full = (
            pattern
            if not pattern or Path(pattern).is_absolute()
            else str(test_file.parent / pattern)
        )
        # Path.glob takes no absolute patterns, and rule_files may be absolute.
        matches = sorted(glob.glob(full, include_hidden=True)) if full else []  # noqa: PTH207
        if not matches:
            warnings.append(full)
        # A file matched twice is loaded once: promtool keys groups by file and name.
        found += [Path(match) for match in matches if Path(match) not in found]
    return found


def _ordered_groups(
    groups: list[rules.RuleGroup],
    *,
    order: Sequence[str],
    document: sourced_yaml.SourcedDocument,
) -> list[rules.RuleGroup]:
    rank: dict[str, int] = {}
    for index, name in enumerate(order):
        if name in rank:
            raise ConfigError(
                f"group name repeated in evaluation order: {name}",
                location=document.locate(["group_eval_order", index]),
            )
        rank[name] = index
    # Unlisted groups rank 0, as in promtool, where their order among equals is random;
    # a stable sort keeps the files' order, one of the orders promtool may pick.
    return sorted(groups, key=lambda group: rank.get(group.name, 0))


# -- preparing a test group ------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    spec: RuleTestGroup
    interval_ms: int
    series: list[tuple[Labels, list[float | None]]]
    exprs: list[promql.Expr]
    expected: list[list[tuple[Labels, float]]]


def _prepare(
    test: RuleTestGroup,
    *,
    index: int,
    default_interval_ms: int,
    document: sourced_yaml.SourcedDocument,
) -> _Prepared:
    """Parse everything a group's checks need, so a typo refuses the file before any run."""
    where: list[str | int] = ["tests", index]
    series = []
    for number, item in enumerate(test.input_series):
        at: list[str | int] = [*where, "input_series", number]
        labels = _notation(document, [*at, "series"], item.series, series_notation.parse_labels)
        values = _notation(document, [*at, "values"], item.values, series_notation.expand_values)
        series.append((labels, values))
    for number, alert_case in enumerate(test.alert_rule_test):
        if not alert_case.alertname:
            raise ConfigError(
                "an alert_rule_test item needs an alertname",
                location=document.locate([*where, "alert_rule_test", number]),
            )
    exprs, expected = [], []
    for number, case in enumerate(test.promql_expr_test):
        at = [*where, "promql_expr_test", number]
        exprs.append(_notation(document, [*at, "expr"], case.expr, promql.parse))
        expected.append(
            [
                (
                    _notation(document, [*at, "exp_samples", k, "labels"], sample.labels, _labels),
                    sample.value,
                )
                for k, sample in enumerate(case.exp_samples)
            ]
        )
    return _Prepared(test, test.interval or default_interval_ms, series, exprs, expected)


def _labels(text: str) -> Labels:
    return series_notation.parse_labels(text, allow_empty=True)


def _notation(
    document: sourced_yaml.SourcedDocument,
    path: list[str | int],
    text: str,
    read: Callable[[str], T],
) -> T:
    """Apply a parser to a scalar of the file; on error, point at the character in the file."""
    try:
        return read(text)
    except (series_notation.NotationError, promql.PromQLError) as exc:
        offset = exc.position or 0
        message = exc.detail if isinstance(exc, promql.PromQLError) else str(exc)
        location = document.locate(path)
        raise ConfigError(message, location=_within(document, location, text, offset)) from exc


def _within(
    document: sourced_yaml.SourcedDocument, location: SourceLocation, text: str, offset: int
) -> SourceLocation:
    """The file position `offset` characters into a one-line scalar (plain or quoted)."""
    if location.line is None or location.column is None or "\n" in text:
        return location
    line = rules.document_line(document, location.line)
    start = location.column - 1
    if line[start : start + len(text)] == text:
        column = location.column + offset
    elif line[start : start + 1] in {"'", '"'} and line[start + 1 :].startswith(text):
        column = location.column + 1 + offset
    else:
        return location
    return SourceLocation(location.source, location.line, column, location.path)


# -- running a test group ------------------------------------------------------------------


class _Source:
    """Queries against a test group's TSDB, answered as promtool's engine answers them.

    Prometheus turns a scalar result into one unlabelled sample (NaN included), and
    promtool steps `[5m:]` subqueries by the evaluation interval.
    """

    def __init__(self, db: TSDB, *, subquery_step: float) -> None:
        self.db = db
        self.subquery_step = subquery_step

    def query(self, expr: promql.Expr | str, *, at: float) -> list[tuple[Labels, float]]:
        result = promql.evaluate(expr, storage=self.db, at=at, subquery_step=self.subquery_step)
        if isinstance(result, promql.Scalar):
            return [(Labels(), result.value)]
        if isinstance(result, promql.Vector):
            return [(sample.labels, sample.value) for sample in result]
        raise promql.PromQLError("rule result is not a vector or scalar")

    def instant(self, expr: promql.Expr | str, *, at: float) -> list[tuple[dict[str, str], float]]:
        return [(labels.to_dict(), value) for labels, value in self.query(expr, at=at)]

    def ingest(
        self,
        *,
        at: float,
        samples: Sequence[tuple[dict[str, str], float]],
        stale: Sequence[dict[str, str]],
    ) -> None:
        self.db.ingest(at=at, samples=samples, stale=stale)


@dataclass
class _GroupRun:
    """One test group: its own TSDB, rule state, and the checks still to make."""

    test: _Prepared
    groups: list[rules.RuleGroup]
    evaluation_ms: int
    db: TSDB = field(init=False)
    source: _Source = field(init=False)
    evaluators: list[rules.RuleEvaluator] = field(init=False)
    alerts: list[list[Alert]] = field(init=False)
    alert_series: list[set[Labels]] = field(init=False)
    loaded: list[int] = field(init=False)
    end: int = field(init=False)

    def __post_init__(self) -> None:
        spec = self.test.spec
        times = [case.eval_time for case in spec.alert_rule_test]
        times += [case.eval_time for case in spec.promql_expr_test]
        self.end = max(times, default=0)
        steps = self.end // self.evaluation_ms + 1
        longest = max((len(values) for _, values in self.test.series), default=0)
        # Nothing may be trimmed during a test: retention spans it all, and each series can
        # hold its input plus a sample and a stale marker per step (recorded and ALERTS).
        self.db = TSDB(retention=self.end / 1000 + 3600, max_points=longest + 2 * steps + 16)
        self.source = _Source(self.db, subquery_step=self.evaluation_ms / 1000)
        # One evaluator per group, so ALERTS of a group are written before the next runs.
        self.evaluators = [
            rules.RuleEvaluator([group], source=self.source, external_labels=spec.external_labels)
            for group in self.groups
        ]
        self.alerts = [[] for _ in self.groups]
        self.alert_series = [set() for _ in self.groups]
        self.loaded = [0] * len(self.test.series)

    def run(self) -> list[str]:
        failures: list[str] = []
        checks = sorted({case.eval_time for case in self.test.spec.alert_rule_test})
        for ts in range(0, self.end + 1, self.evaluation_ms):
            self._load_until(ts)
            errors = self._evaluate(ts)
            if errors:
                # promtool stops a test group at its first rule error.
                return failures + errors
            # An alert test between two steps sees the alerts of the step before it.
            while checks and checks[0] < ts + self.evaluation_ms:
                failures += self._check_alerts(checks.pop(0))
        spec = self.test.spec
        for case, expr, expected in zip(
            spec.promql_expr_test, self.test.exprs, self.test.expected, strict=True
        ):
            failures += self._check_expr(case, expr, expected)
        return failures

    def _load_until(self, ts: int) -> None:
        """Append input samples up to `ts` only: promtool loads them lazily, step by step."""
        interval = self.test.interval_ms
        for index, (labels, values) in enumerate(self.test.series):
            position = self.loaded[index]
            while position < len(values) and position * interval <= ts:
                value = values[position]
                if value is not None:
                    self.db.append(labels, timestamp=position * interval / 1000, value=value)
                position += 1
            self.loaded[index] = position

    def _evaluate(self, ts: int) -> list[str]:
        errors = []
        for index, (group, evaluator) in enumerate(zip(self.groups, self.evaluators, strict=True)):
            before = len(evaluator.errors)
            self.alerts[index] = evaluator.evaluate(at=ts / 1000)
            self._write_alert_series(index, at=ts / 1000)
            names = {str(rule.location): rule.name for rule in group.rules}
            errors += [_rule_error(message, names, ts) for message in evaluator.errors[before:]]
        return errors

    def _write_alert_series(self, index: int, *, at: float) -> None:
        """ALERTS and ALERTS_FOR_STATE, as Prometheus writes them for pending and firing alerts."""
        # Prometheus starts these series from the rule's labels as written, so a label
        # template that rendered empty (and left the alert) shows up here unrendered.
        written_labels = {
            rule.spec.alert: rule.spec.labels
            for rule in self.groups[index].rules
            if rule.spec.alert
        }
        samples: list[tuple[dict[str, str], float]] = []
        for alert in self.alerts[index]:
            if alert.state is AlertState.RESOLVED:
                continue
            labels = {**written_labels.get(alert.name, {}), **alert.labels}
            state = {**labels, METRIC_NAME: "ALERTS", "alertstate": alert.state.value}
            samples.append((state, 1.0))
            samples.append(({**labels, METRIC_NAME: "ALERTS_FOR_STATE"}, alert.active_at))
        written = {Labels(labels) for labels, _ in samples}
        stale = [labels for labels in self.alert_series[index] if labels not in written]
        self.db.ingest(at=at, samples=samples, stale=stale)
        self.alert_series[index] = written

    def _check_alerts(self, eval_time: int) -> list[str]:
        failures = []
        spec = self.test.spec
        for case in spec.alert_rule_test:
            if case.eval_time != eval_time:
                continue
            got = sorted(
                (_pairs(alert.labels), _pairs(alert.annotations))
                for alerts in self.alerts
                for alert in alerts
                if alert.name == case.alertname and alert.state is AlertState.FIRING
            )
            expected = sorted(
                (
                    _pairs({**alert.exp_labels, "alertname": case.alertname}),
                    _pairs(alert.exp_annotations),
                )
                for alert in case.exp_alerts
            )
            if got != expected:
                name = f"    name: {spec.name},\n" if spec.name else ""
                failures.append(
                    f"{name}    alertname: {case.alertname}, time: {_duration(eval_time)}, \n"
                    f"        exp:{_alerts_text(expected)}, \n"
                    f"        got:{_alerts_text(got)}"
                )
        return failures

    def _check_expr(
        self, case: ExprCase, expr: promql.Expr, expected: list[tuple[Labels, float]]
    ) -> list[str]:
        head = f"    expr: {quote(case.expr)}, time: {_duration(case.eval_time)},"
        try:
            got = self.source.query(expr, at=case.eval_time / 1000)
        except SelfhealError as exc:
            return [f"{head} err: {exc}"]
        got.sort(key=lambda sample: sample[0].pairs)
        wanted = sorted(expected, key=lambda sample: sample[0].pairs)
        # Exact comparison, as promtool's reflect.DeepEqual: NaN never equals NaN.
        same = len(got) == len(wanted) and all(
            g_labels == w_labels and g_value == w_value
            for (g_labels, g_value), (w_labels, w_value) in zip(got, wanted, strict=True)
        )
        if same:
            return []
        return [f"{head}\n        exp: {_samples_text(wanted)}\n        got: {_samples_text(got)}"]


# -- promtool's text -----------------------------------------------------------------------


def format_float(value: float) -> str:
    """A float as Go's `strconv.FormatFloat(v, 'E', -1, 64)`: `1E+00`, `3.5E-01`, `+Inf`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    # repr gives the shortest digits that read back exactly, as Go's -1 precision does.
    parts = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(str(digit) for digit in parts.digits)
    assert isinstance(parts.exponent, int)
    exponent = len(digits) + parts.exponent - 1
    digits = digits.lstrip("0").rstrip("0")
    if not digits:
        return f"{sign}0E+00"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}E{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"


def _duration(millis: int) -> str:
    """A duration as Prometheus prints one (`1m30s`, `2h`, `0s`)."""
    return promql.ast.format_duration(millis / 1000)


def _go_duration(millis: int) -> str:
    """A duration as Go's `time.Duration` prints one (`1m0s`, `2h0m0s`, `0s`, `500ms`)."""
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}" + (f".{rest % 1000:03d}".rstrip("0") if rest % 1000 else "")
    text = f"{minutes}m{seconds}s" if hours or minutes else f"{seconds}s"
    return f"{hours}h{text}" if hours else text


def _rule_error(message: str, names: dict[str, str], ts: int) -> str:
    """A rule's evaluation error in promtool's words: `rule: NAME, time: T, err: MESSAGE`."""
    for location, name in names.items():
        if message.startswith(location + ": "):
            message = message[len(location) + 2 :]
            return f"    rule: {name}, time: {_go_duration(ts)}, err: {message}"
    return f"    time: {_go_duration(ts)}, err: {message}"


def _pairs(labels: Any) -> Pairs:
    return tuple(sorted(labels.items()))


def _labels_text(pairs: Pairs) -> str:
    # Not Labels.__str__: an expected label may have an empty value, which Labels drops.
    return "{" + ", ".join(f"{name}={quote(value)}" for name, value in pairs) + "}"


def _alerts_text(alerts: list[tuple[Pairs, Pairs]]) -> str:
    if not alerts:
        return "[]"
    entries = [
        f"{index}:\n  Labels:{_labels_text(labels)}\n  Annotations:{_labels_text(annotations)}"
        for index, (labels, annotations) in enumerate(alerts)
    ]
    return ("[\n" + ",\n".join(entries) + "\n]").replace("\n", "\n" + " " * 12)


def _samples_text(samples: list[tuple[Labels, float]]) -> str:
    if not samples:
        return "nil"
    return ", ".join(f"{labels} {format_float(value)}" for labels, value in samples)
