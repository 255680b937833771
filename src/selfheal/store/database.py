"""Opening the store and running its transactions: the one module that knows the dialects.

Every write that appends to the audit chain must be serialized, because each record carries
the hash of the one before it. So every write transaction takes the write lock up front:

- SQLite: `BEGIN IMMEDIATE` (the driver's own transaction handling is switched off so the
  store, not pysqlite, says when and how a transaction begins). WAL mode lets readers carry
  on while one writer works; `busy_timeout` makes a second writer wait instead of failing.
- PostgreSQL: `SELECT ... FOR UPDATE` on the single `audit_head` row, as the transaction's
  first statement; under READ COMMITTED every later statement then sees all that earlier
  writers committed. Reads run at REPEATABLE READ so a multi-statement read (such as
  `audit.verify`) sees one snapshot.

Taking one lock for every write is deliberate: the controller writes a few records per
incident step, so correctness (no forked chain, one open incident per fingerprint) is worth
far more than parallel writes. An in-memory SQLite database is one connection shared by all
threads, so there a process lock serializes reads as well.

SQLAlchemy's exceptions are translated here into the domain's error tree.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, create_engine, event, exc, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from selfheal.domain.errors import ConfigError, PermanentError, SelfhealError, TemporaryError
from selfheal.store import (
    action_records,
    approvals,
    audit,
    audit_checkpoints,
    budget_ledger,
    coordination,
    decisions,
    inbox,
    incidents,
    migrations,
    notifications,
    schema,
    workflow_runs,
)

# How long a SQLite writer waits for the write lock before giving up (milliseconds). Appends
# take well under a millisecond, so 30 s only runs out when something holds the lock wrongly.
BUSY_TIMEOUT_MS = 30_000

# The advisory lock key under which a PostgreSQL store's tables are set up ("selfheal").
_SETUP_LOCK_KEY = 0x73656C666865616C

# The execution option that marks a connection as the writer's.
_WRITE_OPTION = "selfheal_write"


class Store:
    """An open store: its transactions, its repositories and its audit chain.

    Thread-safe: each transaction uses its own session and, except for in-memory SQLite, its
    own connection. Close it (or use it as a context manager) to release its connections.
    """

    def __init__(self, engine: Engine, *, shared_connection: bool) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self._reader = (
            engine.execution_options(isolation_level="REPEATABLE READ")
            if self.dialect == "postgresql"
            else engine
        )
        self._gate: threading.RLock | None = threading.RLock() if shared_connection else None
        # SQLite lets one writer in at a time and makes the others poll with growing sleeps
        # (its busy handler), so a short write can wait far longer than the one before it.
        # Writers of this process queue on a lock instead and go in as soon as it is free;
        # other processes (the CLI's approve, say) still wait on SQLite's busy timeout.
        self._write_turn: threading.Lock | None = (
            threading.Lock() if self.dialect == "sqlite" and not shared_connection else None
        )
        self.audit = audit.AuditLog(self)
        self.audit_checkpoints = audit_checkpoints.AuditCheckpoints(self)
        self.incidents = incidents.Incidents(self)
        self.decisions = decisions.Decisions(self)
        self.workflows = workflow_runs.WorkflowRuns(self)
        self.actions = action_records.Actions(self)
        self.notifications = notifications.Notifications(self)
        self.budget = budget_ledger.BudgetLedger(self)
        self.approvals = approvals.Approvals(self)
        self.inbox = inbox.Inbox(self)
        self.leases = coordination.Leases(self)
        self.replicas = coordination.Replicas(self)
        self.checkpoints = coordination.Checkpoints(self)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction holding the store's write lock from its first statement.

        It commits when the block ends and rolls back if the block raises.
        """
        with (
            self._serialized(),
            self._write_turn or nullcontext(),
            _translated(),
            Session(self._writer) as session,
            session.begin(),
        ):
            if self.dialect == "postgresql":
                session.execute(
                    select(schema.AuditHeadRow.id)
                    .where(schema.AuditHeadRow.id == schema.HEAD_ID)
                    .with_for_update()
                )
            yield session

    @contextmanager
    def coordinate(self) -> Iterator[Session]:
        """A write transaction for the replicas' own rows (heartbeats, lease renewals).

        It writes no audit record, so on PostgreSQL it does not take the store's write lock:
        a replica's heartbeat must not queue behind the others' work (a storm's intake
        holds that lock in turn for seconds), or a busy team would take its live members
        for dead. Rows it changes must be locked explicitly (`with_for_update`). On SQLite,
        which has one writer at a time anyway, it is `write()`.
        """
        if self.dialect != "postgresql":
            with self.write() as session:
                yield session
            return
        with _translated(), Session(self._writer) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction that sees one consistent snapshot."""
        # Closing the session rolls its transaction back: a read never commits anything.
        with self._serialized(), _translated(), Session(self._reader) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _serialized(self) -> AbstractContextManager[object]:
        return self._gate if self._gate is not None else nullcontext()


def open_store(url: str, *, idle_in_transaction_s: float | None = None) -> Store:
    """Open (creating if needed) the store at a SQLAlchemy URL.

    `sqlite:///path/state.db` for a file, `sqlite://` for a private in-memory database (for
    tests), `postgresql+psycopg://user@host:port/db` for PostgreSQL.

    `idle_in_transaction_s` (PostgreSQL): the server ends a session that sits inside a
    transaction this long without a statement. Every write holds the store's one write
    lock, so a replica frozen mid-write (a pause, a VM stall) would otherwise stop every
    other replica's writes, heartbeats included, until it thawed; this way its transaction
    is rolled back and the others carry on (and fence it).
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise ConfigError(f"store url {url!r} is not a database URL: {error}") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        memory = parsed.database in {None, "", ":memory:"}
        store = Store(_sqlite_engine(url, memory=memory), shared_connection=memory)
    elif backend == "postgresql":
        connect_args: dict[str, Any] = {"connect_timeout": 10}
        if idle_in_transaction_s is not None:
            timeout_ms = max(1, round(idle_in_transaction_s * 1000))
            connect_args["options"] = f"-c idle_in_transaction_session_timeout={timeout_ms}"
        store = Store(
            create_engine(url, pool_pre_ping=True, connect_args=connect_args),
            shared_connection=False,
        )
    else:
        raise ConfigError(
            f"store url {url!r}: unsupported database {backend!r}; use sqlite or postgresql"
        )
    try:
        with _translated(), _setup_lock(store.engine):
            schema.Base.metadata.create_all(store.engine)
            migrations.upgrade(store.engine)
            audit.ensure_head(store)
    except BaseException:
        store.close()
        raise
    return store


@contextmanager
def _setup_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's setup lock while tables are created or upgraded.

    Replicas started together on a new PostgreSQL database would otherwise race to create
    the same tables. A session-level advisory lock, on a connection of its own; on SQLite
    the first write transaction serializes setup already.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _SETUP_LOCK_KEY})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SETUP_LOCK_KEY})
            connection.commit()


def _sqlite_engine(url: str, *, memory: bool) -> Engine:
    # One in-memory database lives as long as its connection, so all threads share one.
    pooling: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
    engine = create_engine(url, connect_args={"check_same_thread": False}, **pooling)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: the "begin" hook below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _ended_by_the_server(error: exc.DBAPIError) -> bool:
    """Whether PostgreSQL ended the session (idle-in-transaction timeout, shutdown): retry.

    SQLSTATE 25P03 is the idle-in-transaction timeout, class 57P an operator's or the
    server's own intervention (shutdown, crash, idle-session timeout).
    """
    state = getattr(error.orig, "sqlstate", None)
    return isinstance(state, str) and (state == "25P03" or state.startswith("57P"))


@contextmanager
def _translated() -> Iterator[None]:
    """Map SQLAlchemy's errors to the domain's: what the caller does next."""
    try:
        yield
    except SelfhealError:
        raise
    except exc.IntegrityError as error:
        raise PermanentError(f"store constraint violated: {error.orig}") from error
    except exc.OperationalError as error:
        # Locked, busy, serialization failure, connection lost: all may pass.
        raise TemporaryError(f"store unavailable: {error.orig}", delay=1.0) from error
    except exc.DBAPIError as error:
        if error.connection_invalidated or _ended_by_the_server(error):
            raise TemporaryError(f"store unavailable: {error.orig}", delay=1.0) from error
        raise PermanentError(f"store error: {error}") from error
    except exc.SQLAlchemyError as error:
        raise PermanentError(f"store error: {error}") from error
