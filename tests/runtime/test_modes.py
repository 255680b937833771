"""Modes: which of enforce, shadow and off a plan runs in."""

from __future__ import annotations

from selfheal.runtime.settings import ModeSettings


def test_a_runbook_mode_stricter_than_the_policy_mode_wins() -> None:
    """Shadowing one runbook keeps it in shadow under an enforcing policy, and off beats all."""
    modes = ModeSettings.model_validate(
        {"policy": "enforce", "runbooks": {"drain-node": "shadow", "delete-pod": "off"}}
    )
    assert modes.for_runbook("scale-up") == "enforce"
    assert modes.for_runbook("drain-node") == "shadow"
    assert modes.for_runbook("delete-pod") == "off"
    shadowing = ModeSettings.model_validate({"policy": "shadow", "runbooks": {"x": "enforce"}})
    assert shadowing.for_runbook("x") == "shadow"
