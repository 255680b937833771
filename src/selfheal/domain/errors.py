"""The error tree: one root, split by what the caller does next.

    SelfhealError                  anything selfheal raises on purpose
    ├── TemporaryError(delay)      try again later (after `delay` seconds)
    ├── PermanentError             give up; retrying cannot help
    ├── GuardrailViolation         refuse the action and escalate to a person
    └── ConfigError(location)      the user's input is wrong; says where and what

Foreign exceptions are translated into these at the adapter that meets them
(`raise PermanentError(str(exc)) from exc`), so callers never catch a library's types.
"""

from __future__ import annotations

from dataclasses import dataclass


class SelfhealError(Exception):
    """Root of every error selfheal raises deliberately."""


class TemporaryError(SelfhealError):
    """A failure that may go away: the caller should retry after `delay` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(SelfhealError):
    """A failure that retrying cannot fix."""


class GuardrailViolation(SelfhealError):
    """An action was refused by a guardrail; the incident must be escalated."""


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where in a user's input a problem is: a file, and within it a line:col or a path."""

    source: str
    line: int | None = None
    column: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.path:
            where += f" ({self.path})"
        return where


class ConfigError(SelfhealError):
    """User input (a scenario, rule file, policy, runbook, config or payload) is wrong.

    The message names the place first so it reads like a compiler error:
    ``scenarios/x.yaml:12:5 (faults[2].type): unknown fault type 'load_spike'``.
    """

    def __init__(self, message: str, *, location: SourceLocation | None = None) -> None:
        self.location = location
        self.detail = message
        super().__init__(f"{location}: {message}" if location else message)
