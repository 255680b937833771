"""The port between the runbook interpreter (workflows) and the actions that do the work.

An action is a function `(params, invocation) -> output` registered under a step type. It
raises `StepFailed` (or any `SelfhealError`) when it cannot do its job; `TemporaryError`
failures are retried per the step's `retry`, others are not. Actions run in worker threads
and must be idempotent: the interpreter may run a step again after a crash. `invocation`
gives them the scenario clock, a deadline, the step's idempotency key, and a durable memo
(`remember`/`recall`) for facts observed before an effect, such as the replica count to
roll back to, which must survive a crash between observing and acting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from selfheal.domain.errors import SelfhealError
from selfheal.domain.time import Clock


@dataclass(frozen=True, slots=True)
class StepType:
    """What a step type accepts: known params, and which of them are required."""

    name: str
    params: frozenset[str]
    required: frozenset[str] = frozenset()
    description: str = ""
    # Render a reference that cannot be resolved as "unknown" instead of failing the step:
    # for messages to people (a page must go out even when what it mentions is missing).
    lenient_templates: bool = False


class StepFailed(SelfhealError):
    """An action could not do its job; `output` says what it found (for the audit)."""

    def __init__(self, message: str, *, output: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = dict(output or {})


class Memo(Protocol):
    """Durable per-step memory, keyed by the step's idempotency key."""

    def recall(self, key: str, name: str) -> Any: ...

    def recall_all(self, key: str) -> Mapping[str, Any]:
        """Everything remembered under `key` (empty if nothing)."""
        ...

    def remember(self, key: str, name: str, value: Any, *, kind: str, at: float) -> None: ...


@dataclass
class Invocation:
    """One execution of one step."""

    workflow_id: str
    runbook: str
    step_id: str
    step_type: str
    attempt: int
    deadline: float
    clock: Clock
    incident: Mapping[str, Any]
    memo: Memo
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}/{self.step_id}"

    def recall(self, name: str) -> Any:
        return self.memo.recall(self.idempotency_key, name)

    def remember(self, name: str, value: Any) -> None:
        self.memo.remember(
            self.idempotency_key, name, value, kind=self.step_type, at=self.clock.now()
        )

    def recall_of(self, step_id: str, name: str) -> Any:
        """What another step of this run remembered (its memo), or None."""
        return self.memo.recall(f"{self.workflow_id}/{step_id}", name)

    def time_left(self) -> float:
        return self.deadline - self.clock.now()


Action = Callable[[Mapping[str, Any], Invocation], Mapping[str, Any]]


@dataclass(frozen=True)
class ActionSpec:
    """An action and the step type it implements."""

    step_type: StepType
    run: Action
