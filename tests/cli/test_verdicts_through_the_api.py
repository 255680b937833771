"""`selfheal approve --api` against a real `selfheal run` with API tokens on.

The attack that opened the security work, replayed: an alert sent without a credential
changes nothing; a sender's token cannot approve; the verdict's author is the token's
identity whatever the command line says; two approvers must be two people; and the audit
chain records each write request with who made it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from selfheal.lab import trials
from selfheal.lab.world import World, WorldSettings
from selfheal.store import open_store


def approve(
    world: World, incident: str, token: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = ["approve", incident, "--api", world.api_url, *extra]
    return subprocess.run(
        [sys.executable, "-m", "selfheal", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SELFHEAL_TOKEN": token},
    )


def awaiting_approval(world: World, *, within: float = 60.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        rows = world.query("SELECT id FROM incidents WHERE state = 'awaiting_approval'")
        if rows:
            return str(rows[0][0])
        time.sleep(0.1)
    raise AssertionError("no incident came to await approval")


def test_verdicts_come_from_tokens_and_two_people_are_two(tmp_path: Path) -> None:
    settings = WorldSettings(
        scenario="steady",
        speed=30,
        extra={
            "approvals": {
                "required_for": ["scale-up"],
                "two_person": ["scale-up"],
                "timeout": "6h",  # scenario time, 12 minutes of wall time at 30x
            }
        },
    )
    with World(tmp_path, settings) as world:
        assert world.controller is not None
        world.controller.start()
        world.controller.wait_ready()
        anonymous = httpx.post(
            f"{world.api_url}/api/v1/alerts", json={"version": "4", "alerts": []}, timeout=10
        )
        assert anonymous.status_code == 401
        sender = world.alert_sender()
        assert sender.send([trials.real_alert()])
        incident = awaiting_approval(world)
        credentials = world.credentials

        by_sender = approve(world, incident, credentials.sender)
        assert by_sender.returncode == 2
        assert "403" in by_sender.stderr
        assert "'approver'" in by_sender.stderr

        first = approve(world, incident, credentials.approver, "--reason", "expected load")
        assert first.returncode == 0, first.stderr
        assert f"{incident}: approved by alice" in first.stdout
        again = approve(world, incident, credentials.approver)
        assert again.returncode == 2
        assert "alice already gave a verdict" in again.stderr
        second = approve(world, incident, credentials.second_approver)
        assert second.returncode == 0, second.stderr
        assert "approved by bob" in second.stdout
        trials.settle(world)
        writes = [entry for entry in world.cluster_writes() if entry["path"].endswith("/scale")]
        assert len(writes) == 1, "approved by two people, the runbook scaled once"
        world.controller.terminate()
        sender.close()
        with open_store(f"sqlite:///{world.state_dir / 'state.db'}") as store:
            verdicts = store.audit.records(kind="approval.given")
            requests = store.audit.records(kind="api.request")
            opened = store.audit.records(kind="incident.opened", subject=incident)
    assert [(v.payload["by"], v.payload["source"].split(" from ")[0]) for v in verdicts] == [
        ("alice", "api token"),
        ("bob", "api token"),
    ]
    assert opened[0].payload["sender"] == "alertmanager"
    seen = {(r.payload["identity"], r.subject, r.payload["status"]) for r in requests}
    assert (None, "/api/v1/alerts", 401) in seen
    assert ("alertmanager", "/api/v1/alerts", 200) in seen
    assert ("alertmanager", f"/api/v1/incidents/{incident}/approve", 403) in seen
    assert ("alice", f"/api/v1/incidents/{incident}/approve", 200) in seen
    assert ("alice", f"/api/v1/incidents/{incident}/approve", 409) in seen
    assert ("bob", f"/api/v1/incidents/{incident}/approve", 200) in seen
    assert all(r.payload["source"].startswith("127.0.0.1:") for r in requests)
