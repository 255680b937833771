"""`selfheal incidents list|show` and `selfheal audit log`: what on-call reads of a state."""

from __future__ import annotations

import json
from pathlib import Path

from support import example_config, populated_state, selfheal


def test_incidents_list_json_gives_each_incident_with_its_state_and_alert_count(
    tmp_path: Path,
) -> None:
    """The JSON list names id, state, alertname, labels, opened_at and alerts, oldest first."""
    ids = populated_state(tmp_path)
    result = selfheal("incidents", "list", "--state-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [item["id"] for item in listed] == [ids["fixed"], ids["other"]]
    fixed = listed[0]
    assert fixed["state"] == "verified"
    assert fixed["alertname"] == "CatalogSlow"
    assert fixed["labels"]["service"] == "catalog"
    assert fixed["opened_at"] == 1000.0
    assert fixed["alerts"] == 2
    assert fixed["target"] == "production/catalog"


def test_incidents_list_filters_by_state_and_prints_a_table(tmp_path: Path) -> None:
    """`--state open` keeps the open incident; the table names it and its alert."""
    ids = populated_state(tmp_path)
    result = selfheal("incidents", "list", "--state-dir", str(tmp_path), "--state", "open")
    assert result.returncode == 0, result.stderr
    assert ids["other"] in result.stdout
    assert "DiskFull" in result.stdout
    assert ids["fixed"] not in result.stdout


def test_incidents_list_refuses_an_unknown_state(tmp_path: Path) -> None:
    populated_state(tmp_path)
    result = selfheal("incidents", "list", "--state-dir", str(tmp_path), "--state", "burning")
    assert result.returncode == 2
    assert "'burning'" in result.stderr
    assert "awaiting_approval" in result.stderr


def test_incidents_show_tells_the_decision_the_run_and_its_steps(tmp_path: Path) -> None:
    """`show` gives the policy's choice, the runbook's outcome and each step."""
    ids = populated_state(tmp_path)
    result = selfheal("incidents", "show", ids["fixed"], "--state-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "chose scale-up: catalog is slow" in result.stdout
    assert "succeeded, verified" in result.stdout
    assert "step scale (kubernetes.scale): succeeded" in result.stdout
    detail = json.loads(
        selfheal("incidents", "show", ids["fixed"], "--state-dir", str(tmp_path), "--json").stdout
    )
    assert detail["runs"][0]["steps"][0]["output"] == {"replicas": 4, "previous_replicas": 2}


def test_incidents_show_of_an_unknown_id_says_how_to_find_ids(tmp_path: Path) -> None:
    populated_state(tmp_path)
    result = selfheal("incidents", "show", "nope-1", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no incident 'nope-1'" in result.stderr
    assert "selfheal incidents list" in result.stderr


def test_audit_log_of_an_incident_holds_its_runs_and_steps_and_nothing_else(
    tmp_path: Path,
) -> None:
    """`--incident` gathers the incident's own records and its remediation's, in order."""
    ids = populated_state(tmp_path)
    result = selfheal(
        "audit", "log", "--incident", ids["fixed"], "--state-dir", str(tmp_path), "--json"
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [record["kind"] for record in records] == [
        "incident.opened",
        "incident.joined",
        "incident.state",
        "decision.recorded",
        "workflow.started",
        "incident.state",
        "action.begun",
        "action.completed",
        "workflow.finished",
        "incident.state",
    ]
    seqs = [record["seq"] for record in records]
    assert seqs == sorted(seqs)
    assert {"seq", "at", "kind", "subject", "payload", "hash", "prev_hash"} <= set(records[0])
    assert all(ids["other"] not in json.dumps(record) for record in records)
    text = selfheal("audit", "log", "--state-dir", str(tmp_path))
    assert text.returncode == 0, text.stderr
    assert "DiskFull firing" in text.stdout


def test_state_commands_find_the_state_through_the_config(tmp_path: Path) -> None:
    """`--config` names the controller's config; its state_dir is where they read."""
    path = example_config(tmp_path)
    ids = populated_state(tmp_path / "state")
    for command in (["incidents", "list"], ["audit", "verify"], ["audit", "log"]):
        result = selfheal(*command, "--config", str(path))
        assert result.returncode == 0, (command, result.stderr)
    listed = selfheal("incidents", "list", "--config", str(path), "--json")
    assert ids["other"] in listed.stdout


def test_without_a_state_the_commands_name_the_default_and_the_options(tmp_path: Path) -> None:
    """Run where no state is, each says where it looked and how to point it elsewhere."""
    for command in (
        ["incidents", "list"],
        ["audit", "log"],
        ["audit", "verify"],
        ["approve", "x"],
    ):
        result = selfheal(*command, cwd=tmp_path)
        assert result.returncode == 2, command
        assert "no state database at .selfheal/state/state.db" in result.stderr
        assert "--config" in result.stderr
        assert "Traceback" not in result.stderr


def test_version_prints_the_package_version() -> None:
    result = selfheal("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "selfheal 0.1.0"
