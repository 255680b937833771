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
import queue
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from selfheal.actions import approval, bookkeeping, kubernetes_actions, verify
from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.actions.ports import ApprovalBook, MetricsQuery
from selfheal.decision import guardrails, policy
from selfheal.decision.engine import PolicyError
from selfheal.domain.actions import ActionSpec, StepType
from selfheal.domain.errors import ConfigError, SelfhealError
from selfheal.domain.model import (
    Alert,
    AlertState,
    Decision,
    Fingerprint,
    Incident,
    IncidentId,
    IncidentState,
    Outcome,
    Target,
    WorkflowId,
    fingerprint,
)
from selfheal.domain.time import Clock
from selfheal.incidents import IncidentIntake, intake
from selfheal.runtime.anomalies import AnomalyWatcher
from selfheal.runtime.recorder import IncidentStore, Recorder
from selfheal.runtime.settings import Settings
from selfheal.runtime.telemetry_store import SharedTelemetry, SourceMetrics
from selfheal.store import RunStatus, day_of, open_store
from selfheal.telemetry import rules, scrape
from selfheal.telemetry.prometheus_source import PrometheusSource
from selfheal.telemetry.sources import InstantSource
from selfheal.workflows import WorkflowEngine, load_runbooks

_log = logging.getLogger(__name__)


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
        kubernetes_actions.wait_available_action(cluster),
        verify.verify_action(metrics),
        bookkeeping.notify_action(recorder),
        bookkeeping.budget_check_action(recorder),
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


def workflow_id_for(incident: Incident, runbook: str) -> str:
    """The idempotency key of a remediation: one per incident and runbook."""
    return f"remediate.{incident.id}.{runbook}"


class Controller:
    """The closed loop: scrape, evaluate, open incidents, decide, dispatch."""

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
        state_dir = settings.path(settings.state_dir)
        # Validate every file first: a bad one refuses the start before anything is created.
        self.rule_groups = rules.load_rule_files([settings.path(p) for p in settings.rules])
        self.runbooks = load_runbooks(settings.path(settings.runbooks), step_types=step_types())
        self.bundle = policy.PolicyBundle.load(settings.path(settings.policies))
        self.guardrails = (
            guardrails.GuardrailFile(settings.path(settings.guardrails))
            if settings.guardrails is not None
            else None
        )
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create state_dir {state_dir}: {exc.strerror}") from exc
        self.state_dir = state_dir
        self.store = open_store(f"sqlite:///{state_dir / 'state.db'}")
        self.telemetry = SharedTelemetry(retention=settings.telemetry.retention)
        self.source: InstantSource = (
            PrometheusSource(str(settings.telemetry.source.url))
            if settings.telemetry.source.kind == "prometheus"
            else self.telemetry
        )
        metrics = SourceMetrics(self.source)
        self.evaluator = rules.RuleEvaluator(
            self.rule_groups, source=self.source, external_labels=settings.external_labels
        )
        # Alerts from Alertmanager's webhook arrive on the API's thread and wait here for
        # the loop; the latest state per alert tells which incidents still have one firing.
        self.inbox: queue.SimpleQueue[Alert] = queue.SimpleQueue()
        self._webhook_firing: dict[Fingerprint, tuple[Fingerprint, bool]] = {}
        self.incidents = IncidentStore(self.store)
        self.recorder = Recorder(store=self.store, settings=settings, incidents=self.incidents)
        actions = build_actions(
            cluster=cluster,
            metrics=metrics,
            recorder=self.recorder,
            incidents=self.incidents,
            approvals=self.store.approvals,
        )
        self.engine = WorkflowEngine(
            database_url=f"sqlite:///{state_dir / 'workflows.db'}",
            runbooks=self.runbooks,
            actions=actions,
            observer=self.recorder,
            clock=clock,
        )
        self.intake = IncidentIntake(self.incidents, group_by=settings.alerts.group_by)
        self.scraper = scrape.Scraper(
            targets=targets,
            sink=self.telemetry,
            clock=clock,
            interval=settings.telemetry.scrape_interval,
        )
        # The last state change seen per alert: a rule re-reports a firing alert at every
        # evaluation, and only a change (fired anew, resolved) is news. One entry per alert
        # series, so it stays as small as the rules' cardinality (resolved ones are pruned).
        self._last_seen: dict[Fingerprint, tuple[str, float | None]] = {}
        self._started_at: float | None = None
        longest_for = max(
            (rule.spec.for_ for group in self.rule_groups for rule in group.rules), default=0.0
        )
        self._resolve_grace = longest_for + 3 * settings.telemetry.evaluation_interval
        # Distinct firing alerts handled (a rule re-reporting an alert that still fires is
        # the same alert); each opens or joins an incident, so the audit accounts for all.
        self.alerts_received = 0
        self.alerts_resolved = 0
        # Incidents waiting for another remediation of their target to end, and for which.
        self._waiting: dict[IncidentId, IncidentId] = {}
        self.anomalies: AnomalyWatcher | None = None
        if settings.anomalies.watches:
            self.anomalies = AnomalyWatcher(
                settings.anomalies, source=self.source, state_file=state_dir / "detectors.json"
            )
        self._next_watch: float | None = None
        self._next_detector_save: float | None = None

    # ---- the loop -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; workflows left by a crash resume at the start."""
        await asyncio.to_thread(self.engine.launch)
        self._started_at = self.clock.now()
        await asyncio.to_thread(self.abandon_unstarted_runs, at=self._started_at)
        interval = self.settings.telemetry.evaluation_interval
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                next_tick = self.clock.now()
                while not stop.is_set():
                    if self.settings.telemetry.source.kind == "local":
                        await self.scraper.scrape_once(client)
                    await self.evaluate_once()
                    next_tick += interval
                    delay = next_tick - self.clock.now()
                    if delay < -5 * interval:  # fell far behind: do not try to catch up
                        next_tick = self.clock.now()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            stop.wait(), timeout=max(0.0, delay) / _speed(self.clock)
                        )
        finally:
            if self.anomalies is not None:
                await asyncio.to_thread(self.anomalies.save)
            await asyncio.to_thread(self.engine.shutdown)

    async def evaluate_once(self) -> None:
        at = self.clock.now()
        if self.settings.alerts.source == "alertmanager":
            alerts = self._drain_inbox()
            firing = {key for key, fires in self._webhook_firing.values() if fires}
        else:
            alerts = await asyncio.to_thread(self.evaluator.evaluate, at=at)
            firing = {
                self.intake.key(a.name, a.labels) for a in alerts if a.state == AlertState.FIRING
            }
        alerts += await self._watch_anomalies(at)
        if self.anomalies is not None:
            firing |= {
                self.intake.key(name, labels) for name, labels in self.anomalies.firing_signals()
            }
        await self.handle_alerts(alerts, at=at)
        if self._waiting:
            await asyncio.to_thread(self.decide_waiting, at=self.clock.now())
        await asyncio.to_thread(self.resolve_quiet_incidents, firing, at=at)

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
            await asyncio.to_thread(self.anomalies.save)
            self._next_detector_save = at + 60.0
        return alerts

    def receive(self, batch: Any) -> None:
        """The API's AlertSink: queue a webhook's alerts for the loop (any thread)."""
        for alert in batch.alerts:
            self.inbox.put(alert)

    def _drain_inbox(self) -> list[Alert]:
        alerts = []
        while True:
            try:
                alert = self.inbox.get_nowait()
            except queue.Empty:
                break
            alerts.append(alert)
            key = fingerprint(alert.name, alert.labels)
            fires = alert.state == AlertState.FIRING
            self._webhook_firing[key] = (self.intake.key(alert.name, alert.labels), fires)
        return alerts

    def resolve_quiet_incidents(self, firing: set[Fingerprint], *, at: float) -> None:
        """Resolve incidents whose remediation is over and whose alert no longer fires.

        An alert that resolves while its remediation runs cannot resolve the incident then;
        this catches up once the remediation has ended.
        """
        if self._started_at is None or at - self._started_at < self._resolve_grace:
            # Just after a (re)start, rules have no state: alerts that still hold are pending
            # again, not gone. Wait until they could have fired before calling anything quiet.
            return
        for incident in self.store.incidents.list(open_only=True):
            if incident.state in intake.AUTO_RESOLVABLE and incident.fingerprint not in firing:
                self.incidents.move(
                    incident.id, IncidentState.RESOLVED, reason="the alert no longer fires", at=at
                )

    async def handle_alerts(self, alerts: Sequence[Alert], *, at: float) -> None:
        """Open or join incidents for firing alerts and resolve them for resolved ones.

        The firing alerts go in one write, and each incident is decided at most once per
        call, so an alert storm costs one transaction per evaluation.
        """
        firing: list[Alert] = []
        resolved: list[Alert] = []
        for alert in alerts:
            if alert.state != AlertState.PENDING and self._is_news(alert, at=at):
                (firing if alert.state == AlertState.FIRING else resolved).append(alert)
        self.alerts_received += len(firing)
        self.alerts_resolved += len(resolved)
        results = await asyncio.to_thread(self.intake.receive_firing, firing, at=at)
        decided: set[IncidentId] = set()
        for result in results:
            incident = result.incident
            if incident is None or incident.id in decided:
                continue
            if result.opened or incident.state == IncidentState.OPEN:
                decided.add(incident.id)
                # The state may have moved since the batch's write (an earlier decision).
                current = await asyncio.to_thread(self.store.incidents.get, incident.id)
                if current.state == IncidentState.OPEN:
                    await asyncio.to_thread(self.decide, current, at=self.clock.now())
        for alert in resolved:
            await asyncio.to_thread(self.intake.receive, alert, at=at)

    async def handle_alert(self, alert: Alert, *, at: float) -> None:
        """One alert's state change (see handle_alerts)."""
        await self.handle_alerts([alert], at=at)

    def _is_news(self, alert: Alert, *, at: float) -> bool:
        """Whether the alert changed state since last seen (fired anew, or resolved)."""
        moment = alert.fired_at if alert.state == AlertState.FIRING else alert.resolved_at
        key = fingerprint(alert.name, alert.labels)
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

    # ---- deciding -----------------------------------------------------------------------
    def policy_input(self, incident: Incident, *, at: float) -> dict[str, Any]:
        budget = self.settings.budget
        target: dict[str, Any] | None = None
        if incident.target is not None:
            try:
                state = self.cluster.deployment(incident.target.namespace, incident.target.name)
                target = {
                    "kind": incident.target.kind,
                    "namespace": state.namespace,
                    "name": state.name,
                    "replicas": state.replicas,
                    "available_replicas": state.available,
                }
            except SelfhealError as exc:
                _log.warning("cannot read target of %s: %s", incident.id, exc)
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
            "signal": self._signal_input(incident),
            "context": {
                "budget": {
                    "daily_budget": budget.daily,
                    "spent_today": self.store.budget.spent_on(day_of(at), currency=budget.currency),
                    "cost_per_replica_hour": budget.cost_per_replica_hour,
                    "currency": budget.currency,
                },
                "slo": {"p95_latency_seconds": self.settings.slo.p95_latency},
                "now": at,
            },
            "runbooks": {
                name: {"params": sorted(runbook.params)} for name, runbook in self.runbooks.items()
            },
        }

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

    def decide(self, incident: Incident, *, at: float) -> Decision | None:
        """Evaluate the policy for an incident and start what it chose (or escalate)."""
        if self.settings.modes.policy == "off":
            if incident.state != IncidentState.OPEN:
                self.incidents.move(
                    incident.id, IncidentState.OPEN, reason="the policy is off (modes)", at=at
                )
            return None
        incident = self.incidents.move(
            incident.id, IncidentState.DECIDING, reason="evaluating policy", at=at
        )
        policy_input = self.policy_input(incident, at=at)
        try:
            raw = self.bundle.evaluate(policy_input)
            output = policy.parse_output(raw)
        except PolicyError as exc:
            self._escalate(incident, f"the policy failed: {exc}", at=at)
            return None
        decision = Decision(
            incident_id=incident.id,
            plans=policy.to_plans(output),
            deny=tuple(output.deny),
            requires_approval=output.requires_approval,
            policy_input=policy_input,
            policy_output=raw if isinstance(raw, Mapping) else {"value": raw},
            bundle_hash=self.bundle.hash,
            decided_at=self.clock.now(),
        )
        self.store.decisions.record(decision)
        now = self.clock.now()
        mode = (
            self.settings.modes.for_runbook(decision.plans[0].runbook)
            if decision.plans and not decision.deny
            else self.settings.modes.policy
        )
        if mode != "enforce":
            self._hold(incident, decision, mode=mode, at=now)
        elif decision.deny:
            self._escalate(incident, "; ".join(decision.deny), at=now)
        elif decision.plans and (busy := self._busy_with(incident)) is not None:
            self._waiting[incident.id] = busy
            self.incidents.move(
                incident.id,
                IncidentState.OPEN,
                at=now,
                reason=f"{busy} is already remediating the same target",
            )
        elif decision.plans:
            refusals = self.guardrail_refusals(incident, decision, at=now)
            if refusals:
                self._refuse(incident, decision, refusals, at=now)
            else:
                self._dispatch(incident, decision, at=now)
        else:
            self.incidents.move(
                incident.id, IncidentState.OPEN, reason="no remediation planned", at=now
            )
        return decision

    # ---- guardrails ---------------------------------------------------------------------
    def guardrail_refusals(
        self, incident: Incident, decision: Decision, *, at: float
    ) -> list[guardrails.Refusal]:
        """What the guardrails in force say about the decision's plan, with today's facts."""
        if self.guardrails is None:
            return []
        rails, error = self.guardrails.current()
        if error is not None:
            # The last good guardrails stay in force; the broken edit is on record.
            _log.error("guardrails not reloaded: %s", error)
            self.store.audit.append(
                "guardrails.reload_failed", str(self.guardrails.path), {"error": str(error)}, at=at
            )
        plan = decision.plans[0]
        return guardrails.check(rails, plan, incident.target, self._facts(rails, decision, at=at))

    def _facts(
        self, rails: guardrails.Guardrails, decision: Decision, *, at: float
    ) -> guardrails.Facts:
        windows = [limit.window for limit in rails.rate_limits]
        windows += [rails.cooldown or 0.0, 86_400.0]
        if rails.circuit_breaker is not None:
            windows.append(rails.circuit_breaker.window)
        runs = []
        for run in self.store.workflows.since(at - max(windows)):
            ended = None if run.status is RunStatus.RUNNING else (run.outcome or run.status)
            owner = self.store.incidents.get(run.incident_id)
            runs.append(
                guardrails.PastRun(
                    run.runbook, owner.target, run.started_at, None if ended is None else str(ended)
                )
            )
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
            breaker_resets=self._breaker_resets(),
        )

    def _node_count(self) -> int | None:
        try:
            return self.cluster.node_count()
        except SelfhealError as exc:
            _log.warning("cannot count the cluster's nodes: %s", exc)
            return None

    def _error_budget(self, rails: guardrails.Guardrails, *, at: float) -> float | None:
        if rails.error_budget is None:
            return None
        try:
            pairs = self.source.instant(rails.error_budget.query, at=at)
        except SelfhealError as exc:
            _log.warning("error budget query failed: %s", exc)
            return None
        return float(pairs[0][1]) if pairs else None

    def _breaker_resets(self) -> dict[tuple[str, Target | None], float]:
        resets: dict[tuple[str, Target | None], float] = {}
        for record in self.store.audit.records(kind="guardrail.reset"):
            namespace, _, name = str(record.payload.get("target", "")).partition("/")
            key = (str(record.payload.get("runbook")), Target("Deployment", namespace, name))
            resets[key] = record.at
        return resets

    def _refuse(
        self,
        incident: Incident,
        decision: Decision,
        refusals: list[guardrails.Refusal],
        *,
        at: float,
    ) -> None:
        """Record the guardrails' refusal as a decision of its own, and call a person."""
        assert self.guardrails is not None  # only refusals of configured guardrails get here
        plan = decision.plans[0]
        reasons = tuple(f"guardrail {r.guardrail}: {r.reason}" for r in refusals)
        self.store.decisions.record(
            Decision(
                incident_id=incident.id,
                plans=(),
                deny=reasons,
                requires_approval=False,
                policy_input={
                    "refused_plan": {"runbook": plan.runbook, "params": dict(plan.params)},
                    "guardrails_file": str(self.guardrails.path),
                },
                policy_output={
                    "refusals": [{"guardrail": r.guardrail, "reason": r.reason} for r in refusals]
                },
                bundle_hash=self.guardrails.hash,
                decided_at=at,
            )
        )
        self._escalate(incident, "; ".join(reasons), at=at)

    def _hold(self, incident: Incident, decision: Decision, *, mode: str, at: float) -> None:
        """Shadow or off: record what enforcing would have done, and do none of it."""
        would: dict[str, Any]
        if decision.deny:
            would = {"escalate": "; ".join(decision.deny)}
        elif decision.plans:
            plan = decision.plans[0]
            would = {"runbook": plan.runbook, "params": dict(plan.params), "reason": plan.reason}
            if decision.requires_approval:
                would["requires_approval"] = True
        else:
            would = {}
        if would:
            self.store.audit.append(
                "remediation.withheld",
                incident.id,
                {"mode": mode, "would_have": would, "alert": incident.alert_name},
                at=at,
            )
        what = would.get("runbook") or ("escalate" if "escalate" in would else "nothing")
        self.incidents.move(
            incident.id,
            IncidentState.OPEN,
            reason=f"{mode} mode: would have run {what}, did nothing",
            at=at,
        )

    def _busy_with(self, incident: Incident) -> IncidentId | None:
        """Another incident whose remediation of the same target is under way, if any.

        Checked before the guardrails: a second symptom of a problem already being fixed
        waits quietly instead of tripping the cooldown and paging someone.
        """
        for state in (IncidentState.REMEDIATING, IncidentState.AWAITING_APPROVAL):
            for other in self.store.incidents.list(state=state):
                if other.id != incident.id and other.target == incident.target:
                    return other.id
        return None

    def decide_waiting(self, *, at: float) -> None:
        """Decide again on incidents that waited for a remediation that has now failed.

        A failed or rolled-back fix leaves the other symptoms of the target unhandled, so
        they are decided afresh, and the guardrails (cooldown, circuit breaker) rule on
        trying again. After a verified fix they keep waiting for their alert to resolve
        (or to fire anew): deciding at once would act twice on one problem.
        """
        for waiting_id, blocker_id in list(self._waiting.items()):
            runs = self.store.workflows.of_incident(blocker_id)
            if runs and runs[-1].status is RunStatus.RUNNING:
                continue  # its compensation may still be running: wait for the run's end
            del self._waiting[waiting_id]
            failed = bool(runs) and runs[-1].outcome in {Outcome.ROLLED_BACK, Outcome.FAILED}
            incident = self.store.incidents.get(waiting_id)
            if failed and incident.state == IncidentState.OPEN:
                self.decide(incident, at=at)

    def _dispatch(self, incident: Incident, decision: Decision, *, at: float) -> None:
        plan = decision.plans[0]
        gate = None
        if decision.requires_approval:
            two = plan.runbook in self.settings.approvals.two_person
            gate = {"timeout": self.settings.approvals.timeout, "approvers": 2 if two else 1}
        workflow_id = workflow_id_for(incident, plan.runbook)
        context = _incident_context(incident)
        try:
            params = self.runbooks[plan.runbook].resolve_params(plan.params)
            # Recorded before the engine starts it, so the next decision's guardrails
            # (concurrency, cooldown, rate limits) count this run even if its workflow has
            # not reached its first step yet. The workflow's own start record is idempotent.
            self.recorder.workflow_started(
                workflow_id=workflow_id,
                runbook=plan.runbook,
                params=params,
                incident=context,
                at=at,
                waits_for_approval=gate is not None,
            )
            self.engine.start(
                workflow_id=workflow_id,
                runbook=plan.runbook,
                params=plan.params,
                incident=context,
                approval=gate,
            )
        except ConfigError as exc:
            self._abandon(workflow_id, at=at)
            self._escalate(incident, f"the policy's plan cannot run: {exc}", at=at)
        except KeyError:
            self._escalate(incident, f"the policy chose unknown runbook {plan.runbook!r}", at=at)

    def _abandon(self, workflow_id: str, *, at: float) -> None:
        """Close a run recorded as started whose workflow never began."""
        run = self.store.workflows.find(WorkflowId(workflow_id))
        if run is not None and run.status is RunStatus.RUNNING:
            self.store.workflows.finish(
                WorkflowId(workflow_id), status=RunStatus.CANCELLED, outcome=Outcome.FAILED, at=at
            )

    def abandon_unstarted_runs(self, *, at: float) -> None:
        """After a crash between recording a run and starting its workflow: close the run.

        The incident is escalated: nothing was done, and a person should know.
        """
        for run in self.store.workflows.since(at):
            if run.status is RunStatus.RUNNING and self.engine.status(run.workflow_id) is None:
                self._abandon(run.workflow_id, at=at)
                incident = self.store.incidents.get(run.incident_id)
                if incident.state in {IncidentState.REMEDIATING, IncidentState.AWAITING_APPROVAL}:
                    self._escalate(
                        incident, "the controller stopped before its runbook started", at=at
                    )

    def _escalate(self, incident: Incident, reason: str, *, at: float) -> None:
        self.recorder.notify(
            channel="on-call",
            message=f"incident {incident.id} ({incident.alert_name}) needs a person: {reason}",
            severity="critical",
            incident=_incident_context(incident),
            key=f"{incident.id}/escalation",
            at=at,
        )
        self.incidents.move(incident.id, IncidentState.ESCALATED, reason=reason, at=at)

    def give_verdict(self, incident_id: str, *, approve: bool, by: str, reason: str) -> None:
        """The API's ApprovalDesk: record a person's verdict (the waiting step reads it)."""
        self.store.approvals.give(
            incident_id=incident_id, approve=approve, by=by, reason=reason, at=self.clock.now()
        )

    def close(self) -> None:
        self.bundle.close()
        self.store.close()


def _incident_context(incident: Incident) -> dict[str, Any]:
    target = incident.target
    return {
        "id": incident.id,
        "fingerprint": incident.fingerprint,
        "alert": incident.alert_name,
        "labels": dict(incident.labels),
        "target": None
        if target is None
        else {"kind": target.kind, "namespace": target.namespace, "name": target.name},
    }


# Resolved alerts seen more than an hour ago are forgotten once this many alerts are known.
_PRUNE_SEEN_AT = 10_000


def _speed(clock: Clock) -> float:
    speed = getattr(clock, "speed", 1.0)
    return float(speed) if isinstance(speed, int | float) and speed > 0 else 1.0
