"""Scraping the twin's /metrics over HTTP into the TSDB, with Prometheus' staleness."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx

from selfheal.domain.time import ManualClock
from selfheal.telemetry import TSDB, promql
from selfheal.telemetry.scrape import Scraper, Target

from support import RunningTwin


def scrape(scraper: Scraper) -> None:
    async def once() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await scraper.scrape_once(client)

    asyncio.run(once())


def test_scraped_series_carry_job_and_instance_and_up(twin: RunningTwin) -> None:
    """Every scraped series gets job and instance; `up` is 1 for a healthy target."""
    db, clock = TSDB(), ManualClock()
    scraper = Scraper(
        targets=[Target(url=f"{twin.url}/metrics", job="kubernetes")],
        sink=db,
        clock=clock,
        interval=1.0,
    )
    scrape(scraper)
    at = clock.now()
    up = promql.evaluate('up{job="kubernetes"}', storage=db, at=at)
    assert [sample.value for sample in up] == [1.0]
    cpu = promql.evaluate("container_cpu_usage_seconds_total", storage=db, at=at)
    assert len(cpu) == 9
    instance = twin.url.removeprefix("http://")
    assert {sample.labels.get("instance") for sample in cpu} == {instance}


def test_rate_over_scrapes_reflects_the_twin_cpu(twin: RunningTwin) -> None:
    """Two scrapes apart give a CPU rate close to the pods' real usage."""
    db, clock = TSDB(), ManualClock()
    scraper = Scraper(
        targets=[Target(url=f"{twin.url}/metrics")], sink=db, clock=clock, interval=1.0
    )
    for _ in range(3):
        scrape(scraper)
        clock.advance(1.0)
        httpx.get(f"{twin.url}/healthz")
    result = promql.evaluate(
        'sum(rate(container_cpu_usage_seconds_total{container="order-service"}[5s]))',
        storage=db,
        at=clock.now(),
    )
    [sample] = list(result)
    assert sample.value > 0
    assert math.isfinite(sample.value)


def test_a_deleted_pod_goes_stale_at_the_next_scrape(twin: RunningTwin) -> None:
    """After a pod is deleted its series vanish from instant queries at once."""
    db, clock = TSDB(), ManualClock()
    scraper = Scraper(
        targets=[Target(url=f"{twin.url}/metrics")], sink=db, clock=clock, interval=1.0
    )
    scrape(scraper)
    query = 'container_cpu_usage_seconds_total{container="catalog"}'
    pods = {s.labels["pod"] for s in promql.evaluate(query, storage=db, at=clock.now())}
    victim = min(pods)
    response = httpx.delete(f"{twin.url}/api/v1/namespaces/production/pods/{victim}")
    assert response.status_code == 200
    clock.advance(1.0)
    scrape(scraper)
    after = {s.labels["pod"] for s in promql.evaluate(query, storage=db, at=clock.now())}
    assert victim not in after


def test_an_unreachable_target_sets_up_to_zero(tmp_path: Path) -> None:
    """A target nobody listens on is scraped as down, not as an exception."""
    db, clock = TSDB(), ManualClock()
    scraper = Scraper(
        targets=[Target(url="http://127.0.0.1:9/metrics", job="gone")],
        sink=db,
        clock=clock,
        interval=1.0,
        timeout=1.0,
    )
    scrape(scraper)
    [sample] = list(promql.evaluate('up{job="gone"}', storage=db, at=clock.now()))
    assert sample.value == 0
    assert scraper.failures == 1
