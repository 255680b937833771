"""The controller's telemetry: a TSDB shared by the scrape loop and workflow threads.

Scrapes land on the event loop's thread while verify steps query from DBOS worker threads,
so every read and write goes through one lock. A scrape is ingested in one locked call, so
a query never sees half a scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from selfheal.actions.ports import QueriedSample
from selfheal.telemetry import promql, tsdb
from selfheal.telemetry.sources import InstantSource, LocalSource, Pairs


class SharedTelemetry:
    """A locked TSDB: a scrape and receiver sink, a PromQL queryable, an InstantSource."""

    def __init__(self, *, retention: float) -> None:
        self._db = tsdb.TSDB(retention=retention)
        self._lock = threading.RLock()

    def ingest(
        self,
        *,
        at: float,
        samples: Sequence[tuple[Mapping[str, str], float]],
        stale: Sequence[Mapping[str, str]],
    ) -> None:
        with self._lock:
            self._db.ingest(at=at, samples=samples, stale=stale)

    def write(self, samples: Sequence[Any]) -> None:
        """The API's SampleSink: samples with their own timestamps (OTLP, remote-write)."""
        with self._lock:
            for sample in samples:
                self._db.append(sample.labels, timestamp=sample.timestamp, value=sample.value)

    def select(self, matchers: Any, *, start: float, end: float) -> Any:
        with self._lock:
            return self._db.select(matchers, start=start, end=end)

    def instant(self, expr: promql.Expr | str, *, at: float) -> Pairs:
        """InstantSource: evaluated under the lock, so all of a query's selects agree."""
        with self._lock:
            return LocalSource(self._db).instant(expr, at=at)


class SourceMetrics:
    """`MetricsQuery` for verify steps over any InstantSource (local or a Prometheus)."""

    def __init__(self, source: InstantSource) -> None:
        self._source = source

    def query(self, expr: str, *, at: float) -> Sequence[QueriedSample]:
        return [QueriedSample(labels, value) for labels, value in self._source.instant(expr, at=at)]
