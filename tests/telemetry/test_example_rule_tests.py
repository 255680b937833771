"""The flash-sale example's rule unit tests pass under selfheal and under promtool."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from selfheal.telemetry import ruletest

EXAMPLE_TESTS = Path(__file__).resolve().parents[2] / "examples" / "flash-sale" / "rules_test.yaml"


def test_the_example_rule_tests_pass_under_selfheal() -> None:
    """`selfheal rules test` passes the example's tests of the throttling rule."""
    out, err = io.StringIO(), io.StringIO()
    assert ruletest.run_files([EXAMPLE_TESTS], out=out, err=err) == 0, out.getvalue()
    assert "SUCCESS" in out.getvalue()


def test_the_example_rule_tests_pass_under_promtool() -> None:
    """Promtool agrees: the example rules and their tests are valid Prometheus."""
    if shutil.which("promtool") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have promtool (.ci/run installs the prometheus package)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    result = subprocess.run(
        ["promtool", "test", "rules", str(EXAMPLE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
