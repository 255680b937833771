"""The decision stage: Rego policies choose a remediation for an incident.

`engine` is the port (a Protocol any Rego engine implements), `regorus_engine` the one
implementation, and `policy` the bundle of Rego files the controller evaluates, with the
schema of its output and the runner for its `test_` rules.
"""

from selfheal.decision import engine, policy, regorus_engine
from selfheal.decision.engine import PolicyEngine, PolicyError, RuleRef
from selfheal.decision.policy import (
    DECISION_QUERY,
    PlanOutput,
    PolicyBundle,
    PolicyOutput,
    TestOutcome,
    TestReport,
    TestResult,
    parse_output,
    run_tests,
    to_plans,
)
from selfheal.decision.regorus_engine import RegorusEngine

__all__ = [
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
]
