"""`selfheal guardrails check|reset`: validate a file; close a breaker, on the record."""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
import warnings
from pathlib import Path

from starlette.exceptions import StarletteDeprecationWarning

from selfheal.api.app import create_app
from selfheal.decision.guardrails import load_guardrails
from selfheal.domain.model import Fingerprint, Outcome, Target, WorkflowId
from selfheal.runtime import breaker_reset
from selfheal.runtime.state_lock import StateLock
from selfheal.store import RunStatus, open_store

from support import ApiCallers, example_config, selfheal

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ORDER_SERVICE = Target("Deployment", "production", "order-service")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale"


def test_check_prints_the_example_guardrails() -> None:
    result = selfheal("guardrails", "check", str(EXAMPLE / "guardrails.yaml"))
    assert result.returncode == 0, result.stderr
    assert "circuit breaker: 2 failures in 3600 s" in result.stdout
    assert "blast radius: never to zero replicas" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("ok: ")


def test_check_names_the_line_of_a_bad_guardrail(tmp_path: Path) -> None:
    path = tmp_path / "guardrails.yaml"
    path.write_text("cooldown: 5m\nconcurrency: {global: -1}\n", encoding="utf-8")
    result = selfheal("guardrails", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}:2")
    assert "concurrency.global" in result.stderr
    assert "Traceback" not in result.stderr


def failed_remediations(state_dir: Path, *, count: int, target: Target, at: float) -> None:
    """`count` scale-up runs on `target` that rolled back, recorded by the real store."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open_store(f"sqlite:///{state_dir / 'state.db'}") as store:
        for index in range(count):
            incident, _ = store.incidents.open_or_join(
                Fingerprint(f"fp-{index}"),
                alert_name="Slow",
                labels={},
                annotations={},
                at=at + index,
                target=target,
            )
            workflow = WorkflowId(f"remediate.{incident.id}.scale-up")
            store.workflows.start(
                workflow, incident_id=incident.id, runbook="scale-up", params={}, at=at + index
            )
            store.workflows.finish(
                workflow, status=RunStatus.FAILED, outcome=Outcome.ROLLED_BACK, at=at + index
            )


def reset(*extra: str) -> subprocess.CompletedProcess[str]:
    return selfheal(
        "guardrails",
        "reset",
        "--runbook",
        "scale-up",
        "--reason",
        "capacity added",
        *extra,
    )


def test_reset_records_who_closed_an_open_breaker(tmp_path: Path) -> None:
    """Two rolled-back runs opened the breaker (the example's: 2 in 1 h); reset closes it."""
    config = example_config(tmp_path)
    failed_remediations(tmp_path / "state", count=2, target=ORDER_SERVICE, at=time.time() - 60)
    result = reset("--target", "production/order-service", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with open_store(f"sqlite:///{tmp_path / 'state' / 'state.db'}") as store:
        [record] = store.audit.records(kind="guardrail.reset")
        last_failure = max(r.at for r in store.audit.records(kind="workflow.finished"))
    user = getpass.getuser()
    assert record.payload == {
        "runbook": "scale-up",
        "target": "production/order-service",
        "by": user,
        "reason": "capacity added",
        "source": f"cli on {socket.gethostname()} as operating-system user {user}",
    }
    assert "recorded as the operating-system user" in result.stderr
    assert record.at >= last_failure
    # The breaker is closed now: resetting it again finds nothing open.
    again = reset("--target", "production/order-service", "--config", str(config))
    assert again.returncode == 1


def test_reset_of_a_breaker_that_is_not_open_says_so_and_records_nothing(
    tmp_path: Path,
) -> None:
    """No failures on production/nosuch: exit 1 with the count, and no audit record."""
    config = example_config(tmp_path)
    failed_remediations(tmp_path / "state", count=2, target=ORDER_SERVICE, at=time.time() - 60)
    result = reset("--target", "production/nosuch", "--config", str(config))
    assert result.returncode == 1
    assert "no circuit breaker is open for scale-up on production/nosuch" in result.stderr
    assert "0 failure(s)" in result.stderr
    with open_store(f"sqlite:///{tmp_path / 'state' / 'state.db'}") as store:
        assert store.audit.records(kind="guardrail.reset") == ()


def test_reset_finds_the_config_through_the_state_a_controller_ran_on(tmp_path: Path) -> None:
    """With only --state-dir, the config named in the state's lock file gives the breaker."""
    state = tmp_path / "state"
    failed_remediations(state, count=2, target=ORDER_SERVICE, at=time.time() - 60)
    lock = StateLock(state, config=example_config(tmp_path))
    lock.release()
    result = reset("--target", "production/order-service", "--state-dir", str(state))
    assert result.returncode == 0, result.stderr


def test_reset_without_any_config_asks_for_one(tmp_path: Path) -> None:
    open_store(f"sqlite:///{tmp_path / 'state.db'}").close()
    result = reset("--target", "production/order-service", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "pass --config" in result.stderr


def test_reset_refuses_a_target_without_its_namespace(tmp_path: Path) -> None:
    result = selfheal(
        "guardrails",
        "reset",
        "--runbook",
        "r",
        "--target",
        "order-service",
        "--state-dir",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert "NAMESPACE/NAME" in result.stderr


def test_an_admin_resets_an_open_breaker_through_the_api_and_nobody_else_can(
    tmp_path: Path,
) -> None:
    """POST /api/v1/guardrails/reset: admin only, recorded as the credential's identity."""
    failed_remediations(tmp_path, count=2, target=ORDER_SERVICE, at=time.time() - 60)
    rails = load_guardrails(EXAMPLE / "guardrails.yaml")
    callers = ApiCallers()

    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:

        class Desk:
            def receive(self, batch: object) -> None:
                del batch

            def reset_breaker(self, **asked: str) -> dict[str, object]:
                namespace, name = asked.pop("namespace"), asked.pop("name")
                outcome = breaker_reset.reset_breaker(
                    store,
                    rails,
                    target=Target("Deployment", namespace, name),
                    at=time.time(),
                    **asked,
                )
                return {
                    "reset": outcome.reset,
                    "failures": outcome.failures,
                    "opens_at": outcome.opens_at,
                }

        desk = Desk()
        app = create_app(alerts=desk, guardrails=desk, authenticator=callers.authenticator)
        body = {
            "runbook": "scale-up",
            "target": "production/order-service",
            "reason": "node pool grown",
        }
        with TestClient(app) as client:
            path = "/api/v1/guardrails/reset"
            by_approver = client.post(path, json=body, headers=callers.headers("alice"))
            assert by_approver.status_code == 403
            assert "'admin'" in by_approver.json()["error"]
            bad = client.post(
                path, json={**body, "target": "order-service"}, headers=callers.headers("root")
            )
            assert (bad.status_code, bad.json()["path"]) == (400, "$.target")
            done = client.post(path, json=body, headers=callers.headers("root"))
            assert done.status_code == 200, done.text
            assert done.json()["by"] == "root"
            again = client.post(path, json=body, headers=callers.headers("root"))
            assert again.status_code == 409
            assert "no circuit breaker is open" in again.json()["error"]
        [record] = store.audit.records(kind="guardrail.reset")
    assert record.payload["by"] == "root"
    assert record.payload["source"].startswith("api token from ")
