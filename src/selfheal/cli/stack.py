"""Real Prometheus and Alertmanager processes on loopback ports, for `demo --stack prometheus`.

Debian's `prometheus` and `prometheus-alertmanager` are started with their own temporary
directories, listening on 127.0.0.1 only (Alertmanager without clustering), and stopped with
the demo. Prometheus scrapes the twin, evaluates the rule files and sends alerts to
Alertmanager; Alertmanager routes them to selfheal's webhook.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx
import yaml

from selfheal.domain.errors import ConfigError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"`{name}` is not installed; on Debian: apt-get install prometheus "
            "prometheus-alertmanager"
        )
    return found


class Process:
    """A started server: its URL, its log, and a clean stop."""

    def __init__(
        self, *, name: str, args: Sequence[str], url: str, ready_path: str, workdir: Path
    ) -> None:
        self.name = name
        self.url = url
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        # An argument list of a fixed binary and our own flags: no shell, nothing from input.
        self._process = subprocess.Popen(  # noqa: S603
            list(args), stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir
        )
        self._wait_ready(ready_path)

    def _wait_ready(self, path: str, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigError(f"{self.name} exited at start:\n{self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}{path}", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise ConfigError(f"{self.name} was not ready within {timeout:g} s:\n{self.log}")

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_alertmanager(
    *,
    webhook_url: str,
    workdir: Path,
    group_wait: str = "0s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    token_file: Path | None = None,
    basic_auth: tuple[str, Path] | None = None,
) -> Process:
    """Alertmanager sending every alert to `webhook_url`, with a credential when given.

    `token_file` is sent as `Authorization: Bearer`; `basic_auth` (user, password file)
    as Basic. Either way Alertmanager reads the secret from the file, so it is in no
    config file and no command line.
    """
    port = free_port()
    webhook: dict[str, object] = {"url": webhook_url, "send_resolved": True}
    if token_file is not None:
        webhook["http_config"] = {
            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
        }
    elif basic_auth is not None:
        user, password_file = basic_auth
        webhook["http_config"] = {
            "basic_auth": {"username": user, "password_file": str(password_file)}
        }
    config = {
        "route": {
            "receiver": "selfheal",
            "group_by": ["alertname", "namespace", "service"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "selfheal", "webhook_configs": [webhook]}],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (workdir / "alertmanager-data").mkdir(exist_ok=True)
    return Process(
        name="alertmanager",
        args=[
            binary("prometheus-alertmanager"),
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        url=f"http://127.0.0.1:{port}",
        ready_path="/-/ready",
        workdir=workdir,
    )


def start_prometheus(
    *,
    targets: Sequence[str],
    rule_files: Sequence[Path],
    workdir: Path,
    alertmanager_url: str | None,
    interval: str = "1s",
) -> Process:
    port = free_port()
    config: dict[str, object] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": "kubernetes",
                "metrics_path": urlsplit(targets[0]).path or "/metrics" if targets else "/metrics",
                "static_configs": [{"targets": [urlsplit(target).netloc for target in targets]}],
            }
        ],
    }
    if alertmanager_url:
        config["alerting"] = {
            "alertmanagers": [
                {"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}
            ]
        }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (workdir / "prometheus-data").mkdir(exist_ok=True)
    return Process(
        name="prometheus",
        args=[
            binary("prometheus"),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        url=f"http://127.0.0.1:{port}",
        ready_path="/-/ready",
        workdir=workdir,
    )


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="selfheal-stack-"))
