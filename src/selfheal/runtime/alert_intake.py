"""From alerts to incidents in the loop: what is news, which incidents open, which go quiet.

Alerts come from the rule evaluator (every evaluation re-reports the alerts that fire), from
Alertmanager's webhook, and from the anomaly watches. Only a change is news (an alert fired
anew or resolved): the firing ones go into the store in one write, and the incidents they
open are handed back for deciding.

A webhook's alerts are acknowledged to the sender only once they are in the store's
durable inbox (`receive`, on the API's thread); the loop takes them from there in arrival
order and writes their incidents in the same transaction that marks them processed
(`take_from_inbox`), so an acknowledged alert is never lost and never counted twice. Which
incidents still have a webhook alert firing is kept in the store too, so a restart does
not take them for quiet.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from selfheal.domain.model import Alert, AlertState, Fingerprint, Incident, IncidentState
from selfheal.domain.model import fingerprint as alert_fingerprint
from selfheal.incidents import IncidentIntake, intake
from selfheal.runtime.recorder import IncidentStore
from selfheal.store import AlertStateChange, Arrival, InboxEntry, Store

# Resolved alerts seen more than an hour ago are forgotten once this many alerts are known.
_PRUNE_SEEN_AT = 10_000
# Inbox alerts written per transaction: a storm is taken in slices short enough that the
# webhook, waiting for the same write lock, still answers within a fraction of a second.
_CONSUME_SLICE = 250


class AlertIntake:
    """Turns each evaluation's alerts into incident writes; counts what it took."""

    def __init__(
        self,
        *,
        store: Store,
        incidents: IncidentStore,
        group_by: tuple[str, ...] | None,
        resolve_grace: float,
        max_pending: int,
    ) -> None:
        self._store = store
        self._incidents = incidents
        self.intake = IncidentIntake(incidents, group_by=group_by)
        self._max_pending = max_pending
        self.last_take = 0  # how many alerts the last `take_from_inbox` found
        # The last state change seen per alert: a rule re-reports a firing alert at every
        # evaluation, and only a change (fired anew, resolved) is news. One entry per alert
        # series, so it stays as small as the rules' cardinality (resolved ones are pruned).
        self._last_seen: dict[Fingerprint, tuple[str, float | None]] = {}
        self._seen_lock = threading.Lock()
        self._resolve_grace = resolve_grace
        # Distinct firing alerts handled (a rule re-reporting an alert that still fires is
        # the same alert); each opens or joins an incident, so the audit accounts for all.
        self.alerts_received = 0
        self.alerts_resolved = 0

    def key(self, name: str, labels: Any) -> Fingerprint:
        return self.intake.key(name, labels)

    # ---- the webhook ----------------------------------------------------------------------
    def receive(self, batch: Any, *, at: float) -> None:
        """The API's AlertSink: store a webhook's alerts durably before the sender is answered.

        Raises InboxFull (a TemporaryError: 503 with Retry-After) when too many wait.
        """
        self._store.inbox.accept(
            batch.alerts,
            source="alertmanager",
            at=at,
            max_pending=self._max_pending,
            urgent=[intake.target_of(alert.labels) is not None for alert in batch.alerts],
        )

    def take_from_inbox(self, *, at: float, limit: int) -> list[Incident]:
        """Take up to `limit` inbox alerts into incidents; the open incidents to decide."""
        to_decide: dict[str, Incident] = {}
        entries = self._store.inbox.pending(limit=limit)
        self.last_take = len(entries)
        for start in range(0, len(entries), _CONSUME_SLICE):
            for incident in self._consume(entries[start : start + _CONSUME_SLICE], at=at):
                to_decide.setdefault(incident.id, incident)
        return list(to_decide.values())

    def _consume(self, entries: Sequence[InboxEntry], *, at: float) -> list[Incident]:
        arrivals: list[Arrival] = []
        resolved: list[Alert] = []
        states: dict[str, AlertStateChange] = {}
        for entry in entries:
            alert = entry.alert
            key = self.key(alert.name, alert.labels)
            fires = alert.state == AlertState.FIRING
            states[alert_fingerprint(alert.name, alert.labels)] = AlertStateChange(
                alert_fingerprint(alert.name, alert.labels), key, fires
            )
            if alert.state == AlertState.PENDING or not self._is_news(alert, at=at):
                continue
            if fires:
                arrivals.append(
                    Arrival(
                        key,
                        alert.name,
                        alert.labels,
                        alert.annotations,
                        alert.active_at,
                        intake.target_of(alert.labels),
                    )
                )
            else:
                resolved.append(alert)
        results = self._store.inbox.consume(
            entries, arrivals=arrivals, states=list(states.values()), at=at
        )
        self.alerts_received += len(arrivals)
        self.alerts_resolved += len(resolved)
        for alert in resolved:
            self.intake.receive(alert, at=at)
        return [
            incident
            for incident, joined in results
            if not joined or incident.state == IncidentState.OPEN
        ]

    def webhook_firing(self) -> set[Fingerprint]:
        """The incident fingerprints that have a webhook alert firing now."""
        return {Fingerprint(key) for key in self._store.inbox.firing_incident_keys()}

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
        with self._seen_lock:  # the loop (rules) and the intake worker (webhook) both ask
            return self._note(key, change, at=at)

    def _note(self, key: Fingerprint, change: tuple[str, float | None], *, at: float) -> bool:
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
        # The store leaves out incidents a sender's alert keeps firing, reading both in one
        # snapshot: the intake writes an incident and its alert's state in one transaction,
        # so an incident opened while this tick ran is never taken for quiet.
        for incident in self._store.incidents.quiet(states=intake.AUTO_RESOLVABLE):
            if incident.fingerprint not in firing:
                self._incidents.move(
                    incident.id, IncidentState.RESOLVED, reason="the alert no longer fires", at=at
                )
