"""Scraping Prometheus exposition from targets on an interval, as Prometheus does.

Each scrape adds the target's `job` and `instance` labels (a scraped label of the same name
is kept as `exported_<name>`), records `up`, `scrape_duration_seconds` and
`scrape_samples_scraped`, and marks series that disappeared since the previous scrape as
stale, so instant queries stop seeing them at once instead of after the 5-minute lookback. A
failed scrape sets `up` to 0 and marks all of the target's series stale.

Timestamps are the scrape's scenario time (the clock's `now()`), not the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from selfheal.domain.time import Clock
from selfheal.telemetry.text_format import parse_samples

_log = logging.getLogger(__name__)
LabelSet = tuple[tuple[str, str], ...]
_MAX_BODY = 32 << 20  # a scrape larger than this is refused, not half-ingested


class Sink(Protocol):
    """Where scraped samples go: one call per scrape, applied atomically."""

    def ingest(
        self,
        *,
        at: float,
        samples: Sequence[tuple[Mapping[str, str], float]],
        stale: Sequence[Mapping[str, str]],
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """A scrape target: a URL and the job label its samples get."""

    url: str
    job: str = "selfheal"

    @property
    def instance(self) -> str:
        return urlsplit(self.url).netloc


@dataclass
class _TargetState:
    target: Target
    previous: set[LabelSet] = field(default_factory=set)


def parse_exposition(text: str, *, target: Target) -> list[tuple[dict[str, str], float]]:
    """Samples of a text exposition with the target's labels applied; ValueError if invalid."""
    samples = parse_samples(text)
    for labels, _ in samples:
        for name in ("job", "instance"):
            if name in labels:
                labels[f"exported_{name}"] = labels.pop(name)
        labels["job"] = target.job
        labels["instance"] = target.instance
    return samples


def _key(labels: Mapping[str, str]) -> LabelSet:
    return tuple(sorted(labels.items()))


class Scraper:
    """Scrapes every target once per `interval` of scenario time."""

    def __init__(
        self,
        *,
        targets: Sequence[Target],
        sink: Sink,
        clock: Clock,
        interval: float,
        timeout: float = 5.0,
    ) -> None:
        self._states = [_TargetState(target) for target in targets]
        self._sink = sink
        self._clock = clock
        self.interval = interval
        self._timeout = timeout
        self.scrapes = 0
        self.failures = 0

    async def scrape_once(self, client: httpx.AsyncClient) -> None:
        """Scrape every target now (concurrently)."""
        await asyncio.gather(*(self._scrape(client, state) for state in self._states))
        self.scrapes += 1

    async def run(self) -> None:
        """Scrape forever, aligned to the interval; cancel to stop."""
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            while True:
                started = self._clock.now()
                await self.scrape_once(client)
                elapsed = self._clock.now() - started
                await self._clock.sleep(max(0.0, self.interval - elapsed))

    @staticmethod
    async def _fetch(
        client: httpx.AsyncClient, target: Target
    ) -> list[tuple[dict[str, str], float]]:
        response = await client.get(target.url, headers={"Accept": "text/plain"})
        response.raise_for_status()
        if len(response.content) > _MAX_BODY:
            raise ValueError(f"exposition of {len(response.content)} bytes is too large")
        return parse_exposition(response.text, target=target)

    async def _scrape(self, client: httpx.AsyncClient, state: _TargetState) -> None:
        target = state.target
        at = self._clock.now()
        began = time.perf_counter()
        try:
            samples = await self._fetch(client, target)
            up = 1.0
        except (httpx.HTTPError, ValueError) as exc:
            self.failures += 1
            _log.warning("scrape of %s failed: %s", target.url, exc)
            samples, up = [], 0.0
        duration = time.perf_counter() - began
        base = {"job": target.job, "instance": target.instance}
        samples += [
            ({"__name__": "up", **base}, up),
            ({"__name__": "scrape_duration_seconds", **base}, duration),
            ({"__name__": "scrape_samples_scraped", **base}, float(len(samples))),
        ]
        current = {_key(labels) for labels, _ in samples}
        gone = [dict(key) for key in state.previous - current]
        state.previous = current
        self._sink.ingest(at=at, samples=samples, stale=gone)
