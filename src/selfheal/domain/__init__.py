"""Pure types and ports shared by every stage: the error tree and the clock.

Nothing here imports another selfheal package; every other package may import this one.
"""

from selfheal.domain import errors, time
from selfheal.domain.errors import (
    ConfigError,
    GuardrailViolation,
    PermanentError,
    SelfhealError,
    SourceLocation,
    TemporaryError,
)
from selfheal.domain.time import Clock, ManualClock, ScaledClock, SystemClock

__all__ = [
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
