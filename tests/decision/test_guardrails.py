"""Guardrails: each limit refuses what it should, names itself, and allows the rest."""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from selfheal.decision.guardrails import (
    Facts,
    GuardrailFile,
    Guardrails,
    PastRun,
    action_cap,
    check,
    load_guardrails,
)
from selfheal.domain.errors import ConfigError
from selfheal.domain.model import Plan, Target

ORDERS = Target("Deployment", "production", "orders")
PAYMENTS = Target("Deployment", "production", "payments")
CATALOG = Target("Deployment", "shop", "catalog")
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC).timestamp()  # a Tuesday, noon UTC
SCALE = Plan("scale-up", {"replicas": 5})


def rails(**fields: Any) -> Guardrails:
    return Guardrails.model_validate(fields)


def names(refusals: list[Any]) -> list[str]:
    return [r.guardrail for r in refusals]


def ran(runbook: str, target: Target, ago: float, outcome: str | None = "verified") -> PastRun:
    return PastRun(runbook, target, NOW - ago, outcome)


def test_no_guardrails_allow_everything() -> None:
    assert check(Guardrails(), SCALE, ORDERS, Facts(now=NOW, replicas=2)) == []


def test_a_per_target_rate_limit_counts_only_that_target_within_the_window() -> None:
    limit = rails(rate_limits=[{"per": "target", "max": 2, "window": "1h"}])
    runs = [ran("scale-up", ORDERS, 600), ran("restart", ORDERS, 1200), ran("x", PAYMENTS, 60)]
    [refusal] = check(limit, SCALE, ORDERS, Facts(now=NOW, runs=runs, replicas=2))
    assert refusal.guardrail == "rate_limit"
    assert "2 remediations of target production/orders in the last 1h" in refusal.reason
    assert check(limit, SCALE, PAYMENTS, Facts(now=NOW, runs=runs, replicas=2)) == []
    old = [ran("scale-up", ORDERS, 4000), ran("scale-up", ORDERS, 600)]
    assert check(limit, SCALE, ORDERS, Facts(now=NOW, runs=old, replicas=2)) == []


def test_a_per_runbook_rate_limit_can_name_one_runbook() -> None:
    limit = rails(
        rate_limits=[{"per": "runbook", "runbook": "scale-up", "max": 1, "window": "10m"}]
    )
    runs = [ran("scale-up", PAYMENTS, 60)]
    assert names(check(limit, SCALE, ORDERS, Facts(now=NOW, runs=runs, replicas=2))) == [
        "rate_limit"
    ]
    restart = Plan("restart", {})
    assert check(limit, restart, ORDERS, Facts(now=NOW, runs=runs)) == []


def test_cooldown_holds_a_target_after_its_last_remediation() -> None:
    cooldown = rails(cooldown="10m")
    recent = Facts(now=NOW, runs=[ran("scale-up", ORDERS, 300)], replicas=2)
    [refusal] = check(cooldown, SCALE, ORDERS, recent)
    assert refusal.guardrail == "cooldown"
    assert "5m ago, within the cooldown of 10m" in refusal.reason
    later = Facts(now=NOW, runs=[ran("scale-up", ORDERS, 601)], replicas=2)
    assert check(cooldown, SCALE, ORDERS, later) == []


def test_concurrency_caps_running_remediations_globally_and_per_namespace() -> None:
    caps = rails(concurrency={"global": 2, "per_namespace": 1})
    one_running = [ran("scale-up", PAYMENTS, 30, outcome=None)]
    assert names(check(caps, SCALE, ORDERS, Facts(now=NOW, runs=one_running, replicas=2))) == [
        "concurrency"
    ]
    assert check(caps, SCALE, CATALOG, Facts(now=NOW, runs=one_running, replicas=2)) == []
    two_running = [*one_running, ran("scale-up", CATALOG, 30, outcome=None)]
    refusals = check(
        caps,
        Plan("scale-up", {"replicas": 3}),
        Target("Deployment", "other", "x"),
        Facts(now=NOW, runs=two_running, replicas=2),
    )
    assert [r.reason for r in refusals] == ["2 remediations running, at the limit of 2"]


def test_blast_radius_caps_replica_change_and_refuses_zero() -> None:
    radius = rails(blast_radius={"max_replica_change": 3})
    assert check(radius, SCALE, ORDERS, Facts(now=NOW, replicas=2)) == []
    [big] = check(radius, Plan("scale-up", {"replicas": 9}), ORDERS, Facts(now=NOW, replicas=2))
    assert "changes 7 replicas, over the cap of 3" in big.reason
    [unknown] = check(radius, SCALE, ORDERS, Facts(now=NOW))
    assert "an unknown number of replicas" in unknown.reason
    zero = check(rails(), Plan("scale-down", {"replicas": 0}), ORDERS, Facts(now=NOW, replicas=2))
    assert [r.reason for r in zero] == ["the plan scales to zero replicas"]
    allowed = rails(blast_radius={"allow_scale_to_zero": True})
    assert check(allowed, Plan("scale-down", {"replicas": 0}), ORDERS, Facts(now=NOW)) == []


def test_blast_radius_caps_the_share_of_pods_and_nodes_touched() -> None:
    radius = rails(blast_radius={"max_pod_share": 0.5, "max_node_share": 0.2})
    restart = Plan("restart-pods", {"pods": ["a", "b", "c"]})
    [pods] = check(radius, restart, ORDERS, Facts(now=NOW, replicas=4))
    assert pods.reason == "the plan touches 3 of 4 pods, over 50%"
    assert check(radius, restart, ORDERS, Facts(now=NOW, replicas=6)) == []
    cordon = Plan("cordon", {"node_count": 3})
    [nodes] = check(radius, cordon, None, Facts(now=NOW, cluster_nodes=10))
    assert nodes.reason == "the plan touches 3 of 10 nodes, over 20%"
    assert (
        check(radius, Plan("cordon", {"node": "n1"}), None, Facts(now=NOW, cluster_nodes=5)) == []
    )


def test_the_circuit_breaker_opens_after_repeated_failures_until_reset() -> None:
    breaker = rails(circuit_breaker={"failures": 2, "window": "1h"})
    runs = [
        ran("scale-up", ORDERS, 1800, "rolled_back"),
        ran("scale-up", ORDERS, 900, "failed"),
        ran("scale-up", PAYMENTS, 600, "failed"),
    ]
    [refusal] = check(breaker, SCALE, ORDERS, Facts(now=NOW, runs=runs, replicas=2))
    assert refusal.guardrail == "circuit_breaker"
    assert "rolled back 2 times on production/orders" in refusal.reason
    assert "selfheal guardrails reset" in refusal.reason
    assert check(breaker, SCALE, PAYMENTS, Facts(now=NOW, runs=runs, replicas=2)) == []
    reset = Facts(now=NOW, runs=runs, replicas=2, breaker_resets={("scale-up", ORDERS): NOW - 1000})
    assert check(breaker, SCALE, ORDERS, reset) == []


def test_the_daily_cost_budget_and_the_error_budget_rule() -> None:
    money = rails(daily_cost_budget=50)
    facts = Facts(now=NOW, replicas=2, spent_today=40.0, plan_cost=12.0)
    [refusal] = check(money, SCALE, ORDERS, facts)
    assert refusal.reason == (
        "the plan would cost 12.00 on top of 40.00 spent today, over the daily budget of 50.00"
    )
    error_budget = rails(error_budget={"query": "slo:budget", "min_remaining": 0.2})
    risky = Plan("rollback", {}, risk="high")
    low = Facts(now=NOW, error_budget_remaining=0.1)
    assert names(check(error_budget, risky, ORDERS, low)) == ["error_budget"]
    assert check(error_budget, SCALE, ORDERS, Facts(now=NOW, error_budget_remaining=0.1)) == []
    assert check(error_budget, risky, ORDERS, Facts(now=NOW, error_budget_remaining=0.5)) == []
    assert names(check(error_budget, risky, ORDERS, Facts(now=NOW))) == ["error_budget"]


def test_maintenance_windows_pause_runbooks_weekly_even_past_midnight() -> None:
    window = rails(
        maintenance_windows=[
            {"days": ["tue"], "start": "11:00", "end": "13:00", "runbooks": ["scale-up"]},
            {"days": ["mon"], "start": "23:00", "end": "02:00"},
        ]
    )
    assert names(check(window, SCALE, ORDERS, Facts(now=NOW, replicas=2))) == ["maintenance_window"]
    assert check(window, Plan("restart", {}), ORDERS, Facts(now=NOW)) == []
    tuesday_1am = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC).timestamp()
    assert names(check(window, Plan("restart", {}), ORDERS, Facts(now=tuesday_1am))) == [
        "maintenance_window"
    ]
    wednesday_1am = tuesday_1am + 86_400
    assert check(window, Plan("restart", {}), ORDERS, Facts(now=wednesday_1am)) == []


def test_change_freezes_let_only_allowed_risk_tiers_through() -> None:
    freeze = rails(
        change_freezes=[
            {"start": "2026-11-30T00:00:00Z", "end": "2026-12-02T00:00:00Z", "allow_risks": ["low"]}
        ]
    )
    [refusal] = check(freeze, Plan("scale-up", {}, risk="medium"), ORDERS, Facts(now=NOW))
    assert refusal.guardrail == "change_freeze"
    assert "until 2026-12-02T00:00:00+00:00" in refusal.reason
    assert check(freeze, Plan("scale-up", {}, risk="low"), ORDERS, Facts(now=NOW)) == []


def test_every_guardrail_that_refuses_is_reported() -> None:
    strict = rails(cooldown="1h", daily_cost_budget=0, blast_radius={"max_replica_change": 1})
    facts = Facts(now=NOW, runs=[ran("scale-up", ORDERS, 60)], replicas=2, plan_cost=1.0)
    assert sorted(names(check(strict, SCALE, ORDERS, facts))) == [
        "blast_radius",
        "cooldown",
        "daily_cost_budget",
    ]


def test_action_cap_is_the_least_of_the_rate_limits_and_the_cooldown() -> None:
    limits = {
        "rate_limits": [
            {"per": "target", "max": 2, "window": "30m"},
            {"per": "runbook", "runbook": "scale-up", "max": 5, "window": "1h"},
        ],
        "cooldown": "2m",
    }
    # Per target: 2 per 30m over 2h is 8 (the cooldown would allow 61); 3 targets: 24.
    # Per runbook: 5 per hour over 2h is 10, the lesser.
    assert action_cap(rails(**limits), duration=7200, targets=3, runbooks=["scale-up"]) == 10
    assert action_cap(rails(**limits), duration=7200, targets=1, runbooks=["scale-up"]) == 8
    # A runbook no per-runbook limit names is bounded only per target.
    assert action_cap(rails(**limits), duration=7200, targets=1, runbooks=["drain"]) == 8
    # Only the cooldown: floor(10m / 2m) + 1 starts per target.
    assert action_cap(rails(cooldown="2m"), duration=600, targets=2, runbooks=["x"]) == 12
    assert action_cap(Guardrails(), duration=600, targets=2, runbooks=["x"]) is None


def test_action_cap_bounds_what_check_admits_to_a_greedy_stream_of_plans() -> None:
    """Plans every 10 s for 2 h over 3 targets: the guardrails admit no more than the cap."""
    guard = rails(
        rate_limits=[
            {"per": "target", "max": 2, "window": "30m"},
            {"per": "runbook", "runbook": "scale-up", "max": 5, "window": "1h"},
        ],
        cooldown="2m",
    )
    targets = [ORDERS, PAYMENTS, CATALOG]
    runs: list[PastRun] = []
    start = NOW
    for step in range(720):
        at = start + 10 * step
        target = targets[step % 3]
        facts = Facts(now=at, runs=tuple(runs), replicas=2)
        if not check(guard, Plan("scale-up", {"replicas": 3}), target, facts):
            runs.append(PastRun("scale-up", target, at, "verified"))
    cap = action_cap(guard, duration=7200, targets=3, runbooks=["scale-up"])
    assert cap is not None
    assert len(runs) <= cap
    assert len(runs) == cap  # greedy: five in the first hour, five once it has slid past


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_a_bad_file_is_refused_naming_its_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "guardrails.yaml"
    write(
        path,
        """\
        cooldown: 5m
        rate_limits:
          - {per: target, max: 3, window: 1h}
          - {per: namespace, max: 3, window: 1h}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_guardrails(path)
    assert f"{path}:4" in str(caught.value)
    assert "rate_limits[1].per" in str(caught.value)


def test_a_changed_file_is_reloaded_and_a_broken_edit_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "guardrails.yaml"
    write(path, "cooldown: 5m\n")
    live = GuardrailFile(path)
    assert live.current() == (live.rails, None)
    assert live.rails.cooldown == 300
    write(path, "cooldown: 10m\nconcurrency: {global: 3}\n")
    os.utime(path, (NOW, NOW))
    current, error = live.current()
    assert error is None
    assert (current.cooldown, current.concurrency.global_) == (600, 3)
    write(path, "cooldown: soon\n")
    os.utime(path, (NOW + 1, NOW + 1))
    kept, error = live.current()
    assert kept.cooldown == 600  # the last good guardrails stay in force
    assert error is not None
    assert "cooldown" in str(error)
