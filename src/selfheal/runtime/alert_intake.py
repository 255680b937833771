"""From alerts to incidents in the loop: what is news, which incidents open, which go quiet.

Alerts come from the rule evaluator (every evaluation re-reports the alerts that fire), from
Alertmanager's webhook (queued by the API's thread until the loop takes them), and from the
anomaly watches. Only a change is news (an alert fired anew or resolved): the firing ones go
into the store in one write, and the incidents they open are handed back for deciding.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from typing import Any

from selfheal.domain.model import Alert, AlertState, Fingerprint, Incident, IncidentState
from selfheal.domain.model import fingerprint as alert_fingerprint
from selfheal.incidents import IncidentIntake, intake
from selfheal.runtime.recorder import IncidentStore
from selfheal.store import Store

# Resolved alerts seen more than an hour ago are forgotten once this many alerts are known.
_PRUNE_SEEN_AT = 10_000


class AlertIntake:
    """Turns each evaluation's alerts into incident writes; counts what it took."""

    def __init__(
        self,
        *,
        store: Store,
        incidents: IncidentStore,
        group_by: tuple[str, ...] | None,
        resolve_grace: float,
    ) -> None:
        self._store = store
        self._incidents = incidents
        self.intake = IncidentIntake(incidents, group_by=group_by)
        # Alerts from Alertmanager's webhook arrive on the API's thread and wait here for
        # the loop; the latest state per alert tells which incidents still have one firing.
        self.inbox: queue.SimpleQueue[Alert] = queue.SimpleQueue()
        self._webhook_firing: dict[Fingerprint, tuple[Fingerprint, bool]] = {}
        # The last state change seen per alert: a rule re-reports a firing alert at every
        # evaluation, and only a change (fired anew, resolved) is news. One entry per alert
        # series, so it stays as small as the rules' cardinality (resolved ones are pruned).
        self._last_seen: dict[Fingerprint, tuple[str, float | None]] = {}
        self._resolve_grace = resolve_grace
        # Distinct firing alerts handled (a rule re-reporting an alert that still fires is
        # the same alert); each opens or joins an incident, so the audit accounts for all.
        self.alerts_received = 0
        self.alerts_resolved = 0

    def key(self, name: str, labels: Any) -> Fingerprint:
        return self.intake.key(name, labels)

    # ---- the webhook --------------------------------------------------------------------
    def receive(self, batch: Any) -> None:
        """The API's AlertSink: queue a webhook's alerts for the loop (any thread)."""
        for alert in batch.alerts:
            self.inbox.put(alert)

    def drain_inbox(self) -> list[Alert]:
        alerts = []
        while True:
            try:
                alert = self.inbox.get_nowait()
            except queue.Empty:
                break
            alerts.append(alert)
            key = alert_fingerprint(alert.name, alert.labels)
            fires = alert.state == AlertState.FIRING
            self._webhook_firing[key] = (self.key(alert.name, alert.labels), fires)
        return alerts

    def webhook_firing(self) -> set[Fingerprint]:
        """The incident fingerprints that have a webhook alert firing now."""
        return {key for key, fires in self._webhook_firing.values() if fires}

    # ---- incidents ----------------------------------------------------------------------
    def take(self, alerts: Sequence[Alert], *, at: float) -> list[Incident]:
        """Open or join incidents for firing alerts and resolve them for resolved ones.

        The firing alerts go in one write; the open incidents they opened or joined are
        returned (each once), for the caller to decide on.
        """
        firing: list[Alert] = []
        resolved: list[Alert] = []
        for alert in alerts:
            if alert.state != AlertState.PENDING and self._is_news(alert, at=at):
                (firing if alert.state == AlertState.FIRING else resolved).append(alert)
        self.alerts_received += len(firing)
        self.alerts_resolved += len(resolved)
        results = self.intake.receive_firing(firing, at=at)
        to_decide: dict[str, Incident] = {}
        for result in results:
            incident = result.incident
            if incident is None or incident.id in to_decide:
                continue
            if result.opened or incident.state == IncidentState.OPEN:
                to_decide[incident.id] = incident
        for alert in resolved:
            self.intake.receive(alert, at=at)
        return list(to_decide.values())

    def _is_news(self, alert: Alert, *, at: float) -> bool:
        """Whether the alert changed state since last seen (fired anew, or resolved)."""
        moment = alert.fired_at if alert.state == AlertState.FIRING else alert.resolved_at
        key = alert_fingerprint(alert.name, alert.labels)
        change = (str(alert.state), moment)
        if self._last_seen.get(key) == change:
            return False
        self._last_seen[key] = change
        if len(self._last_seen) > _PRUNE_SEEN_AT:
            horizon = at - 3600.0
            self._last_seen = {
                k: (state, when)
                for k, (state, when) in self._last_seen.items()
                if state == str(AlertState.FIRING) or (when is not None and when >= horizon)
            }
        return True

    def resolve_quiet_incidents(
        self, firing: set[Fingerprint], *, at: float, started_at: float | None
    ) -> None:
        """Resolve incidents whose remediation is over and whose alert no longer fires.

        An alert that resolves while its remediation runs cannot resolve the incident then;
        this catches up once the remediation has ended.
        """
        if started_at is None or at - started_at < self._resolve_grace:
            # Just after a (re)start, rules have no state: alerts that still hold are pending
            # again, not gone. Wait until they could have fired before calling anything quiet.
            return
        for incident in self._store.incidents.list(open_only=True):
            if incident.state in intake.AUTO_RESOLVABLE and incident.fingerprint not in firing:
                self._incidents.move(
                    incident.id, IncidentState.RESOLVED, reason="the alert no longer fires", at=at
                )
