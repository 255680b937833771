"""Approvals in the closed loop: a risky plan waits for a person, durably, on the record.

The flash-sale example with its scale-up runbook declared high risk, so the policy returns
`requires_approval`: the runbook starts with an `approval.wait` step. Approved through
`selfheal approve`, it scales; left alone, it is denied at the timeout and escalated.
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from selfheal.domain.errors import TemporaryError
from selfheal.domain.model import IncidentState
from selfheal.store import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale"


def risky_example(root: Path, *, timeout: str) -> Path:
    """A copy of the example whose scale-up runbook is high risk, approvals timing out as given."""
    example = root / "example"
    shutil.copytree(EXAMPLE, example)
    runbook = example / "runbooks" / "scale-up.yaml"
    text = runbook.read_text(encoding="utf-8")
    assert text.startswith("name: scale-up\n")
    runbook.write_text(text.replace("name: scale-up\n", "name: scale-up\nrisk: high\n", 1))
    config = example / "selfheal.yaml"
    config.write_text(
        config.read_text(encoding="utf-8") + f"approvals:\n  timeout: {timeout}\n",
        encoding="utf-8",
    )
    return config


def start_demo(config: Path, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "selfheal",
            "demo",
            "--json",
            "--speed",
            "10",
            # Four scenario minutes hold the surge, the approval (or its timeout), the scale
            # and its verification; the rest of the scenario would only add wall time.
            "--duration",
            "4m",
            "--config",
            str(config),
            "--state-dir",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=250)
    assert process.returncode == 0, stderr
    report: dict[str, Any] = json.loads(stdout)
    return report


def awaiting(state: Path, *, within: float = 120.0) -> str:
    """The incident that waits for approval, once the controller has asked."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (state / "state.db").is_file():
            try:
                with open_store(f"sqlite:///{state / 'state.db'}") as store:
                    waiting = store.incidents.list(state=IncidentState.AWAITING_APPROVAL)
            except TemporaryError:  # the running controller holds the write lock now
                continue
            if waiting:
                return str(waiting[0].id)
        time.sleep(0.2)
    raise AssertionError("no incident came to await approval")


def test_an_approved_plan_runs_and_the_approver_is_in_the_audit_chain(tmp_path: Path) -> None:
    config = risky_example(tmp_path, timeout="10m")
    state = tmp_path / "state"
    demo = start_demo(config, state)
    try:
        incident = awaiting(state)
    except BaseException:
        demo.kill()
        demo.communicate()
        raise
    approved = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfheal",
            "approve",
            incident,
            "--reason",
            "flash sale, expected",
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert approved.returncode == 0, approved.stderr
    # No API named: the verdict is the operating-system user's, and the command says so.
    user = getpass.getuser()
    assert f"{incident}: approved by {user}" in approved.stdout
    assert "recorded as the operating-system user" in approved.stderr
    report = finish(demo)
    assert report["audit_chain_ok"] is True
    [change] = report["twin_changes"]
    assert change["path"].endswith("/deployments/order-service/scale")
    throttling = next(i for i in report["incidents"] if i["id"] == incident)
    assert (throttling["replicas_before"], throttling["replicas_after"]) == (2, 5)
    with open_store(f"sqlite:///{state / 'state.db'}") as store:
        [given] = store.audit.records(kind="approval.given")
        [closed] = store.audit.records(kind="approval.closed")
    assert given.payload["by"] == user
    assert f"operating-system user {user}" in given.payload["source"]
    assert given.payload["reason"] == "flash sale, expected"
    assert given.payload["approve"] is True
    assert closed.payload == {"outcome": "approved"}
    # The same person cannot approve twice (nor after it is settled).
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfheal",
            "approve",
            incident,
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 2
    assert "no remediation awaiting approval" in again.stderr


def test_without_an_answer_the_plan_is_denied_at_the_timeout_and_escalated(
    tmp_path: Path,
) -> None:
    config = risky_example(tmp_path, timeout="40s")
    state = tmp_path / "state"
    report = finish(start_demo(config, state))
    assert report["twin_changes"] == []
    # Whichever signal of the flash sale came first (a rule or an anomaly watch) asked.
    [denied] = [
        incident
        for incident in report["incidents"]
        if any(
            "no approval within 40s: denied by default" in n["message"]
            for n in incident["notifications"]
        )
    ]
    assert denied["escalated"] is True
    assert denied["replicas_after"] is None
    with open_store(f"sqlite:///{state / 'state.db'}") as store:
        [closed] = store.audit.records(kind="approval.closed")
        assert store.audit.records(kind="approval.given") == ()
    assert closed.payload == {"outcome": "timed_out"}
