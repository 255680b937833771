"""What a controller does first when it starts: pick up every incident a stop left mid-way.

Durable execution covers the runbooks (DBOS resumes a workflow at its interrupted step);
this covers the stages around them, from the store's records alone:

- an incident left `deciding` (the stop came between its move and its decision's record)
  goes back to `open` and is decided again: a decision is pure, and the runbook it may
  start is idempotent by its workflow id;
- an `open` incident without any decision (opened, then stopped before deciding) is decided;
- an `open` incident whose last word was "waiting for another's fix" waits again for that
  fix, and is decided afresh if the fix has failed meanwhile;
- a run recorded as started whose workflow never began is closed and its incident escalated
  (`Dispatcher.close_runs_that_cannot_finish`).

Nothing is left `deciding`, and no `open` incident is forgotten, whatever moment the stop
came at; the fault harness (selfheal.lab.faults) kills the controller at each of these
boundaries to check it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selfheal.domain.model import IncidentId, IncidentState
from selfheal.runtime.deciding import Decider
from selfheal.runtime.dispatch import Dispatcher
from selfheal.runtime.recorder import IncidentStore
from selfheal.store import Store


@dataclass(frozen=True, slots=True)
class Resumed:
    """What recovery found: incidents to decide, and waits it restored."""

    to_decide: list[IncidentId] = field(default_factory=list)
    waiting: dict[IncidentId, IncidentId] = field(default_factory=dict)


def resume(
    *,
    store: Store,
    incidents: IncidentStore,
    decider: Decider,
    dispatcher: Dispatcher,
    at: float,
    stale_before: float | None = None,
) -> Resumed:
    """Bring every incident back to a state the loop carries on from (see the module).

    With replicas sharing the state, `stale_before` limits this to what no live replica
    can still be working on: incidents and runs untouched since then (a lease ago).
    """
    dispatcher.close_runs_that_cannot_finish(at=at, started_before=stale_before)
    interrupted = store.incidents.list(state=IncidentState.DECIDING, updated_before=stale_before)
    incidents.move_many(
        [incident.id for incident in interrupted],
        IncidentState.OPEN,
        reason="the controller stopped while deciding; deciding again",
        at=at,
    )
    open_ids = {incident.id for incident in store.incidents.list(state=IncidentState.OPEN)}
    waits: dict[IncidentId, IncidentId] = {}
    for record in store.audit.records(kind="remediation.waiting"):
        if record.subject in open_ids:
            waits[IncidentId(record.subject)] = IncidentId(str(record.payload["waiting_for"]))
    decider.waiting.update(waits)
    to_decide = [incident.id for incident in interrupted]
    to_decide += [
        incident.id
        for incident in store.incidents.undecided(opened_before=stale_before)
        if incident.id not in waits and incident.id not in to_decide
    ]
    return Resumed(to_decide=to_decide, waiting=waits)
