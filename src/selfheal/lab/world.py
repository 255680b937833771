"""A world to break things in: the twin, a fault proxy, and `selfheal run` as a process.

The twin runs in this process on a scaled clock, with its Kubernetes API behind a
`FaultProxy` (so chosen calls can fail) and its `/metrics` scraped directly. The controller
is a real `selfheal run` subprocess on its own state directory, configured like the
flash-sale example but fed by Alertmanager's webhook, so every alert it takes is one it
acknowledged to a sender, and it can be killed with SIGKILL at any moment and started again
on the same state. What happened is read back from the twin's request log and, read-only,
from the controller's state database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from selfheal.domain.time import ScaledClock
from selfheal.lab.alert_sender import AlertSender
from selfheal.lab.credentials import LabCredentials
from selfheal.lab.fault_proxy import FaultProxy, FaultRule
from selfheal.twin import scenario, server

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@dataclass
class WorldSettings:
    """How a world is set up: scenario, speed, and the controller's config knobs."""

    scenario: str = "steady"
    speed: float = 30.0
    example: str = "flash-sale"
    guardrails: bool = False
    max_pending: int = 50_000
    extra: dict[str, Any] = field(default_factory=dict)


class ControllerProcess:
    """`selfheal run --config FILE` in a subprocess, its output kept in a log file."""

    def __init__(
        self, config: Path, log: Path, *, api_url: str, extra_args: Sequence[str] = ()
    ) -> None:
        self.config = config
        self.log = log
        self.api_url = api_url
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []  # exit codes of stops we did not cause

    def start(self) -> None:
        with self.log.open("ab") as out:
            # An argument list, never a shell line: the config path is ours.
            self.process = subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "selfheal",
                    "run",
                    "--config",
                    str(self.config),
                    *self.extra_args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """Whether `/readyz` says ready now."""
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.api_url}/readyz", timeout=1.0).status_code == 200
        return False

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        """Wait until `/readyz` says ready; raise if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"the controller exited while starting; see {self.log}")
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"the controller was not ready within {timeout} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None and self.alive:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def pause(self) -> None:
        """SIGSTOP: the process stands still, as in a long GC pause or a frozen VM."""
        if self.process is not None and self.alive:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        if self.process is not None and self.alive:
            os.kill(self.process.pid, signal.SIGCONT)

    def terminate(self, *, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM and wait: the exit code and how long the stop took (real seconds)."""
        assert self.process is not None
        began = time.monotonic()
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - began

    def check_exit(self) -> None:
        """Note an exit we did not cause (a crash)."""
        if self.process is not None and not self.alive:
            code = self.process.returncode
            self.exits.append(code)
            self.process = None


class World:
    """The twin behind a fault proxy, and a controller config pointing at both."""

    def __init__(self, directory: Path, settings: WorldSettings | None = None) -> None:
        self.directory = directory
        self.settings = settings or WorldSettings()
        directory.mkdir(parents=True, exist_ok=True)
        chosen = scenario.load(self.settings.scenario)
        self.clock = ScaledClock(speed=self.settings.speed)
        self.twin = server.TwinServer(server.Twin(chosen, clock=self.clock))
        self.proxy: FaultProxy | None = None
        self.api_port = server.free_port()
        self.state_dir = directory / "state"
        self.controller: ControllerProcess | None = None
        self.credentials = LabCredentials()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def __enter__(self) -> Self:
        self.twin.start()
        self.proxy = FaultProxy(self.twin.url)
        self.proxy.start()
        config = self._write_config()
        self.controller = ControllerProcess(
            config, self.directory / "controller.log", api_url=self.api_url
        )
        return self

    def __exit__(self, *_: object) -> None:
        if self.controller is not None and self.controller.alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.controller.terminate(timeout=60)
            self.controller.kill()
        if self.proxy is not None:
            self.proxy.stop()
        self.twin.stop()

    def alert_sender(self, urls: Sequence[str] | None = None, **options: Any) -> AlertSender:
        """An Alertmanager stand-in posting to this world's API with the sender's token."""
        return AlertSender(urls or self.api_url, token=self.credentials.sender, **options)

    def faults(self, rules: Sequence[FaultRule]) -> None:
        assert self.proxy is not None
        self.proxy.set_rules(rules)

    def _write_config(self) -> Path:
        assert self.proxy is not None
        folder = EXAMPLES / self.settings.example
        kubeconfig = server.write_kubeconfig(
            self.directory / "kubeconfig", self.proxy.url, namespace="production"
        )
        tokens = self.credentials.write(self.directory / "tokens.yaml")
        config: dict[str, Any] = {
            "cluster": {"kubeconfig": str(kubeconfig)},
            "clock_speed": self.settings.speed,
            "telemetry": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "targets": [{"url": f"{self.twin.url}/metrics", "job": "kubernetes"}],
            },
            "alerts": {"source": "alertmanager", "max_pending": self.settings.max_pending},
            "api": {
                "listen": f"127.0.0.1:{self.api_port}",
                "auth": {"tokens_file": str(tokens)},
                # The lab plays a whole Alertmanager fleet through one token.
                "rate_limit": {"per_second": 100_000, "burst": 100_000},
            },
            "rules": [str(folder / "rules.yaml")],
            "policies": str(folder / "policies"),
            "runbooks": str(folder / "runbooks"),
            "state_dir": str(self.state_dir),
            "notifications": {"on-call": {}},
            **self.settings.extra,
        }
        if self.settings.guardrails:
            config["guardrails"] = str(folder / "guardrails.yaml")
        path = self.directory / "selfheal.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    # ---- what happened ----------------------------------------------------------------
    def cluster_writes(self) -> list[dict[str, Any]]:
        """Every request that tried to change the twin, in order (the twin's log)."""
        entries: list[dict[str, Any]] = list(self.twin.request_log.entries)
        return entries

    def replicas_at(self, deployment: str, wall: float, *, initial: int) -> int:
        """A deployment's desired replicas at a wall time, from the scale writes before it."""
        replicas = initial
        for entry in self.cluster_writes():
            if entry["wall"] > wall:
                break
            scaled = entry["path"].endswith(f"/deployments/{deployment}/scale")
            if scaled and entry["status"] == 200:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    replicas = int(json.loads(entry["body"])["spec"]["replicas"])
        return replicas

    @contextlib.contextmanager
    def state(self) -> Iterator[sqlite3.Connection]:
        """The controller's state database, read-only (safe while it runs)."""
        path = self.state_dir / "state.db"
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            yield connection
        finally:
            connection.close()

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the state; none while the state does not exist yet."""
        if not (self.state_dir / "state.db").exists():
            return []
        try:
            with self.state() as db:
                return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
            return []

    def wall_of(self, at: float) -> float:
        """The wall time of a scenario time on the controller's clock (its clock.json)."""
        anchor = json.loads((self.state_dir / "clock.json").read_text(encoding="utf-8"))
        return float(anchor["wall_origin"]) + (at - float(anchor["epoch"])) / float(anchor["speed"])
