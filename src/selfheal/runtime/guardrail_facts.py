"""What the guardrails rule on: the facts of the moment, gathered for `guardrails.check`.

`guardrails.check` is pure; this module reads the world for it: the runs of the longest
window any guardrail looks back over, the target's replicas (from the decision's input, so
the guardrails judge what the policy saw), the cluster's node count, today's spend, the
error budget's query, and when a person last reset each circuit breaker.
"""

from __future__ import annotations

import logging

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.decision import guardrails
from selfheal.domain.errors import SelfhealError
from selfheal.domain.model import Decision, Incident, Target
from selfheal.store import RunStatus, Store
from selfheal.telemetry.sources import InstantSource

_log = logging.getLogger(__name__)

_DAY_S = 86_400.0


class GuardrailCheck:
    """The guardrails in force (re-read when their file changes), checked against the facts."""

    def __init__(
        self,
        *,
        rails_file: guardrails.GuardrailFile | None,
        store: Store,
        cluster: KubernetesCluster,
        source: InstantSource,
    ) -> None:
        self.file = rails_file
        self._store = store
        self._cluster = cluster
        self._source = source

    def refusals(
        self, incident: Incident, decision: Decision, *, at: float
    ) -> list[guardrails.Refusal]:
        """What the guardrails in force say about the decision's plan, with today's facts."""
        if self.file is None:
            return []
        rails, error = self.file.current()
        if error is not None:
            # The last good guardrails stay in force; the broken edit is on record.
            _log.error("guardrails not reloaded: %s", error)
            self._store.audit.append(
                "guardrails.reload_failed", str(self.file.path), {"error": str(error)}, at=at
            )
        plan = decision.plans[0]
        return guardrails.check(rails, plan, incident.target, self.facts(rails, decision, at=at))

    def facts(
        self, rails: guardrails.Guardrails, decision: Decision, *, at: float
    ) -> guardrails.Facts:
        windows = [limit.window for limit in rails.rate_limits]
        windows += [rails.cooldown or 0.0, _DAY_S]
        if rails.circuit_breaker is not None:
            windows.append(rails.circuit_breaker.window)
        runs = past_runs(self._store, since=at - max(windows))
        target = decision.policy_input.get("target") or {}
        budget = decision.policy_input["context"]["budget"]
        replicas = target.get("replicas")
        wanted = decision.plans[0].params.get("replicas")
        extra = wanted - replicas if isinstance(wanted, int) and isinstance(replicas, int) else 0
        return guardrails.Facts(
            now=at,
            runs=tuple(runs),
            replicas=replicas,
            cluster_nodes=self._node_count() if rails.blast_radius.max_node_share else None,
            spent_today=float(budget["spent_today"]),
            plan_cost=max(extra, 0) * float(budget["cost_per_replica_hour"]) * 24,
            error_budget_remaining=self._error_budget(rails, at=at),
            breaker_resets=breaker_resets(self._store),
        )

    def _node_count(self) -> int | None:
        try:
            return self._cluster.node_count()
        except SelfhealError as exc:
            _log.warning("cannot count the cluster's nodes: %s", exc)
            return None

    def _error_budget(self, rails: guardrails.Guardrails, *, at: float) -> float | None:
        if rails.error_budget is None:
            return None
        try:
            pairs = self._source.instant(rails.error_budget.query, at=at)
        except SelfhealError as exc:
            _log.warning("error budget query failed: %s", exc)
            return None
        return float(pairs[0][1]) if pairs else None


def past_runs(store: Store, *, since: float) -> tuple[guardrails.PastRun, ...]:
    """Remediations started after `since`, and all still running, as the guardrails see them."""
    runs = []
    targets: dict[str, Target | None] = {}
    for run in store.workflows.since(since):
        ended = None if run.status is RunStatus.RUNNING else (run.outcome or run.status)
        if run.incident_id not in targets:
            targets[run.incident_id] = store.incidents.get(run.incident_id).target
        runs.append(
            guardrails.PastRun(
                run.runbook,
                targets[run.incident_id],
                run.started_at,
                None if ended is None else str(ended),
            )
        )
    return tuple(runs)


def breaker_resets(store: Store) -> dict[tuple[str, Target | None], float]:
    """When a person last reset each circuit breaker, from the audit chain."""
    resets: dict[tuple[str, Target | None], float] = {}
    for record in store.audit.records(kind="guardrail.reset"):
        namespace, _, name = str(record.payload.get("target", "")).partition("/")
        key = (str(record.payload.get("runbook")), Target("Deployment", namespace, name))
        resets[key] = record.at
    return resets


def breaker_failures(
    rails: guardrails.Guardrails, store: Store, *, runbook: str, target: Target, at: float
) -> int | None:
    """The failures the circuit breaker of (runbook, target) counts at `at` (None: no breaker)."""
    if rails.circuit_breaker is None:
        return None
    facts = guardrails.Facts(
        now=at,
        runs=past_runs(store, since=at - rails.circuit_breaker.window),
        breaker_resets=breaker_resets(store),
    )
    return guardrails.breaker_failures(rails, runbook, target, facts)
