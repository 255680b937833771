"""Runbooks as YAML DAGs and their durable interpreter (DBOS).

`runbook.py` reads and validates runbook files, `templating.py` resolves `{{ ... }}`
references, and `engine.py` runs runbooks durably with idempotent workflow IDs. Actions
implement the port in `selfheal.domain.actions`.
"""

from selfheal.workflows import engine, runbook, templating
from selfheal.workflows.engine import WorkflowEngine, WorkflowObserver
from selfheal.workflows.runbook import Runbook, load_runbook, load_runbooks

__all__ = [
    "Runbook",
    "WorkflowEngine",
    "WorkflowObserver",
    "engine",
    "load_runbook",
    "load_runbooks",
    "runbook",
    "templating",
]
