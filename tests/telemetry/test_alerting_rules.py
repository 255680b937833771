"""Alerting and recording rules: loading, and Prometheus' pending/firing/resolved states."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.domain.errors import ConfigError
from selfheal.domain.model import AlertState
from selfheal.telemetry import TSDB, Matcher, MatchOp
from selfheal.telemetry.rules import RuleEvaluator, load_rule_file

RULES = """\
groups:
  - name: demo
    rules:
      - record: job:load:max
        expr: max by (job) (load)
      - alert: HighLoad
        expr: load > 10
        for: 30s
        keep_firing_for: {keep}
        labels:
          severity: page
          pod: "{{{{ $labels.pod }}}}"
        annotations:
          summary: "{{{{ $labels.pod }}}} at {{{{ $value }}}}"
"""


def rules_file(tmp_path: Path, *, keep: str = "0s") -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(keep=keep), encoding="utf-8")
    return path


def feed(db: TSDB, at: float, value: float, pod: str = "a") -> None:
    db.append({"__name__": "load", "job": "web", "pod": pod}, timestamp=at, value=value)


def states(evaluator: RuleEvaluator, at: float) -> list[tuple[str, AlertState]]:
    return [(a.labels["pod"], a.state) for a in evaluator.evaluate(at=at)]


def test_alert_is_pending_then_firing_after_for_then_resolved(tmp_path: Path) -> None:
    """Held 30 s the alert fires; gone, a firing alert resolves (and is still reported)."""
    db = TSDB()
    evaluator = RuleEvaluator(load_rule_file(rules_file(tmp_path)), storage=db)
    feed(db, 0, 20)
    assert states(evaluator, 0) == [("a", AlertState.PENDING)]
    feed(db, 20, 20)
    assert states(evaluator, 20) == [("a", AlertState.PENDING)]
    feed(db, 30, 20)
    alerts = evaluator.evaluate(at=30)
    assert [(a.state, a.active_at, a.fired_at) for a in alerts] == [(AlertState.FIRING, 0, 30)]
    assert alerts[0].annotations["summary"] == "a at 20"
    assert alerts[0].labels["severity"] == "page"
    feed(db, 40, 1)
    resolved = evaluator.evaluate(at=40)
    assert [(a.state, a.resolved_at) for a in resolved] == [(AlertState.RESOLVED, 40)]


def test_a_pending_alert_that_goes_away_never_fires(tmp_path: Path) -> None:
    """An alert that does not hold for its `for` is dropped, not resolved."""
    db = TSDB()
    evaluator = RuleEvaluator(load_rule_file(rules_file(tmp_path)), storage=db)
    feed(db, 0, 20)
    evaluator.evaluate(at=0)
    feed(db, 10, 1)
    assert evaluator.evaluate(at=10) == []


def test_keep_firing_for_holds_a_firing_alert(tmp_path: Path) -> None:
    """With keep_firing_for 20s, the alert stays firing 20 s after its condition clears."""
    db = TSDB()
    evaluator = RuleEvaluator(load_rule_file(rules_file(tmp_path, keep="20s")), storage=db)
    for at in (0, 30):
        feed(db, at, 20)
        evaluator.evaluate(at=at)
    feed(db, 40, 1)
    assert states(evaluator, 40) == [("a", AlertState.FIRING)]
    feed(db, 50, 1)
    assert states(evaluator, 50) == [("a", AlertState.FIRING)]
    feed(db, 60, 1)
    assert states(evaluator, 60) == [("a", AlertState.RESOLVED)]


def test_each_label_set_is_its_own_alert(tmp_path: Path) -> None:
    """Two pods over the threshold give two alerts."""
    db = TSDB()
    evaluator = RuleEvaluator(load_rule_file(rules_file(tmp_path)), storage=db)
    feed(db, 0, 20, pod="a")
    feed(db, 0, 30, pod="b")
    assert sorted(states(evaluator, 0)) == [("a", AlertState.PENDING), ("b", AlertState.PENDING)]


def test_recording_rules_write_back_into_the_store(tmp_path: Path) -> None:
    """A recording rule's result is a new series under the record name."""
    db = TSDB()
    evaluator = RuleEvaluator(load_rule_file(rules_file(tmp_path)), storage=db)
    feed(db, 0, 7, pod="a")
    feed(db, 0, 9, pod="b")
    evaluator.evaluate(at=0)
    [(labels, samples)] = db.select(
        [Matcher("__name__", MatchOp.EQUAL, "job:load:max")], start=-1, end=1
    )
    assert labels.to_dict() == {"__name__": "job:load:max", "job": "web"}
    assert samples == [(0, 9)]


def test_prometheus_rule_resources_load_too(tmp_path: Path) -> None:
    """A PrometheusRule custom resource is read through its spec."""
    path = tmp_path / "crd.yaml"
    path.write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"
        "metadata: {name: x}\nspec:\n  groups:\n    - name: g\n      rules:\n"
        "        - alert: A\n          expr: up == 0\n",
        encoding="utf-8",
    )
    [group] = load_rule_file(path)
    assert [rule.name for rule in group.rules] == ["A"]


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("expr: load > 10", "expr: load >> 10"),
        ("for: 30s", "for: soon"),
        ("severity: page", "severity: {{ $value | explode }}"),
    ],
)
def test_bad_rules_are_refused_naming_the_place(tmp_path: Path, broken: str, expected: str) -> None:
    """Bad PromQL, a bad duration or an unsupported template refuse the file with its line."""
    path = rules_file(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace(broken, expected), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_rule_file(path)
    assert str(raised.value).startswith(f"{path}:")
