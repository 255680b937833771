"""The controller: the closed loop, wired from the stages' packages.

Every `evaluation_interval` of scenario time it scrapes its targets, evaluates the alerting
rules, turns newly firing alerts into incidents, decides on them with the policy bundle and
starts the chosen runbook as a durable workflow whose ID is derived from the incident. The
store records every step with its audit record.

Everything is loaded and validated in the constructor (config, rules, policies, runbooks):
a bad file stops the start before anything runs. Blocking work (the Kubernetes API, the
policy engine, the store, DBOS) runs in worker threads so scraping keeps its rhythm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from selfheal.actions import approval, bookkeeping, kubernetes_actions, verify
from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.actions.ports import ApprovalBook, MetricsQuery
from selfheal.decision import guardrails, policy
from selfheal.dispatch import AlertBus
from selfheal.domain.actions import ActionSpec, StepType
from selfheal.domain.errors import ConfigError, TemporaryError
from selfheal.domain.model import (
    Alert,
    AlertState,
    Decision,
    Fingerprint,
    Incident,
    IncidentState,
    Target,
    fingerprint,
)
from selfheal.domain.time import Clock, SteppedClock
from selfheal.runtime import audit_sinks, breaker_reset, bus_worker
from selfheal.runtime.alert_intake import AlertIntake
from selfheal.runtime.anomalies import AnomalyWatcher
from selfheal.runtime.audit_checkpointer import AuditCheckpointer
from selfheal.runtime.coordinator import Coordinator, default_replica_id, real_seconds
from selfheal.runtime.deciding import Decider
from selfheal.runtime.decision_worker import DecisionWorker
from selfheal.runtime.dispatch import Dispatcher
from selfheal.runtime.escalation import Escalation
from selfheal.runtime.guardrail_facts import GuardrailCheck
from selfheal.runtime.health import Health
from selfheal.runtime.incident_views import StoreIncidentBook
from selfheal.runtime.intake_worker import IntakeWorker
from selfheal.runtime.leader_duties import LeaderDuties
from selfheal.runtime.policy_input import PolicyInputBuilder
from selfheal.runtime.recorder import IncidentStore, Recorder
from selfheal.runtime.request_journal import RequestJournal
from selfheal.runtime.settings import Settings
from selfheal.runtime.state_clock import SteppedClockWriter
from selfheal.runtime.state_lock import StateLock
from selfheal.runtime.telemetry_store import SharedTelemetry, SourceMetrics
from selfheal.store import InboxFull, audit_signing, open_store
from selfheal.telemetry import rules, scrape
from selfheal.telemetry.prometheus_source import PrometheusSource
from selfheal.telemetry.sources import InstantSource
from selfheal.workflows import WorkflowEngine, load_runbooks

_log = logging.getLogger(__name__)
# How long (real seconds) the loop of an embedded run waits for busy runbooks before it
# steps its clock anyway: a step stuck on a slow server must not stop time.
_QUIET_S = 2.0
# Processed inbox alerts are kept this long (scenario seconds): a sender's retry within it
# is recognised as one. Pruned every so many ticks.
_INBOX_KEEP_S = 3600.0
# How often (scenario seconds) incidents whose alerts stopped are looked for.
_QUIET_CHECK_EVERY_S = 5.0
_PRUNE_EVERY_TICKS = 300


def build_actions(
    *,
    cluster: KubernetesCluster,
    metrics: MetricsQuery,
    recorder: Recorder,
    incidents: IncidentStore,
    approvals: ApprovalBook,
) -> dict[str, ActionSpec]:
    """Every step type this controller can run, wired to its ports."""
    specs = [
        approval.approval_action(approvals),
        kubernetes_actions.scale_action(cluster),
        kubernetes_actions.restore_replicas_action(cluster),
        kubernetes_actions.wait_available_action(cluster),
        verify.verify_action(metrics),
        bookkeeping.notify_action(recorder, cluster),
        bookkeeping.budget_check_action(recorder),
        bookkeeping.budget_refund_action(recorder, cluster),
        bookkeeping.escalate_action(incidents),
        bookkeeping.wait_action(),
    ]
    return {spec.step_type.name: spec for spec in specs}


def step_types() -> dict[str, StepType]:
    """The step types runbooks may use (actions built unwired, only to read their types)."""
    unwired: Any = None
    actions = build_actions(
        cluster=unwired, metrics=unwired, recorder=unwired, incidents=unwired, approvals=unwired
    )
    return {name: spec.step_type for name, spec in actions.items()}


class Controller:
    """The closed loop: scrape, evaluate, open incidents, decide, dispatch.

    The composition root of one controller: it loads and validates every file, wires the
    stages' packages to the store and the cluster, and runs the loop. Each stage's logic
    lives in its own module (alert_intake, policy_input, guardrail_facts, deciding,
    dispatch, escalation); this class only sequences them.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        cluster: KubernetesCluster,
        targets: Sequence[scrape.Target],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.cluster = cluster
        # Validate every file first: a bad one refuses the start before anything is created.
        self.rule_groups = rules.load_rule_files([settings.path(p) for p in settings.rules])
        self.runbooks = load_runbooks(settings.path(settings.runbooks), step_types=step_types())
        self.bundle = policy.PolicyBundle.load(settings.path(settings.policies))
        rails_file = (
            guardrails.GuardrailFile(settings.path(settings.guardrails))
            if settings.guardrails is not None
            else None
        )
        self._signing_key = (
            audit_signing.load_signing_key(settings.path(settings.audit.signing_key))
            if settings.audit is not None
            else None
        )
        self._open_state()
        self.telemetry = SharedTelemetry(retention=settings.telemetry.retention)
        self.source: InstantSource = (
            PrometheusSource(str(settings.telemetry.source.url))
            if settings.telemetry.source.kind == "prometheus"
            else self.telemetry
        )
        self.evaluator = rules.RuleEvaluator(
            self.rule_groups, source=self.source, external_labels=settings.external_labels
        )
        self.scraper = scrape.Scraper(
            targets=targets,
            sink=self.telemetry,
            clock=clock,
            interval=settings.telemetry.scrape_interval,
        )
        self.anomalies: AnomalyWatcher | None = None
        if settings.anomalies.watches:
            self.anomalies = AnomalyWatcher(
                settings.anomalies,
                source=self.source,
                state_file=None if settings.state.shared else self.state_dir / "detectors.json",
            )
        self._started_at: float | None = None
        # Called (in a worker thread) after every evaluation: a demo's scripted responders.
        self.tick_listeners: list[Callable[[], None]] = []
        self._next_watch: float | None = None
        self._next_quiet_check: float | None = None
        self._next_detector_save: float | None = None
        self._wire_stages(rails_file)

    def _open_state(self) -> None:
        """The state directory, the store, the coordinator and the bus (in that order)."""
        settings = self.settings
        state_dir = settings.path(settings.state_dir)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create state_dir {state_dir}: {exc.strerror}") from exc
        self.state_dir = state_dir
        shared = settings.state.shared
        self.replica_id = settings.replica.id or default_replica_id()
        # Before anything in the state is opened: a second controller on the same SQLite
        # state is refused. Replicas on PostgreSQL share theirs by design (coordinator.py).
        self.state_lock = None if shared else StateLock(state_dir, config=settings.config_file)
        try:
            self.store = open_store(
                settings.state.url or f"sqlite:///{state_dir / 'state.db'}",
                # A replica frozen inside a write releases the store's write lock within a
                # lease, when it would be fenced anyway. Not shorter: heartbeats do not wait
                # for that lock, and a busy machine may starve a live writer for a second.
                idle_in_transaction_s=self._lease_wall_s,
            )
            self.bus = _open_bus(settings)
        except BaseException:
            if self.state_lock is not None:
                self.state_lock.release()
            raise
        self.request_journal = RequestJournal(self.store, now=self.clock.now)
        self.coordinator = Coordinator(
            store=self.store,
            clock=self.clock,
            replica_id=self.replica_id,
            heartbeat=settings.replica.heartbeat,
            lease=settings.replica.lease,
            shared=shared,
        )

    @property
    def _lease_wall_s(self) -> float:
        """The replicas' lease in real seconds (it is configured in scenario seconds)."""
        return real_seconds(self.clock, self.settings.replica.lease)

    def _wire_stages(self, rails_file: guardrails.GuardrailFile | None) -> None:
        """The stages' objects, each given the ports it needs."""
        settings, clock, cluster, shared = (
            self.settings,
            self.clock,
            self.cluster,
            self.settings.state.shared,
        )
        self.incidents = IncidentStore(self.store)
        self.incident_book = StoreIncidentBook(self.store)
        self.recorder = Recorder(store=self.store, settings=settings, incidents=self.incidents)
        actions = build_actions(
            cluster=cluster,
            metrics=SourceMetrics(self.source),
            recorder=self.recorder,
            incidents=self.incidents,
            approvals=self.store.approvals,
        )
        self.engine = WorkflowEngine(
            database_url=_dbos_url(settings.state.url)
            if shared
            else f"sqlite:///{self.state_dir / 'workflows.db'}",
            runbooks=self.runbooks,
            actions=actions,
            observer=self.recorder,
            clock=clock,
            # One node keeps the executor id its earlier runs used, so it resumes them.
            executor_id=self.replica_id if shared else "local",
            idle_in_transaction_s=self._lease_wall_s,
            wait_to_act=self.coordinator.wait_to_act,
        )
        longest_for = max(
            (rule.spec.for_ for group in self.rule_groups for rule in group.rules), default=0.0
        )
        self.alerts = AlertIntake(
            store=self.store,
            incidents=self.incidents,
            group_by=settings.alerts.group_by,
            resolve_grace=longest_for + 3 * settings.telemetry.evaluation_interval,
            max_pending=settings.alerts.max_pending,
            bus=self.bus,
            bus_message=bus_worker.encode,
        )
        self.intake = self.alerts.intake
        self.escalation = Escalation(recorder=self.recorder, incidents=self.incidents)
        self.guardrail_check = GuardrailCheck(
            rails_file=rails_file, store=self.store, cluster=cluster, source=self.source
        )
        self.dispatcher = Dispatcher(
            settings=settings,
            store=self.store,
            engine=self.engine,
            runbooks=self.runbooks,
            recorder=self.recorder,
            escalation=self.escalation,
        )
        self.decider = Decider(
            settings=settings,
            clock=clock,
            store=self.store,
            incidents=self.incidents,
            bundle=self.bundle,
            inputs=PolicyInputBuilder(
                settings=settings,
                cluster=cluster,
                store=self.store,
                runbooks=self.runbooks,
                signal_of=self._signal_input,
            ),
            guardrail_check=self.guardrail_check,
            dispatcher=self.dispatcher,
            escalation=self.escalation,
            runbooks=self.runbooks,
        )
        self.health = Health(interval=settings.telemetry.evaluation_interval, clock=clock)
        self.worker = DecisionWorker(
            decider=self.decider, store=self.store, clock=clock, on_error=self.health.crashed
        )
        self.intake_worker = IntakeWorker(
            alerts=self.alerts,
            decisions=self.worker,
            clock=clock,
            on_failure=self._intake_failed,
            on_success=lambda: self.health.recovered(component="intake"),
        )
        self.audit_checkpoints = self._audit_checkpointer()
        self.duties = LeaderDuties(
            store=self.store,
            incidents=self.incidents,
            decider=self.decider,
            dispatcher=self.dispatcher,
            engine=self.engine,
            coordinator=self.coordinator,
            worker=self.worker,
            anomalies=self.anomalies,
            audit_checkpoints=self.audit_checkpoints,
        )
        self.bus_worker = (
            None
            if self.bus is None
            else bus_worker.BusWorker(
                bus=self.bus,
                alerts=self.alerts,
                intake=self.intake_worker,
                clock=clock,
                on_failure=lambda error: self._intake_failed(error, component="bus"),
                on_success=lambda: self.health.recovered(component="bus"),
            )
        )

    def _audit_checkpointer(self) -> AuditCheckpointer | None:
        """The signer of audit checkpoints and its sink, when `audit` is configured."""
        audit = self.settings.audit
        if audit is None or self._signing_key is None:
            return None
        sink: audit_sinks.CheckpointSink | None = None
        if audit.sink is not None and audit.sink.file is not None:
            sink = audit_sinks.FileSink(self.settings.path(audit.sink.file))
        elif audit.sink is not None and audit.sink.webhook is not None:
            sink = audit_sinks.WebhookSink(
                audit.sink.webhook, timeout=audit.sink.timeout, retries=audit.sink.retries
            )
        return AuditCheckpointer(
            store=self.store,
            key=self._signing_key,
            sink=sink,
            clock=self.clock,
            every=audit.checkpoint_every,
        )

    @property
    def guardrails(self) -> guardrails.GuardrailFile | None:
        return self.guardrail_check.file

    @property
    def alerts_received(self) -> int:
        return self.alerts.alerts_received

    @property
    def alerts_resolved(self) -> int:
        return self.alerts.alerts_resolved

    # ---- the loop -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; what a stop left mid-way is picked up first.

        No failure of one tick (a store that is locked or full, a bug on one alert's path)
        ends the loop: it is logged, counted, and the next tick tries again; while the store
        cannot be written the controller reports itself unready and the API refuses input.
        """
        await asyncio.to_thread(self.engine.launch)
        self._started_at = self.clock.now()
        await asyncio.to_thread(self.coordinator.start)
        self.worker.start()
        if not self.coordinator.shared:
            # One node: whatever its last stop left mid-way is picked up before anything else.
            await asyncio.to_thread(self.duties.sweep_now, at=self._started_at)
        self.intake_worker.start()
        self.intake_worker.wake()  # alerts a stop left in the inbox
        if self.bus_worker is not None:
            self.bus_worker.start()
        if self.audit_checkpoints is not None:
            self.audit_checkpoints.start()
        interval = self.settings.telemetry.evaluation_interval
        stepped = self.clock if isinstance(self.clock, SteppedClock) else None
        clock_file = None if stepped is None else SteppedClockWriter(self.state_dir, stepped)
        self.health.running = True
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                next_tick = self.clock.now()
                while not stop.is_set() and not self.coordinator.fenced:
                    began = time.monotonic()
                    await self._tick(client)
                    next_tick += interval
                    if stepped is not None:
                        # The loop drives its own clock: the next tick comes once this one
                        # is done and its real-time share has passed (see SteppedClock).
                        await self._settle(stepped)
                        spent = time.monotonic() - began
                        await _wait(stop, max(0.0, interval / stepped.speed - spent))
                        stepped.step_to(next_tick - stepped.epoch)
                        assert clock_file is not None
                        clock_file.note()
                        continue
                    delay = next_tick - self.clock.now()
                    if delay < -5 * interval:  # fell far behind: do not try to catch up
                        next_tick = self.clock.now()
                    await _wait(stop, real_seconds(self.clock, max(0.0, delay)))
        finally:
            self.health.running = False
            await self._stop_workers()
            if stepped is not None:
                stepped.run_free()
            if clock_file is not None:
                clock_file.note(force=True)
            if self.anomalies is not None:
                with contextlib.suppress(OSError):  # a full disk must not block the stop
                    await asyncio.to_thread(self.anomalies.save)

    async def _stop_workers(self) -> None:
        """Stop the threads in the order their work flows, and give the loop lease up.

        The bus's batch in hand is stored, the intake's slice and the decisions in hand
        finish; runbooks stop at their next sleep or step and resume there at the next start
        (a step in the middle of a call finishes it first). What waits in the inbox or on
        the bus waits for the next start, or for another replica.
        """
        if self.bus_worker is not None:
            await asyncio.to_thread(self.bus_worker.stop, timeout=_QUIET_S * 5)
        await asyncio.to_thread(self.intake_worker.stop, timeout=_QUIET_S * 5)
        await asyncio.to_thread(self.worker.stop, timeout=_QUIET_S * 5)
        await asyncio.to_thread(self.engine.shutdown)
        if self.audit_checkpoints is not None:
            # Everything this controller will write is written: sign it, if the loop lease
            # is still this replica's (a fenced one signs nothing).
            await asyncio.to_thread(
                self.audit_checkpoints.stop, final=self.coordinator.leader, timeout=_QUIET_S * 5
            )
        await asyncio.to_thread(self.coordinator.stop)

    async def _tick(self, client: httpx.AsyncClient) -> None:
        """One evaluation, contained: whatever fails is logged and counted, never fatal."""
        self.health.ticks += 1
        began = self.health.last_tick = time.monotonic()
        try:
            if self.settings.telemetry.source.kind == "local":
                # Every replica scrapes, as a pair of Prometheus servers does: a runbook's
                # verify step and the policy's input read this replica's own samples, and a
                # new lease holder evaluates on a history without a gap.
                await self.scraper.scrape_once(client)
            if self.coordinator.leader:
                # The single work: one replica evaluates and watches (the lease's holder).
                await self.evaluate_once()
                await asyncio.to_thread(self.duties.run, at=self.clock.now())
            for listener in self.tick_listeners:
                await asyncio.to_thread(listener)
        except TemporaryError as exc:
            # The store is locked or full, a server is away: it may pass. Until a tick goes
            # through, input is refused (503) and /readyz says why.
            self.health.failing(str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad tick must not end the loop
            self.health.crashed(exc)
            _log.exception("the loop's tick failed; carrying on")
        else:
            self.health.recovered()
        finally:
            self.health.tick_took(time.monotonic() - began)

    async def _settle(self, stepped: SteppedClock) -> None:
        """Under a stepped clock: wait for the tick's decisions and runbooks to rest."""
        taken = await asyncio.to_thread(self.intake_worker.wait_idle, timeout=_QUIET_S * 5)
        idle = await asyncio.to_thread(self.worker.wait_idle, timeout=_QUIET_S * 5)
        quiet = await asyncio.to_thread(stepped.wait_quiet, timeout=_QUIET_S)
        if not (taken and idle and quiet):
            _log.warning("a decision or runbook is still busy; scenario time moves on")

    async def evaluate_once(self) -> None:
        """Evaluate the tick's rules and watches, and hand new incidents to the decider.

        Webhook alerts take another path (the inbox and the intake worker); which of their
        incidents still fire is read here, so none is taken for quiet.
        """
        at = self.clock.now()
        firing: set[Fingerprint] = set()  # webhook alerts' are read by resolve_quiet_incidents
        opened: list[Incident] = []
        if self.settings.alerts.source == "rules":
            alerts = await asyncio.to_thread(self.evaluator.evaluate, at=at)
            firing |= {
                self.alerts.key(a.name, a.labels) for a in alerts if a.state == AlertState.FIRING
            }
            opened += await asyncio.to_thread(self.alerts.take, alerts, at=at)
        anomalous = await self._watch_anomalies(at)
        if anomalous:
            opened += await asyncio.to_thread(self.alerts.take, anomalous, at=at)
        if self.anomalies is not None:
            firing |= {
                self.alerts.key(name, labels) for name, labels in self.anomalies.firing_signals()
            }
        self.worker.submit(opened)
        if self._next_quiet_check is None or at >= self._next_quiet_check:
            # Every few scenario seconds is soon enough to call an incident quiet, and a
            # storm's thousands of open incidents are not read at every tick.
            self._next_quiet_check = at + _QUIET_CHECK_EVERY_S
            await asyncio.to_thread(
                self.alerts.resolve_quiet_incidents, firing, at=at, started_at=self._started_at
            )
        if self.health.ticks % _PRUNE_EVERY_TICKS == 0:
            await asyncio.to_thread(self.store.inbox.prune, processed_before=at - _INBOX_KEEP_S)

    def _intake_failed(self, error: BaseException, *, component: str = "intake") -> None:
        if isinstance(error, TemporaryError):
            self.health.failing(str(error), component=component)
        else:
            self.health.crashed(error)

    async def _watch_anomalies(self, at: float) -> list[Alert]:
        """Feed the anomaly detectors when their interval has come round; their alerts."""
        if self.anomalies is None:
            return []
        if self._next_watch is not None and at < self._next_watch:
            return []
        interval = self.settings.anomalies.interval
        self._next_watch = (self._next_watch or at) + interval
        if self._next_watch <= at:  # fell behind (a pause): restart the rhythm from now
            self._next_watch = at + interval
        alerts = await asyncio.to_thread(self.anomalies.evaluate, at=at)
        if self._next_detector_save is None or at >= self._next_detector_save:
            # Saved each minute, so a crash loses at most a minute of what detectors learnt.
            self._next_detector_save = at + 60.0
            try:
                await asyncio.to_thread(self.anomalies.save)
            except OSError as exc:  # a full disk: detectors keep learning in memory
                _log.warning("cannot save the detectors' state: %s", exc)
        return alerts

    def receive(self, batch: Any) -> None:
        """The API's AlertSink: store a webhook's alerts before answering (any thread).

        Refused (TemporaryError: 503 with Retry-After) while the store cannot be written or
        the inbox is full, so the sender retries instead of losing them.
        """
        self.health.check_input()
        try:
            self.alerts.receive(batch, at=self.clock.now())
        except TemporaryError as exc:
            if not isinstance(exc, InboxFull):
                self.health.failing(str(exc), component="webhook")
            raise
        self.health.recovered(component="webhook")
        self.intake_worker.wake()

    async def handle_alerts(self, alerts: Sequence[Alert], *, at: float) -> None:
        """Open or join incidents for the alerts, and decide at once on each that is open.

        The loop hands its incidents to the decision worker; this synchronous path is for
        callers that want the decisions made before it returns.
        """
        opened = await asyncio.to_thread(self.alerts.take, alerts, at=at)
        current = [self.store.incidents.get(item.id) for item in opened]
        still_open = [incident for incident in current if incident.state == IncidentState.OPEN]
        await asyncio.to_thread(self.decider.decide_many, still_open, at=self.clock.now())

    async def handle_alert(self, alert: Alert, *, at: float) -> None:
        """One alert's state change (see handle_alerts)."""
        await self.handle_alerts([alert], at=at)

    # ---- deciding -----------------------------------------------------------------------
    def decide(self, incident: Incident, *, at: float) -> Decision | None:
        """Evaluate the policy for an incident and start what it chose (or escalate)."""
        return self.decider.decide(incident, at=at)

    def _signal_input(self, incident: Incident) -> dict[str, Any] | None:
        """The anomaly behind an incident, for the policy; None for a rule's alert."""
        if self.anomalies is None:
            return None
        # Keyed by the alert's own fingerprint, which `alerts.group_by` may not share.
        signal = self.anomalies.signals.get(fingerprint(incident.alert_name, incident.labels))
        if signal is None:
            return None
        return {
            "name": signal.name,
            "score": signal.score,
            "confidence": signal.confidence,
            "evidence": list(signal.evidence),
            "at": signal.at,
        }

    def give_verdict(
        self, incident_id: str, *, approve: bool, by: str, reason: str, source: str | None = None
    ) -> None:
        """The API's ApprovalDesk: record a person's verdict (the waiting step reads it)."""
        self.store.approvals.give(
            incident_id=incident_id,
            approve=approve,
            by=by,
            reason=reason,
            at=self.clock.now(),
            source=source,
        )

    def reset_breaker(
        self, *, runbook: str, namespace: str, name: str, by: str, reason: str, source: str
    ) -> dict[str, Any]:
        """The API's GuardrailDesk: close an open circuit breaker, on the record."""
        if self.guardrails is None:
            raise ConfigError("the config has no guardrails: no breaker to reset")
        rails, _ = self.guardrails.current()
        outcome = breaker_reset.reset_breaker(
            self.store,
            rails,
            runbook=runbook,
            target=Target("Deployment", namespace, name),
            by=by,
            reason=reason,
            source=source,
            at=self.clock.now(),
        )
        return {
            "reset": outcome.reset,
            "failures": outcome.failures,
            "opens_at": outcome.opens_at,
            "window_s": outcome.window,
        }

    def close(self) -> None:
        self.request_journal.close()
        self.bundle.close()
        if self.audit_checkpoints is not None:
            self.audit_checkpoints.close()
        if self.bus is not None:
            self.bus.close()
        self.store.close()
        if self.state_lock is not None:
            self.state_lock.release()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds` real seconds, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _open_bus(settings: Settings) -> AlertBus | None:
    """The configured alert bus; None for the in-process default (the webhook writes)."""
    if settings.bus.kind != "nats":
        return None
    from selfheal.dispatch.nats_bus import NatsBus  # noqa: PLC0415 - only when configured

    return NatsBus(
        url=settings.bus.url,
        stream=settings.bus.stream,
        subject=settings.bus.subject,
        consumer=settings.bus.consumer,
    )


def _dbos_url(url: str | None) -> str:
    """The workflow engine's system database: the store's, in the plain PostgreSQL form."""
    assert url is not None
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
