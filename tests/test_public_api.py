"""The public surface of each package is pinned: changing it must be deliberate."""

from __future__ import annotations

import selfheal
from selfheal import domain, formats, twin


def test_package_surfaces_are_pinned() -> None:
    """Each package's __all__ lists exactly the names it promises."""
    assert selfheal.__all__ == ["__version__"]
    assert sorted(domain.__all__) == [
        "Clock",
        "ConfigError",
        "GuardrailViolation",
        "ManualClock",
        "PermanentError",
        "ScaledClock",
        "SelfhealError",
        "SourceLocation",
        "SystemClock",
        "TemporaryError",
        "errors",
        "time",
    ]
    assert sorted(formats.__all__) == [
        "SourcedDocument",
        "durations",
        "format_duration",
        "load_model",
        "load_model_file",
        "load_yaml",
        "parse_duration",
        "sourced_yaml",
    ]
    assert sorted(twin.__all__) == [
        "Scenario",
        "Simulation",
        "Twin",
        "TwinServer",
        "report",
        "scenario",
        "server",
        "serving",
        "simulation",
    ]


def test_every_public_name_exists() -> None:
    """Nothing in __all__ is a dangling name."""
    for package in (domain, formats, twin):
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name}"
