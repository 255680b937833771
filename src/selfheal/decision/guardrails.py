"""Guardrails: limits no policy can lift, checked after the policy and before dispatch.

A policy says what would fix an incident; guardrails say whether selfheal may do it now. They
are the operator's, not the policy author's: a YAML file (docs/guardrails.md) that the
controller re-reads when it changes while running. A file that fails validation is refused
with its place named, and the previous guardrails stay in force, so nothing is half-applied.

`check` is pure: the controller gathers the facts (what ran recently, what runs now, the
target's size, today's spend, the error budget, the time) and gets back every refusal, each
naming its guardrail and why. An empty list allows the plan.

- `rate_limits`: at most `max` remediations per `window`, per target or per runbook
  (optionally for one runbook only).
- `cooldown`: no new remediation of a target within this long after the last one started.
- `concurrency`: at most `global` remediations running at once, and `per_namespace`.
- `blast_radius`: at most a share of a deployment's pods (`max_pod_share`, for plans naming
  pods) or of the cluster's nodes (`max_node_share`, for plans naming nodes) at once; at most
  `max_replica_change` replicas per action; never to zero replicas unless `allow_scale_to_zero`.
- `circuit_breaker`: after `failures` failed or rolled-back remediations of a runbook on a
  target within `window`, refuse that runbook on that target until a person resets it.
- `daily_cost_budget`: refuse a plan whose projected cost would take today's spend over it.
- `error_budget`: refuse plans of the listed risk tiers while the SLO's remaining error budget
  (a query's value in [0, 1]) is below `min_remaining`.
- `maintenance_windows`: weekly windows (days, start and end times in UTC) during which the
  listed runbooks (all when none are listed) do not run automatically.
- `change_freezes`: absolute periods in which only plans of the allowed risk tiers run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from selfheal.domain.errors import ConfigError
from selfheal.domain.model import Plan, Target
from selfheal.formats import durations, sourced_yaml, text_files

__all__ = [
    "Facts",
    "GuardrailFile",
    "Guardrails",
    "PastRun",
    "Refusal",
    "action_cap",
    "breaker_failures",
    "check",
    "describe",
    "load_guardrails",
]

Duration = Annotated[float, pydantic.BeforeValidator(durations.parse_duration)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FAILED = frozenset({"failed", "rolled_back"})


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Strict):
    """At most `max` remediations per `window`, counted per target or per runbook."""

    per: Literal["target", "runbook"]
    max: int = pydantic.Field(ge=0)
    window: Annotated[Duration, pydantic.Field(gt=0)]
    runbook: str | None = None  # only plans choosing this runbook count and are limited


class Concurrency(_Strict):
    """How many remediations may run at once."""

    global_: int | None = pydantic.Field(default=None, ge=0, alias="global")
    per_namespace: int | None = pydantic.Field(default=None, ge=0)


class BlastRadius(_Strict):
    """How much of a deployment or of the cluster one action may touch."""

    max_pod_share: float | None = pydantic.Field(default=None, gt=0, le=1)
    max_node_share: float | None = pydantic.Field(default=None, gt=0, le=1)
    max_replica_change: int | None = pydantic.Field(default=None, ge=0)
    allow_scale_to_zero: bool = False


class CircuitBreaker(_Strict):
    """Stop a runbook on a target after repeated failures, until a person resets it."""

    failures: int = pydantic.Field(ge=1)
    window: Annotated[Duration, pydantic.Field(gt=0)]


class ErrorBudget(_Strict):
    """Block risky runbooks while the SLO's remaining error budget is low."""

    query: str  # PromQL whose value is the remaining error budget, a fraction in [0, 1]
    min_remaining: float = pydantic.Field(ge=0, le=1)
    risks: tuple[str, ...] = ("high",)


def _clock(text: Any) -> Any:
    if isinstance(text, str):
        try:
            return dt.time.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a time of day like 02:30") from exc
    return text


class MaintenanceWindow(_Strict):
    """A weekly window (UTC) in which automatic remediation pauses."""

    days: tuple[Day, ...] = _DAYS
    start: Annotated[dt.time, pydantic.BeforeValidator(_clock)]
    end: Annotated[dt.time, pydantic.BeforeValidator(_clock)]
    runbooks: tuple[str, ...] = ()  # empty: every runbook
    reason: str = "maintenance window"

    def covers(self, at: float, runbook: str) -> bool:
        if self.runbooks and runbook not in self.runbooks:
            return False
        moment = dt.datetime.fromtimestamp(at, tz=dt.UTC)
        day, time = _DAYS[moment.weekday()], moment.time()
        if self.start <= self.end:
            return day in self.days and self.start <= time < self.end
        # Past midnight: the part after midnight belongs to the previous day's window.
        yesterday = _DAYS[(moment.weekday() - 1) % 7]
        return (day in self.days and time >= self.start) or (
            yesterday in self.days and time < self.end
        )


class ChangeFreeze(_Strict):
    """A period in which only plans of the allowed risk tiers run."""

    start: dt.datetime
    end: dt.datetime
    allow_risks: tuple[str, ...] = ()
    reason: str = "change freeze"

    @pydantic.field_validator("start", "end")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-12-24T00:00:00Z")
        return value

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> ChangeFreeze:
        if self.end <= self.start:
            raise ValueError("a freeze must end after it starts")
        return self


class Guardrails(_Strict):
    """A whole guardrails file."""

    rate_limits: tuple[RateLimit, ...] = ()
    cooldown: Annotated[Duration, pydantic.Field(ge=0)] | None = None
    concurrency: Concurrency = Concurrency()
    blast_radius: BlastRadius = BlastRadius()
    circuit_breaker: CircuitBreaker | None = None
    daily_cost_budget: float | None = pydantic.Field(default=None, ge=0)
    error_budget: ErrorBudget | None = None
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    change_freezes: tuple[ChangeFreeze, ...] = ()


@dataclass(frozen=True, slots=True)
class PastRun:
    """A remediation that started: what, on which target, when, and how it ended (or not)."""

    runbook: str
    target: Target | None
    started_at: float
    outcome: str | None  # None while it runs; else verified, rolled_back, failed, escalated


@dataclass(frozen=True, slots=True)
class Facts:
    """What the controller knows when it checks a plan."""

    now: float
    runs: Sequence[PastRun] = ()
    replicas: int | None = None  # the target deployment's desired replicas now
    cluster_nodes: int | None = None
    spent_today: float = 0.0
    plan_cost: float = 0.0  # what the plan would add to today's spend
    error_budget_remaining: float | None = None  # None: unknown (the query gave nothing)
    # When a person last reset the breaker of a (runbook, target): failures before it count
    # no more.
    breaker_resets: Mapping[tuple[str, Target | None], float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A guardrail that refuses a plan, and why, in words for the person paged."""

    guardrail: str
    reason: str


def check(rails: Guardrails, plan: Plan, target: Target | None, facts: Facts) -> list[Refusal]:
    """Every guardrail that refuses `plan` on `target` now; empty when it may run."""
    refusals: list[Refusal] = []
    refusals += _rate_limits(rails, plan, target, facts)
    refusals += _cooldown(rails, target, facts)
    refusals += _concurrency(rails, target, facts)
    refusals += _blast_radius(rails, plan, facts)
    refusals += _circuit_breaker(rails, plan, target, facts)
    refusals += _money_and_budget(rails, plan, facts)
    refusals += _calendar(rails, plan, facts)
    return refusals


def action_cap(
    rails: Guardrails, *, duration: float, targets: int, runbooks: Sequence[str]
) -> int | None:
    """The most remediations the guardrails allow in `duration` seconds; None if unbounded.

    `targets` is how many targets could be remediated and `runbooks` which runbooks could
    run. A sliding window of length W admits at most `max` starts in any W seconds, so at
    most `max * ceil(duration / W)` in the whole run; a cooldown C admits at most
    `floor(duration / C) + 1` starts per target. The cap is the least of the per-target
    bound times the targets and the sum of the per-runbook bounds.
    """

    def windows(window: float) -> int:
        return math.ceil(duration / window) if duration > 0 else 1

    per_target = math.inf
    if rails.cooldown:
        per_target = math.floor(duration / rails.cooldown) + 1
    per_runbook = dict.fromkeys(runbooks, math.inf)
    for limit in rails.rate_limits:
        bound = limit.max * windows(limit.window)
        if limit.per == "target" and (limit.runbook is None or set(runbooks) <= {limit.runbook}):
            per_target = min(per_target, bound)
        elif limit.per == "runbook":
            for runbook in per_runbook:
                if limit.runbook in {None, runbook}:
                    per_runbook[runbook] = min(per_runbook[runbook], bound)
    cap = min(per_target * targets, sum(per_runbook.values()) if per_runbook else 0)
    return None if math.isinf(cap) else int(cap)


def _rate_limits(
    rails: Guardrails, plan: Plan, target: Target | None, facts: Facts
) -> list[Refusal]:
    out = []
    for limit in rails.rate_limits:
        if limit.runbook is not None and limit.runbook != plan.runbook:
            continue
        recent = [r for r in facts.runs if r.started_at > facts.now - limit.window]
        if limit.runbook is not None:
            recent = [r for r in recent if r.runbook == limit.runbook]
        if limit.per == "target":
            recent = [r for r in recent if r.target == target]
            scope = f"target {_name(target)}"
        else:
            recent = [r for r in recent if r.runbook == plan.runbook]
            scope = f"runbook {plan.runbook}"
        if len(recent) >= limit.max:
            out.append(
                Refusal(
                    "rate_limit",
                    f"{len(recent)} remediations of {scope} in the last "
                    f"{durations.format_duration(limit.window)}, at the limit of {limit.max}",
                )
            )
    return out


def _cooldown(rails: Guardrails, target: Target | None, facts: Facts) -> list[Refusal]:
    if rails.cooldown is None or target is None:
        return []
    starts = [r.started_at for r in facts.runs if r.target == target]
    if not starts or facts.now - max(starts) >= rails.cooldown:
        return []
    ago = facts.now - max(starts)
    return [
        Refusal(
            "cooldown",
            f"{_name(target)} was remediated {durations.format_duration(ago)} ago, within the "
            f"cooldown of {durations.format_duration(rails.cooldown)}",
        )
    ]


def _concurrency(rails: Guardrails, target: Target | None, facts: Facts) -> list[Refusal]:
    running = [r for r in facts.runs if r.outcome is None]
    out = []
    cap = rails.concurrency.global_
    if cap is not None and len(running) >= cap:
        out.append(
            Refusal("concurrency", f"{len(running)} remediations running, at the limit of {cap}")
        )
    cap = rails.concurrency.per_namespace
    if cap is not None and target is not None:
        here = [r for r in running if r.target and r.target.namespace == target.namespace]
        if len(here) >= cap:
            out.append(
                Refusal(
                    "concurrency",
                    f"{len(here)} remediations running in namespace {target.namespace}, "
                    f"at the limit of {cap}",
                )
            )
    return out


def _blast_radius(rails: Guardrails, plan: Plan, facts: Facts) -> list[Refusal]:
    radius, params, out = rails.blast_radius, plan.params, []
    wanted = params.get("replicas")
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        if wanted == 0 and not radius.allow_scale_to_zero:
            out.append(Refusal("blast_radius", "the plan scales to zero replicas"))
        change = None if facts.replicas is None else abs(wanted - facts.replicas)
        if radius.max_replica_change is not None and (
            change is None or change > radius.max_replica_change
        ):
            what = "an unknown number of" if change is None else str(change)
            out.append(
                Refusal(
                    "blast_radius",
                    f"the plan changes {what} replicas, over the cap of "
                    f"{radius.max_replica_change} per action",
                )
            )
    out += _share("pods", _count(params, "pods"), facts.replicas, radius.max_pod_share)
    out += _share("nodes", _count(params, "nodes"), facts.cluster_nodes, radius.max_node_share)
    return out


def _share(what: str, touched: int, total: int | None, cap: float | None) -> list[Refusal]:
    """A refusal when a plan touches more than `cap` of the `total` pods (or nodes)."""
    if cap is None or not touched or (total and touched / total <= cap):
        return []
    of = total or "an unknown number of"
    return [Refusal("blast_radius", f"the plan touches {touched} of {of} {what}, over {cap:.0%}")]


def _count(params: Mapping[str, Any], plural: str) -> int:
    """How many pods (or nodes) a plan names: a list of them, a count, or one by name."""
    value = params.get(plural)
    if isinstance(value, list | tuple):
        return len(value)
    count = params.get(f"{plural[:-1]}_count")
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    return 1 if isinstance(params.get(plural[:-1]), str) else 0


def breaker_failures(
    rails: Guardrails, runbook: str, target: Target | None, facts: Facts
) -> int | None:
    """The failures the circuit breaker of (runbook, target) counts now; None without one.

    A failure counts when it started within the breaker's window and after the last reset;
    the breaker is open once they reach its `failures`.
    """
    breaker = rails.circuit_breaker
    if breaker is None:
        return None
    since = max(facts.now - breaker.window, facts.breaker_resets.get((runbook, target), -1.0))
    return sum(
        1
        for r in facts.runs
        if r.runbook == runbook
        and r.target == target
        and r.outcome in _FAILED
        and r.started_at > since
    )


def _circuit_breaker(
    rails: Guardrails, plan: Plan, target: Target | None, facts: Facts
) -> list[Refusal]:
    breaker = rails.circuit_breaker
    failed = breaker_failures(rails, plan.runbook, target, facts)
    if breaker is None or failed is None or failed < breaker.failures:
        return []
    return [
        Refusal(
            "circuit_breaker",
            f"{plan.runbook} failed or was rolled back {failed} times on {_name(target)} "
            f"within {durations.format_duration(breaker.window)}: open until a person resets it "
            f"(selfheal guardrails reset --runbook {plan.runbook} --target {_name(target)}) "
            "or the window passes",
        )
    ]


def _money_and_budget(rails: Guardrails, plan: Plan, facts: Facts) -> list[Refusal]:
    out = []
    budget = rails.daily_cost_budget
    if budget is not None and facts.spent_today + facts.plan_cost > budget:
        out.append(
            Refusal(
                "daily_cost_budget",
                f"the plan would cost {facts.plan_cost:.2f} on top of {facts.spent_today:.2f} "
                f"spent today, over the daily budget of {budget:.2f}",
            )
        )
    rule = rails.error_budget
    if rule is not None and plan.risk in rule.risks:
        remaining = facts.error_budget_remaining
        if remaining is None or remaining < rule.min_remaining:
            left = "unknown" if remaining is None else f"{remaining:.0%}"
            out.append(
                Refusal(
                    "error_budget",
                    f"a {plan.risk}-risk plan while the error budget left is {left}, "
                    f"below {rule.min_remaining:.0%}",
                )
            )
    return out


def _calendar(rails: Guardrails, plan: Plan, facts: Facts) -> list[Refusal]:
    out = [
        Refusal("maintenance_window", f"{window.reason}: {plan.runbook} does not run now")
        for window in rails.maintenance_windows
        if window.covers(facts.now, plan.runbook)
    ]
    moment = dt.datetime.fromtimestamp(facts.now, tz=dt.UTC)
    out += [
        Refusal(
            "change_freeze",
            f"{freeze.reason} until {freeze.end.isoformat()}: a {plan.risk}-risk plan does not run",
        )
        for freeze in rails.change_freezes
        if freeze.start <= moment < freeze.end and plan.risk not in freeze.allow_risks
    ]
    return out


def _name(target: Target | None) -> str:
    return "(no target)" if target is None else f"{target.namespace}/{target.name}"


def describe(rails: Guardrails) -> list[str]:
    """One line per guardrail in force, in words."""
    lines = [
        f"rate limit: {r.max} per {r.per}"
        + (f" ({r.runbook} only)" if r.runbook else "")
        + f" per {r.window:g} s"
        for r in rails.rate_limits
    ]
    if rails.cooldown is not None:
        lines.append(f"cooldown: {rails.cooldown:g} s per target")
    if rails.concurrency.global_ is not None:
        lines.append(f"concurrency: {rails.concurrency.global_} at once")
    if rails.concurrency.per_namespace is not None:
        lines.append(f"concurrency: {rails.concurrency.per_namespace} per namespace")
    radius = rails.blast_radius
    for label, value in (
        ("pod share", radius.max_pod_share),
        ("node share", radius.max_node_share),
        ("replica change", radius.max_replica_change),
    ):
        if value is not None:
            lines.append(f"blast radius: {label} at most {value}")
    if not radius.allow_scale_to_zero:
        lines.append("blast radius: never to zero replicas")
    if rails.circuit_breaker is not None:
        breaker = rails.circuit_breaker
        lines.append(f"circuit breaker: {breaker.failures} failures in {breaker.window:g} s")
    if rails.daily_cost_budget is not None:
        lines.append(f"daily cost budget: {rails.daily_cost_budget:g}")
    if rails.error_budget is not None:
        rule = rails.error_budget
        risks = ", ".join(rule.risks)
        lines.append(f"error budget: {risks} risk blocked below {rule.min_remaining:.0%} left")
    lines += [f"maintenance window: {w.reason}" for w in rails.maintenance_windows]
    lines += [f"change freeze: {f.reason}" for f in rails.change_freezes]
    return lines


def load_guardrails(path: Path) -> Guardrails:
    """Read and validate a guardrails file; ConfigError naming file:line and key path."""
    text = text_files.read_text(path, kind=text_files.GUARDRAILS)
    document = sourced_yaml.load_yaml(text, source=str(path))
    if document.data is None:
        return Guardrails()
    return sourced_yaml.load_model(Guardrails, document)


class GuardrailFile:
    """A guardrails file, re-read when it changes; a bad edit keeps the last good version."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rails = load_guardrails(path)  # the first load must succeed: refuse the start
        self._stamp = self._signature()
        self.hash = hashlib.sha256(self.rails.model_dump_json().encode()).hexdigest()
        self.last_error: ConfigError | None = None

    def _signature(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime, stat.st_size

    def current(self) -> tuple[Guardrails, ConfigError | None]:
        """The guardrails in force, reloading a changed file; and the reload's error, if any."""
        stamp = self._signature()
        if stamp == self._stamp:
            return self.rails, None
        self._stamp = stamp
        try:
            rails = load_guardrails(self.path)
        except ConfigError as exc:
            self.last_error = exc
            return self.rails, exc
        self.rails, self.last_error = rails, None
        self.hash = hashlib.sha256(rails.model_dump_json().encode()).hexdigest()
        return rails, None
