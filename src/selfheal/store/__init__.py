"""The store: incidents, decisions, runs, actions and notifications, and the audit chain.

SQLite (a file in WAL mode, or in memory for tests) by default, PostgreSQL to scale out.
Every write that matters commits together with its audit record, whose hash covers the
record before it, so `audit.verify` detects any later edit, deletion or reordering; signed
checkpoints of the chain's head (`audit_checkpoints`, keys in `audit_signing`, checked by
`audit_checkpoint_check`) catch a chain rewritten whole. One
module per aggregate (incidents, decisions, workflow runs, actions, notifications, the
budget ledger, approvals), each written in one transaction with its audit record; SQL lives
in this package only.

    with store.open_store("sqlite:///state.db") as db:
        incident, joined = db.incidents.open_or_join(fp, alert_name=..., ..., at=clock.now())
        report = audit.verify(db)
"""

from selfheal.store import (
    action_records,
    audit,
    audit_checkpoint_check,
    audit_checkpoints,
    audit_signing,
    budget_ledger,
    coordination,
    database,
    decisions,
    inbox,
    incidents,
    notifications,
    schema,
    workflow_runs,
)
from selfheal.store.action_records import ActionRecord, ActionStatus
from selfheal.store.audit import AuditLog, AuditRecord, ChainReport, canonical_json, verify
from selfheal.store.budget_ledger import LedgerEntry, day_of
from selfheal.store.coordination import Lease, ReplicaInfo
from selfheal.store.database import Store, open_store
from selfheal.store.decisions import DecisionRecord
from selfheal.store.inbox import AlertStateChange, InboxEntry, InboxFull
from selfheal.store.incidents import Arrival
from selfheal.store.notifications import NotificationRecord
from selfheal.store.rows import RecordNotFound
from selfheal.store.workflow_runs import IncidentMove, RunStatus, WorkflowRun

__all__ = [
    "ActionRecord",
    "ActionStatus",
    "AlertStateChange",
    "Arrival",
    "AuditLog",
    "AuditRecord",
    "ChainReport",
    "DecisionRecord",
    "InboxEntry",
    "InboxFull",
    "IncidentMove",
    "Lease",
    "LedgerEntry",
    "NotificationRecord",
    "RecordNotFound",
    "ReplicaInfo",
    "RunStatus",
    "Store",
    "WorkflowRun",
    "action_records",
    "audit",
    "audit_checkpoint_check",
    "audit_checkpoints",
    "audit_signing",
    "budget_ledger",
    "canonical_json",
    "coordination",
    "database",
    "day_of",
    "decisions",
    "inbox",
    "incidents",
    "notifications",
    "open_store",
    "schema",
    "verify",
    "workflow_runs",
]
