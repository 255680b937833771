"""Writing to the store of a controller that may be running (approve, deny, reset)."""

from __future__ import annotations

import time
from collections.abc import Callable

from selfheal.domain.errors import TemporaryError
from selfheal.store import Store, open_store

__all__ = ["with_running_store"]

_ATTEMPTS = 20
_PAUSE_S = 0.5


def with_running_store(url: str, work: Callable[[Store], None]) -> None:
    """Run `work` on the store of a controller that may be running and writing to it.

    SQLite refuses a second writer now and then ("database is locked") while the controller
    appends; the work is one small transaction, so it is simply tried again, for a while.
    """
    for attempt in range(_ATTEMPTS):
        try:
            with open_store(url) as store:
                work(store)
        except TemporaryError:
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(_PAUSE_S)
        else:
            return
