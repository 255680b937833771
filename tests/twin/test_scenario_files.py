"""Scenario files: bad input is refused with the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.domain.errors import ConfigError
from selfheal.twin import scenario

GOOD = """\
name: tiny
duration: 5m
load:
  base_rps: 100
faults:
  - {at: 30s, type: load_step, factor: 3}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads_with_durations_in_seconds(tmp_path: Path) -> None:
    """Durations written as `5m` and `30s` become seconds."""
    loaded = scenario.load(str(write(tmp_path, GOOD)))
    assert loaded.duration == 300
    assert loaded.faults[0].at == 30


def test_unknown_fault_type_names_file_line_and_field(tmp_path: Path) -> None:
    """A fault of unknown type is refused, pointing at its `type` on line 6."""
    path = write(tmp_path, GOOD.replace("load_step", "load_spike"))
    with pytest.raises(ConfigError) as raised:
        scenario.load(str(path))
    message = str(raised.value)
    assert message.startswith(f"{path}:6:")
    assert "faults[0]" in message
    assert "load_spike" in message
    assert "load_step" in message  # the allowed types are listed


def test_misspelt_field_names_its_path(tmp_path: Path) -> None:
    """An unknown field inside a fault is refused, naming `faults[0].factr`."""
    path = write(tmp_path, GOOD.replace("factor: 3", "factr: 3"))
    with pytest.raises(ConfigError) as raised:
        scenario.load(str(path))
    assert "faults[0].factr" in str(raised.value)
    assert str(raised.value).startswith(f"{path}:6:")


def test_wrong_value_type_names_the_field(tmp_path: Path) -> None:
    """A duration that is not a duration is refused at `duration`, line 2."""
    path = write(tmp_path, GOOD.replace("duration: 5m", "duration: soon"))
    with pytest.raises(ConfigError) as raised:
        scenario.load(str(path))
    message = str(raised.value)
    assert message.startswith(f"{path}:2:11 (duration)")
    assert "soon" in message


def test_fault_on_unknown_service_is_refused(tmp_path: Path) -> None:
    """A fault that names a service the platform lacks is refused."""
    text = GOOD + "  - {at: 60s, type: pod_crash, service: checkout}\n"
    with pytest.raises(ConfigError) as raised:
        scenario.load(str(write(tmp_path, text)))
    assert "checkout" in str(raised.value)


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    """A scenario without `load` is refused, naming the missing field."""
    path = write(tmp_path, "name: x\nduration: 60\n")
    with pytest.raises(ConfigError) as raised:
        scenario.load(str(path))
    assert "load" in str(raised.value)
    assert "required" in str(raised.value)


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    """Broken YAML is reported with its line and column."""
    path = write(tmp_path, "name: x\nload: [unclosed\n")
    with pytest.raises(ConfigError) as raised:
        scenario.load(str(path))
    assert str(raised.value).startswith(f"{path}:3:")


def test_unknown_shipped_scenario_lists_the_known_ones() -> None:
    """Asking for a scenario name that is not shipped lists the ones that are."""
    with pytest.raises(ConfigError) as raised:
        scenario.load("black-friday")
    assert "flash-sale" in str(raised.value)
    assert "steady" in str(raised.value)


def test_a_responder_without_a_verdict_is_refused_at_its_path(tmp_path: Path) -> None:
    """A scripted on-call person must say approve or deny; `maybe` names its field."""
    text = GOOD + (
        "responders:\n"
        "  - {alert: OrderServiceCPUThrottling, verdict: maybe, as: alice, reason: ok}\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        scenario.load(str(path))
    assert "responders[0].verdict" in str(raised.value)


def test_a_responder_is_read_with_its_name_and_delay(tmp_path: Path) -> None:
    text = GOOD + (
        "responders:\n"
        "  - {alert: A, verdict: deny, as: bob@example.com, reason: not now, after: 1m}\n"
    )
    [responder] = scenario.load(str(write(tmp_path, text))).responders
    assert (responder.name, responder.verdict, responder.after) == ("bob@example.com", "deny", 60)
