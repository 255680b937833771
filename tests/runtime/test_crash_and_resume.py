"""Durability: kill -9 the controller mid-remediation, restart it, nothing happens twice.

The twin runs in the test process; the controller runs as `selfheal run` in a subprocess
pointed at the twin over HTTP, with its state in a temporary directory. The controller is
killed after the scale step is recorded and before verification completes, then started
again on the same state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from selfheal.domain.time import ScaledClock
from selfheal.store import ActionStatus, audit, open_store
from selfheal.twin import scenario, server

from support import wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale"
SPEED = 10.0


@pytest.fixture
def twin() -> Iterator[server.TwinServer]:
    handle = server.TwinServer(
        server.Twin(scenario.load("flash-sale"), clock=ScaledClock(speed=SPEED))
    )
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def write_config(tmp_path: Path, twin: server.TwinServer) -> Path:
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", twin.url, namespace="production")
    config = {
        "cluster": {"kubeconfig": str(kubeconfig)},
        "clock_speed": SPEED,
        "telemetry": {"targets": [{"url": f"{twin.url}/metrics", "job": "kubernetes"}]},
        "rules": [str(EXAMPLE / "rules.yaml")],
        "policies": str(EXAMPLE / "policies"),
        "runbooks": str(EXAMPLE / "runbooks"),
        "state_dir": str(tmp_path / "state"),
    }
    path = tmp_path / "selfheal.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_controller(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "selfheal", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def action(store_path: Path, step: str) -> tuple[str, str] | None:
    """(idempotency key, status) of a step's action record, read without taking any lock."""
    if not store_path.exists():
        return None
    with contextlib.closing(
        sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=10)
    ) as db:
        try:
            row = db.execute(
                "SELECT idempotency_key, status FROM actions WHERE idempotency_key LIKE ?",
                (f"%/{step}",),
            ).fetchone()
        except sqlite3.OperationalError:  # the controller has not created its tables yet
            return None
    return None if row is None else (row[0], row[1])


def test_killed_controller_resumes_and_scales_exactly_once(
    tmp_path: Path, twin: server.TwinServer
) -> None:
    """A kill -9 between scale and verify; the restart resumes and verifies; one scale."""
    config = write_config(tmp_path, twin)
    database = tmp_path / "state" / "state.db"
    log = tmp_path / "controller.log"
    first = start_controller(config, log)
    try:

        def scaled() -> bool:
            if not database.exists():
                return False
            record = action(database, "scale")
            return record is not None and record[1] == ActionStatus.SUCCEEDED

        wait_until(scaled, timeout=120, interval=0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        verify_before_kill = action(database, "verify")
        assert verify_before_kill is None, "the kill came too late: verify had completed"
    finally:
        if first.poll() is None:
            first.kill()

    second = start_controller(config, log)
    try:

        def verified() -> Any:
            record = action(database, "verify")
            return record if record is not None and record[1] != ActionStatus.STARTED else None

        record = wait_until(verified, timeout=120, interval=0.2)
        assert record[1] == ActionStatus.SUCCEEDED, log.read_text()
        time.sleep(0.5)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text()
    finally:
        if second.poll() is None:
            second.kill()

    changes = httpx.get(f"{twin.url}/twin/requests", timeout=10).json()
    scales = [c for c in changes if c["path"].endswith("/deployments/order-service/scale")]
    assert len(scales) == 1, changes
    with open_store(f"sqlite:///{database}") as store:
        completed_scales = [
            r
            for r in store.audit.records()
            if r.kind == "action.completed" and r.subject.endswith("/scale")
        ]
        assert len(completed_scales) == 1
        runs = {r.subject for r in store.audit.records() if r.kind == "workflow.started"}
        assert len(runs) == 1
        throttling = [
            i for i in store.incidents.list() if i.alert_name == "OrderServiceCPUThrottling"
        ]
        assert len(throttling) == 1
        assert audit.verify(store).ok
    assert "controller stopped" in log.read_text()
