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
from collections.abc import Callable, Sequence
from typing import Any

from selfheal.dispatch import AlertBus
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
        bus: AlertBus | None = None,
        bus_message: Callable[[Sequence[Alert], Sequence[bool]], tuple[bytes, str]] | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._bus_message = bus_message
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

        Into the inbox, or with a bus onto the bus (the bus worker moves them into the
        inbox). Raises a TemporaryError (503 with Retry-After) when they cannot be stored:
        InboxFull when too many wait, the store or the bus away.
        """
        alerts = list(batch.alerts)
        urgent = [intake.target_of(alert.labels) is not None for alert in alerts]
        if self._bus is not None:
            assert self._bus_message is not None
            body, key = self._bus_message(alerts, urgent)
            self._bus.publish(body, key=key)
            return
        self.store_received(alerts, urgent=urgent, at=at)

    def store_received(self, alerts: Sequence[Alert], *, urgent: Sequence[bool], at: float) -> None:
        """Write received alerts to the inbox, all or none (InboxFull past the bound)."""
        self._store.inbox.accept(
            alerts, source="alertmanager", at=at, max_pending=self._max_pending, urgent=urgent
        )

    def take_from_inbox(self, *, at: float, limit: int) -> list[Incident]:
        """Take up to `limit` inbox alerts into incidents; the open incidents to decide.

        Each slice is taken in one transaction that reads which alerts are still waiting,
        so replicas sharing the inbox never take the same alert twice. A sender's alert is
        news once: the inbox stores a repeat of the same alert once, so no in-memory filter
        (which a failed write could leave wrong) stands between an alert and its incident.
        """
        to_decide: dict[str, Incident] = {}
        self.last_take = 0
        while self.last_take < limit:
            taken, results, resolved = self._store.inbox.take(
                limit=min(_CONSUME_SLICE, limit - self.last_take),
                build=self._arrivals,
                at=at,
            )
            if not taken:
                break
            self.last_take += taken
            self.alerts_received += len(results)
            self.alerts_resolved += len(resolved)
            for alert in resolved:
                self.intake.receive(alert, at=at)
            for incident, joined in results:
                if not joined or incident.state == IncidentState.OPEN:
                    to_decide.setdefault(incident.id, incident)
        return list(to_decide.values())

    def _arrivals(
        self, entries: Sequence[InboxEntry]
    ) -> tuple[list[Arrival], list[AlertStateChange], list[Alert]]:
        """What a slice of inbox alerts becomes: arrivals, alert states, resolutions."""
        arrivals: list[Arrival] = []
        resolved: list[Alert] = []
        states: dict[str, AlertStateChange] = {}
        for entry in entries:
            alert = entry.alert
            key = self.key(alert.name, alert.labels)
            fires = alert.state == AlertState.FIRING
            name = alert_fingerprint(alert.name, alert.labels)
            states[name] = AlertStateChange(name, key, fires)
            if alert.state == AlertState.PENDING:
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
                        alert.sender,
                    )
                )
            else:
                resolved.append(alert)
        return arrivals, list(states.values()), resolved

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
        seen: dict[Fingerprint, tuple[str, float | None]] = {}
        for alert in alerts:
            if alert.state != AlertState.PENDING and self._is_news(alert, seen=seen):
                (firing if alert.state == AlertState.FIRING else resolved).append(alert)
        results = self.intake.receive_firing(firing, at=at)
        # Only once written: an alert whose write failed is still news at the next tick.
        self._remember(seen, at=at)
        self.alerts_received += len(firing)
        self.alerts_resolved += len(resolved)
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

    def _is_news(self, alert: Alert, *, seen: dict[Fingerprint, tuple[str, float | None]]) -> bool:
        """Whether the alert changed state since last seen (fired anew, or resolved).

        The change goes into `seen`, to be remembered once it is written (`_remember`).
        """
        moment = alert.fired_at if alert.state == AlertState.FIRING else alert.resolved_at
        key = alert_fingerprint(alert.name, alert.labels)
        change = (str(alert.state), moment)
        with self._seen_lock:
            known = self._last_seen.get(key)
        if seen.get(key, known) == change:
            return False
        seen[key] = change
        return True

    def _remember(self, seen: dict[Fingerprint, tuple[str, float | None]], *, at: float) -> None:
        with self._seen_lock:
            self._last_seen.update(seen)
            if len(self._last_seen) > _PRUNE_SEEN_AT:
                horizon = at - 3600.0
                self._last_seen = {
                    k: (state, when)
                    for k, (state, when) in self._last_seen.items()
                    if state == str(AlertState.FIRING) or (when is not None and when >= horizon)
                }

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
