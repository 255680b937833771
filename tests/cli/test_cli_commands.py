"""The `selfheal` command line, run as a user runs it: a subprocess, reading its output."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from support import kubectl_runner, selfheal, wait_until


def test_simulate_json_prints_the_baseline_report() -> None:
    """`simulate --no-controller --json` prints one object with the baseline's figures."""
    result = selfheal("simulate", "--scenario", "flash-sale", "--no-controller", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {
        "scenario",
        "duration_s",
        "slo_violation_s",
        "error_ratio",
        "peak_throttling",
    } <= report.keys()
    assert report["scenario"] == "flash-sale"
    assert report["duration_s"] == 600
    assert report["slo_violation_s"] > 360


def test_demo_tells_the_story_of_the_flash_sale_healing_itself() -> None:
    """`selfheal demo` prints the loop's events as they happen and the SLO against baseline."""
    result = selfheal("demo", timeout=200)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "OrderServiceCPUThrottling firing" in out
    assert "policy chose scale-up" in out
    assert "order-service 2 -> 5 replicas" in out
    assert "-> verified" in out
    assert re.search(r"SLO breached for \S+ with selfheal, \S+ without it", out)
    assert "Audit chain intact" in out


def test_baseline_simulation_prints_a_readable_timeline() -> None:
    """`simulate --no-controller` prints the minute-by-minute table and the breach."""
    result = selfheal("simulate", "--no-controller")
    assert result.returncode == 0, result.stderr
    assert re.search(r"SLO breached for \d+m\d*s?", result.stdout)
    assert "replicas" in result.stdout


def test_bad_scenario_file_is_one_line_error_with_exit_2(tmp_path: Path) -> None:
    """A broken scenario file gives `error: FILE:LINE:COL (path): ...`, no traceback."""
    path = tmp_path / "broken.yaml"
    path.write_text(
        "name: b\nduration: 1m\nload: {base_rps: 10}\nfaults:\n  - {at: 5s, type: meteor}\n",
        encoding="utf-8",
    )
    result = selfheal("simulate", "--scenario", str(path), "--no-controller")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}:5:")
    assert "Traceback" not in result.stderr


def test_simulate_without_no_controller_says_what_to_do() -> None:
    """Without --no-controller, simulate explains the flag instead of pretending to act."""
    result = selfheal("simulate", "--scenario", "flash-sale")
    assert result.returncode == 2
    assert "--no-controller" in result.stderr


def test_twin_command_serves_kubectl_until_stopped(tmp_path: Path) -> None:
    """`selfheal twin` writes a kubeconfig, serves kubectl, and stops cleanly on SIGTERM."""
    config = tmp_path / "twin.kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "selfheal",
            "twin",
            "--port",
            "0",
            "--speed",
            "30",
            "--kubeconfig",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(config.exists, timeout=30)
        kubectl = kubectl_runner(config)
        output = kubectl("get", "deployments").stdout
        assert "order-service" in output
    finally:
        process.terminate()
        try:
            stdout, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("selfheal twin did not stop on SIGTERM")
    assert process.returncode == 0
    assert "kubectl --kubeconfig" in stdout


def test_twin_refuses_a_taken_port(tmp_path: Path) -> None:
    """Starting the twin on a port that is in use fails with a clear message."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = selfheal(
            "twin", "--port", str(port), "--kubeconfig", str(tmp_path / "k"), timeout=60
        )
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr


def test_audit_verify_passes_then_names_the_first_tampered_record(tmp_path: Path) -> None:
    """After a demo the chain verifies; after an edit `audit verify` exits 1 naming it."""
    state = tmp_path / "state"
    demo = selfheal("demo", "--json", "--duration", "3m", "--state-dir", str(state), timeout=200)
    assert demo.returncode == 0, demo.stderr
    ok = selfheal("audit", "verify", "--state-dir", str(state), "--json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["ok"] is True
    with sqlite3.connect(state / "state.db") as db:
        db.execute(
            "UPDATE audit_log SET payload = replace(payload, 'scale', 'scalf') "
            "WHERE seq = (SELECT min(seq) FROM audit_log WHERE kind = "
            "'action.completed')"
        )
        seq = db.execute(
            "SELECT min(seq) FROM audit_log WHERE kind = 'action.completed'"
        ).fetchone()[0]
    broken = selfheal("audit", "verify", "--state-dir", str(state))
    assert broken.returncode == 1
    assert f"broken at record {seq}" in broken.stdout
