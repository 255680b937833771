import math
from pathlib import Path

import pytest

from selfheal.domain.errors import ConfigError, GuardrailViolation, PermanentError
from selfheal.domain.model import (
    Decision,
    Fingerprint,
    Incident,
    IncidentId,
    IncidentState,
    Outcome,
    Plan,
    Target,
    WorkflowId,
)
from selfheal.store import (
    ActionStatus,
    RecordNotFound,
    RunStatus,
    Store,
    audit,
    day_of,
    open_store,
)

CHECKOUT = Target(kind="Deployment", namespace="shop", name="checkout")


def open_incident(store: Store, fingerprint: str = "fp-1", *, at: float = 100.0) -> Incident:
    incident, _ = store.incidents.open_or_join(
        Fingerprint(fingerprint),
        alert_name="HighLatency",
        labels={"service": "checkout", "severity": "page"},
        annotations={"summary": "p99 over 500 ms"},
        at=at,
        onset_at=at - 30.0,
        target=CHECKOUT,
    )
    return incident


def audit_kinds(store: Store) -> list[str]:
    return [record.kind for record in store.audit.records()]


def start_run(store: Store, incident: Incident, workflow_id: str = "wf-1") -> None:
    store.workflows.start(
        WorkflowId(workflow_id),
        incident_id=incident.id,
        runbook="scale-up",
        params={"replicas": 4},
        at=110.0,
    )


def test_an_unsupported_database_url_is_a_config_error() -> None:
    """A URL for a database the store does not support names the fix."""
    with pytest.raises(ConfigError, match="use sqlite or postgresql"):
        open_store("mysql://root@localhost/selfheal")
    with pytest.raises(ConfigError, match="not a database URL"):
        open_store("state.db")


def test_a_sqlite_file_store_uses_wal_a_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    """The SQLite file is in WAL mode, waits for locks, and enforces foreign keys."""
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store, store.engine.connect() as db:
        assert db.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert db.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert db.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_the_store_keeps_its_data_across_reopening(tmp_path: Path) -> None:
    """What one process wrote, the next one reads, and the chain continues."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store:
        incident = open_incident(store)
    with open_store(url) as store:
        assert store.incidents.get(incident.id) == incident
        store.incidents.set_state(incident.id, IncidentState.DECIDING, at=101.0)
        assert audit.verify(store).records == 2


def test_a_first_alert_opens_an_incident_with_everything_it_was_given(store: Store) -> None:
    """The new incident carries the alert's name, labels, target and times."""
    incident = open_incident(store)
    assert incident == Incident(
        id=IncidentId("fp-1-1"),
        fingerprint=Fingerprint("fp-1"),
        alert_name="HighLatency",
        labels={"service": "checkout", "severity": "page"},
        annotations={"summary": "p99 over 500 ms"},
        state=IncidentState.OPEN,
        opened_at=100.0,
        onset_at=70.0,
        target=CHECKOUT,
        alert_count=1,
    )
    assert store.incidents.get(incident.id) == incident
    assert store.incidents.open_for(Fingerprint("fp-1")) == incident
    (record,) = store.audit.records()
    assert (record.kind, record.subject, record.at) == ("incident.opened", "fp-1-1", 100.0)


def test_a_refired_alert_joins_the_open_incident_and_is_counted(store: Store) -> None:
    """A re-fired alert does not open a second incident; it raises alert_count."""
    first = open_incident(store, at=100.0)
    again, joined = store.incidents.open_or_join(
        Fingerprint("fp-1"), alert_name="HighLatency", labels={}, annotations={}, at=160.0
    )
    assert joined
    assert (again.id, again.alert_count, again.labels) == (first.id, 2, first.labels)
    assert audit_kinds(store) == ["incident.opened", "incident.joined"]


def test_state_changes_are_stored_and_audited_once(store: Store) -> None:
    """Each change of state is recorded; setting the current state again is a no-op."""
    incident = open_incident(store)
    moved = store.incidents.set_state(
        incident.id, IncidentState.REMEDIATING, at=120.0, reason="policy chose scale-up"
    )
    assert moved.state is IncidentState.REMEDIATING
    store.incidents.set_state(incident.id, IncidentState.REMEDIATING, at=121.0)
    assert audit_kinds(store) == ["incident.opened", "incident.state"]
    assert store.audit.records()[-1].payload == {
        "from": "open",
        "to": "remediating",
        "reason": "policy chose scale-up",
    }


def test_a_resolved_incident_cannot_be_reopened(store: Store) -> None:
    """Resolution is final: a new alert opens a new incident instead."""
    incident = open_incident(store)
    store.incidents.set_state(incident.id, IncidentState.RESOLVED, at=130.0)
    with pytest.raises(PermanentError, match="resolved"):
        store.incidents.set_state(incident.id, IncidentState.OPEN, at=131.0)


def test_an_unknown_incident_is_record_not_found(store: Store) -> None:
    """Asking for or changing an incident that does not exist says so."""
    with pytest.raises(RecordNotFound):
        store.incidents.get(IncidentId("nope"))
    with pytest.raises(RecordNotFound):
        store.incidents.set_state(IncidentId("nope"), IncidentState.RESOLVED, at=1.0)


def test_incidents_are_listed_oldest_first_and_filtered_by_state(store: Store) -> None:
    """The list can be narrowed to one state or to incidents not yet resolved."""
    old, new = open_incident(store, "fp-old", at=1.0), open_incident(store, "fp-new", at=2.0)
    store.incidents.set_state(old.id, IncidentState.RESOLVED, at=3.0)
    assert [incident.id for incident in store.incidents.list()] == [old.id, new.id]
    assert [incident.id for incident in store.incidents.list(open_only=True)] == [new.id]
    resolved = store.incidents.list(state=IncidentState.RESOLVED)
    assert [incident.id for incident in resolved] == [old.id]


def test_a_decision_is_recorded_with_its_inputs_and_policy_version(store: Store) -> None:
    """The audit record of a decision carries its input, output and bundle hash."""
    incident = open_incident(store)
    decision = Decision(
        incident_id=incident.id,
        plans=(Plan(runbook="scale-up", params={"replicas": 4}, reason="latency"),),
        deny=(),
        requires_approval=False,
        policy_input={"incident": {"alert": "HighLatency"}, "replicas": 2},
        policy_output={"plans": [{"runbook": "scale-up"}]},
        bundle_hash="sha256:abc",
        decided_at=105.0,
    )
    decision_id = store.decisions.record(decision)
    record = store.audit.records()[-1]
    assert (record.kind, record.subject, record.at) == ("decision.recorded", incident.id, 105.0)
    assert record.payload["decision_id"] == decision_id
    assert record.payload["bundle_hash"] == "sha256:abc"
    assert record.payload["policy_input"] == {"incident": {"alert": "HighLatency"}, "replicas": 2}
    assert record.payload["plans"] == [
        {"runbook": "scale-up", "params": {"replicas": 4}, "risk": "low", "reason": "latency"}
    ]


def test_a_write_that_fails_leaves_no_audit_record(store: Store) -> None:
    """A decision for an unknown incident is refused, and the chain has no trace of it."""
    decision = Decision(
        incident_id=IncidentId("ghost"),
        plans=(),
        deny=("no such incident",),
        requires_approval=False,
        policy_input={},
        policy_output={},
        bundle_hash="x",
        decided_at=1.0,
    )
    with pytest.raises(PermanentError, match="constraint"):
        store.decisions.record(decision)
    assert store.audit.records() == ()
    assert audit.verify(store).ok


def test_starting_a_workflow_twice_returns_the_first_run(store: Store) -> None:
    """A second start with the same workflow id creates nothing and returns the first run."""
    incident = open_incident(store)
    run, created = store.workflows.start(
        WorkflowId("wf-1"), incident_id=incident.id, runbook="scale-up", params={}, at=110.0
    )
    again, created_again = store.workflows.start(
        WorkflowId("wf-1"), incident_id=incident.id, runbook="scale-up", params={}, at=111.0
    )
    assert (created, created_again) == (True, False)
    assert again == run
    assert (run.status, run.started_at) == (RunStatus.RUNNING, 110.0)
    assert audit_kinds(store).count("workflow.started") == 1


def test_finishing_a_workflow_records_its_outcome_once(store: Store) -> None:
    """A finished run keeps its outcome; the same finish again changes nothing."""
    incident = open_incident(store)
    start_run(store, incident)
    done = store.workflows.finish(
        WorkflowId("wf-1"), status=RunStatus.SUCCEEDED, outcome=Outcome.VERIFIED, at=150.0
    )
    assert (done.status, done.outcome, done.finished_at) == (
        RunStatus.SUCCEEDED,
        Outcome.VERIFIED,
        150.0,
    )
    repeat = store.workflows.finish(
        WorkflowId("wf-1"), status=RunStatus.SUCCEEDED, outcome=Outcome.VERIFIED, at=151.0
    )
    assert repeat == done
    with pytest.raises(PermanentError, match="already finished"):
        store.workflows.finish(WorkflowId("wf-1"), status=RunStatus.FAILED, at=152.0)
    assert store.workflows.find(WorkflowId("wf-1")) == done
    assert store.workflows.find(WorkflowId("wf-2")) is None
    assert audit_kinds(store).count("workflow.finished") == 1


def test_an_action_is_recorded_before_its_effect_and_never_begun_twice(store: Store) -> None:
    """Begin records the action; a second begin with its key says it is already known."""
    incident = open_incident(store)
    start_run(store, incident)
    key = "wf-1/scale/1"
    action, created = store.actions.begin(
        key,
        workflow_id=WorkflowId("wf-1"),
        step="scale",
        kind="kubernetes.scale",
        target="Deployment/shop/checkout",
        params={"replicas": 4},
        at=112.0,
    )
    assert created
    assert (action.status, action.result, action.finished_at) == (ActionStatus.STARTED, None, None)
    assert store.actions.find(key) == action
    again, created_again = store.actions.begin(
        key,
        workflow_id=WorkflowId("wf-1"),
        step="scale",
        kind="kubernetes.scale",
        target="Deployment/shop/checkout",
        params={"replicas": 4},
        at=113.0,
    )
    assert (again, created_again) == (action, False)
    assert audit_kinds(store).count("action.begun") == 1


def test_completing_an_action_stores_its_result(store: Store) -> None:
    """Complete records status and result; repeating it is a no-op, changing it an error."""
    incident = open_incident(store)
    start_run(store, incident)
    store.actions.begin(
        "k1",
        workflow_id=WorkflowId("wf-1"),
        step="scale",
        kind="kubernetes.scale",
        target="Deployment/shop/checkout",
        params={},
        at=112.0,
    )
    done = store.actions.complete(
        "k1", status=ActionStatus.SUCCEEDED, result={"replicas": 4}, at=114.0
    )
    assert (done.status, done.result, done.finished_at) == (
        ActionStatus.SUCCEEDED,
        {"replicas": 4},
        114.0,
    )
    same = store.actions.complete(
        "k1", status=ActionStatus.SUCCEEDED, result={"replicas": 4}, at=115.0
    )
    assert same == done
    with pytest.raises(PermanentError, match="already succeeded"):
        store.actions.complete("k1", status=ActionStatus.FAILED, result={}, at=116.0)
    with pytest.raises(RecordNotFound):
        store.actions.complete("k2", status=ActionStatus.FAILED, result={}, at=116.0)
    assert store.actions.find("k2") is None
    assert audit_kinds(store).count("action.completed") == 1


def test_notifications_are_recorded_and_listed_per_incident(store: Store) -> None:
    """Notifications are kept with their delivery result and can be listed by incident."""
    first, second = open_incident(store, "fp-a"), open_incident(store, "fp-b")
    sent = store.notifications.record(
        incident_id=first.id,
        channel="slack",
        recipient="#oncall",
        message="scaled checkout to 4",
        payload={"replicas": 4},
        at=120.0,
        delivered=True,
    )
    store.notifications.record(
        incident_id=second.id,
        channel="email",
        recipient="sre@example.com",
        message="needs approval",
        payload={},
        at=121.0,
        delivered=False,
        error="smtp timeout",
    )
    assert store.notifications.list(incident_id=first.id) == (sent,)
    assert [note.error for note in store.notifications.list()] == [None, "smtp timeout"]
    assert audit_kinds(store).count("notification.recorded") == 2


def test_the_budget_sums_charges_per_day_and_currency(store: Store) -> None:
    """spent_on adds up one day's charges in one currency."""
    incident = open_incident(store)
    store.budget.charge(
        day="2026-01-01",
        amount=1.25,
        currency="USD",
        reason="2 pods",
        at=1.0,
        incident_id=incident.id,
    )
    store.budget.charge(day="2026-01-01", amount=2.5, currency="USD", reason="4 pods", at=2.0)
    store.budget.charge(day="2026-01-01", amount=9.0, currency="EUR", reason="x", at=3.0)
    store.budget.charge(day="2026-01-02", amount=7.0, currency="USD", reason="y", at=4.0)
    assert math.isclose(store.budget.spent_on("2026-01-01"), 3.75)
    assert store.budget.spent_on("2026-01-01", currency="EUR") == 9.0
    assert store.budget.spent_on("2026-01-03") == 0.0
    assert audit_kinds(store).count("budget.charged") == 4


def test_a_charge_over_the_limit_is_refused_and_not_recorded(store: Store) -> None:
    """With a limit, the check and the charge are atomic; an overspend is a guardrail."""
    store.budget.charge(day="2026-01-01", amount=8.0, currency="USD", reason="a", at=1.0)
    with pytest.raises(GuardrailViolation, match="exceed the limit of 10"):
        store.budget.charge(
            day="2026-01-01", amount=3.0, currency="USD", reason="b", at=2.0, limit=10.0
        )
    entry = store.budget.charge(
        day="2026-01-01", amount=2.0, currency="USD", reason="c", at=3.0, limit=10.0
    )
    assert (entry.amount, entry.created_at) == (2.0, 3.0)
    assert store.budget.spent_on("2026-01-01") == 10.0


def test_budget_days_are_utc_dates_written_yyyy_mm_dd(store: Store) -> None:
    """day_of gives the UTC day of a scenario time; other spellings of a day are refused."""
    assert day_of(1_767_225_600.0) == "2026-01-01"
    assert day_of(1_767_225_599.0) == "2025-12-31"
    for wrong in ("2026-1-1", "20260101", "2026-13-01"):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            store.budget.spent_on(wrong)
