"""A state's clock for other processes, and one controller per state directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfheal.domain.errors import ConfigError
from selfheal.domain.time import SteppedClock
from selfheal.runtime import state_clock
from selfheal.runtime.state_lock import StateLock, holder_of
from selfheal.store import open_store

from support import selfheal


def test_the_state_clock_of_an_embedded_run_is_where_its_loop_stepped_it(tmp_path: Path) -> None:
    """A stepped clock's file is read back as its position, extrapolated a little at most."""
    clock = SteppedClock(speed=30.0, epoch=1_000.0)
    clock.step_to(600.0)  # ten scenario minutes in, a fraction of a real second later
    state_clock.SteppedClockWriter(tmp_path, clock).note(force=True)
    now = state_clock.state_now(tmp_path)
    assert 1_600.0 <= now <= 1_600.0 + 0.5 * 30.0 + 1.0
    # A stalled loop is not extrapolated without bound.
    written = json.loads((tmp_path / "clock.json").read_text(encoding="utf-8"))
    written["wall"] -= 3600.0
    (tmp_path / "clock.json").write_text(json.dumps(written), encoding="utf-8")
    assert state_clock.state_now(tmp_path) <= 1_600.0 + 0.5 * 30.0


def test_a_state_without_a_clock_file_is_on_the_wall_clock(tmp_path: Path) -> None:
    assert abs(state_clock.state_now(tmp_path) - time.time()) < 5.0


def test_an_anchored_clock_continues_after_a_restart(tmp_path: Path) -> None:
    """`selfheal run` against a cluster: a restart on the same state keeps the time line."""
    first = state_clock.anchored_clock(tmp_path, speed=10.0)
    time.sleep(0.05)
    second = state_clock.anchored_clock(tmp_path, speed=10.0)
    assert abs(second.now() - first.now()) < 0.5
    assert abs(state_clock.state_now(tmp_path) - first.now()) < 0.5


def test_a_garbled_clock_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "clock.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"clock\.json is not a clock file"):
        state_clock.state_now(tmp_path)


def test_an_approval_is_stamped_on_the_controllers_clock_not_the_wall_clock(
    tmp_path: Path,
) -> None:
    """A controller 30x ahead asked two scenario minutes ago; the verdict lands after that.

    With the wall clock the verdict was recorded before the request it answers.
    """
    clock = SteppedClock(speed=30.0, epoch=time.time())
    clock.step_to(3600.0)  # an hour of scenario time ahead of the wall clock
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.approvals.request(
            workflow_id="remediate.inc-1.scale-up",
            incident_id="inc-1",
            runbook="scale-up",
            approvers=1,
            timeout=900.0,
            at=clock.now() - 120.0,
        )
    state_clock.SteppedClockWriter(tmp_path, clock).note(force=True)
    result = selfheal("approve", "inc-1", "--state-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        [request] = store.audit.records(kind="approval.requested")
        [verdict] = store.audit.records(kind="approval.given")
    assert verdict.at > request.at
    assert clock.now() - 1.0 <= verdict.at <= clock.now() + 30.0


def test_a_second_controller_on_one_state_is_refused_naming_the_first(tmp_path: Path) -> None:
    """The lock file says which process holds the state; the second one is told."""
    config = tmp_path / "selfheal.yaml"
    config.write_text("", encoding="utf-8")
    first = StateLock(tmp_path, config=config)
    try:
        with pytest.raises(ConfigError, match=rf"in use by another controller \(pid {os.getpid()}"):
            StateLock(tmp_path, config=None)
        assert holder_of(tmp_path)["config"] == str(config.resolve())
    finally:
        first.release()
    StateLock(tmp_path, config=None).release()  # free again once released


def test_a_killed_controller_leaves_no_stale_lock(tmp_path: Path) -> None:
    """A `kill -9` of the holder frees the state at once: the OS drops the process's flock."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; "
                "from selfheal.runtime.state_lock import StateLock; "
                "StateLock(Path(sys.argv[1]), config=None); print('locked', flush=True); "
                "time.sleep(60)"
            ),
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
            StateLock(tmp_path, config=None)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        StateLock(tmp_path, config=None).release()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
