"""What the holder of the loop lease does besides the loop: picking up after the others.

When a replica gains the lease (at its start on one node; on a takeover with replicas) it
restores the anomaly detectors from their last checkpoint, then sweeps: it fences every
replica silent past the lease and takes over their unfinished runbook workflows, and it
decides again what a stop left mid-way (recovery.py), limited, with replicas sharing the
state, to what no live replica can still be working on. It sweeps again every lease period
while it holds the lease, saves the detectors' checkpoint every minute, and has the audit
chain's head signed every `audit.checkpoint_every` (audit_checkpointer.py).
"""

from __future__ import annotations

import logging
import threading

from selfheal.runtime import recovery
from selfheal.runtime.anomalies import AnomalyWatcher
from selfheal.runtime.audit_checkpointer import AuditCheckpointer
from selfheal.runtime.coordinator import Coordinator
from selfheal.runtime.deciding import Decider
from selfheal.runtime.decision_worker import DecisionWorker
from selfheal.runtime.dispatch import Dispatcher
from selfheal.runtime.recorder import IncidentStore
from selfheal.store import Store
from selfheal.workflows import WorkflowEngine

_log = logging.getLogger(__name__)

CHECKPOINT = "anomaly-detectors"
# Scenario seconds between saves of the detectors' checkpoint.
_CHECKPOINT_EVERY_S = 60.0


class LeaderDuties:
    """Sweeps and checkpoints of the loop lease's holder (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        incidents: IncidentStore,
        decider: Decider,
        dispatcher: Dispatcher,
        engine: WorkflowEngine,
        coordinator: Coordinator,
        worker: DecisionWorker,
        anomalies: AnomalyWatcher | None,
        audit_checkpoints: AuditCheckpointer | None = None,
    ) -> None:
        self._store = store
        self._incidents = incidents
        self._decider = decider
        self._dispatcher = dispatcher
        self._engine = engine
        self._coordinator = coordinator
        self._worker = worker
        self._anomalies = anomalies
        self._audit_checkpoints = audit_checkpoints
        self._gained = threading.Event()
        coordinator.on_lease_gained.append(self._gained.set)
        self._next_sweep: float | None = None
        self._next_checkpoint: float | None = None
        self.recovered_workflows = 0

    def run(self, *, at: float) -> None:
        """Called at each tick by the lease's holder: whatever is due now."""
        if self._audit_checkpoints is not None:
            # First: it never fails, so a failing sweep below cannot hold it up.
            self._audit_checkpoints.due(at=at)
        shared = self._coordinator.shared
        if self._gained.is_set():
            self._gained.clear()
            if shared and self._anomalies is not None:
                saved = self._store.checkpoints.load(CHECKPOINT)
                if saved is not None:
                    self._anomalies.restore(saved)
                    _log.info("anomaly detectors restored from their last checkpoint")
            self._sweep(at=at)
        elif shared and (self._next_sweep is None or at >= self._next_sweep):
            self._sweep(at=at)
        if (
            shared
            and self._anomalies is not None
            and (self._next_checkpoint is None or at >= self._next_checkpoint)
        ):
            self._next_checkpoint = at + _CHECKPOINT_EVERY_S
            self._store.checkpoints.save(CHECKPOINT, self._anomalies.state())

    def sweep_now(self, *, at: float) -> None:
        """The first sweep of a controller on one node (SQLite), before its loop starts."""
        self._sweep(at=at)

    def _sweep(self, *, at: float) -> None:
        coordinator = self._coordinator
        lease = coordinator.lease_s
        # Twice a lease: a replica silent for a lease is found within half a lease more.
        self._next_sweep = at + lease / 2
        stale_before = at - lease if coordinator.shared else None
        # Fencing only once this replica's own beats have gone through for a lease: after
        # the database was away, every replica looks silent until it has beaten again.
        if coordinator.shared and coordinator.connected_for >= coordinator.lease_wall_s:
            dead = self._store.replicas.fence_dead(
                silent_for=coordinator.lease_wall_s, by=coordinator.replica_id, at=at
            )
            if dead:
                taken = self._engine.recover([replica.id for replica in dead])
                self.recovered_workflows += taken
                _log.warning(
                    "replicas %s fell silent: fenced, %d of their workflows taken over",
                    ", ".join(replica.id for replica in dead),
                    taken,
                )
        resumed = recovery.resume(
            store=self._store,
            incidents=self._incidents,
            decider=self._decider,
            dispatcher=self._dispatcher,
            at=at,
            stale_before=stale_before,
        )
        self._worker.submit(resumed.to_decide)
