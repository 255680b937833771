"""The README's status section, checked against a run: every figure it states is what a user sees.

The figures are read out of README.md itself, so editing the README without the code (or
the code without the README) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from selfheal.formats.durations import format_duration, parse_duration

from support import demo_report

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def readme() -> str:
    """README.md with its line breaks folded, as one paragraph of prose."""
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())


@pytest.fixture(scope="module")
def flash_sale() -> dict[str, Any]:
    """`make demo`'s run: the flash sale with the example config, as `--json` reports it."""
    return demo_report()


def claim(pattern: str, readme: str) -> re.Match[str]:
    found = re.search(pattern, readme)
    assert found, f"the README no longer says /{pattern}/"
    return found


def incident(report: dict[str, Any], alert: str) -> dict[str, Any]:
    [found] = [item for item in report["incidents"] if item["alert"] == alert]
    return found


def test_the_anomaly_watch_opens_the_incident_when_and_as_the_readme_says(
    readme: str, flash_sale: dict[str, Any]
) -> None:
    said = claim(r"opens the incident at (\S+), (\d+) s before the twin's ground-truth", readme)
    watch = incident(flash_sale, "OrderServiceLatencyAnomaly")
    assert format_duration(watch["detected_s"]) == said.group(1)
    assert watch["onset_s"] - watch["detected_s"] == pytest.approx(float(said.group(2)), abs=1)
    scaled = claim(r"scales order-service from (\d+) to (\d+) replicas", readme)
    assert (watch["replicas_before"], watch["replicas_after"]) == (
        int(scaled.group(1)),
        int(scaled.group(2)),
    )
    assert watch["verified"]


def test_the_throttling_rule_has_the_for_and_fires_when_the_readme_says(
    readme: str, flash_sale: dict[str, Any]
) -> None:
    said = claim(r"The CPU-throttling rule, with its `for: (\w+)`, fires at (\S+)", readme)
    rules = yaml.safe_load((ROOT / "examples/flash-sale/rules.yaml").read_text(encoding="utf-8"))
    [rule] = [
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "OrderServiceCPUThrottling"
    ]
    assert parse_duration(rule["for"]) == parse_duration(said.group(1))
    fired = incident(flash_sale, "OrderServiceCPUThrottling")
    assert format_duration(fired["detected_s"]) == said.group(2)
    assert fired["waited_for"] == incident(flash_sale, "OrderServiceLatencyAnomaly")["id"]


def test_the_slo_breach_is_within_the_range_the_readme_states(
    readme: str, flash_sale: dict[str, Any]
) -> None:
    said = claim(r"The SLO is breached for (\d+) s instead of (\d+) s without selfheal", readme)
    spread = claim(r"over repeated runs the breach is (\d+)-(\d+) s", readme)
    low, high = int(spread.group(1)), int(spread.group(2))
    assert low <= int(said.group(1)) <= high
    assert low <= flash_sale["slo_violation_s"] <= high
    assert flash_sale["baseline_slo_violation_s"] == pytest.approx(float(said.group(2)), abs=1)


def test_the_benchmarks_page_gives_the_rules_for_as_the_example_has_it() -> None:
    """BENCHMARKS.md names the throttling rule's `for`; it must be the example's."""
    text = " ".join((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8").split())
    rules = (ROOT / "examples/flash-sale/rules.yaml").read_text(encoding="utf-8")
    wanted = re.search(r"alert: OrderServiceCPUThrottling.*?for: (\w+)", rules, re.DOTALL)
    assert wanted
    for said in re.findall(r"`OrderServiceCPUThrottling` rule's `for: (\w+)`", text):
        assert parse_duration(said) == parse_duration(wanted.group(1))
