"""Where signed audit checkpoints go besides the store: a file of JSON lines, or a webhook.

The copy outside the database is what catches checkpoints deleted from it, and with them a
rewrite they would have shown (docs/audit.md): `selfheal audit verify --checkpoints FILE`
reads the file sink's lines, and a webhook's receiver can keep its bodies the same way.
Each is one checkpoint's `document()`: `{"seq", "hash", "at", "key_id", "signature"}`.

A sink that fails raises `TemporaryError`; the checkpointer keeps what it did not take and
offers it again, in order, at the next checkpoint. No failure here stops the controller.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Protocol

import httpx

from selfheal.domain.errors import TemporaryError
from selfheal.store import audit_checkpoints

# Real seconds before the first retry of a webhook; each later retry waits twice as long.
_FIRST_BACKOFF_S = 0.5


class CheckpointSink(Protocol):
    """Takes each checkpoint once it is stored; raises TemporaryError when it cannot."""

    description: str

    def send(
        self, checkpoint: audit_checkpoints.AuditCheckpoint, *, stopping: threading.Event
    ) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """Appends one JSON line per checkpoint to a file, synced to disk before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"the checkpoints file {path}"

    def send(
        self,
        checkpoint: audit_checkpoints.AuditCheckpoint,
        *,
        stopping: threading.Event,  # noqa: ARG002 - an append has no retries to cut short
    ) -> None:
        line = json.dumps(checkpoint.document(), sort_keys=True, separators=(",", ":")) + "\n"
        try:
            # One write of the whole line to a file opened for appending: a reader never
            # sees half a checkpoint, however many writers there are.
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line.encode("utf-8"))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as error:
            raise TemporaryError(
                f"cannot append to {self.path}: {error.strerror or error}", delay=0.0
            ) from error

    def close(self) -> None:
        """Nothing is held open between checkpoints."""


class WebhookSink:
    """POSTs each checkpoint as JSON; a 2xx answer means taken. Retries with backoff."""

    def __init__(self, url: str, *, timeout: float, retries: int) -> None:
        self.url = url
        self.retries = retries
        self.description = f"the webhook {url}"
        self._client = httpx.Client(timeout=timeout)

    def send(
        self, checkpoint: audit_checkpoints.AuditCheckpoint, *, stopping: threading.Event
    ) -> None:
        """Try once, then `retries` more times unless the controller is stopping."""
        backoff = _FIRST_BACKOFF_S
        attempt = 0
        while True:
            try:
                self._client.post(self.url, json=checkpoint.document()).raise_for_status()
            except httpx.HTTPError as error:
                attempt += 1
                if attempt > self.retries or stopping.is_set() or stopping.wait(backoff):
                    raise TemporaryError(
                        f"{self.url} did not take it after {attempt} attempt"
                        f"{'s' if attempt > 1 else ''}: {error}",
                        delay=0.0,
                    ) from error
                backoff *= 2
            else:
                return

    def close(self) -> None:
        self._client.close()
