"""Leases, heartbeats, fencing and checkpoints: how replicas share work through the store."""

from __future__ import annotations

import os
import time

import pytest

from selfheal.store import Lease, Store, audit


def test_a_lease_is_held_by_one_replica_until_it_expires_then_passes_with_a_new_token(
    store: Store,
) -> None:
    first = store.leases.acquire("loop", holder="a", duration=60.0, at=1.0)
    assert first is not None
    assert first.holder == "a"
    assert store.leases.acquire("loop", holder="b", duration=60.0, at=1.1) is None
    # The holder renews it, this time for a moment only, and then falls silent.
    renewed = store.leases.acquire("loop", holder="a", duration=0.05, at=1.2)
    assert renewed is not None
    assert renewed.token == first.token
    time.sleep(0.2)
    taken = store.leases.acquire("loop", holder="b", duration=60.0, at=2.0)
    assert taken is not None
    assert taken.holder == "b"
    assert taken.token == first.token + 1
    assert not store.leases.holds(renewed)
    assert store.leases.holds(taken)
    changes = [record.payload for record in store.audit.records(kind="lease.acquired")]
    assert changes == [
        {"holder": "a", "token": 1, "previous": None},
        {"holder": "b", "token": 2, "previous": "a"},
    ]
    assert audit.verify(store).ok


def test_a_released_lease_can_be_taken_at_once(store: Store) -> None:
    held = store.leases.acquire("loop", holder="a", duration=60.0, at=1.0)
    assert held is not None
    store.leases.release(held)
    assert store.leases.acquire("loop", holder="b", duration=60.0, at=2.0) is not None


def test_a_replica_silent_past_the_lease_is_fenced_once_and_learns_it_at_its_next_beat(
    store: Store,
) -> None:
    pid = os.getpid()
    assert store.replicas.beat("a", host="h", pid=pid, api_url=None)
    assert store.replicas.beat("b", host="h", pid=pid + 1, api_url="http://127.0.0.1:1")
    time.sleep(0.3)
    assert store.replicas.beat("b", host="h", pid=pid + 1, api_url="http://127.0.0.1:1")
    fenced = store.replicas.fence_dead(silent_for=0.2, by="b", at=5.0)
    assert [replica.id for replica in fenced] == ["a"]
    assert store.replicas.fence_dead(silent_for=0.2, by="b", at=5.1) == []
    assert not store.replicas.alive("a", within=60.0)
    assert store.replicas.alive("b", within=60.0)
    # The paused process wakes: its beat says it was fenced, and it must not act.
    assert not store.replicas.beat("a", host="h", pid=pid, api_url=None)
    # A new process under the same id starts afresh.
    assert store.replicas.beat("a", host="h", pid=pid + 7, api_url=None)
    (record,) = store.audit.records(kind="replica.fenced")
    assert record.subject == "a"
    assert record.payload["by"] == "b"


def test_a_checkpoint_is_saved_and_read_back_whole(store: Store) -> None:
    assert store.checkpoints.load("detectors") is None
    store.checkpoints.save("detectors", {"watches": {"cpu": [1.5, 2.0]}, "at": 3})
    store.checkpoints.save("detectors", {"watches": {"cpu": [2.5]}, "at": 4})
    assert store.checkpoints.load("detectors") == {"watches": {"cpu": [2.5]}, "at": 4}


def test_on_postgresql_a_heartbeat_and_a_renewal_do_not_wait_for_the_write_lock(
    store: Store,
) -> None:
    """A storm's intake holds the write lock in turn; liveness must get through meanwhile."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time; replicas share PostgreSQL only")
    import threading  # noqa: PLC0415

    assert store.replicas.beat("a", host="h", pid=1, api_url=None)
    lease = store.leases.acquire("loop", holder="a", duration=60.0, at=1.0)
    assert lease is not None
    holding, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with store.write():
            holding.set()
            release.wait(timeout=60)

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    try:
        assert holding.wait(timeout=30)
        outcome: list[object] = []
        beater = threading.Thread(
            target=lambda: outcome.extend(
                [
                    store.replicas.beat("a", host="h", pid=1, api_url=None),
                    store.leases.acquire("loop", holder="a", duration=60.0, at=2.0),
                ]
            )
        )
        beater.start()
        beater.join(timeout=30)
        assert not release.is_set()
        assert outcome, "the heartbeat waited for the write lock"
        assert outcome[0] is True
        renewed = outcome[1]
        assert isinstance(renewed, Lease)
        assert renewed.token == lease.token
    finally:
        release.set()
        writer.join()
