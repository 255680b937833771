"""Guardrails in the closed loop: enforced after the policy, before anything reaches the cluster.

The flash sale with a guardrails file that caps the replica change per action at 2: the
policy plans 2 -> 5, the blast-radius guardrail refuses it, the refusal is a decision record
naming the guardrail, the incident is escalated, and the twin receives no change.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from selfheal.store import open_store

from support import demo_report

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale"


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    example = tmp_path_factory.mktemp("guarded") / "example"
    shutil.copytree(EXAMPLE, example)
    # The example's own guardrails, with the replica change per action capped at 2.
    rails = example / "guardrails.yaml"
    text = rails.read_text(encoding="utf-8")
    assert "max_replica_change: 5" in text
    rails.write_text(text.replace("max_replica_change: 5", "max_replica_change: 2"), "utf-8")
    config = example / "selfheal.yaml"
    state = example / "state"
    report = demo_report(
        "--speed", "20", "--config", str(config), "--state-dir", str(state), timeout=200
    )
    return report, state


def test_a_refused_plan_never_reaches_the_cluster(refused: tuple[dict[str, Any], Path]) -> None:
    report, _ = refused
    assert report["twin_changes"] == []
    assert report["actions_taken"] == 0
    throttling = next(i for i in report["incidents"] if i["alert"] == "OrderServiceCPUThrottling")
    assert throttling["escalated"] is True
    assert throttling["replicas_after"] is None
    assert any("guardrail blast_radius" in n["message"] for n in throttling["notifications"])


def test_the_refusal_is_a_decision_record_naming_the_guardrail(
    refused: tuple[dict[str, Any], Path],
) -> None:
    report, state = refused
    assert report["audit_chain_ok"] is True
    with open_store(f"sqlite:///{state / 'state.db'}") as store:
        decisions = [r.payload for r in store.audit.records(kind="decision.recorded")]
    policy, guard = decisions[0], decisions[1]
    assert policy["plans"][0]["runbook"] == "scale-up"  # the policy chose to scale
    assert guard["plans"] == []
    assert guard["deny"] == [
        "guardrail blast_radius: the plan changes 3 replicas, over the cap of 2 per action"
    ]
    assert guard["policy_output"]["refusals"][0]["guardrail"] == "blast_radius"
    assert guard["policy_input"]["refused_plan"]["params"]["replicas"] == 5
