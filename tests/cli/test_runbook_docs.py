"""`selfheal runbooks --out DIR`: pages generated from policies, runbooks and guardrails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale"
CHECKED_IN = EXAMPLE / "runbook-docs"


def generate(
    out: Path, config: Path = EXAMPLE / "selfheal.yaml"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfheal", "runbooks", "--out", str(out), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_checked_in_runbook_docs_of_the_example_are_current(tmp_path: Path) -> None:
    """Regenerating gives exactly the checked-in pages; edit a source and this fails."""
    result = generate(tmp_path)
    assert result.returncode == 0, result.stderr
    fresh = {path.name: path.read_text(encoding="utf-8") for path in tmp_path.iterdir()}
    checked_in = {path.name: path.read_text(encoding="utf-8") for path in CHECKED_IN.iterdir()}
    assert fresh == checked_in, (
        "examples/flash-sale/runbook-docs is stale: run "
        "`selfheal runbooks --out examples/flash-sale/runbook-docs`"
    )


def test_a_page_says_when_it_runs_what_it_does_how_it_rolls_back_and_its_limits(
    tmp_path: Path,
) -> None:
    assert generate(tmp_path).returncode == 0
    page = (tmp_path / "scale-up.md").read_text(encoding="utf-8")
    when = page.index("## When it runs")
    does = page.index("## What it does")
    rolls = page.index("## How it rolls back")
    limits = page.index("## Guardrails that apply")
    assert when < does < rolls < limits
    assert "`policies/remediation.rego:" in page
    assert "confident\naffordable" not in page  # conditions are the rule's own, in order
    assert "wants_scale_up\nconfident\ntarget_known" in page
    assert "2. `scale` (kubernetes.scale)" in page
    assert "on failure: rollback, refund, page, escalate" in page
    assert "- `rollback` (kubernetes.restore_replicas)" in page
    assert "- circuit breaker: 2 failures in 3600 s" in page
    assert "Mode: **enforce**" in page


def test_a_policy_change_shows_up_in_the_regenerated_page(tmp_path: Path) -> None:
    """The page follows the rule: a new condition in the policy appears in it."""
    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE, copy)
    policy = copy / "policies" / "remediation.rego"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(
        text.replace(
            "\twants_scale_up\n\tconfident\n\ttarget_known\n",
            "\twants_scale_up\n\tconfident\n\tinput.context.now > 0\n\ttarget_known\n",
            1,
        ),
        encoding="utf-8",
    )
    out = tmp_path / "docs"
    result = generate(out, copy / "selfheal.yaml")
    assert result.returncode == 0, result.stderr
    assert "input.context.now > 0" in (out / "scale-up.md").read_text(encoding="utf-8")
