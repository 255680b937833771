"""`selfheal policy test` and `selfheal policy lint`, run as a user runs them: a subprocess."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from support import selfheal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale"

POLICY = "package selfheal.remediation\n\nanswer := input.n * 2\n"

# A function that calls itself: regorus accepts it, and evaluating it overflows the stack
# and kills the process (SIGSEGV), which no `except` can catch.
TESTS = """package p_test

import data.selfheal.remediation

test_passes if remediation.answer == 4 with input as {"n": 2}

forever(x) := forever(x + 1)

test_crashes_the_engine if forever(1) == 1

test_divides_by_zero if 1 / 0 == 1

test_fails if remediation.answer == 5 with input as {"n": 2}

test_still_runs_after_the_crash if true
"""


def write_bundle(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_example_policy_tests_all_pass() -> None:
    """Every example test prints PASS with its place, then the count; exit 0."""
    result = selfheal("policy", "test", str(EXAMPLE / "policies"))
    assert result.returncode == 0, result.stdout + result.stderr
    *lines, summary = result.stdout.splitlines()
    assert re.fullmatch(r"PASS: (\d+)/\1", summary)
    assert len(lines) == int(summary.split("/")[1]) >= 10
    test_file = re.escape(str(EXAMPLE / "policies" / "remediation_test.rego"))
    for line in lines:
        assert re.fullmatch(rf"PASS selfheal\.remediation_test\.test_\w+ \({test_file}:\d+\)", line)


def test_a_crashing_test_is_an_error_and_the_others_still_run(tmp_path: Path) -> None:
    """A test that kills the engine's process is ERROR; failures and errors are explained."""
    write_bundle(tmp_path, {"p.rego": POLICY, "p_test.rego": TESTS})
    result = selfheal("policy", "test", str(tmp_path))
    assert result.returncode == 1, result.stderr
    tests = tmp_path / "p_test.rego"
    assert result.stdout.splitlines() == [
        f"PASS p_test.test_passes ({tests}:5)",
        f"ERROR p_test.test_crashes_the_engine ({tests}:9)",
        (
            "    the Rego engine crashed the process (SIGSEGV) evaluating this test; "
            "a function that calls itself is a known cause"
        ),
        f"ERROR p_test.test_divides_by_zero ({tests}:11)",
        f"    {tests}:11:27: divide by zero",
        f"FAIL p_test.test_fails ({tests}:13)",
        "    undefined: an expression in the test's body did not hold",
        f"PASS p_test.test_still_runs_after_the_crash ({tests}:15)",
        "PASS: 2/5",
    ]


def test_a_test_that_runs_too_long_is_stopped_as_an_error(tmp_path: Path) -> None:
    """`--timeout` bounds each test: a runaway one is ERROR, the next still runs."""
    runaway = """package p_test

test_runaway if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}

test_next if true
"""
    write_bundle(tmp_path, {"p.rego": POLICY, "p_test.rego": runaway})
    result = selfheal("policy", "test", "--timeout", "1", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == [
        f"ERROR p_test.test_runaway ({tmp_path / 'p_test.rego'}:3)",
        "    still running after 1s; stopped",
    ]
    assert result.stdout.splitlines()[-1] == "PASS: 1/2"


def test_a_file_that_does_not_parse_exits_2_naming_line_and_column(tmp_path: Path) -> None:
    """No test can run; the error is one line, file:line:col first."""
    write_bundle(tmp_path, {"p.rego": POLICY, "x_test.rego": "package x_test\n\ntest_a if {\n"})
    for command in (["test"], ["lint", "--runbooks", str(tmp_path)]):
        result = selfheal("policy", *command, str(tmp_path))
        assert result.returncode == 2, command
        assert result.stderr == f"error: {tmp_path / 'x_test.rego'}:4:1: expecting expression\n"


def test_missing_or_empty_directory_exits_2(tmp_path: Path) -> None:
    """A directory that is not there, or has no .rego file, is named; nothing runs."""
    result = selfheal("policy", "test", str(tmp_path / "nowhere"))
    assert (result.returncode, result.stderr) == (
        2,
        f"error: {tmp_path / 'nowhere'}: no such directory: give the directory of .rego files\n",
    )
    result = selfheal("policy", "lint", str(tmp_path))
    assert (result.returncode, result.stderr) == (2, f"error: {tmp_path}: no .rego files here\n")


def test_a_directory_without_tests_fails_and_says_so(tmp_path: Path) -> None:
    """Zero tests is not a pass: exit 1 and a line saying none were found."""
    write_bundle(tmp_path, {"p.rego": POLICY})
    result = selfheal("policy", "test", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == "PASS: 0/0\n"
    assert "no tests" in result.stderr


def test_example_policy_lints_clean_against_the_example_runbooks() -> None:
    """The runbooks next to the policies are found by default; its plan checks out."""
    result = selfheal("policy", "lint", str(EXAMPLE / "policies"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "ok: 1 policy files, 1 plans checked\n"


def test_lint_names_unknown_runbooks_and_params_and_exits_1(tmp_path: Path) -> None:
    """Each problem is a line at the runbook's or param's place; a warning does not fail."""
    shutil.copytree(EXAMPLE / "runbooks", tmp_path / "runbooks")
    policy = """package selfheal.remediation

plans contains {"runbook": "restart", "params": {}, "risk": "low", "reason": ""} if input.a

plans contains {"runbook": "scale-up", "params": {
	"namespace": "p", "deployment": "d", "current_replicas": 1, "replicas": 2, "force": true,
}, "risk": "low", "reason": ""} if input.b

plans contains {"runbook": input.name, "risk": "low", "reason": ""} if input.c
"""
    write_bundle(tmp_path / "policies", {"remediation.rego": policy})
    result = selfheal("policy", "lint", str(tmp_path / "policies"))
    assert result.returncode == 1, result.stderr
    path = tmp_path / "policies" / "remediation.rego"
    assert result.stdout.splitlines() == [
        f'{path}:3:28: plan chooses unknown runbook "restart" (known: scale-up)',
        (
            f'{path}:6:77: plan passes param "force" that runbook "scale-up" does not take '
            "(it takes: current_replicas, deployment, max_replicas, namespace, replicas)"
        ),
        f"{path}:9:28: warning: plan's runbook is not a string literal; it cannot be checked",
        "2 problems in 1 policy files, 2 plans checked",
    ]


def test_lint_without_a_runbooks_directory_exits_2(tmp_path: Path) -> None:
    """With no `--runbooks` and no `../runbooks`, lint says where it looked."""
    write_bundle(tmp_path / "policies", {"p.rego": POLICY})
    result = selfheal("policy", "lint", str(tmp_path / "policies"))
    assert result.returncode == 2
    assert f"no runbooks directory next to the policies ({tmp_path / 'runbooks'})" in result.stderr
    assert "--runbooks" in result.stderr
