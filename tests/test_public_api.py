"""The public surface of each package is pinned: changing it must be deliberate."""

from __future__ import annotations

import importlib

import pytest

import selfheal

SURFACES = {
    "domain": [
        "Alert",
        "AlertState",
        "Clock",
        "ConfigError",
        "Decision",
        "Fingerprint",
        "GuardrailViolation",
        "Incident",
        "IncidentId",
        "IncidentState",
        "ManualClock",
        "Outcome",
        "PermanentError",
        "Plan",
        "ScaledClock",
        "SelfhealError",
        "SourceLocation",
        "SystemClock",
        "Target",
        "TemporaryError",
        "Verdict",
        "WorkflowId",
        "actions",
        "errors",
        "fingerprint",
        "model",
        "time",
    ],
    "formats": [
        "SourcedDocument",
        "durations",
        "format_duration",
        "load_model",
        "load_model_file",
        "load_yaml",
        "parse_duration",
        "sourced_yaml",
    ],
    "twin": [
        "Scenario",
        "Simulation",
        "Twin",
        "TwinServer",
        "report",
        "scenario",
        "server",
        "serving",
        "simulation",
    ],
    "telemetry": [
        "Labels",
        "MatchOp",
        "Matcher",
        "STALE_NAN",
        "TSDB",
        "is_stale",
        "prometheus_source",
        "promql",
        "receivers",
        "rules",
        "ruletest",
        "scrape",
        "series_notation",
        "sources",
        "templates",
        "tsdb",
    ],
    "decision": [
        "DECISION_QUERY",
        "PlanOutput",
        "PolicyBundle",
        "PolicyEngine",
        "PolicyError",
        "PolicyOutput",
        "RegorusEngine",
        "RuleRef",
        "TestOutcome",
        "TestReport",
        "TestResult",
        "engine",
        "parse_output",
        "policy",
        "regorus_engine",
        "run_tests",
        "to_plans",
    ],
    "store": [
        "ActionRecord",
        "ActionStatus",
        "AuditLog",
        "AuditRecord",
        "ChainReport",
        "LedgerEntry",
        "NotificationRecord",
        "RecordNotFound",
        "RunStatus",
        "Store",
        "WorkflowRun",
        "audit",
        "canonical_json",
        "database",
        "day_of",
        "open_store",
        "repositories",
        "schema",
        "verify",
    ],
    "incidents": ["IncidentIntake", "IncidentRepository", "Intake", "intake", "target_of"],
    "workflows": [
        "Runbook",
        "WorkflowEngine",
        "WorkflowObserver",
        "engine",
        "load_runbook",
        "load_runbooks",
        "runbook",
        "templating",
    ],
    "actions": [
        "KubernetesCluster",
        "bookkeeping",
        "kubernetes_actions",
        "kubernetes_client",
        "ports",
        "verify",
    ],
    "api": ["AlertSink", "SampleSink", "app", "create_app", "ports"],
    "detection": [
        "changepoint",
        "contract",
        "likelihood",
        "nab",
        "registry",
        "robust",
        "seasonal",
    ],
    "runtime": [
        "Controller",
        "Settings",
        "controller",
        "load_settings",
        "recorder",
        "report",
        "settings",
        "telemetry_store",
    ],
}


def test_the_root_package_exports_only_its_version() -> None:
    """`selfheal` itself exports its version and nothing else."""
    assert selfheal.__all__ == ["__version__"]


@pytest.mark.parametrize("name", sorted(SURFACES))
def test_package_surface_is_pinned(name: str) -> None:
    """Each package's __all__ lists exactly the names it promises, and each exists."""
    package = importlib.import_module(f"selfheal.{name}")
    assert sorted(package.__all__) == sorted(SURFACES[name])
    for exported in package.__all__:
        assert hasattr(package, exported), f"selfheal.{name}.{exported}"
