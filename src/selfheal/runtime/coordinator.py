"""Replicas on shared state: who does the single work, who is alive, who must stop.

Every replica serves the API, takes alerts into incidents, decides and runs remediations.
Some work must happen once, because it holds state: scraping, rule evaluation and the
anomaly watches (the loop). One replica does it, the holder of the `loop` lease; it renews
the lease at each heartbeat, and when it stops renewing (killed, paused, cut off) another
takes the lease over once it has expired, within two lease periods of the last renewal. The
new holder restores the detectors from their last checkpoint, decides again what a dead
replica left mid-way, and recovers the dead replica's runbook workflows.

Fencing: each replica beats its heartbeat into the store; one silent past the lease is
fenced by whoever recovers its workflows. A replica may act (a runbook step's effect, a
tick of the loop) only while its last beat is recent and it was not fenced: a replica
paused past its lease wakes up knowing, at its next step, that it must not act, and
stops. Every Kubernetes write also names the version of the object it was decided on, so
even a write that slips between the check and the effect cannot overwrite a newer state.

On one node (SQLite state) there is one replica, which always holds the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from selfheal.domain.errors import SelfhealError
from selfheal.domain.time import Clock
from selfheal.store import Lease, Store

_log = logging.getLogger(__name__)

LOOP_LEASE = "loop"
# `selfheal run`'s exit code when the others fenced this replica: it stopped acting, and its
# supervisor should start a fresh process.
FENCED_EXIT_CODE = 3


def default_replica_id() -> str:
    """The host name and the process id: unique among live processes."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Coordinator:
    """One replica's side of sharing the work (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        replica_id: str,
        heartbeat: float,
        lease: float,
        shared: bool,
        api_url: str | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.replica_id = replica_id
        self.heartbeat = heartbeat
        self.lease_s = lease
        self.shared = shared
        self.api_url = api_url
        self.lease: Lease | None = None
        self.fenced = False
        self._last_beat: float | None = None  # monotonic, of the last heartbeat stored
        # Monotonic, of the first heartbeat after the last failed one (None while failing).
        self._connected_since: float | None = None
        self._beaten = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="selfheal-beat", daemon=True)
        self.on_lease_gained: list[Callable[[], None]] = []
        self.on_fenced: list[Callable[[], None]] = []

    @property
    def lease_wall_s(self) -> float:
        """The lease's duration in real seconds (it is configured in scenario seconds)."""
        return real_seconds(self._clock, self.lease_s)

    # ---- what the rest asks -----------------------------------------------------------
    @property
    def leader(self) -> bool:
        """Whether this replica holds the loop lease now (and may do the single work)."""
        if not self.shared:
            return True
        return self.lease is not None and self.may_act()

    def may_act(self) -> bool:
        """Whether this replica may have an effect now: not fenced, its last beat recent."""
        if not self.shared:
            return True
        if self.fenced or self._last_beat is None:
            return False
        # Real seconds: a paused process's monotonic clock moves on, so a pause shows here.
        return time.monotonic() - self._last_beat < self.lease_wall_s

    def wait_to_act(self, stopping: threading.Event) -> bool:
        """Block until this replica may act (True), or it is fenced or stopping (False).

        A replica that cannot confirm it is alive (woken from a pause, the database away)
        waits for its next heartbeat rather than giving its work up: if the others took it
        for dead meanwhile, that beat finds it fenced and it stops; if not, its work is
        still its own and it carries on.
        """
        with self._beaten:
            while not self.may_act():
                if self.fenced or stopping.is_set() or self._stop.is_set():
                    return False
                self._beaten.wait(timeout=0.1)
        return not stopping.is_set()

    @property
    def connected_for(self) -> float:
        """Real seconds since this replica's heartbeats last started going through."""
        if not self.shared:
            return float("inf")
        since = self._connected_since
        return 0.0 if since is None else time.monotonic() - since

    # ---- the heartbeat thread ---------------------------------------------------------
    def start(self) -> None:
        self.beat_once()
        if self.shared:
            self._thread.start()

    def stop(self) -> None:
        """Stop beating and give the lease up, so a successor need not wait for it to expire."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self.shared and self.lease is not None and not self.fenced:
            try:
                self._store.leases.release(self.lease)
            except SelfhealError as exc:
                _log.warning("could not release the loop lease: %s", exc)
        self.lease = None

    def beat_once(self) -> None:
        """One heartbeat: say this replica lives, and take or renew the loop lease."""
        if not self.shared:
            self._last_beat = time.monotonic()
            return
        began = time.monotonic()
        alive = self._store.replicas.beat(
            self.replica_id, host=socket.gethostname(), pid=os.getpid(), api_url=self.api_url
        )
        if not alive:
            self._fence()
            return
        with self._beaten:
            self._last_beat = began
            if self._connected_since is None:
                self._connected_since = began
            self._beaten.notify_all()
        had = self.lease
        self.lease = self._store.leases.acquire(
            LOOP_LEASE,
            holder=self.replica_id,
            duration=self.lease_wall_s,
            at=self._clock.now(),
        )
        if self.lease is not None and (had is None or had.token != self.lease.token):
            _log.info("this replica now holds the loop lease (token %d)", self.lease.token)
            for callback in self.on_lease_gained:
                callback()
        elif had is not None and self.lease is None:
            _log.warning("the loop lease passed to another replica")

    def _beat(self) -> None:
        while not self._stop.wait(real_seconds(self._clock, self.heartbeat)):
            if self.fenced:
                return
            try:
                self.beat_once()
            except SelfhealError as exc:
                self._connected_since = None
                _log.warning("heartbeat failed (%s); the lease runs out unless it recovers", exc)

    def _fence(self) -> None:
        if self.fenced:
            return
        with self._beaten:
            self.fenced = True
            self.lease = None
            self._beaten.notify_all()
        _log.error(
            "replica %s was fenced: another replica took its work over while it was silent; "
            "it acts no more and stops",
            self.replica_id,
        )
        for callback in self.on_fenced:
            callback()


def real_seconds(clock: Clock, seconds: float) -> float:
    """`seconds` of the clock's (scenario) time in real seconds: divided by its speed."""
    speed = getattr(clock, "speed", 1.0)
    return seconds / (float(speed) if isinstance(speed, int | float) and speed > 0 else 1.0)
