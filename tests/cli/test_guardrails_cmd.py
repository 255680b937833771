"""`selfheal guardrails check|reset`: validate a file; close a breaker, on the record."""

from __future__ import annotations

from pathlib import Path

from selfheal.store import open_store

from support import selfheal

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


def test_reset_records_who_closed_the_breaker(tmp_path: Path) -> None:
    open_store(f"sqlite:///{tmp_path / 'state.db'}").close()
    result = selfheal(
        "guardrails",
        "reset",
        "--runbook",
        "scale-up",
        "--target",
        "production/order-service",
        "--as",
        "alice",
        "--reason",
        "capacity added",
        "--state-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        [record] = store.audit.records(kind="guardrail.reset")
    assert record.payload == {
        "runbook": "scale-up",
        "target": "production/order-service",
        "by": "alice",
        "reason": "capacity added",
    }


def test_reset_refuses_a_target_without_its_namespace(tmp_path: Path) -> None:
    result = selfheal(
        "guardrails",
        "reset",
        "--runbook",
        "r",
        "--target",
        "order-service",
        "--as",
        "alice",
        "--state-dir",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert "NAMESPACE/NAME" in result.stderr
