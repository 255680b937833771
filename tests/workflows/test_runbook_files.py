"""Runbook files: validated whole, with errors naming file:line:col and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.domain.actions import StepType
from selfheal.domain.errors import ConfigError
from selfheal.workflows import load_runbook, load_runbooks

STEP_TYPES = {
    "kubernetes.scale": StepType(
        "kubernetes.scale",
        frozenset({"deployment", "replicas"}),
        frozenset({"deployment", "replicas"}),
    ),
    "notify": StepType("notify", frozenset({"message"}), frozenset({"message"})),
}

GOOD = """\
name: grow
params:
  replicas: {type: integer, required: true}
steps:
  - id: scale
    type: kubernetes.scale
    params: {deployment: web, replicas: "{{ params.replicas }}"}
  - id: tell
    type: notify
    needs: [scale]
    params: {message: "now {{ steps.scale.replicas }}"}
compensation:
  - id: page
    type: notify
    params: {message: "failed"}
on_failure: [page]
"""


def write(tmp_path: Path, text: str, name: str = "runbook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_runbook_loads_in_needs_order(tmp_path: Path) -> None:
    """Steps come out in an order that respects `needs`; defaults are filled."""
    runbook = load_runbook(write(tmp_path, GOOD), step_types=STEP_TYPES)
    assert [step.id for step in runbook.order()] == ["scale", "tell"]
    assert runbook.steps[0].retry.attempts == 1
    assert runbook.resolve_params({"replicas": 5}) == {"replicas": 5}


def test_unknown_step_type_names_the_line(tmp_path: Path) -> None:
    """A step of an unknown type is refused at its `type` line, listing the known types."""
    path = write(tmp_path, GOOD.replace("type: kubernetes.scale", "type: kubernetes.explode"))
    with pytest.raises(ConfigError) as raised:
        load_runbook(path, step_types=STEP_TYPES)
    message = str(raised.value)
    assert message.startswith(f"{path}:6:11 (steps[0].type)")
    assert "kubernetes.explode" in message
    assert "notify" in message


def test_needs_cycle_is_refused(tmp_path: Path) -> None:
    """Two steps that need each other are a cycle, named in the error."""
    text = GOOD.replace(
        "  - id: scale\n    type: kubernetes.scale\n",
        "  - id: scale\n    type: kubernetes.scale\n    needs: [tell]\n",
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_runbook(path, step_types=STEP_TYPES)
    assert "cycle" in str(raised.value)
    assert "scale" in str(raised.value)
    assert str(raised.value).startswith(f"{path}:")


def test_needs_naming_a_missing_step_is_refused(tmp_path: Path) -> None:
    """`needs` must name a step of the same runbook."""
    path = write(tmp_path, GOOD.replace("needs: [scale]", "needs: [scael]"))
    with pytest.raises(ConfigError, match="unknown step 'scael'"):
        load_runbook(path, step_types=STEP_TYPES)


def test_param_the_step_type_does_not_take_is_refused(tmp_path: Path) -> None:
    """A misspelt step param is named with the params the step type takes."""
    path = write(tmp_path, GOOD.replace("deployment: web", "deploymnt: web"))
    with pytest.raises(ConfigError) as raised:
        load_runbook(path, step_types=STEP_TYPES)
    assert "deploymnt" in str(raised.value)
    assert "steps[0].params" in str(raised.value)


def test_reference_to_an_undeclared_param_is_refused(tmp_path: Path) -> None:
    """`{{ params.x }}` must name a declared runbook param."""
    path = write(tmp_path, GOOD.replace("{{ params.replicas }}", "{{ params.count }}"))
    with pytest.raises(ConfigError, match="does not declare"):
        load_runbook(path, step_types=STEP_TYPES)


def test_on_failure_must_name_a_compensation_step(tmp_path: Path) -> None:
    """Runbook-level on_failure names compensation steps only."""
    path = write(tmp_path, GOOD.replace("on_failure: [page]", "on_failure: [pager]"))
    with pytest.raises(ConfigError, match="pager"):
        load_runbook(path, step_types=STEP_TYPES)


def test_duplicate_runbook_names_in_a_directory_are_refused(tmp_path: Path) -> None:
    """Two files defining the same runbook name are an error naming the second file."""
    write(tmp_path, GOOD, "a.yaml")
    second = write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ConfigError) as raised:
        load_runbooks(tmp_path, step_types=STEP_TYPES)
    assert str(second) in str(raised.value)


def test_resolve_params_refuses_unknown_and_missing(tmp_path: Path) -> None:
    """Params a runbook does not declare, or required ones left out, are refused."""
    runbook = load_runbook(write(tmp_path, GOOD), step_types=STEP_TYPES)
    with pytest.raises(ConfigError, match="takes no params"):
        runbook.resolve_params({"replicas": 3, "colour": "red"})
    with pytest.raises(ConfigError, match="needs param 'replicas'"):
        runbook.resolve_params({})
