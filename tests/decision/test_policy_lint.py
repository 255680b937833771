"""`lint`: plans in the decision package checked against the runbooks, and the scanner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal.decision import lint
from selfheal.domain import errors

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale" / "policies"

# The flash-sale runbook's declaration (examples/flash-sale/runbooks/scale-up.yaml).
SCALE_UP = lint.RunbookSignature(
    params=frozenset({"namespace", "deployment", "current_replicas", "replicas", "max_replicas"}),
    required=frozenset({"namespace", "deployment", "current_replicas", "replicas"}),
)
RUNBOOKS = {"scale-up": SCALE_UP, "restart": lint.RunbookSignature(params=frozenset({"pod"}))}

PLANS = """package selfheal.remediation

plans contains {
	"runbook": "rollback",
	"params": {"namespace": "production"},
	"risk": "high",
	"reason": "x",
} if input.rollback

plans contains plan if {
	input.scale
	plan := {"runbook": "scale-up", "params": {
		"namespace": "p", "deployment": "d", "current_replicas": 1, "replicas": 2,
		"replica_count": 3,
	}, "risk": "low", "reason": "y"}
}
"""


def write_bundle(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def messages(report: lint.LintReport) -> list[str]:
    return [str(finding) for finding in report.findings]


def test_example_policy_lints_clean_against_its_runbook() -> None:
    """The flash-sale policy's one plan names scale-up with params scale-up takes."""
    report = lint.lint_directory(EXAMPLE, runbooks={"scale-up": SCALE_UP})
    assert report.ok
    assert report.findings == ()
    assert [Path(file).name for file in report.policy_files] == ["remediation.rego"]
    assert [plan.runbook for plan in report.plans] == ["scale-up"]
    assert report.checked == 1


def test_unknown_runbook_and_unknown_param_are_named_at_their_place(tmp_path: Path) -> None:
    """Each problem points at the runbook's name or the param's key, line and column."""
    write_bundle(tmp_path, {"p.rego": PLANS})
    report = lint.lint_directory(tmp_path, runbooks=RUNBOOKS)
    path = tmp_path / "p.rego"
    assert not report.ok
    assert messages(report) == [
        f'{path}:4:13: plan chooses unknown runbook "rollback" (known: restart, scale-up)',
        (
            f'{path}:14:3: plan passes param "replica_count" that runbook "scale-up" does not '
            "take (it takes: current_replicas, deployment, max_replicas, namespace, replicas)"
        ),
    ]
    assert report.checked == 2


def test_missing_required_param_is_a_problem(tmp_path: Path) -> None:
    """A literal params object without a required param would fail when the plan runs."""
    policy = """package selfheal.remediation

plans contains {"runbook": "scale-up", "params": {"namespace": "p"}, "risk": "low", "reason": ""}
"""
    write_bundle(tmp_path, {"p.rego": policy})
    report = lint.lint_directory(tmp_path, runbooks=RUNBOOKS)
    assert [(f.location.line, f.location.column) for f in report.problems] == [(3, 40)] * 3
    assert [f.message for f in report.problems] == [
        f'plan omits param "{name}", which runbook "scale-up" requires'
        for name in ("current_replicas", "deployment", "replicas")
    ]


def test_computed_runbook_or_params_warn_but_pass(tmp_path: Path) -> None:
    """What the scanner cannot read is said, as a warning: lint still passes."""
    policy = """package selfheal.remediation

plans contains {"runbook": name, "risk": "low", "reason": ""} if name := input.runbook

plans contains {"runbook": "restart", "params": input.params, "risk": "low", "reason": ""} if true
"""
    write_bundle(tmp_path, {"p.rego": policy})
    report = lint.lint_directory(tmp_path, runbooks=RUNBOOKS)
    assert report.ok
    assert [f.severity for f in report.findings] == [lint.Severity.WARNING] * 2
    assert messages(report)[0] == (
        f"{tmp_path / 'p.rego'}:3:28: warning: plan's runbook is not a string literal; "
        "it cannot be checked"
    )
    assert report.checked == 1


def test_tests_and_other_packages_are_not_scanned(tmp_path: Path) -> None:
    """Only the decision package's policy files make plans; test inputs and helpers do not."""
    write_bundle(
        tmp_path,
        {
            "p.rego": "package selfheal.remediation\n\nanswer := 1\n",
            "p_test.rego": 'package p_test\n\ntest_x if {"runbook": "nope"}.runbook\n',
            "other.rego": 'package other\n\nplan := {"runbook": "nope"}\n',
        },
    )
    report = lint.lint_directory(tmp_path, runbooks=RUNBOOKS)
    assert report.ok
    assert report.plans == ()
    assert sorted(Path(file).name for file in report.policy_files) == ["other.rego", "p.rego"]


def test_a_file_that_does_not_parse_is_a_config_error_with_line_and_column(
    tmp_path: Path,
) -> None:
    """Lint compiles every file, tests included, and names the broken one's position."""
    write_bundle(
        tmp_path,
        {
            "p.rego": "package selfheal.remediation\n\nanswer := 1\n",
            "p_test.rego": "package t\n\nx if {\n",
        },
    )
    with pytest.raises(errors.ConfigError) as caught:
        lint.lint_directory(tmp_path, runbooks=RUNBOOKS)
    assert str(caught.value).startswith(f"{tmp_path / 'p_test.rego'}:4:1: ")


def test_a_directory_without_the_decision_package_is_refused(tmp_path: Path) -> None:
    """Nothing in the directory could decide: lint says which package is missing."""
    write_bundle(tmp_path, {"p.rego": "package other\n\nx := 1\n"})
    with pytest.raises(errors.ConfigError, match=r"package selfheal\.remediation"):
        lint.lint_directory(tmp_path, runbooks=RUNBOOKS)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_missing_or_empty_directory_is_a_config_error(tmp_path: Path, make: str) -> None:
    """A directory that is not there, or holds no .rego file, is named."""
    directory = tmp_path / "policies"
    if make == "empty":
        directory.mkdir()
    with pytest.raises(errors.ConfigError, match=str(directory)):
        lint.lint_directory(directory, runbooks=RUNBOOKS)


def test_scanner_ignores_comments_strings_and_comprehensions() -> None:
    """`"runbook"` in a comment, inside a string or as a comprehension's key is no plan."""
    source = """package selfheal.remediation
# plans contains {"runbook": "in-a-comment"}
note := "{\\"runbook\\": \\"in-a-string\\"}"
raw := `{"runbook": "in-a-raw-string"}`
by_name := {"runbook": name | some name in ["a"]}
plans contains {"reason": "a } and a # in a string", "runbook": "restart", "params": {
	"pod": "p", # "ignored": 1
}} if true
"""
    plans = lint.find_plans(source, source="p.rego")
    assert [(plan.runbook, plan.location.line, plan.location.column) for plan in plans] == [
        ("restart", 6, 16)
    ]
    assert [name for name, _ in plans[0].params or ()] == ["pod"]


_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@settings(max_examples=200, deadline=None)
@given(runbook=_NAMES, params=st.lists(_NAMES, max_size=4, unique=True), indent=st.booleans())
def test_scanner_reads_back_any_plan_literal(
    runbook: str, params: list[str], *, indent: bool
) -> None:
    """Whatever the names (quotes, braces, `#`, unicode), the scanner reads them back."""
    separator = ",\n\t\t" if indent else ", "
    body = separator.join(f"{json.dumps(name)}: {index}" for index, name in enumerate(params))
    source = (
        "package selfheal.remediation\n\nplans contains "
        f'{{"runbook": {json.dumps(runbook)}, "params": {{{body}}}, "risk": "low"}} if true\n'
    )
    [plan] = lint.find_plans(source, source="p.rego")
    assert plan.runbook == runbook
    assert [name for name, _ in plan.params or ()] == params
    assert (plan.runbook_location.line, plan.runbook_location.column) == (3, 28)
