"""The composition root: settings, and the controller wired from every stage's package."""

from selfheal.runtime import (
    alert_intake,
    controller,
    deciding,
    dispatch,
    escalation,
    guardrail_facts,
    policy_input,
    rbac,
    recorder,
    report,
    role_check,
    settings,
    telemetry_store,
)
from selfheal.runtime.controller import Controller
from selfheal.runtime.settings import Settings, load_settings

__all__ = [
    "Controller",
    "Settings",
    "alert_intake",
    "controller",
    "deciding",
    "dispatch",
    "escalation",
    "guardrail_facts",
    "load_settings",
    "policy_input",
    "rbac",
    "recorder",
    "report",
    "role_check",
    "settings",
    "telemetry_store",
]
