"""The flash-sale policy's decisions, the output contract, the bundle hash and the test runner."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfheal.decision import engine, policy
from selfheal.domain import errors, model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale" / "policies"

# The input documented in docs/policies.md: order-service throttled at 2 replicas.
FLASH_SALE_INPUT: dict[str, Any] = {
    "incident": {
        "id": "inc-0001",
        "fingerprint": "3f2a9c0d1e4b5a67",
        "alert": "OrderServiceCPUThrottling",
        "labels": {
            "alertname": "OrderServiceCPUThrottling",
            "namespace": "production",
            "service": "order-service",
            "severity": "critical",
        },
        "annotations": {"summary": "order-service is CPU-throttled"},
        "value": 0.42,
        "onset_at": 1767225660.0,
    },
    "target": {
        "kind": "Deployment",
        "namespace": "production",
        "name": "order-service",
        "replicas": 2,
        "available_replicas": 2,
    },
    "context": {
        "budget": {
            "daily_budget": 100.0,
            "spent_today": 12.5,
            "cost_per_replica_hour": 0.5,
            "currency": "USD",
        },
        "slo": {"p95_latency_seconds": 0.2},
        "now": 1767225672.0,
    },
    "runbooks": {
        "scale-up": {
            "params": ["current_replicas", "deployment", "max_replicas", "namespace", "replicas"]
        }
    },
}


@pytest.fixture(scope="module")
def bundle() -> Iterator[policy.PolicyBundle]:
    """The flash-sale example policy, loaded once for the module."""
    loaded = policy.PolicyBundle.load(EXAMPLE)
    yield loaded
    loaded.close()


def flash_sale(**changes: Any) -> dict[str, Any]:
    """The documented input with some sections' fields replaced (None removes a section)."""
    document = copy.deepcopy(FLASH_SALE_INPUT)
    for section, fields in changes.items():
        if fields is None:
            document.pop(section)
        else:
            _merge(document[section], fields)
    return document


def _merge(into: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def write_bundle(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_throttling_alert_plans_scale_up_to_five_replicas(bundle: policy.PolicyBundle) -> None:
    """The flash-sale incident gets one medium-risk scale-up plan to 5 replicas."""
    output = bundle.decide(flash_sale())
    assert output.deny == ()
    assert output.requires_approval is False
    (plan,) = output.plans
    assert plan.runbook == "scale-up"
    assert plan.risk == "medium"
    assert plan.params == {
        "namespace": "production",
        "deployment": "order-service",
        "current_replicas": 2,
        "replicas": 5,
        "max_replicas": 10,
    }
    assert "from 2 to 5 replicas" in plan.reason
    assert "36.00 USD/day" in plan.reason
    assert "remaining budget of 87.50 USD" in plan.reason


def test_over_budget_scale_up_is_denied_with_the_numbers(bundle: policy.PolicyBundle) -> None:
    """3 extra replicas at 0.50/h cost 36.00 a day; with 20.00 left the policy refuses."""
    output = bundle.decide(flash_sale(context={"budget": {"spent_today": 80.0}}))
    assert output.plans == ()
    assert output.deny == (
        (
            "scaling order-service by 3 replicas costs 36.00 USD/day, "
            "over the remaining budget of 20.00 USD"
        ),
    )


@pytest.mark.parametrize(
    ("replicas", "budget", "expected"),
    [
        pytest.param(1, {}, (3, "24.00"), id="one-replica-goes-to-the-minimum-of-3"),
        pytest.param(4, {}, (9, "60.00"), id="four-replicas-double-plus-one"),
        pytest.param(6, {}, (10, "48.00"), id="capped-at-10"),
        pytest.param(
            2, {"spent_today": 64.0}, (5, "36.00"), id="cost-equal-to-remaining-is-affordable"
        ),
        pytest.param(2, {"cost_per_replica_hour": 0.25}, (5, "18.00"), id="cheaper-replicas"),
    ],
)
def test_affordable_scale_ups_plan_the_desired_replicas(
    bundle: policy.PolicyBundle,
    replicas: int,
    budget: dict[str, float],
    expected: tuple[int, str],
) -> None:
    """The plan asks for min(max(2n + 1, 3), 10) replicas and quotes the daily cost."""
    desired, cost = expected
    policy_input = flash_sale(target={"replicas": replicas}, context={"budget": budget})
    (plan,) = bundle.decide(policy_input).plans
    assert plan.params["replicas"] == desired
    assert f"costs {cost} USD/day more" in plan.reason


def test_expensive_replicas_are_denied_even_with_budget_left(
    bundle: policy.PolicyBundle,
) -> None:
    """At 1.25/h, 3 extra replicas cost 90.00 a day, more than the 87.50 left."""
    output = bundle.decide(flash_sale(context={"budget": {"cost_per_replica_hour": 1.25}}))
    assert output.plans == ()
    assert output.deny == (
        (
            "scaling order-service by 3 replicas costs 90.00 USD/day, "
            "over the remaining budget of 87.50 USD"
        ),
    )


def test_unrelated_alert_neither_plans_nor_denies(bundle: policy.PolicyBundle) -> None:
    """An alert this policy does not handle yields an empty decision."""
    output = bundle.decide(flash_sale(incident={"alert": "DiskAlmostFull"}))
    assert (output.plans, output.deny, output.requires_approval) == ((), (), False)


def test_missing_target_is_denied_with_a_reason(bundle: policy.PolicyBundle) -> None:
    """Without a target there is nothing to scale, and the decision says so."""
    output = bundle.decide(flash_sale(target=None))
    assert output.plans == ()
    (reason,) = output.deny
    assert "OrderServiceCPUThrottling" in reason
    assert "no known target" in reason


def test_decision_document_keeps_the_helper_values_for_the_audit(
    bundle: policy.PolicyBundle,
) -> None:
    """The whole document comes back, including the numbers the decision used."""
    document = bundle.evaluate(flash_sale())
    assert document["extra_replicas"] == 3
    assert document["extra_cost_per_day"] == 36
    assert document["remaining_budget"] == 87.5


def test_plans_convert_to_domain_plans(bundle: policy.PolicyBundle) -> None:
    """to_plans gives the domain's Plan with the same runbook, params, risk and reason."""
    output = bundle.decide(flash_sale())
    (plan,) = policy.to_plans(output)
    assert isinstance(plan, model.Plan)
    assert (plan.runbook, plan.risk) == ("scale-up", "medium")
    assert plan.params["replicas"] == 5
    assert plan.reason == output.plans[0].reason


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        pytest.param(
            'plans contains {"params": {}, "risk": "low", "reason": "r"}',
            "plans[0].runbook",
            id="plan-without-runbook",
        ),
        pytest.param(
            'plans contains {"runbook": "x", "risk": "extreme", "reason": "r"}',
            "plans[0].risk",
            id="unknown-risk",
        ),
        pytest.param(
            'plans contains {"runbook": "x", "params": [1], "risk": "low", "reason": "r"}',
            "plans[0].params",
            id="params-not-an-object",
        ),
        pytest.param(
            'plans contains {"runbook": "x", "risk": "low", "reason": "r", "extra": 1}',
            "plans[0].extra",
            id="unknown-plan-field",
        ),
        pytest.param("deny contains 3", "deny[0]", id="deny-not-a-string"),
        pytest.param('requires_approval := "yes"', "requires_approval", id="approval-not-bool"),
    ],
)
def test_malformed_output_raises_policy_error_naming_the_json_path(
    tmp_path: Path, rules: str, path: str
) -> None:
    """A policy output that breaks the contract is refused, pointing at the bad value."""
    write_bundle(tmp_path, {"bad.rego": f"package selfheal.remediation\n\n{rules}\n"})
    loaded = policy.PolicyBundle.load(tmp_path)
    try:
        with pytest.raises(engine.PolicyError) as caught:
            loaded.decide(FLASH_SALE_INPUT)
    finally:
        loaded.close()
    assert caught.value.location is not None
    assert caught.value.location.path == path
    assert f"data.selfheal.remediation ({path}): " in str(caught.value)


def test_conflicting_outputs_raise_policy_error(tmp_path: Path) -> None:
    """Two values for requires_approval is an evaluation error, not a silent pick."""
    rules = "requires_approval := true if input.incident\n\nrequires_approval := false\n"
    write_bundle(tmp_path, {"p.rego": f"package selfheal.remediation\n\n{rules}"})
    loaded = policy.PolicyBundle.load(tmp_path)
    try:
        with pytest.raises(engine.PolicyError):
            loaded.decide(FLASH_SALE_INPUT)
    finally:
        loaded.close()


def test_syntax_error_in_a_policy_file_names_file_line_and_column(tmp_path: Path) -> None:
    """A bundle that does not compile is a ConfigError at the offending position."""
    write_bundle(tmp_path, {"p.rego": "package selfheal.remediation\n\nplans contains x if {\n"})
    with pytest.raises(errors.ConfigError) as caught:
        policy.PolicyBundle.load(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'p.rego'}:4:")


def test_bundle_without_the_decision_package_is_refused(tmp_path: Path) -> None:
    """Policies in another package could never decide anything; loading says so."""
    write_bundle(tmp_path, {"p.rego": "package other\n\nplans := []\n"})
    with pytest.raises(errors.ConfigError, match=r"package selfheal\.remediation"):
        policy.PolicyBundle.load(tmp_path)


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    """Pointing at a directory that does not exist names it."""
    with pytest.raises(errors.ConfigError, match="not a directory"):
        policy.PolicyBundle.load(tmp_path / "nowhere")


def test_bundle_hash_follows_policy_files_but_not_tests(tmp_path: Path) -> None:
    """Editing a policy changes the hash; editing or adding a test does not."""
    copied = tmp_path / "policies"
    shutil.copytree(EXAMPLE, copied)

    def hash_now() -> str:
        loaded = policy.PolicyBundle.load(copied)
        loaded.close()
        return loaded.hash

    original = hash_now()
    assert len(original) == 64
    assert hash_now() == original
    test_file = copied / "remediation_test.rego"
    test_file.write_text(test_file.read_text() + "\n# a note\n")
    (copied / "more_test.rego").write_text("package more_test\n\ntest_ok if true\n")
    assert hash_now() == original
    policy_file = copied / "remediation.rego"
    policy_file.write_text(
        policy_file.read_text().replace("max_replicas := 10", "max_replicas := 9")
    )
    assert hash_now() != original


def test_bundle_hash_separates_paths_from_contents() -> None:
    """Moving bytes between a file's name and its content gives a different hash."""
    assert policy.bundle_hash({"a.rego": b"bc"}) != policy.bundle_hash({"a.regob": b"c"})
    assert policy.bundle_hash({"a": b"1", "b": b"2"}) == policy.bundle_hash({"b": b"2", "a": b"1"})


def test_example_policy_tests_all_pass() -> None:
    """`run_tests` on the example directory passes every test, each with its place."""
    report = policy.run_tests(EXAMPLE)
    assert report.ok, [(r.name, r.outcome, r.message) for r in report.results if r.message]
    assert report.count(policy.TestOutcome.PASS) == len(report.results) >= 4
    names = {result.name for result in report.results}
    assert "test_over_budget_denies_and_plans_nothing" in names
    for result in report.results:
        assert result.package == "selfheal.remediation_test"
        assert result.source.endswith("remediation_test.rego")
        assert result.line > 0


MIXED_TESTS = """package mixed_test

import data.selfheal.remediation

test_passes if {
	remediation.answer == 42 with input as {"n": 21}
}

test_fails_when_false if {
	remediation.answer == 0 with input as {"n": 21}
}

test_fails_when_undefined if {
	remediation.answer == 42
}

clash := 1 if true

clash := 2 if true

test_errors_on_conflicting_values if {
	clash == 1
}

test_still_runs_after_an_error if true
"""


def test_run_tests_reports_failures_and_errors_without_crashing(tmp_path: Path) -> None:
    """A failing and an erroring test are reported as such; the rest still run."""
    write_bundle(
        tmp_path,
        {
            "p.rego": "package selfheal.remediation\n\nanswer := input.n * 2\n",
            "p_test.rego": MIXED_TESTS,
        },
    )
    report = policy.run_tests(tmp_path)
    outcomes = {result.name: result.outcome for result in report.results}
    assert outcomes == {
        "test_passes": policy.TestOutcome.PASS,
        "test_fails_when_false": policy.TestOutcome.FAIL,
        "test_fails_when_undefined": policy.TestOutcome.FAIL,
        "test_errors_on_conflicting_values": policy.TestOutcome.ERROR,
        "test_still_runs_after_an_error": policy.TestOutcome.PASS,
    }
    assert not report.ok
    errored = next(r for r in report.results if r.outcome is policy.TestOutcome.ERROR)
    assert "p_test.rego" in errored.message
    lines = MIXED_TESTS.splitlines()
    assert errored.line == lines.index("test_errors_on_conflicting_values if {") + 1


def test_run_tests_on_a_file_that_does_not_parse_is_a_config_error(tmp_path: Path) -> None:
    """When a file does not compile no test can run, and the error names the file."""
    write_bundle(tmp_path, {"x_test.rego": "package x_test\n\ntest_a if {\n"})
    with pytest.raises(errors.ConfigError, match=r"x_test\.rego:4:"):
        policy.run_tests(tmp_path)
