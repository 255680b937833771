"""Telemetry: the series the controller watches, stored and queried as Prometheus would.

`tsdb` keeps scraped samples in memory (retention, staleness, an inverted index);
`promql` parses and evaluates PromQL against it, or against any other `promql.Queryable`.
Label matchers and `label_replace` run their users' patterns with RE2 (`label_regex`).
Scraping (`scrape`) and rule evaluation (`rules`, with `templates` for alert text) build
on these two.
"""

from selfheal.telemetry import (
    label_regex,
    prometheus_source,
    promql,
    receivers,
    rules,
    ruletest,
    scrape,
    series_notation,
    sources,
    templates,
    tsdb,
)
from selfheal.telemetry.tsdb import STALE_NAN, TSDB, Labels, Matcher, MatchOp, is_stale

__all__ = [
    "STALE_NAN",
    "TSDB",
    "Labels",
    "MatchOp",
    "Matcher",
    "is_stale",
    "label_regex",
    "prometheus_source",
    "promql",
    "receivers",
    "rules",
    "ruletest",
    "scrape",
    "series_notation",
    "sources",
    "templates",
    "tsdb",
]
