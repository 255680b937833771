"""A world for replicas: the twin, NATS, PostgreSQL and several `selfheal run` processes.

Like `World` (the twin behind a fault proxy, the controller as a real process), but the
controller is a team of replicas sharing one PostgreSQL database and one JetStream stream,
each its own process with its own API port, all started from one config file. Alerts go to
any replica, as through a load balancer; what happened is read back, read-only, from the
shared database and from the twin's request log, so `accounting` counts it as it counts a
single node.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import psycopg
from psycopg.types.string import TextLoader

from selfheal.dispatch.nats_bus import remove_stream
from selfheal.domain.errors import TemporaryError
from selfheal.lab.servers import ExistingNats, ExistingPostgres, NatsServer, PostgresServer
from selfheal.lab.world import ControllerProcess, World, WorldSettings
from selfheal.twin import server


@dataclass
class HaSettings:
    """How many replicas, how fast, and their heartbeat and lease (scenario seconds)."""

    replicas: int = 3
    speed: float = 30.0
    # At 30x: a beat every 0.5 s and a lease of 3 s real, so a busy machine's hiccup is
    # not taken for a death, and a takeover still comes within seconds.
    heartbeat: float = 15.0
    lease: float = 90.0
    scenario: str = "steady"
    max_pending: int = 50_000
    # Trials remediate one after another all day long: by default money is no limit.
    budget_daily: float = 1_000_000.0


class Replica(ControllerProcess):
    """One replica: `selfheal run` with its own id and API port."""

    def __init__(self, config: Path, log: Path, *, replica_id: str, port: int) -> None:
        super().__init__(
            config,
            log,
            api_url=f"http://127.0.0.1:{port}",
            extra_args=("--replica-id", replica_id, "--api-listen", f"127.0.0.1:{port}"),
        )
        self.replica_id = replica_id
        self.port = port


class HaWorld(World):
    """The twin, the replicas, and the servers they share (given, so trials can reuse them)."""

    def __init__(
        self,
        directory: Path,
        settings: HaSettings,
        *,
        postgres: ExistingPostgres,
        nats: NatsServer | ExistingNats,
    ) -> None:
        self.ha = settings
        self.postgres = postgres
        self.nats = nats
        name = f"selfheal_{uuid.uuid4().hex[:12]}"
        self.database = name
        self.database_url = postgres.create_database(name)
        # A stream and consumer of its own, so worlds on one NATS server never mix.
        stream = name.upper()
        self.stream = stream
        super().__init__(
            directory,
            WorldSettings(
                scenario=settings.scenario,
                speed=settings.speed,
                max_pending=settings.max_pending,
                extra={
                    "state": {"url": self.database_url},
                    "bus": {
                        "kind": "nats",
                        "url": nats.url,
                        "stream": stream,
                        "subject": f"{name}.alerts",
                        "consumer": f"{name}-intake",
                    },
                    "replica": {"heartbeat": settings.heartbeat, "lease": settings.lease},
                    "budget": {"daily": settings.budget_daily},
                },
            ),
        )
        self.replicas: list[Replica] = []

    @property
    def lease_wall_s(self) -> float:
        return self.ha.lease / self.ha.speed

    def __enter__(self) -> Self:
        super().__enter__()
        assert self.controller is not None
        config = self.controller.config
        self.replicas = [
            Replica(
                config,
                self.directory / f"replica-{number}.log",
                replica_id=f"replica-{number}",
                port=server.free_port(),
            )
            for number in range(1, self.ha.replicas + 1)
        ]
        self.controller = self.replicas[0]
        return self

    def __exit__(self, *_: object) -> None:
        for replica in self.replicas:
            replica.resume()  # a paused one must be able to hear SIGTERM
        for replica in self.replicas:
            if replica.alive and replica.process is not None:
                replica.process.terminate()
        for replica in self.replicas:
            if replica.process is not None:
                try:
                    replica.process.wait(timeout=60)
                except Exception:  # noqa: BLE001 - whatever it is, it must go
                    replica.kill()
        self.controller = None
        super().__exit__()
        if not isinstance(self.nats, NatsServer):  # a shared server: leave nothing behind
            with contextlib.suppress(TemporaryError):
                remove_stream(self.nats.url, self.stream)
        if not isinstance(self.postgres, PostgresServer):
            with contextlib.suppress(psycopg.Error):
                self.postgres.drop_database(self.database)

    def start_replicas(self) -> None:
        """The first replica creates the tables and the stream; the others join it."""
        first, *others = self.replicas
        first.start()
        first.wait_ready()
        for replica in others:
            replica.start()
        for replica in others:
            replica.wait_ready()

    def api_urls(self) -> list[str]:
        return [replica.api_url for replica in self.replicas]

    def any_api(self) -> str:
        return random.choice(self.api_urls())

    def replica(self, replica_id: str) -> Replica:
        return next(r for r in self.replicas if r.replica_id == replica_id)

    def check_exits(self) -> list[tuple[str, int]]:
        """Replicas that exited on their own since the last call: (id, exit code)."""
        exited = []
        for replica in self.replicas:
            if replica.process is not None and not replica.alive:
                exited.append((replica.replica_id, replica.process.returncode))
                replica.check_exit()
        return exited

    # ---- what happened ----------------------------------------------------------------
    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the shared database (none while it is away).

        Written for SQLite (`?` placeholders, JSON as text) as `World.query` is, so the same
        accounting reads either.
        """
        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={self.postgres.port} user=postgres dbname={self.database}",
                connect_timeout=5,
            ) as connection:
                for json_type in ("json", "jsonb"):
                    connection.adapters.register_loader(json_type, TextLoader)
                connection.read_only = True
                # `%` is psycopg's placeholder mark: a LIKE pattern's must be doubled.
                query = sql.replace("%", "%%").replace("?", "%s")
                return list(connection.execute(query, args).fetchall())
        except psycopg.Error:  # the server restarting, a table not there yet
            return []

    def leader(self) -> str | None:
        """The replica holding the loop lease now, by the database's clock."""
        rows = self.query(
            "SELECT holder FROM leases WHERE name = 'loop' AND expires_at > "
            "extract(epoch from clock_timestamp())"
        )
        return str(rows[0][0]) if rows else None

    def workflow_owner(self, incident_id: str) -> str | None:
        """The replica (DBOS executor) running an incident's remediation workflow now."""
        rows = self.query(
            "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid LIKE ? "
            "AND status IN ('PENDING', 'ENQUEUED')",
            f"%{incident_id}%",
        )
        return str(rows[0][0]) if rows else None

    def wait_until(self, sql: str, *args: Any, timeout: float) -> bool:
        """Poll until the query returns a row (True) or `timeout` real seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(sql, *args):
                return True
            time.sleep(0.01)
        return False


def replicas_of(world: HaWorld, ids: Sequence[str]) -> list[Replica]:
    return [world.replica(replica_id) for replica_id in ids]


@contextlib.contextmanager
def shared_servers(directory: Path) -> Any:
    """A PostgreSQL and a NATS server of our own, for the worlds of a run of trials."""
    with PostgresServer() as postgres, NatsServer(directory / "nats") as nats:
        yield postgres, nats
