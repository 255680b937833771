"""The `verify` step: PromQL checks that decide whether a remediation worked.

Each check is a query and a bound (`p95 <= 0.2`). The step first lets the system settle so
that rate windows cover only what happened after the action, then evaluates every check
`samples` times, `interval` apart. A check passes only if every returned series meets the
bound every time. A query that returns nothing is *inconclusive*, and inconclusive is never
passed: a remediation we cannot see working is treated as one that did not work.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from selfheal.actions.ports import MetricsQuery
from selfheal.domain.actions import ActionSpec, Invocation, StepFailed, StepType
from selfheal.domain.errors import PermanentError, SelfhealError
from selfheal.domain.model import Verdict
from selfheal.formats.durations import parse_duration

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}


def _checks(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    checks = params.get("checks")
    if not isinstance(checks, list) or not checks:
        raise PermanentError("verify needs a non-empty list of checks")
    parsed = []
    for index, check in enumerate(checks):
        if not isinstance(check, Mapping) or not isinstance(check.get("query"), str):
            raise PermanentError(f"checks[{index}] needs a `query`")
        op = check.get("op", "<=")
        if op not in _COMPARE:
            raise PermanentError(f"checks[{index}].op must be one of {sorted(_COMPARE)}")
        threshold = check.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise PermanentError(f"checks[{index}].threshold must be a number")
        parsed.append(
            {
                "name": str(check.get("name", f"check {index}")),
                "query": check["query"],
                "op": op,
                "threshold": float(threshold),
            }
        )
    return parsed


def verify_action(metrics: MetricsQuery) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        checks = _checks(params)
        settle = parse_duration(params.get("settle", 0))
        samples = int(params.get("samples", 1))
        interval = parse_duration(params.get("interval", "5s"))
        clock = invocation.clock
        clock.sleep_blocking(min(settle, max(0.0, invocation.time_left())))
        findings: list[dict[str, Any]] = []
        verdict = Verdict.PASSED
        for round_index in range(max(1, samples)):
            if round_index:
                clock.sleep_blocking(min(interval, max(0.0, invocation.time_left())))
            at = clock.now()
            for check in checks:
                finding = _evaluate(metrics, check, at=at)
                findings.append(finding)
                if finding["verdict"] == Verdict.INCONCLUSIVE and verdict == Verdict.PASSED:
                    verdict = Verdict.INCONCLUSIVE
                elif finding["verdict"] == Verdict.FAILED:
                    verdict = Verdict.FAILED
        output = {
            "verdict": str(verdict),
            "findings": findings,
            "worst": {c["name"]: _worst(findings, c["name"]) for c in checks},
        }
        if verdict != Verdict.PASSED:
            failed = [f for f in findings if f["verdict"] != Verdict.PASSED]
            first = failed[0]
            raise StepFailed(
                f"verification {verdict}: {first['name']}: {first['detail']}", output=output
            )
        return output

    return ActionSpec(
        StepType(
            "verify",
            frozenset({"checks", "settle", "samples", "interval"}),
            frozenset({"checks"}),
            "Check PromQL queries against bounds; no data is inconclusive (a failure).",
        ),
        run,
    )


def _evaluate(metrics: MetricsQuery, check: Mapping[str, Any], *, at: float) -> dict[str, Any]:
    base = {"name": check["name"], "query": check["query"], "at": at}
    try:
        result = metrics.query(check["query"], at=at)
    except SelfhealError as exc:
        return {
            **base,
            "verdict": str(Verdict.INCONCLUSIVE),
            "values": {},
            "detail": f"query failed: {exc}",
        }
    if not result:
        return {
            **base,
            "verdict": str(Verdict.INCONCLUSIVE),
            "values": {},
            "detail": "the query returned no data",
        }
    compare = _COMPARE[check["op"]]
    values = {_series_name(sample.labels): sample.value for sample in result}
    bad = {
        name: value
        for name, value in values.items()
        if math.isnan(value) or not compare(value, check["threshold"])
    }  # NaN never passes
    verdict = Verdict.FAILED if bad else Verdict.PASSED
    detail = (
        ", ".join(
            f"{name + ' = ' if name else ''}{value:.4g} (wanted {check['op']} "
            f"{check['threshold']:g})"
            for name, value in bad.items()
        )
        if bad
        else "all series within bound"
    )
    return {**base, "verdict": str(verdict), "values": values, "detail": detail}


def _series_name(labels: Mapping[str, str]) -> str:
    """A series' labels as PromQL writes them; "" for a query that aggregated them all away."""
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _worst(findings: list[dict[str, Any]], name: str) -> float | None:
    values = [
        value
        for finding in findings
        if finding["name"] == name
        for value in finding["values"].values()
    ]
    return max(values) if values else None
