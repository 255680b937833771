"""The policy's input: the incident, its target as the cluster has it now, and the context.

What the policy sees is recorded with its decision, so this is also what an auditor reads
to understand a choice. Its shape is documented in docs/policies.md; every field comes from
selfheal's own records or the cluster, and the alert's sender controls only the incident's
labels and annotations: a policy must not read anything that guards an action (how risky
a plan is, whether a person approves it) from them. Each runbook's declared risk is here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.domain.errors import SelfhealError
from selfheal.domain.model import Incident
from selfheal.runtime.settings import Settings
from selfheal.store import Store, day_of
from selfheal.workflows import Runbook

_log = logging.getLogger(__name__)

SignalLookup = Callable[[Incident], dict[str, Any] | None]


@dataclass
class InputCache:
    """Reads shared by one batch's inputs: each target's state, and today's spend.

    A batch is decided at one moment, so one read of each serves all its incidents.
    """

    targets: dict[Any, dict[str, Any] | None] = field(default_factory=dict)
    spent: float | None = None


class PolicyInputBuilder:
    """Builds `input` for the policy bundle from an incident at a moment."""

    def __init__(
        self,
        *,
        settings: Settings,
        cluster: KubernetesCluster,
        store: Store,
        runbooks: Mapping[str, Runbook],
        signal_of: SignalLookup,
    ) -> None:
        self._settings = settings
        self._cluster = cluster
        self._store = store
        self._runbooks = runbooks
        self._signal_of = signal_of

    def build(
        self, incident: Incident, *, at: float, cache: InputCache | None = None
    ) -> dict[str, Any]:
        """The input for one incident; `cache` shares reads across a batch's incidents."""
        budget = self._settings.budget
        if cache is None:
            target = self._target(incident)
            spent = self._store.budget.spent_on(day_of(at), currency=budget.currency)
        else:
            if incident.target not in cache.targets:
                cache.targets[incident.target] = self._target(incident)
            target = cache.targets[incident.target]
            if cache.spent is None:
                cache.spent = self._store.budget.spent_on(day_of(at), currency=budget.currency)
            spent = cache.spent
        return {
            "incident": {
                "id": incident.id,
                "fingerprint": incident.fingerprint,
                "alert": incident.alert_name,
                "labels": dict(incident.labels),
                "annotations": dict(incident.annotations),
                "onset_at": incident.onset_at,
            },
            "target": target,
            "signal": self._signal_of(incident),
            "context": {
                "budget": {
                    "daily_budget": budget.daily,
                    "spent_today": spent,
                    "cost_per_replica_hour": budget.cost_per_replica_hour,
                    "currency": budget.currency,
                },
                "slo": {"p95_latency_seconds": self._settings.slo.p95_latency},
                "now": at,
            },
            "runbooks": {
                name: {"params": sorted(runbook.params), "risk": runbook.risk}
                for name, runbook in self._runbooks.items()
            },
        }

    def _target(self, incident: Incident) -> dict[str, Any] | None:
        """The target's state read from the cluster now; None when there is none or no answer."""
        if incident.target is None:
            return None
        try:
            state = self._cluster.deployment(incident.target.namespace, incident.target.name)
        except SelfhealError as exc:
            _log.warning("cannot read target of %s: %s", incident.id, exc)
            return None
        return {
            "kind": incident.target.kind,
            "namespace": state.namespace,
            "name": state.name,
            "replicas": state.replicas,
            "available_replicas": state.available,
        }
