"""The alert bus on NATS JetStream: the only module that imports nats-py.

The stream keeps every message on disk until a consumer acknowledges it (work-queue
retention: each message goes to one consumer); a `Nats-Msg-Id` header set from the
message's content makes JetStream store a publish once within its duplicate window, so a
sender's retry that reaches another replica is not stored twice. Replicas share one durable
pull consumer: a message fetched by a replica that dies before acknowledging it is
delivered again after `ack_wait`.

nats-py is asyncio; the rest of selfheal calls from threads. So the connection lives on an
event loop in a thread of its own, and each call is handed to it. Errors (no server, a
timeout, a closed connection) become `TemporaryError`: the webhook answers 503 and the
sender retries; the client reconnects by itself when the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import nats
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import Error as JetStreamError

from selfheal.dispatch.bus import BusMessage
from selfheal.domain.errors import ConfigError, TemporaryError

_log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a stored publish is remembered for deduplication (seconds): longer than any
# sender's retry of one notification (Alertmanager gives up within minutes).
DUPLICATE_WINDOW_S = 600.0
# How long a fetched message may stay unacknowledged before it is delivered again.
ACK_WAIT_S = 30.0
# How long a message handed back (its alerts could not be stored) waits to come again.
_REDELIVER_AFTER_S = 1.0
# How long one call waits for the server before it is a TemporaryError.
_CALL_TIMEOUT_S = 5.0
_MSG_ID = "Nats-Msg-Id"


class NatsBus:
    """`AlertBus` on a JetStream stream and a shared durable pull consumer."""

    def __init__(
        self,
        *,
        url: str,
        stream: str = "SELFHEAL",
        subject: str = "selfheal.alerts",
        consumer: str = "selfheal-intake",
        connect_timeout: float = 10.0,
    ) -> None:
        self.url, self.stream, self.subject, self.consumer = url, stream, subject, consumer
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="selfheal-nats", daemon=True
        )
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None
        try:
            self._run(self._connect(), timeout=connect_timeout)
        except TemporaryError as exc:
            self.close()
            raise ConfigError(f"cannot use the NATS server at {url}: {exc}") from exc

    async def _connect(self) -> None:
        self._nc = await nats.connect(
            self.url,
            connect_timeout=3,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )
        self._js = self._nc.jetstream(timeout=_CALL_TIMEOUT_S)
        config = api.StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        try:
            await self._js.add_stream(config)
        except JetStreamError:
            await self._js.update_stream(config)
        self._sub = await self._js.pull_subscribe(
            self.subject,
            durable=self.consumer,
            stream=self.stream,
            config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, max_ack_pending=-1
            ),
        )

    # ---- AlertBus -----------------------------------------------------------------------
    def publish(self, body: bytes, *, key: str) -> bool:
        async def publish() -> bool:
            ack = await self._js.publish(
                self.subject, body, headers={_MSG_ID: key}, timeout=_CALL_TIMEOUT_S
            )
            return not ack.duplicate

        return self._run(publish())

    def consume(
        self, handle: Callable[[Sequence[BusMessage]], None], *, batch: int, wait: float
    ) -> int:
        async def fetch() -> list[Any]:
            try:
                fetched: list[Any] = await self._sub.fetch(batch, timeout=wait)
            except TimeoutError:
                return []
            return fetched

        messages = self._run(fetch(), timeout=wait + _CALL_TIMEOUT_S)
        if not messages:
            return 0
        try:
            handle(
                [
                    BusMessage(key=str((msg.headers or {}).get(_MSG_ID, "")), body=bytes(msg.data))
                    for msg in messages
                ]
            )
        except BaseException:
            # Not stored: hand them back now, to come again in a moment (to any replica),
            # rather than after the whole ack wait.
            async def nak() -> None:
                for msg in messages:
                    await msg.nak(delay=_REDELIVER_AFTER_S)

            with contextlib.suppress(TemporaryError):
                self._run(nak())
            raise

        async def ack() -> None:
            for msg in messages:
                await msg.ack()

        # A lost ack only means a delivery again, which the inbox deduplicates.
        with contextlib.suppress(TemporaryError):
            self._run(ack())
        return len(messages)

    def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(TemporaryError):
                self._run(self._nc.close(), timeout=5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    # ---- the event loop's thread --------------------------------------------------------
    def _run(self, work: Coroutine[Any, Any, T], *, timeout: float = _CALL_TIMEOUT_S + 1) -> T:
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return future.result(timeout=timeout)
        except (NatsError, JetStreamError, TimeoutError, OSError) as exc:
            future.cancel()
            raise TemporaryError(f"NATS at {self.url}: {exc!r}", delay=1.0) from exc


def remove_stream(url: str, stream: str, *, timeout: float = 10.0) -> None:
    """Delete a stream and what it holds (a demo's or a test's, on a server it shares)."""

    async def remove() -> None:
        connection = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
        try:
            await connection.jetstream(timeout=timeout).delete_stream(stream)
        finally:
            await connection.close()

    try:
        asyncio.run(asyncio.wait_for(remove(), timeout=timeout))
    except (NatsError, JetStreamError, TimeoutError, OSError) as exc:
        raise TemporaryError(f"cannot remove stream {stream} at {url}: {exc!r}") from exc
