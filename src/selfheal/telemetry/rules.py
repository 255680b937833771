"""Prometheus rule groups: loading them (plain or as a PrometheusRule) and evaluating them.

Alerting rules follow Prometheus' state machine: an alert whose expression returns a series
becomes *pending*; once it has been returned for the rule's `for` duration it is *firing*;
when the series disappears a pending alert is dropped and a firing one is *resolved* (kept
firing for `keep_firing_for` first, when set). Resolved alerts are reported for 15 minutes,
as Prometheus keeps sending them, and then forgotten. Recording rules write their result
back into the TSDB under the record name.

Every expression is parsed when the file is loaded: a bad expression or template refuses the
whole file, naming file:line:col.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pydantic

from selfheal.domain.errors import ConfigError, SelfhealError, SourceLocation
from selfheal.domain.model import Alert, AlertState
from selfheal.formats import durations, sourced_yaml, text_files
from selfheal.telemetry import promql, sources, templates

Duration = Annotated[float, pydantic.BeforeValidator(durations.parse_duration)]
RESOLVED_RETENTION_S = 15 * 60.0


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RuleSpec(_Strict):
    """One rule as written: `alert` or `record`, never both."""

    alert: str | None = None
    record: str | None = None
    expr: str | int | float
    for_: Duration = pydantic.Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)

    @pydantic.model_validator(mode="after")
    def _one_kind(self) -> RuleSpec:
        if (self.alert is None) == (self.record is None):
            raise ValueError("a rule needs exactly one of `alert` or `record`")
        if self.record is not None and (self.annotations or self.for_ or self.keep_firing_for):
            raise ValueError("a recording rule takes no `for`, `keep_firing_for` or annotations")
        return self


class GroupSpec(_Strict):
    """One rule group as written."""

    name: str
    interval: Duration | None = None
    rules: tuple[RuleSpec, ...] = ()


class RuleFile(_Strict):
    """A plain rule file: `groups:` at the top."""

    groups: tuple[GroupSpec, ...]


class PrometheusRuleSpec(_Strict):
    """The spec of a PrometheusRule resource."""

    groups: tuple[GroupSpec, ...]


class PrometheusRule(pydantic.BaseModel):
    """The `monitoring.coreos.com/v1` custom resource; only its spec matters here."""

    model_config = pydantic.ConfigDict(extra="allow")
    apiVersion: str  # noqa: N815 - the Kubernetes field name
    kind: str
    spec: PrometheusRuleSpec


@dataclass(frozen=True)
class Rule:
    """A loaded rule: its spec, its parsed expression and templates."""

    spec: RuleSpec
    expr: Any
    label_templates: dict[str, templates.Template]
    annotation_templates: dict[str, templates.Template]
    location: SourceLocation

    @property
    def name(self) -> str:
        return self.spec.alert or self.spec.record or ""


@dataclass(frozen=True)
class RuleGroup:
    """A loaded group: its rules in order and the file it came from."""

    name: str
    interval: float | None
    rules: tuple[Rule, ...]
    source: str


def load_rule_file(path: Path) -> list[RuleGroup]:
    """Load every group in a rule file (plain or PrometheusRule); refuse it whole if bad."""
    text = text_files.read_text(path, kind=text_files.RULES)
    document = sourced_yaml.load_yaml(text, source=str(path))
    prefix: list[str | int] = []
    if isinstance(document.data, dict) and document.data.get("kind") == "PrometheusRule":
        groups = sourced_yaml.load_model(PrometheusRule, document).spec.groups
        prefix = ["spec"]
    else:
        groups = sourced_yaml.load_model(RuleFile, document).groups
    names = [group.name for group in groups]
    loaded = []
    for group_index, group in enumerate(groups):
        if names.count(group.name) > 1:
            raise ConfigError(
                f"group name {group.name!r} is used twice",
                location=document.locate([*prefix, "groups", group_index, "name"]),
            )
        rules = []
        for rule_index, rule in enumerate(group.rules):
            where = [*prefix, "groups", group_index, "rules", rule_index]
            rules.append(_load_rule(rule, document, where))
        loaded.append(RuleGroup(group.name, group.interval, tuple(rules), str(path)))
    return loaded


def _load_rule(
    spec: RuleSpec, document: sourced_yaml.SourcedDocument, where: list[str | int]
) -> Rule:
    expression = str(spec.expr)
    try:
        parsed = promql.parse(expression)
    except promql.PromQLError as exc:
        location = document.locate([*where, "expr"])
        line, column = _position_in(document, [*where, "expr"], expression, exc)
        raise ConfigError(
            f"invalid PromQL: {exc}",
            location=SourceLocation(location.source, line, column, location.path),
        ) from exc
    try:
        label_templates = {k: templates.Template(v) for k, v in spec.labels.items()}
        annotation_templates = {k: templates.Template(v) for k, v in spec.annotations.items()}
    except templates.TemplateError as exc:
        raise ConfigError(str(exc), location=document.locate(where)) from exc
    return Rule(spec, parsed, label_templates, annotation_templates, document.locate(where))


def _position_in(
    document: sourced_yaml.SourcedDocument,
    path: list[str | int],
    expression: str,
    error: promql.PromQLError,
) -> tuple[int | None, int | None]:
    """The file position of a PromQL error.

    Exact for one-line plain scalars and for literal blocks (`expr: |`), where every line
    of the expression is a line of the file; otherwise the start of the `expr` value.
    """
    location = document.locate(path)
    offset = getattr(error, "position", None)
    if location.line is None or not isinstance(offset, int):
        return location.line, location.column
    raw = document_line(document, location.line)
    start = (location.column or 1) - 1
    if "\n" not in expression and raw[start : start + len(expression)] == expression:
        return location.line, start + offset + 1
    if raw[start:].startswith("|") and error.line is not None and error.column is not None:
        line = location.line + error.line
        content = document_line(document, line)
        indent = len(content) - len(content.lstrip(" "))
        return line, indent + error.column
    return location.line, location.column


def document_line(document: sourced_yaml.SourcedDocument, line: int) -> str:
    node = document.root
    if node is None or node.start_mark.buffer is None:
        return ""
    lines = str(node.start_mark.buffer).split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


def load_rule_files(paths: Sequence[Path]) -> list[RuleGroup]:
    groups: list[RuleGroup] = []
    for path in paths:
        groups += load_rule_file(path)
    return groups


@dataclass
class _Active:
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    active_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    # When a firing alert's condition first went missing: keep_firing_for counts from here,
    # as in Prometheus, not from the last evaluation that returned the series.
    missing_since: float | None = None


@dataclass
class _RuleState:
    active: dict[tuple[tuple[str, str], ...], _Active] = field(default_factory=dict)
    # Series a recording rule wrote at its last evaluation, to mark stale when they vanish.
    recorded: set[tuple[tuple[str, str], ...]] = field(default_factory=set)


class RuleEvaluator:
    """Evaluates rule groups against a queryable store and tracks alert states."""

    def __init__(
        self,
        groups: Sequence[RuleGroup],
        *,
        storage: Any = None,
        source: sources.InstantSource | None = None,
        external_labels: Mapping[str, str] | None = None,
    ) -> None:
        """Evaluate against `source`, or against a local `storage` (a TSDB) when given."""
        if source is None:
            if storage is None:
                raise ValueError("a rule evaluator needs a source or a storage")
            source = sources.LocalSource(storage)
        self.groups = list(groups)
        self._source = source
        self._external = dict(external_labels or {})
        self._states: dict[tuple[str, str, int], _RuleState] = {}
        self.errors: list[str] = []

    def evaluate(self, *, at: float) -> list[Alert]:
        """Evaluate every rule at `at`; return pending, firing and recently resolved alerts."""
        alerts: list[Alert] = []
        for group in self.groups:
            for index, rule in enumerate(group.rules):
                key = (group.source, group.name, index)
                state = self._states.setdefault(key, _RuleState())
                try:
                    vector = self._source.instant(rule.expr, at=at)
                except SelfhealError as exc:
                    # A failed evaluation (a query error, Prometheus unreachable) changes
                    # nothing: recorded series stay, and alerts keep their state rather than
                    # resolving, as Prometheus does.
                    self.errors.append(f"{rule.location}: {exc}")
                    if rule.spec.alert is not None:
                        name = rule.spec.alert
                        alerts += [_to_alert(name, active) for active in state.active.values()]
                    continue
                if rule.spec.record is not None:
                    self._record(rule, state, vector, at=at)
                    continue
                alerts += self._step_alert(rule, state, vector, at=at)
        return alerts

    def _record(
        self,
        rule: Rule,
        state: _RuleState,
        vector: list[tuple[dict[str, str], float]],
        *,
        at: float,
    ) -> None:
        samples = []
        for labels, value in vector:
            out = {k: v for k, v in labels.items() if k != "__name__"}
            out.update(rule.spec.labels)
            out["__name__"] = rule.spec.record or ""
            samples.append((out, value))
        # A recorded series that the rule no longer returns ends at once (a stale marker),
        # as Prometheus' rule group does, rather than lingering for the 5-minute lookback.
        current = {tuple(sorted((k, v) for k, v in out.items() if v)) for out, _ in samples}
        stale = [dict(key) for key in state.recorded - current]
        state.recorded = current
        ingest = getattr(self._source, "ingest", None)
        if ingest is not None:
            ingest(at=at, samples=samples, stale=stale)

    def _step_alert(
        self,
        rule: Rule,
        state: _RuleState,
        vector: list[tuple[dict[str, str], float]],
        *,
        at: float,
    ) -> list[Alert]:
        name = rule.spec.alert or ""
        seen: set[tuple[tuple[str, str], ...]] = set()
        for labels, value in vector:
            # Templates see the series as the expression returned it (metric name included,
            # rule labels and alertname not), as in Prometheus; a label that renders empty
            # is removed, even one the series had.
            extra = {
                k: _render(t, labels=labels, value=value, external=self._external)
                for k, t in rule.label_templates.items()
            }
            merged = {**{k: v for k, v in labels.items() if k != "__name__"}, **extra}
            full = {**{k: v for k, v in merged.items() if v}, "alertname": name}
            annotations = {
                k: _render(t, labels=labels, value=value, external=self._external)
                for k, t in rule.annotation_templates.items()
            }
            key = tuple(sorted(full.items()))
            if key in seen:
                self.errors.append(f"{rule.location}: vector contains duplicate alert labels")
                continue
            seen.add(key)
            current = state.active.get(key)
            if current is None or current.resolved_at is not None:
                current = _Active(full, annotations, value, active_at=at)
                state.active[key] = current
            current.value, current.annotations, current.missing_since = value, annotations, None
            if current.fired_at is None and at - current.active_at >= rule.spec.for_:
                current.fired_at = at
        for key, current in list(state.active.items()):
            if key in seen:
                continue
            if current.resolved_at is not None:
                if at - current.resolved_at > RESOLVED_RETENTION_S:
                    del state.active[key]
            elif current.fired_at is None:
                del state.active[key]
            else:
                if current.missing_since is None:
                    current.missing_since = at
                if at - current.missing_since >= rule.spec.keep_firing_for:
                    current.resolved_at = at
        return [_to_alert(name, current) for current in state.active.values()]


def _render(
    template: templates.Template,
    *,
    labels: Mapping[str, str],
    value: float,
    external: Mapping[str, str],
) -> str:
    try:
        return template.render(labels=labels, value=value, external=external)
    except templates.TemplateError as exc:
        # As in Prometheus, the alert still goes out, with the error in place of the text,
        # rather than one bad label value stopping every rule's evaluation.
        return f"<error expanding template: {exc}>"


def _to_alert(name: str, current: _Active) -> Alert:
    if current.resolved_at is not None:
        state = AlertState.RESOLVED
    elif current.fired_at is not None:
        state = AlertState.FIRING
    else:
        state = AlertState.PENDING
    return Alert(
        name=name,
        labels=dict(current.labels),
        annotations=dict(current.annotations),
        state=state,
        value=current.value,
        active_at=current.active_at,
        fired_at=current.fired_at,
        resolved_at=current.resolved_at,
    )
