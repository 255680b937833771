"""Dispatch: the bus that carries alerts from the API to whichever replica takes them.

`bus.py` is the port; `nats_bus.py` is its NATS JetStream adapter (the only module that
imports nats-py). The embedded default has no bus: the webhook writes to the store's
durable inbox itself.
"""

from selfheal.dispatch import bus
from selfheal.dispatch.bus import AlertBus, BusMessage

__all__ = ["AlertBus", "BusMessage", "bus"]
