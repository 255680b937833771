"""The alert bus port: publish durably from any replica, consume with at-least-once delivery.

A replica's API publishes each webhook request's alerts as one message whose id is a hash
of its content: a sender's retry of the same request is stored once. A consumer on any
replica fetches messages, writes their alerts to the store's inbox (which deduplicates each
alert again, by its own content), and acknowledges them only once that write has
committed: a replica that dies in between leaves the messages to be delivered again, to
another replica if need be. Nothing acknowledged to a sender is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One message as a consumer gets it: its id and its body."""

    key: str
    body: bytes


class AlertBus(Protocol):
    """Where the API's accepted alerts go before any replica takes them."""

    def publish(self, body: bytes, *, key: str) -> bool:
        """Store a message durably; True if new, False if a message with `key` was stored.

        Raises TemporaryError when the bus cannot take it now (the sender should retry).
        """
        ...

    def consume(
        self, handle: Callable[[Sequence[BusMessage]], None], *, batch: int, wait: float
    ) -> int:
        """Fetch up to `batch` messages (waiting up to `wait` s), hand them over, then ack.

        `handle` must have stored them durably when it returns; if it raises, nothing is
        acknowledged and the messages come again. Returns how many were handled.
        """
        ...

    def close(self) -> None: ...
