"""Where instant queries are answered: selfheal's own TSDB, or (later) a Prometheus server.

Rule evaluation and verify steps ask one question, "this expression's value at this time",
through the `InstantSource` port, so the controller can run detection against its own
scraped TSDB or against a real Prometheus HTTP API, chosen in config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from selfheal.telemetry import promql

Pairs = list[tuple[dict[str, str], float]]


class InstantSource(Protocol):
    """Evaluates an instant query; a scalar result comes back as one unlabelled pair."""

    def instant(self, expr: promql.Expr | str, *, at: float) -> Pairs: ...


class LocalSource:
    """Instant queries evaluated by selfheal's PromQL engine over a Queryable (the TSDB)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage

    def instant(self, expr: promql.Expr | str, *, at: float) -> Pairs:
        return vector_pairs(promql.evaluate(expr, storage=self.storage, at=at))

    def ingest(
        self,
        *,
        at: float,
        samples: Sequence[tuple[Mapping[str, str], float]],
        stale: Sequence[Mapping[str, str]],
    ) -> None:
        """Recording rules write back here, when the storage accepts writes."""
        ingest = getattr(self.storage, "ingest", None)
        if ingest is not None:
            ingest(at=at, samples=samples, stale=stale)


def vector_pairs(result: Any) -> Pairs:
    """Normalize an evaluator result into (labels, value) pairs."""
    if isinstance(result, promql.Scalar):
        return [({}, float(result.value))]
    if isinstance(result, promql.Vector):
        return [(sample.labels.to_dict(), float(sample.value)) for sample in result]
    raise promql.PromQLError(
        f"an instant query must return a vector or a scalar, not {type(result).__name__.lower()}"
    )
