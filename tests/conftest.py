"""Fixtures shared by every test: the twin on a loopback port and kubectl pointed at it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from support import RunningTwin, kubectl_runner, start_twin

# Property tests check behaviour, not speed: on a loaded machine (CI, `make test`'s parallel
# workers) drawing an example or running one may take seconds, which is no failure.
settings.register_profile("selfheal", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("selfheal")


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[RunningTwin]:
    """The flash-sale twin on a free port, stopped after the test."""
    running = start_twin("flash-sale", tmp_path)
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture
def kubectl(twin: RunningTwin) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The real kubectl, configured for the `twin` fixture."""
    return kubectl_runner(twin.kubeconfig)
