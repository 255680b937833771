"""Signing the audit chain's head as the controller runs: a duty of the loop lease's holder.

Every `audit.checkpoint_every` of scenario time, if the chain's head has moved, the holder
of the loop lease signs it (store/audit_checkpoints.py), stores the checkpoint and hands it
to the sink; once more at a clean stop, so the last records a controller wrote are signed
too. Only the lease's holder signs, so replicas do not sign the same head twice (the store
refuses a checkpoint older than its newest anyway).

The work runs in a thread of its own, woken by the loop's tick: a webhook that hangs never
delays scraping or rule evaluation. Reading the head and signing take no lock; only the
insert of the checkpoint row takes the store's write lock, for one short statement. Every
failure (the store locked, a chain that contradicts its last checkpoint, a sink that is
down) is logged and tried again at the next checkpoint; none stops the controller.
"""

from __future__ import annotations

import collections
import logging
import threading

from selfheal.domain.errors import SelfhealError
from selfheal.domain.time import Clock
from selfheal.runtime.audit_sinks import CheckpointSink
from selfheal.store import Store, audit_checkpoints, audit_signing

_log = logging.getLogger(__name__)

# Checkpoints waiting for a sink that is down, at most: a week of one a minute. Older ones
# are dropped from the queue (they stay in the store); the newest covers the most.
_MAX_WAITING = 10_000


class AuditCheckpointer:
    """Signs the chain's head when due and at a stop (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        key: audit_signing.SigningKey,
        sink: CheckpointSink | None,
        clock: Clock,
        every: float,
    ) -> None:
        self._store = store
        self._key = key
        self._sink = sink
        self._clock = clock
        self._every = every
        self._next_at: float | None = None
        self._waiting: collections.deque[audit_checkpoints.AuditCheckpoint] = collections.deque(
            maxlen=_MAX_WAITING
        )
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._final = False
        self._thread = threading.Thread(
            target=self._work, name="selfheal-audit-checkpoints", daemon=True
        )

    @property
    def waiting(self) -> int:
        """Checkpoints stored but not yet taken by the sink."""
        return len(self._waiting)

    def start(self) -> None:
        self._thread.start()

    def due(self, *, at: float) -> bool:
        """Called by the lease's holder at each tick: wake the thread once a period is over.

        True when it woke it. The first call after a start is due at once.
        """
        if self._next_at is not None and at < self._next_at:
            return False
        self._next_at = at + self._every
        self._wake.set()
        return True

    def stop(self, *, final: bool, timeout: float) -> None:
        """Stop the thread, after one last checkpoint if `final` (a clean stop of the holder).

        The sink gets one try at what waits, without retries: a stop is not held up.
        """
        self._final = final
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                _log.warning("the audit checkpoint thread did not finish within %.0f s", timeout)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()

    def checkpoint_once(self) -> audit_checkpoints.AuditCheckpoint | None:
        """Sign the head if it moved, then offer the sink what waits. Never raises."""
        made = None
        try:
            made = audit_checkpoints.sign_head(self._store, key=self._key, at=self._clock.now())
        except SelfhealError as error:
            _log.error("no audit checkpoint this time: %s", error)
        except Exception:  # noqa: BLE001 - a bug must not stop the controller; logged in full
            _log.exception("signing an audit checkpoint failed")
        if made is not None:
            _log.info("audit checkpoint: record %d signed with key %s", made.seq, made.key_id)
            if self._sink is not None:
                self._waiting.append(made)
        self._deliver()
        return made

    def _deliver(self) -> None:
        sink = self._sink
        if sink is None:
            return
        while self._waiting:
            checkpoint = self._waiting[0]
            try:
                sink.send(checkpoint, stopping=self._stopping)
            except Exception as error:  # noqa: BLE001 - a sink down must not stop anything
                _log.warning(
                    "%s did not take the audit checkpoint of record %d (%s); %d waiting, "
                    "offered again at the next checkpoint",
                    sink.description,
                    checkpoint.seq,
                    error,
                    len(self._waiting),
                )
                return
            self._waiting.popleft()

    def _work(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                if self._final:
                    self.checkpoint_once()
                return
            self.checkpoint_once()
