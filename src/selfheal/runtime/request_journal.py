"""The API's write requests on the record: `api.request` audit records, written in batches.

Every write request the API answers (an alert delivery, a verdict, a refused attempt) is
recorded with who made it, with which roles, from where, on which route, and the answer.
A busy receiver answers hundreds of requests a second, and one transaction each would
queue them all behind the store's write lock; so the records wait in a bounded queue and a
thread appends what has gathered in one transaction, every `FLUSH_EVERY_S` or when `BATCH`
are waiting, and at close.

What this costs on a `kill -9`: the last fraction of a second of request records. What a
request did is never lost with it: an alert's sender is in its incident's records, and a
verdict's `approval.given` record names its approver and source in the same transaction
that gives it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from selfheal.store import Store

_log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.5
BATCH = 500
# Records held while the store cannot be written; past this the oldest are dropped, loudly.
MAX_WAITING = 50_000


class RequestJournal:
    """Collects request records and appends them to the audit chain in batches.

    It is the API's `RequestLog` port: the controller hands it to the app as it is.
    """

    def __init__(self, store: Store, *, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self._waiting: deque[tuple[str, str, Mapping[str, Any], float]] = deque()
        self._dropped = 0
        self._changed = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def record_request(
        self,
        *,
        identity: str | None,
        roles: Sequence[str],
        method: str,
        route: str,
        source: str,
        status: int,
    ) -> None:
        payload = {
            "identity": identity,
            "roles": list(roles),
            "method": method,
            "source": source,
            "status": status,
        }
        with self._changed:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(
                    target=self._work, name="selfheal-request-journal", daemon=True
                )
                self._thread.start()
            self._waiting.append(("api.request", route, payload, self._now()))
            while len(self._waiting) > MAX_WAITING:
                self._waiting.popleft()
                self._dropped += 1
            if len(self._waiting) >= BATCH:
                self._changed.notify_all()

    def close(self, *, timeout: float = 5.0) -> None:
        """Write what waits and stop the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=timeout)
        self._flush()

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._closing or len(self._waiting) >= BATCH, timeout=FLUSH_EVERY_S
                )
                if self._closing:
                    return
            self._flush()

    def _flush(self) -> None:
        with self._changed:
            batch = [self._waiting.popleft() for _ in range(min(BATCH, len(self._waiting)))]
            dropped, self._dropped = self._dropped, 0
        if dropped:
            _log.error("%d API request records were dropped: the store was not writable", dropped)
        if not batch:
            return
        try:
            self._store.audit.append_many(batch)
        except Exception as exc:  # noqa: BLE001 - kept and retried; the API goes on answering
            _log.warning("API request records wait: the store cannot take them now (%s)", exc)
            with self._changed:
                self._waiting.extendleft(reversed(batch))
