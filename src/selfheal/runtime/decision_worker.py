"""Deciding off the loop: a worker thread that takes newly opened incidents in batches.

The loop and the intake worker take alerts into incidents and hand the ones to decide to
this worker, so a storm of thousands of new incidents never delays scraping, rule
evaluation or the intake of the next alerts. The worker decides them in batches
(`Decider.decide_many`: the policy evaluated for the whole batch in one hand-off to the
engine, the decisions that plan nothing recorded in one transaction), which keeps a storm's
cost per incident small; incidents about a known workload are decided first, so a real
incident among thousands of junk ones is acted on within seconds.

A failure is contained to what failed: a batch that raises is retried one incident at a
time, and an incident whose decision raises is escalated to a person (or, if even that
fails, left for the next start's recovery). The worker never dies of one incident.

Under a stepped clock (embedded runs), the loop waits for the worker to be idle before
scenario time moves, so a demo's decisions land in the tick that asked for them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from selfheal.domain.model import Incident, IncidentId, IncidentState
from selfheal.domain.time import Clock
from selfheal.runtime.deciding import Decider
from selfheal.store import Store

_log = logging.getLogger(__name__)

# Incidents decided per batch: big enough that a storm pays a transaction per hundreds of
# incidents, small enough that the write lock is never held for long.
BATCH = 250
# How often (real seconds) the worker looks at incidents waiting for another's fix.
_WAITING_EVERY_S = 0.2


class DecisionWorker:
    """Decides submitted incidents in a thread of its own, in arrival order."""

    def __init__(
        self,
        *,
        decider: Decider,
        store: Store,
        clock: Clock,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._decider = decider
        self._store = store
        self._clock = clock
        self._on_error = on_error
        # Incidents about a known workload go first: in a storm of alerts that name nothing
        # to act on, the one that can be fixed is not kept waiting behind them.
        self._urgent: deque[IncidentId] = deque()
        self._queue: deque[IncidentId] = deque()
        self._queued: set[IncidentId] = set()
        self._changed = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="selfheal-decide", daemon=True)
        self.decided = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, incidents: Iterable[IncidentId | Incident]) -> None:
        """Queue incidents for a decision; one already queued is not queued twice.

        An incident (not just its id) with a target goes ahead of those without one.
        """
        with self._changed:
            for item in incidents:
                incident_id = item if isinstance(item, str) else item.id
                if incident_id in self._queued:
                    continue
                self._queued.add(incident_id)
                urgent = not isinstance(item, str) and item.target is not None
                (self._urgent if urgent else self._queue).append(incident_id)
            self._changed.notify_all()

    @property
    def backlog(self) -> int:
        return len(self._urgent) + len(self._queue)

    def wait_idle(self, *, timeout: float) -> bool:
        """Wait (real seconds) until nothing is queued or being decided; True if so."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._urgent and not self._queue and not self._busy,
                timeout=timeout,
            )

    def stop(self, *, timeout: float) -> None:
        """Finish the batch in hand and stop; what is still queued waits for the next start."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout=timeout)

    # ---- the thread -----------------------------------------------------------------------
    def _work(self) -> None:
        next_waiting = 0.0
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._urgent or self._queue or self._stopping,
                    timeout=_WAITING_EVERY_S,
                )
                if self._stopping:
                    return
                batch = [self._urgent.popleft() for _ in range(min(BATCH, len(self._urgent)))]
                while self._queue and len(batch) < BATCH:
                    batch.append(self._queue.popleft())
                self._busy = bool(batch)
            try:
                if batch:
                    with self._clock.hold():
                        self._decide(batch)
                if time.monotonic() >= next_waiting and self._decider.waiting:
                    next_waiting = time.monotonic() + _WAITING_EVERY_S
                    with self._clock.hold():
                        self._decider.decide_waiting(at=self._clock.now())
            except Exception as exc:  # noqa: BLE001 - the worker outlives any one failure
                self._on_error(exc)
            finally:
                with self._changed:
                    self._queued.difference_update(batch)
                    self._busy = False
                    self._changed.notify_all()

    def _decide(self, batch: list[IncidentId]) -> None:
        found = self._store.incidents.find_many(batch)
        incidents = [
            found[incident_id]
            for incident_id in batch
            if incident_id in found and found[incident_id].state == IncidentState.OPEN
        ]
        try:
            self._decider.decide_many(incidents, at=self._clock.now())
        except Exception as exc:  # noqa: BLE001 - then one at a time, each contained
            _log.warning("deciding a batch of %d failed (%s); one at a time", len(batch), exc)
            for incident in incidents:
                self._decide_one(incident.id)
        self.decided += len(incidents)

    def _decide_one(self, incident_id: IncidentId) -> None:
        incident = self._store.incidents.find(incident_id)
        if incident is None or incident.state not in {IncidentState.OPEN, IncidentState.DECIDING}:
            return
        try:
            self._decider.decide(incident, at=self._clock.now())
        except Exception as exc:  # noqa: BLE001 - one incident's failure is that incident's
            self._on_error(exc)
            try:
                self._decider.give_up(incident, f"deciding failed: {exc}", at=self._clock.now())
            except Exception as again:  # noqa: BLE001 - recovery at the next start takes it
                self._on_error(again)
