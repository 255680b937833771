"""Closing an open circuit breaker, on the record: the one rule the CLI and the API share.

A reset appends a `guardrail.reset` record (runbook, target, who, why, and how the request
came); the breaker then counts only failures after it. It is stamped no earlier than the
chain's last record, so it forgives every failure already recorded. A breaker that is not
open is left alone and nothing is recorded: a reset is an answer to a breaker that tripped,
not a way to pre-empt one.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfheal.decision import guardrails
from selfheal.domain.errors import ConfigError
from selfheal.domain.identity import canonical_identity
from selfheal.domain.model import Target
from selfheal.runtime.guardrail_facts import breaker_failures
from selfheal.store import Store


@dataclass(frozen=True, slots=True)
class BreakerReset:
    """What a reset found: the failures counted, the count that opens it, whether it reset."""

    failures: int
    opens_at: int
    window: float
    reset: bool


def reset_breaker(
    store: Store,
    rails: guardrails.Guardrails,
    *,
    runbook: str,
    target: Target,
    by: str,
    reason: str,
    source: str,
    at: float,
) -> BreakerReset:
    """Reset the breaker of (runbook, target) if it is open; ConfigError if there is none."""
    breaker = rails.circuit_breaker
    if breaker is None:
        raise ConfigError("the guardrails set no circuit_breaker: nothing to reset")
    if not canonical_identity(by):
        raise ConfigError("a reset needs the identity of whoever resets it")
    last = store.audit.last()
    at = max(at, last.at if last else 0.0)
    failures = breaker_failures(rails, store, runbook=runbook, target=target, at=at) or 0
    opened = failures >= breaker.failures
    if opened:
        store.audit.append(
            "guardrail.reset",
            f"{runbook}@{target.namespace}/{target.name}",
            {
                "runbook": runbook,
                "target": f"{target.namespace}/{target.name}",
                "by": by,
                "reason": reason,
                "source": source,
            },
            at=at,
        )
    return BreakerReset(failures, breaker.failures, breaker.window, opened)
