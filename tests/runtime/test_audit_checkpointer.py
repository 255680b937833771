"""The audit checkpointer: signs a moved head when due, feeds its sink, never stops anything."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import text

from selfheal.domain.time import ManualClock
from selfheal.runtime.audit_checkpointer import AuditCheckpointer
from selfheal.runtime.audit_sinks import CheckpointSink, FileSink, WebhookSink
from selfheal.store import Store, audit_checkpoint_check, audit_signing, open_store

KEY = audit_signing.SigningKey.generate()


class Receiver(ThreadingHTTPServer):
    """A loopback webhook receiver that answers 503 to its first `failures` POSTs."""

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures
        self.attempts = 0
        self.taken: list[dict[str, object]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/checkpoints"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.attempts += 1
        if self.server.attempts <= self.server.failures:
            self.send_response(503)
        else:
            self.server.taken.append(json.loads(body))
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: the test reports what matters."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def receiver(failures: int) -> Iterator[Receiver]:
    server = Receiver(failures)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


@pytest.fixture
def down_twice() -> Iterator[Receiver]:
    yield from receiver(failures=2)


def checkpointer(
    store: Store, sink: CheckpointSink | None, *, every: float = 60.0
) -> AuditCheckpointer:
    return AuditCheckpointer(store=store, key=KEY, sink=sink, clock=ManualClock(), every=every)


def append(store: Store, count: int) -> None:
    for _ in range(count):
        store.audit.append("test.event", "s", {}, at=1.0)


def wait_for(condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.05)


def test_a_checkpoint_is_due_once_per_period_of_scenario_time(store: Store) -> None:
    """The first tick is due at once; then again only when `every` has passed."""
    signer = checkpointer(store, None, every=60.0)
    assert [signer.due(at=at) for at in (1000.0, 1030.0, 1059.9, 1060.0, 1061.0, 1200.0)] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]


def test_a_moved_head_is_signed_stored_and_appended_to_the_file(
    store: Store, tmp_path: Path
) -> None:
    """Each checkpoint is in the store and, as one JSON line, in the sink's file."""
    path = tmp_path / "checkpoints.jsonl"
    signer = checkpointer(store, FileSink(path))
    append(store, 3)
    first = signer.checkpoint_once()
    assert signer.checkpoint_once() is None, "the head did not move"
    append(store, 2)
    second = signer.checkpoint_once()
    assert first is not None
    assert second is not None
    assert (first.seq, second.seq) == (3, 5)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [first.document(), second.document()]
    assert store.audit_checkpoints.listed() == (first, second)


def test_a_file_sink_that_cannot_be_written_keeps_the_checkpoint_for_later(
    store: Store, tmp_path: Path
) -> None:
    """Signing goes on while the file cannot be written; the copy catches up afterwards."""
    folder = tmp_path / "not-yet"
    signer = checkpointer(store, FileSink(folder / "checkpoints.jsonl"))
    append(store, 2)
    made = signer.checkpoint_once()
    assert made is not None
    assert signer.waiting == 1
    folder.mkdir()
    assert signer.checkpoint_once() is None  # nothing new to sign, but the waiting one goes
    assert signer.waiting == 0
    assert json.loads((folder / "checkpoints.jsonl").read_text()) == made.document()


def test_a_webhook_is_retried_before_the_checkpoint_waits(
    store: Store, down_twice: Receiver
) -> None:
    """Two 503s, then a 204: with two retries the checkpoint is taken on its first turn."""
    signer = checkpointer(store, WebhookSink(down_twice.url, timeout=5.0, retries=2))
    append(store, 1)
    made = signer.checkpoint_once()
    assert made is not None
    assert down_twice.attempts == 3
    assert down_twice.taken == [made.document()]
    assert signer.waiting == 0
    signer.close()


def test_a_webhook_that_is_down_gets_every_waiting_checkpoint_in_order_later(
    store: Store, down_twice: Receiver
) -> None:
    """Without retries each failure leaves the checkpoint waiting; order is kept."""
    signer = checkpointer(store, WebhookSink(down_twice.url, timeout=5.0, retries=0))
    made = []
    for _ in range(3):
        append(store, 1)
        checkpoint = signer.checkpoint_once()
        assert checkpoint is not None
        made.append(checkpoint.document())
    assert down_twice.taken == made
    assert [item["seq"] for item in down_twice.taken] == [1, 2, 3]
    assert signer.waiting == 0
    signer.close()


def test_an_unreachable_webhook_never_raises(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens: the checkpoint is stored, waits, and a warning says so."""
    signer = checkpointer(store, WebhookSink("http://127.0.0.1:1/", timeout=1.0, retries=0))
    append(store, 1)
    with caplog.at_level(logging.WARNING):
        assert signer.checkpoint_once() is not None
    assert signer.waiting == 1
    assert "did not take the audit checkpoint of record 1" in caplog.text
    signer.close()


def test_a_chain_that_contradicts_its_checkpoint_is_logged_and_not_signed(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A head moved backwards is an error in the log, not a crash, and nothing is signed."""
    signer = checkpointer(store, None)
    append(store, 4)
    assert signer.checkpoint_once() is not None
    with store.write() as session:
        session.execute(text("DELETE FROM audit_log WHERE seq > 2"))
        session.execute(
            text("UPDATE audit_head SET seq = 2, hash = :hash"),
            {"hash": store.audit.records()[1].hash},
        )
    with caplog.at_level(logging.ERROR):
        assert signer.checkpoint_once() is None
    assert "no longer matches its checkpoint of record 4" in caplog.text
    assert [c.seq for c in store.audit_checkpoints.listed()] == [4]


def test_the_thread_signs_when_woken_and_once_more_at_a_clean_stop(
    store: Store, tmp_path: Path
) -> None:
    """`due` wakes the thread; `stop(final=True)` signs what was written since."""
    signer = checkpointer(store, FileSink(tmp_path / "c.jsonl"))
    signer.start()
    append(store, 2)
    assert signer.due(at=0.0)
    wait_for(lambda: store.audit_checkpoints.newest() is not None)
    append(store, 3)
    signer.stop(final=True, timeout=30.0)
    assert [c.seq for c in store.audit_checkpoints.listed()] == [2, 5]
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 2
    report = audit_checkpoint_check.verify_checkpoints(store, [KEY.verify_key])
    assert (report.ok, report.signed_through, report.records) == (True, 5, 5)


def test_a_stop_that_is_not_the_lease_holders_signs_nothing(store: Store) -> None:
    """A replica without the lease (or fenced) leaves the signing to the holder."""
    signer = checkpointer(store, None)
    signer.start()
    append(store, 2)
    signer.stop(final=False, timeout=30.0)
    assert store.audit_checkpoints.newest() is None
