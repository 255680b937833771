"""`selfheal run` refuses to start on bad input, naming the place, and starts nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfheal.domain.errors import ConfigError
from selfheal.runtime.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the flash-sale example with its state inside the copy."""
    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE, copy)
    config = copy / "selfheal.yaml"
    text = config.read_text(encoding="utf-8").replace("../../.selfheal/flash-sale", "state")
    config.write_text(text, encoding="utf-8")
    return copy


def run(example: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfheal", "run", "--config", str(example / "selfheal.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def assert_refused(result: subprocess.CompletedProcess[str], example: Path, where: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {where}"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (example / "state").exists(), "state was created before validation finished"


def test_unknown_config_key_is_refused_with_its_path(example: Path) -> None:
    """A misspelt key in selfheal.yaml names the file, line and key path."""
    edit(example / "selfheal.yaml", "budget:\n  daily: 100", "budget:\n  dialy: 100")
    result = run(example)
    assert_refused(result, example, f"{example / 'selfheal.yaml'}:")
    assert "budget.dialy" in result.stderr


def test_a_path_the_file_system_cannot_look_up_is_refused_at_its_key(example: Path) -> None:
    """A file name longer than the file system allows is a config error, not an OSError."""
    edit(example / "selfheal.yaml", "guardrails: guardrails.yaml", f"guardrails: {'g' * 300}.yaml")
    with pytest.raises(ConfigError, match="cannot be looked up") as refused:
        load_settings(example / "selfheal.yaml")
    assert str(refused.value).startswith(f"{example / 'selfheal.yaml'}:")
    assert "(guardrails)" in str(refused.value)


def test_invalid_promql_in_a_rule_names_file_line_and_column(example: Path) -> None:
    """A rule whose expression does not parse is refused at its line in rules.yaml."""
    edit(
        example / "rules.yaml",
        "by (namespace) (\n            rate(",
        "by (namespace) (\n            rat(",
    )
    result = run(example)
    assert_refused(result, example, f"{example / 'rules.yaml'}:")
    assert "invalid PromQL" in result.stderr
    assert "expr" in result.stderr


def test_rego_syntax_error_names_file_line_and_column(example: Path) -> None:
    """A policy that does not parse is refused with its file:line:col."""
    policy = example / "policies" / "remediation.rego"
    edit(policy, "plans contains plan if {", "plans contains plan if {{")
    result = run(example)
    assert_refused(result, example, f"{policy}:")


def test_runbook_with_unknown_step_type_is_refused(example: Path) -> None:
    """A runbook step of an unknown type names the runbook file and line."""
    runbook = example / "runbooks" / "scale-up.yaml"
    edit(runbook, "type: kubernetes.wait_available", "type: kubernetes.wait_for_godot")
    result = run(example)
    assert_refused(result, example, f"{runbook}:")
    assert "kubernetes.wait_for_godot" in result.stderr


def test_runbook_with_a_needs_cycle_is_refused(example: Path) -> None:
    """`needs` that loop back are refused, naming the cycle."""
    runbook = example / "runbooks" / "scale-up.yaml"
    edit(
        runbook,
        "  - id: budget\n    type: budget.check\n",
        "  - id: budget\n    type: budget.check\n    needs: [verify]\n",
    )
    result = run(example)
    assert_refused(result, example, f"{runbook}:")
    assert "cycle" in result.stderr


def test_missing_rule_file_is_refused(example: Path) -> None:
    """A config naming a rule file that does not exist is refused at that entry."""
    edit(example / "selfheal.yaml", "rules: [rules.yaml]", "rules: [rulez.yaml]")
    result = run(example)
    assert_refused(result, example, f"{example / 'selfheal.yaml'}:")
    assert "rulez.yaml" in result.stderr


def test_a_rule_file_that_is_a_directory_is_refused_at_its_entry(example: Path) -> None:
    """A directory named as a rule file is called a directory, at the config's `rules` entry."""
    (example / "rules.yaml").unlink()
    (example / "rules.yaml").mkdir()
    result = run(example)
    assert_refused(result, example, f"{example / 'selfheal.yaml'}:10:9 (rules[0]):")
    assert "rule file rules.yaml is a directory, not a file" in result.stderr


def test_a_rule_file_not_in_utf8_is_refused_at_its_first_bad_byte(example: Path) -> None:
    """A rule file saved as Latin-1 names its own file:line:col, not a traceback."""
    rules = example / "rules.yaml"
    rules.write_bytes(rules.read_bytes().replace(b"alert: ", b"alert: Caf\xe9", 1))
    result = run(example)
    assert_refused(result, example, f"{rules}:")
    assert "not UTF-8 (byte 0xe9)" in result.stderr


def test_a_policy_file_over_the_limit_is_refused_unread(example: Path) -> None:
    """A 50 MB .rego file is refused by its size before the engine sees it."""
    policy = example / "policies" / "huge.rego"
    with policy.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    result = run(example)
    assert_refused(result, example, f"{policy}: the file is 52,428,800 bytes, over the 4 MiB")


def test_invalid_promql_in_an_anomaly_watch_names_its_line_and_path(example: Path) -> None:
    """A watch query that does not parse is refused at its line, with the watch's key path."""
    edit(example / "selfheal.yaml", "sum by (namespace) (rate(http_requests_total", "sum by (rate(")
    result = run(example)
    assert_refused(result, example, f"{example / 'selfheal.yaml'}:")
    assert "(anomalies.watches[0].query)" in result.stderr
    assert "not a valid PromQL query" in result.stderr


def test_unknown_detector_in_an_anomaly_watch_is_refused_naming_the_known_ones(
    example: Path,
) -> None:
    """A misspelt detector name is refused with the list of detectors that exist."""
    edit(example / "selfheal.yaml", "detector: quick", "detector: quik")
    result = run(example)
    assert_refused(result, example, f"{example / 'selfheal.yaml'}:")
    assert "(anomalies.watches[0].detector)" in result.stderr
    assert "unknown detector 'quik'" in result.stderr
    assert "ensemble" in result.stderr
