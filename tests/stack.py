"""The real monitoring stack for tests: Prometheus and Alertmanager processes on loopback.

Each process gets a free 127.0.0.1 port, its own temporary directory (config, storage, log)
and flags that keep it off the network: `--web.listen-address` on loopback, an explicit
`--web.external-url` (otherwise both look up the host name to build their own URL) and, for
Alertmanager, an empty `--cluster.listen-address` (no gossip cluster). `start_*` returns
only once the server answers `/-/ready`; a process that dies or never gets ready fails the
test with its log.

    with stack.start_prometheus(scrape_targets=[twin.url], tmp_path=tmp_path) as prometheus:
        httpx.get(f"{prometheus.url}/api/v1/query", params={"query": "up"})

The binaries are optional on a laptop and required in CI: `require_binaries` skips a test
when one is missing, unless the environment variable CI is "true", where it fails instead,
so a CI image without them cannot silently pass.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"

# Start-up takes well under a second here; a loaded CI runner may need many times that.
_READY_TIMEOUT = 30.0
# How long a process gets to exit after SIGTERM before it is killed.
_STOP_TIMEOUT = 10.0


def require_binaries(*names: str) -> None:
    """Skip the calling test if a binary is not on PATH; in CI (CI=true), fail instead."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    reason = (
        f"{', '.join(missing)} not found on PATH: install Debian's prometheus and "
        "prometheus-alertmanager packages to run the real-stack tests"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: these tests must run in CI)")
    pytest.skip(reason)


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RunningProcess:
    """A server process started by this module: its URL, its log, and how to stop it."""

    def __init__(
        self, *, name: str, args: Sequence[str], url: str, log_path: Path, cwd: Path
    ) -> None:
        self.name = name
        self.url = url
        self.log_path = log_path
        self._log_file: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(  # an argument list, never a shell line
            list(args),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )

    @property
    def log(self) -> str:
        """Everything the process has written so far (stdout and stderr)."""
        self._log_file.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, *, timeout: float = _READY_TIMEOUT) -> None:
        """Poll `/-/ready` until it answers 200; fail with the log if it never does."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    self.stop()
                    pytest.fail(
                        f"{self.name} exited with code {self.process.returncode} "
                        f"before it was ready:\n{self.log}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"{self.name} not ready within {timeout} s:\n{self.log}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the process (kill it if it lingers) and close its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _host_port(url: str) -> str:
    """`host:port` of a target given as a URL or already as `host:port`."""
    return urlsplit(url).netloc if "://" in url else url


def _write_yaml(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def start_prometheus(
    *,
    scrape_targets: list[str],
    tmp_path: Path,
    rule_files: Sequence[Path] = (),
    alertmanager_url: str | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    remote_write: dict[str, Any] | None = None,
) -> RunningProcess:
    """Start Prometheus scraping `scrape_targets` (URLs; `/metrics` of each) and wait for it.

    `remote_write` is one entry of Prometheus' `remote_write` list (url, authorization, ...).

    Every target is one job, `selfheal-test`. Rule files are copied into the process'
    directory so a test may pass files it deletes afterwards.
    """
    require_binaries(PROMETHEUS)
    home = Path(tempfile.mkdtemp(prefix="prometheus-", dir=tmp_path))
    copied: list[str] = []
    for rule_file in rule_files:
        target = home / f"rules-{len(copied)}-{rule_file.name}"
        shutil.copyfile(rule_file, target)
        copied.append(str(target))
    config: dict[str, object] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "scrape_configs": [
            {
                "job_name": "selfheal-test",
                "static_configs": [{"targets": [_host_port(target) for target in scrape_targets]}],
            }
        ],
    }
    if copied:
        config["rule_files"] = copied
    if remote_write is not None:
        config["remote_write"] = [remote_write]
    if alertmanager_url is not None:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [_host_port(alertmanager_url)]}]}]
        }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = RunningProcess(
        name=PROMETHEUS,
        args=[
            shutil.which(PROMETHEUS) or PROMETHEUS,
            f"--config.file={_write_yaml(home / 'prometheus.yml', config)}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}/",
            "--log.level=info",
        ],
        url=url,
        log_path=home / "prometheus.log",
        cwd=home,
    )
    process.wait_ready()
    return process


def start_alertmanager(
    *,
    webhook_url: str,
    tmp_path: Path,
    group_wait: str = "0s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    http_config: dict[str, Any] | None = None,
) -> RunningProcess:
    """Start Alertmanager sending every alert to `webhook_url` and wait for it to be ready.

    `http_config` is the webhook's, as Alertmanager's config writes it (a credential).
    """
    require_binaries(ALERTMANAGER)
    home = Path(tempfile.mkdtemp(prefix="alertmanager-", dir=tmp_path))
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if http_config is not None:
        webhook["http_config"] = http_config
    config = {
        "route": {
            "receiver": "selfheal",
            "group_by": ["alertname"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "selfheal", "webhook_configs": [webhook]}],
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = RunningProcess(
        name=ALERTMANAGER,
        args=[
            shutil.which(ALERTMANAGER) or ALERTMANAGER,
            f"--config.file={_write_yaml(home / 'alertmanager.yml', config)}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}/",
            "--cluster.listen-address=",
            "--log.level=info",
        ],
        url=url,
        log_path=home / "alertmanager.log",
        cwd=home,
    )
    process.wait_ready()
    return process
