"""The safety envelope proven on the twin with `selfheal demo --scenario NAME --json`.

Each scenario runs once per module with its example (examples/NAME) and several tests read
its report: the alert storm collapses into few incidents with every alert accounted for,
the flapping fault stops churning at the cooldown, the bad fix is rolled back until the
circuit breaker holds, and the risky runbook waits for a person who is named in the audit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from selfheal.store import open_store

from support import demo_report

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def demo(*args: str, state_dir: Path) -> dict[str, Any]:
    return demo_report("--state-dir", str(state_dir), *args)


def audit_records(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    with open_store(f"sqlite:///{Path(report['state_dir']) / 'state.db'}") as store:
        return [dict(record.payload) for record in store.audit.records(kind=kind)]


def assert_the_envelope_holds(report: dict[str, Any]) -> None:
    """What every scenario's report must show, whatever else it proves."""
    assert report["audit_chain_ok"] is True
    assert report["action_cap"] is not None
    assert report["actions_taken"] <= report["action_cap"]
    assert report["alerts_accounted"] == report["alerts_received"]
    assert sum(item["alert_count"] for item in report["incidents"]) == report["alerts_received"]
    for refusal in report["guardrail_refusals"]:
        assert refusal["guardrails"], refusal
        refused = next(i for i in report["incidents"] if i["id"] == refusal["incident"])
        assert refused["escalated"] is True


# ---- alert-storm ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # At the example's own speed (5x): 122 pods of telemetry each second.
    return demo("--scenario", "alert-storm", state_dir=tmp_path_factory.mktemp("storm"))


def test_alert_storm_collapses_a_thousand_alerts_into_few_incidents(storm: dict[str, Any]) -> None:
    assert_the_envelope_holds(storm)
    assert storm["alerts_received"] >= 1000
    assert storm["incident_count"] <= 10
    storm_incidents = [i for i in storm["incidents"] if i["alert"].startswith("Pod")]
    # One incident per rule and workload: the pods' alerts joined them.
    names = sorted((i["alert"], i["fingerprint"]) for i in storm_incidents)
    assert len(names) == len(set(names)) == 6
    assert max(i["alert_count"] for i in storm_incidents) >= 300


def test_alert_storm_accounts_for_every_alert_by_pod(storm: dict[str, Any]) -> None:
    opened = audit_records(storm, "incident.opened")
    joined = audit_records(storm, "incident.joined")
    assert storm["alert_outcomes"] == {"opened": len(opened), "joined": len(joined)}
    assert len(opened) + len(joined) == storm["alerts_received"]
    pods = {r["labels"].get("pod") for r in opened} | {r["alert_labels"].get("pod") for r in joined}
    pods.discard(None)
    assert len(pods) >= 100  # the alerts were per pod; the audit names each one


def test_alert_storm_pages_once_per_incident_not_per_alert(storm: dict[str, Any]) -> None:
    for incident in storm["incidents"]:
        if incident["alert"] in {"PodNotReady", "PodCrashLooping"}:
            assert incident["plans"] == []
            assert incident["escalated"] is True
            pages = [n for n in incident["notifications"] if n["channel"] == "on-call"]
            assert len(pages) == 1, incident
    assert storm["actions_taken"] <= 1


# ---- flapping ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flapping(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Seven of the scenario's twelve minutes: the fix, the sync, the fix again, the refusal.
    return demo(
        "--scenario",
        "flapping",
        "--speed",
        "20",
        "--duration",
        "7m",
        state_dir=tmp_path_factory.mktemp("flap"),
    )


@pytest.fixture(scope="module")
def flapping_unguarded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same scenario and example with the guardrails file left out."""
    folder = tmp_path_factory.mktemp("unguarded")
    text = (EXAMPLES / "flapping" / "selfheal.yaml").read_text(encoding="utf-8")
    assert "guardrails: guardrails.yaml\n" in text
    text = text.replace("guardrails: guardrails.yaml\n", "")
    text = text.replace("../flash-sale/", f"{EXAMPLES / 'flash-sale'}/")
    config = folder / "selfheal.yaml"
    config.write_text(text, encoding="utf-8")
    return demo(
        "--scenario",
        "flapping",
        "--speed",
        "20",
        "--duration",
        "7m",
        "--config",
        str(config),
        state_dir=folder / "state",
    )


def test_flapping_stops_churning_when_the_cooldown_refuses(flapping: dict[str, Any]) -> None:
    assert_the_envelope_holds(flapping)
    assert flapping["actions_taken"] == 2  # fixed, undone by the sync, fixed again
    [refusal] = flapping["guardrail_refusals"]
    assert refusal["guardrails"] == ["cooldown"]
    assert "within the cooldown of 2m" in refusal["reasons"][0]
    refused = next(i for i in flapping["incidents"] if i["id"] == refusal["incident"])
    assert refused["alert"] == "OrderServiceCPUThrottling"
    assert any("guardrail cooldown" in n["message"] for n in refused["notifications"])


def test_without_guardrails_the_same_fault_churns(
    flapping: dict[str, Any], flapping_unguarded: dict[str, Any]
) -> None:
    assert flapping_unguarded["action_cap"] is None  # nothing caps it
    assert flapping_unguarded["guardrail_refusals"] == []
    assert flapping_unguarded["actions_taken"] > flapping["actions_taken"]


# ---- bad-fix ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_fix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Five scenario minutes: two failed scale-ups and the breaker's refusal (at about 4m).
    return demo(
        "--scenario",
        "bad-fix",
        "--speed",
        "20",
        "--duration",
        "5m",
        state_dir=tmp_path_factory.mktemp("badfix"),
    )


def test_bad_fix_is_rolled_back_each_time(bad_fix: dict[str, Any]) -> None:
    assert_the_envelope_holds(bad_fix)
    tried = [r for r in bad_fix["remediations"] if r["runbook"] == "scale-up"]
    assert [r["outcome"] for r in tried] == ["rolled_back", "rolled_back"]
    scales = [c for c in bad_fix["twin_changes"] if c["path"].endswith("/order-service/scale")]
    assert len(scales) == 4  # two scale-ups, each undone
    for item in bad_fix["incidents"]:
        if item["rolled_back"]:
            assert item["replicas_before"] == item["replicas_after"] == 2


def test_bad_fix_trips_the_circuit_breaker_on_repeat(bad_fix: dict[str, Any]) -> None:
    [refusal] = bad_fix["guardrail_refusals"]
    assert "circuit_breaker" in refusal["guardrails"]
    assert any("selfheal guardrails reset" in reason for reason in refusal["reasons"])
    # The breaker refused after both attempts had failed, not before.
    assert bad_fix["actions_taken"] == 2


# ---- approval ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def approval(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return demo(
        "--scenario", "approval", "--speed", "20", state_dir=tmp_path_factory.mktemp("approval")
    )


def test_approved_risky_runbook_runs_and_names_its_approver(approval: dict[str, Any]) -> None:
    assert_the_envelope_holds(approval)
    order = next(i for i in approval["incidents"] if i["alert"] == "OrderServiceCPUThrottling")
    assert order["verified"] is True
    assert (order["replicas_before"], order["replicas_after"]) == (2, 5)
    request = next(a for a in approval["approvals"] if a["incident"] == order["id"])
    assert request["outcome"] == "approved"
    [verdict] = request["verdicts"]
    assert verdict["by"] == "alice@example.com"
    assert verdict["approve"] is True
    assert request["requested_s"] < verdict["at_s"] <= order["action_s"]
    given = audit_records(approval, "approval.given")
    assert [(g["by"], g["incident_id"]) for g in given] == [("alice@example.com", order["id"])]
    assert given[0]["reason"].startswith("checked the sale dashboard")


def test_unanswered_risky_runbook_times_out_denied_and_escalated(
    approval: dict[str, Any],
) -> None:
    catalog = next(i for i in approval["incidents"] if i["alert"] == "CatalogCPUThrottling")
    assert catalog["escalated"] is True
    assert catalog["replicas_before"] is None  # nothing was scaled
    request = next(a for a in approval["approvals"] if a["incident"] == catalog["id"])
    assert request["verdicts"] == []
    assert request["outcome"] == "timed_out"
    assert request["closed_s"] >= request["deadline_s"]
    assert not any("/catalog/" in c["path"] for c in approval["twin_changes"])
    assert approval["actions_taken"] == 1  # the timed-out run never acted
