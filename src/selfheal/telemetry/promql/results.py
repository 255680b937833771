"""What a PromQL query returns: a Scalar, a Vector of Samples, a Matrix, or a String.

These mirror Prometheus' four value types. An instant query returns whichever its
expression's type calls for; a range query always returns a Matrix (one point per step at
which a series had a value). Timestamps are seconds, like everywhere in selfheal; the
evaluator works in integer milliseconds internally, as Prometheus does, and converts at the
edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from selfheal.telemetry.tsdb import Labels


@dataclass(frozen=True, slots=True)
class Scalar:
    """A single number at the evaluation time."""

    value: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class String:
    """A string literal's value at the evaluation time."""

    value: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class Sample:
    """One series' value in an instant vector."""

    labels: Labels
    value: float


@dataclass(frozen=True, slots=True)
class Vector:
    """An instant vector: at most one sample per label set, at `timestamp`."""

    samples: tuple[Sample, ...]
    timestamp: float

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def as_dict(self) -> dict[Labels, float]:
        """Samples keyed by label set, for order-insensitive comparisons."""
        return {sample.labels: sample.value for sample in self.samples}


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series' points `(timestamp seconds, value)`, oldest first."""

    labels: Labels
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Matrix:
    """A set of series over time, sorted by label set."""

    series: tuple[RangeSeries, ...]

    def __iter__(self) -> Iterator[RangeSeries]:
        return iter(self.series)

    def __len__(self) -> int:
        return len(self.series)

    def as_dict(self) -> dict[Labels, tuple[tuple[float, float], ...]]:
        return {series.labels: series.points for series in self.series}


Value = Scalar | Vector | Matrix | String
