"""`store.leases`, `store.replicas`, `store.checkpoints`: how replicas share the work.

Several controller replicas on one PostgreSQL database agree through these tables alone:

- a **lease** names the one replica that does a piece of single work (the loop: scraping,
  rules, anomaly watches) until it expires; the holder renews it, and any replica may take
  it once it has expired. Its `token` grows each time it changes hands (a fencing token);
- each replica's **heartbeat**; a replica silent past the lease is taken for dead, and the
  replica that recovers its workflows **fences** it in the same transaction, so that if it
  was only paused it finds out, when it wakes, that it must not act any more;
- **checkpoints** of state a successor needs (the anomaly detectors').

Times are the database server's clock (PostgreSQL's `clock_timestamp()`), so the replicas'
own clocks need not agree; on SQLite (one host) they are the host's. A change of hands
(a lease taken, a replica fenced) is a write transaction, which holds the store's write
lock and records itself in the audit chain, so two replicas never both take a lease. A
heartbeat and a holder's renewal lock only their own row (`Store.coordinate`): liveness
never waits for the team's work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from selfheal.store import audit, schema
from selfheal.store.rows import to_json

if TYPE_CHECKING:
    from selfheal.store.database import Store


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as its holder has it: who, which fencing token, until when (server time)."""

    name: str
    holder: str
    token: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """A replica as the others see it."""

    id: str
    host: str
    pid: int
    api_url: str | None
    started_at: float
    heartbeat_at: float
    fenced: bool


class Leases:
    """`store.leases`: see the module docstring."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def acquire(self, name: str, *, holder: str, duration: float, at: float) -> Lease | None:
        """Take or renew the lease for `duration` seconds; None while another holds it.

        `at` (the caller's clock) stamps the audit record of a change of hands; the lease's
        own arithmetic is on the server's clock.
        """
        renewed = self._renew(name, holder=holder, duration=duration)
        if renewed is not None:
            return renewed
        with self._store.write() as session:
            now = server_time(session)
            row = session.get(schema.LeaseRow, name)
            if row is None:
                row = schema.LeaseRow(name=name, holder=holder, token=1, expires_at=now)
                session.add(row)
                _audit_takeover(session, row, previous=None, at=at)
            elif row.holder != holder:
                if row.expires_at > now:
                    return None
                previous = row.holder
                row.holder, row.token = holder, row.token + 1
                _audit_takeover(session, row, previous=previous, at=at)
            row.expires_at = now + duration
            return Lease(row.name, row.holder, row.token, row.expires_at)

    def _renew(self, name: str, *, holder: str, duration: float) -> Lease | None:
        """Extend the lease if `holder` has it (no change of hands); None otherwise."""
        with self._store.coordinate() as session:
            row = session.get(schema.LeaseRow, name, with_for_update=True)
            if row is None or row.holder != holder:
                return None
            row.expires_at = server_time(session) + duration
            return Lease(row.name, row.holder, row.token, row.expires_at)

    def holds(self, lease: Lease) -> bool:
        """Whether `lease` is still in force: same holder, same token, not expired."""
        with self._store.read() as session:
            row = session.get(schema.LeaseRow, lease.name)
            return (
                row is not None
                and row.holder == lease.holder
                and row.token == lease.token
                and row.expires_at > server_time(session)
            )

    def release(self, lease: Lease) -> None:
        """Give the lease up now (a clean stop), if still held: a successor need not wait."""
        with self._store.write() as session:
            row = session.get(schema.LeaseRow, lease.name)
            if row is not None and row.holder == lease.holder and row.token == lease.token:
                row.expires_at = server_time(session)

    def current(self, name: str) -> Lease | None:
        with self._store.read() as session:
            row = session.get(schema.LeaseRow, name)
            return None if row is None else Lease(row.name, row.holder, row.token, row.expires_at)


class Replicas:
    """`store.replicas`: heartbeats, the dead, and fencing."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def beat(self, replica_id: str, *, host: str, pid: int, api_url: str | None) -> bool:
        """Say this replica lives; False if it was fenced (it must stop acting)."""
        with self._store.coordinate() as session:
            # Locked: a fencing under way is waited for and then seen, never overwritten.
            row = session.get(schema.ReplicaRow, replica_id, with_for_update=True)
            now = server_time(session)
            if row is None:
                session.add(
                    schema.ReplicaRow(
                        id=replica_id,
                        host=host,
                        pid=pid,
                        api_url=api_url,
                        started_at=now,
                        heartbeat_at=now,
                        fenced=False,
                    )
                )
                return True
            if row.fenced and row.pid == pid:
                return False
            # A new process under the id of a fenced one starts afresh.
            row.host, row.pid, row.api_url, row.heartbeat_at, row.fenced = (
                host,
                pid,
                api_url,
                now,
                False,
            )
            return True

    def alive(self, replica_id: str, *, within: float) -> bool:
        """Whether the replica is not fenced and beat within `within` seconds (server time)."""
        with self._store.read() as session:
            row = session.get(schema.ReplicaRow, replica_id)
            return (
                row is not None
                and not row.fenced
                and row.heartbeat_at > server_time(session) - within
            )

    def fence_dead(self, *, silent_for: float, by: str, at: float) -> list[ReplicaInfo]:
        """Fence every replica silent for `silent_for` seconds; the ones just fenced.

        The caller recovers their workflows next: fencing first means a paused replica that
        wakes up now finds it must not act before anyone has picked its work up.
        """
        with self._store.write() as session:
            now = server_time(session)
            # Locked, so a heartbeat in flight is waited for; the silence is judged again on
            # the row as that beat left it.
            rows = session.scalars(
                select(schema.ReplicaRow)
                .where(
                    schema.ReplicaRow.heartbeat_at < now - silent_for,
                    schema.ReplicaRow.fenced.is_(False),
                    schema.ReplicaRow.id != by,
                )
                .with_for_update()
            ).all()
            for row in rows:
                row.fenced = True
                audit.append_in(
                    session,
                    kind="replica.fenced",
                    subject=row.id,
                    payload={
                        "by": by,
                        "host": row.host,
                        "pid": row.pid,
                        "silent_s": round(now - row.heartbeat_at, 3),
                    },
                    at=at,
                )
            return [_info(row) for row in rows]

    def list(self) -> list[ReplicaInfo]:
        with self._store.read() as session:
            rows = session.scalars(select(schema.ReplicaRow).order_by(schema.ReplicaRow.id))
            return [_info(row) for row in rows]


class Checkpoints:
    """`store.checkpoints`: a component's last saved state, by name."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def save(self, name: str, document: dict[str, Any]) -> None:
        with self._store.write() as session:
            now = server_time(session)
            row = session.get(schema.CheckpointRow, name)
            if row is None:
                session.add(
                    schema.CheckpointRow(name=name, document=to_json(document), saved_at=now)
                )
            else:
                row.document, row.saved_at = to_json(document), now

    def load(self, name: str) -> dict[str, Any] | None:
        with self._store.read() as session:
            row = session.get(schema.CheckpointRow, name)
            return None if row is None else dict(row.document)


def server_time(session: Session) -> float:
    """Now, on the database server's clock (PostgreSQL) or this host's (SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.extract("epoch", func.clock_timestamp())))
        if value is not None:
            return float(value)
    return time.time()


def _audit_takeover(
    session: Session, row: schema.LeaseRow, *, previous: str | None, at: float
) -> None:
    audit.append_in(
        session,
        kind="lease.acquired",
        subject=row.name,
        payload={"holder": row.holder, "token": row.token, "previous": previous},
        at=at,
    )


def _info(row: schema.ReplicaRow) -> ReplicaInfo:
    return ReplicaInfo(
        row.id, row.host, row.pid, row.api_url, row.started_at, row.heartbeat_at, row.fenced
    )
