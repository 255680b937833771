"""Pure types and ports shared by every stage: the error tree and the clock.

Nothing here imports another selfheal package; every other package may import this one.
"""

from selfheal.domain import actions, errors, model, time
from selfheal.domain.errors import (
    ConfigError,
    GuardrailViolation,
    PermanentError,
    SelfhealError,
    SourceLocation,
    TemporaryError,
)
from selfheal.domain.model import (
    Alert,
    AlertState,
    Decision,
    Fingerprint,
    Incident,
    IncidentId,
    IncidentState,
    Outcome,
    Plan,
    Signal,
    Target,
    Verdict,
    WorkflowId,
    fingerprint,
)
from selfheal.domain.time import (
    Clock,
    ManualClock,
    ScaledClock,
    ScenarioClock,
    SteppedClock,
    SystemClock,
)

__all__ = [
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
    "ScenarioClock",
    "SelfhealError",
    "Signal",
    "SourceLocation",
    "SteppedClock",
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
]
