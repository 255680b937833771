"""The verify step: bounds on PromQL results; no data is inconclusive, never passed."""

from __future__ import annotations

from typing import Any

import pytest

from selfheal.actions import verify
from selfheal.actions.ports import QueriedSample
from selfheal.domain.actions import Invocation, StepFailed
from selfheal.domain.errors import PermanentError
from selfheal.domain.time import ManualClock


class Metrics:
    """Answers queries from a fixed table; a query it does not know returns no data."""

    def __init__(self, answers: dict[str, list[float]]) -> None:
        self.answers = answers

    def query(self, expr: str, *, at: float) -> list[QueriedSample]:
        if expr == "broken(":
            raise PermanentError("invalid PromQL")
        return [QueriedSample({"i": str(i)}, v) for i, v in enumerate(self.answers.get(expr, []))]


class NoMemo:
    """A memo that forgets: verify keeps nothing in it."""

    def recall(self, key: str, name: str) -> Any:
        return None

    def recall_all(self, key: str) -> dict[str, Any]:
        return {}

    def remember(self, key: str, name: str, value: Any, *, kind: str, at: float) -> None:
        return None


def run(metrics: Metrics, query: str, **extra: Any) -> dict[str, Any]:
    clock = ManualClock()
    invocation = Invocation(
        workflow_id="w",
        runbook="r",
        step_id="verify",
        step_type="verify",
        attempt=1,
        deadline=clock.now() + 300,
        clock=clock,
        incident={},
        memo=NoMemo(),
    )
    params = {"checks": [{"name": "p95", "query": query, "op": "<=", "threshold": 0.2}], **extra}
    return dict(verify.verify_action(metrics).run(params, invocation))


def test_all_series_within_bound_pass() -> None:
    """Every returned series at or under the bound: passed, with the worst value reported."""
    result = run(Metrics({"q": [0.1, 0.19]}), "q", settle="30s", samples=2)
    assert result["verdict"] == "passed"
    assert result["worst"] == {"p95": 0.19}


def test_one_series_over_bound_fails() -> None:
    """A single series over the bound fails the check and names the value."""
    with pytest.raises(StepFailed, match="failed") as raised:
        run(Metrics({"q": [0.1, 0.35]}), "q")
    assert raised.value.output["verdict"] == "failed"


@pytest.mark.parametrize("query", ["no_such_metric", "broken("])
def test_no_data_or_a_failing_query_is_inconclusive_and_fails_the_step(query: str) -> None:
    """Nothing to look at is not a pass: the step fails as inconclusive."""
    with pytest.raises(StepFailed, match="inconclusive") as raised:
        run(Metrics({}), query)
    assert raised.value.output["verdict"] == "inconclusive"


def test_nan_never_passes() -> None:
    """A NaN value (an empty histogram, say) does not satisfy any bound."""
    with pytest.raises(StepFailed):
        run(Metrics({"q": [float("nan")]}), "q")
