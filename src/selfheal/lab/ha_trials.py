"""The HA harness's trials: replicas killed and paused, their servers restarted under them.

One `HaWorld` (the twin, three replicas on a PostgreSQL and a NATS server of our own) runs
many trials in a row. Each trial resets order-service to its first replica count, sends a
throttling alert (labelled with the trial's number, so it opens an incident of its own) to
any replica, waits for a chosen moment of the remediation, does its damage, lets the world
settle, and counts with `accounting.account` what went wrong: alerts lost, Kubernetes
writes made twice, incidents left unfinished. A replica killed or fenced is started again
before the next trial, as its supervisor (systemd, Kubernetes) would.

- `kill`: SIGKILL of the replica running the remediation (a random one when none runs it
  yet) at a random stage boundary; takeover is the time until the others have fenced it
  and, if it held the loop lease, until another holds it;
- `pause`: SIGSTOP of that replica past its lease, SIGCONT once the others took over: it
  must notice it was fenced, do nothing, and exit (code 3);
- `nats-restart`: the NATS server stopped and started again in the middle of a storm;
- `postgres-restart`: the PostgreSQL server crashed (immediate stop) and started again in
  the middle of a remediation.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from selfheal.lab import accounting
from selfheal.lab.alert_sender import Sent, alert
from selfheal.lab.ha_world import HaWorld
from selfheal.lab.servers import NatsServer, PostgresServer
from selfheal.lab.trials import BOUNDARIES, REAL_LABELS
from selfheal.runtime.coordinator import FENCED_EXIT_CODE

INITIAL_REPLICAS = 2
# Where in a remediation a kill or a pause lands (BOUNDARIES' names), or "random": a delay.
KILL_MOMENTS = (
    "deciding",
    "decision.recorded",
    "workflow.started",
    "budget.charged",
    "scale.begun",
    "scale.completed",
    "wait.completed",
    "verify.completed",
    "random",
)
PAUSE_MOMENTS = ("workflow.started", "scale.begun", "wait.completed")
SETTLE_S = 240.0

_log = logging.getLogger(__name__)


@dataclass
class HaTrialResult:
    """One trial: what was done, the counts, and how long the takeover took."""

    kind: str
    detail: str
    accounts: accounting.Accounts
    alerts_sent: int
    # Incidents not resting once the world settled: stuck ones, and ones whose run still
    # runs (a run that never ends is as unfinished as a stuck incident).
    unfinished: int = 0
    takeover_s: float | None = None
    # Replicas that exited on their own: with an error (a crash), or with code 3 because the
    # others had fenced them after a silence (a live replica taken for dead: it stopped as
    # designed and was started again, but the team lost its work for a moment).
    crashes: int = 0
    fenced_restarts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        a = self.accounts
        return (
            a.alerts_lost == 0
            and a.duplicate_writes == 0
            and self.unfinished == 0
            and self.crashes == 0
        )


class Trials:
    """Runs trials one after another in one world (see the module docstring)."""

    def __init__(self, world: HaWorld, *, seed: int = 0) -> None:
        self.world = world
        self.rng = random.Random(seed)
        self._number = 0

    # ---- the trials -------------------------------------------------------------------
    def kill(self, moment: str | None = None) -> HaTrialResult:
        world = self.world
        moment = moment or self.rng.choice(KILL_MOMENTS)
        begun = self._begin()
        reached = self._reach(begun, moment)
        victim = self._worker_of(begun) or self.rng.choice(world.replicas).replica_id
        was_leader = world.leader() == victim
        killed_at = time.monotonic()
        world.replica(victim).kill()
        takeover = self._takeover(victim, was_leader=was_leader, since=killed_at)
        world.replica(victim).start()
        return self._finish(
            begun,
            "kill",
            f"SIGKILL {victim}{' (leader)' if was_leader else ''} at {moment}",
            takeover=takeover,
            extra={"moment_reached": reached, "was_leader": was_leader},
        )

    def pause(self, moment: str | None = None) -> HaTrialResult:
        world = self.world
        moment = moment or self.rng.choice(PAUSE_MOMENTS)
        begun = self._begin()
        reached = self._reach(begun, moment)
        victim = self._worker_of(begun) or world.leader() or world.replicas[0].replica_id
        replica = world.replica(victim)
        was_leader = world.leader() == victim
        paused_at = time.monotonic()
        replica.pause()
        takeover = self._takeover(victim, was_leader=was_leader, since=paused_at)
        # Let the others carry the remediation on before the paused one wakes up.
        world.wait_until(
            "SELECT 1 FROM audit_log WHERE seq > ? AND kind = 'workflow.finished'",
            begun.seq,
            timeout=world.lease_wall_s * 4,
        )
        paused_s = time.monotonic() - paused_at
        replica.resume()
        exit_code = _wait_exit(replica.process, timeout=30.0)
        if exit_code is not None:
            replica.process = None  # its exit was ours to expect, not a crash
        else:
            replica.kill()
        replica.start()
        return self._finish(
            begun,
            "pause",
            f"SIGSTOP {victim}{' (leader)' if was_leader else ''} at {moment} for {paused_s:.1f} s",
            takeover=takeover,
            extra={
                "moment_reached": reached,
                "was_leader": was_leader,
                "woke_and_stopped": exit_code == FENCED_EXIT_CODE,
                "exit_code": exit_code,
                "paused_s": round(paused_s, 2),
            },
        )

    def nats_restart(self, *, alerts: int = 2000, batch: int = 50) -> HaTrialResult:
        world = self.world
        begun = self._begin(send=False)
        sent = Sent()
        now = time.time()
        items = [
            alert(
                "StormAlert",
                {"instance": f"host-{i}", "trial": str(begun.number)},
                starts_at=now,
            )
            for i in range(alerts)
        ]
        parts = [items[start : start + batch] for start in range(0, len(items), batch)]
        restarted = threading.Event()

        def send(part: list[dict[str, Any]]) -> None:
            sender = world.alert_sender(world.api_urls(), attempts=60, sent=sent)
            try:
                sender.send(part)
            finally:
                sender.close()

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(send, part) for part in parts]
            # In the middle of the storm: once a third of it has been acknowledged.
            _wait_for(lambda: len(sent.acked) >= alerts // 3, timeout=120)
            assert isinstance(world.nats, NatsServer), "restarts need the harness's own NATS"
            world.nats.restart(down_s=1.0)
            restarted.set()
            for future in futures:
                future.result()
        self._await_intake(len(sent.acked), begun)
        return self._finish(
            begun,
            "nats-restart",
            f"NATS restarted during a storm of {alerts} alerts",
            sent=sent,
            extra={"refused_and_retried": sent.refused, "given_up": sent.failed},
        )

    def postgres_restart(self, moment: str | None = None) -> HaTrialResult:
        world = self.world
        moment = moment or self.rng.choice(("workflow.started", "scale.begun", "wait.completed"))
        begun = self._begin()
        reached = self._reach(begun, moment)
        down_s = round(self.rng.uniform(0.5, 3.0), 2)
        assert isinstance(world.postgres, PostgresServer), "restarts need our own PostgreSQL"
        world.postgres.restart(down_s=down_s)
        return self._finish(
            begun,
            "postgres-restart",
            f"PostgreSQL crashed at {moment}, down {down_s} s",
            extra={"moment_reached": reached},
        )

    # ---- the parts --------------------------------------------------------------------
    def _begin(self, *, send: bool = True) -> _Begun:
        """Reset the cluster, mark the moment, send the trial's alert to any replica."""
        world = self.world
        self._number += 1
        self._whole_team()
        _scale_in_twin(world, "order-service", INITIAL_REPLICAS)
        rows = world.query("SELECT coalesce(max(seq), 0) FROM audit_log")
        seq = int(rows[0][0]) if rows else 0
        begun = _Begun(number=self._number, seq=seq, wall=time.time(), sent=Sent())
        if send:
            urls = world.api_urls()
            first = self.rng.randrange(len(urls))  # any replica, as a load balancer would
            sender = world.alert_sender(urls[first:] + urls[:first], attempts=60, sent=begun.sent)
            sender.send([trial_alert(begun.number)])
            sender.close()
        return begun

    def _reach(self, begun: _Begun, moment: str) -> bool:
        """Wait for the trial's run to reach `moment`; False (and why, logged) if it never does.

        The wait is long: a team just recovered from the last trial's fault, on a loaded
        machine, may take a minute or more to get there, and the moment is what matters.
        """
        if moment == "random":
            time.sleep(self.rng.uniform(0.0, 3.0))
            return True
        reached = self.world.wait_until(
            f"SELECT 1 FROM audit_log WHERE seq > ? AND {BOUNDARIES[moment]}",  # noqa: S608
            begun.seq,
            timeout=SETTLE_S,
        )
        if not reached:
            kinds = self.world.query(
                "SELECT kind, subject FROM audit_log WHERE seq > ? ORDER BY seq DESC LIMIT 12",
                begun.seq,
            )
            _log.warning(
                "trial %d never reached %s; its last records: %s", begun.number, moment, kinds
            )
        return reached

    def _worker_of(self, begun: _Begun) -> str | None:
        """The replica running the trial's remediation workflow, if one runs it now."""
        rows = self.world.query(
            "SELECT subject FROM audit_log WHERE seq > ? AND kind = 'incident.opened'",
            begun.seq,
        )
        return self.world.workflow_owner(str(rows[0][0])) if rows else None

    def _takeover(self, victim: str, *, was_leader: bool, since: float) -> float | None:
        """Seconds until the others fenced `victim` (and hold the loop lease if it did)."""
        world = self.world
        deadline = since + world.lease_wall_s * 10
        while time.monotonic() < deadline:
            fenced = world.query("SELECT 1 FROM replicas WHERE id = ? AND fenced", victim)
            leader = world.leader()
            if fenced and (not was_leader or (leader is not None and leader != victim)):
                return time.monotonic() - since
            time.sleep(0.02)
        return None

    def _await_intake(self, acked: int, begun: _Begun) -> None:
        """Wait until every acknowledged storm alert is in an incident (or time runs out)."""
        world = self.world
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            rows = world.query(
                "SELECT count(*) FROM audit_log WHERE seq > ? AND kind = 'incident.opened'",
                begun.seq,
            )
            if rows and int(rows[0][0]) >= acked:
                return
            time.sleep(0.2)

    def _finish(
        self,
        begun: _Begun,
        kind: str,
        detail: str,
        *,
        takeover: float | None = None,
        sent: Sent | None = None,
        extra: dict[str, Any] | None = None,
    ) -> HaTrialResult:
        world = self.world
        sent = sent or begun.sent
        crashes, fenced = self._settle(sent)
        accounts = accounting.account(
            world, sent.acked, initial=INITIAL_REPLICAS, writes_since=begun.wall
        )
        running = world.query("SELECT workflow_id FROM workflow_runs WHERE status = 'running'")
        if kind != "nats-restart":  # the storm's alerts stay; the trial's own is resolved
            sender = world.alert_sender(world.api_urls(), attempts=60)
            sender.send([trial_alert(begun.number, resolved=True)])
            sender.close()
        return HaTrialResult(
            kind,
            detail,
            accounts,
            alerts_sent=len(sent.acked),
            unfinished=accounts.stuck_incidents + len(running),
            takeover_s=None if takeover is None else round(takeover, 3),
            crashes=crashes,
            fenced_restarts=fenced,
            extra=extra or {},
        )

    def _settle(self, sent: Sent) -> tuple[int, int]:
        """Wait for the world to rest, the whole team ready again.

        At rest: every acknowledged alert is in an incident, every incident rests and no
        run is in progress (or time runs out). Returns how many replicas exited on their
        own meanwhile: (crashed, stopped because fenced).
        """
        world = self.world
        exits: list[int] = []
        deadline = time.monotonic() + SETTLE_S
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            exits += self._whole_team()
            if accounting.unsettled(world) == 0 and accounting.all_taken(world, sent.acked):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:
                    break
            else:
                quiet_since = None
            time.sleep(0.1)
        ready_by = time.monotonic() + 120
        while not self._team_ready() and time.monotonic() < ready_by:
            # A replica fenced a moment ago exits while the others are checked: start it.
            exits += self._whole_team()
            time.sleep(0.2)
        fenced = sum(1 for code in exits if code == FENCED_EXIT_CODE)
        return len(exits) - fenced, fenced

    def _team_ready(self) -> bool:
        return all(replica.alive and replica.ready() for replica in self.world.replicas)

    def _whole_team(self) -> list[int]:
        """Start again any replica that exited on its own; the exit codes of those that had."""
        exited = self.world.check_exits()
        for replica_id, _code in exited:
            self.world.replica(replica_id).start()
        return [code for _id, code in exited]


@dataclass
class _Begun:
    number: int
    seq: int  # the last audit record before the trial
    wall: float
    sent: Sent


def trial_alert(number: int, *, resolved: bool = False) -> dict[str, Any]:
    return alert(
        "OrderServiceCPUThrottling",
        {**REAL_LABELS, "trial": str(number)},
        starts_at=time.time(),
        summary="order-service is CPU-throttled",
        resolved=resolved,
    )


def _scale_in_twin(world: HaWorld, deployment: str, replicas: int) -> None:
    """Set a deployment's replicas through the twin's own API (logged, so counted right)."""
    response = httpx.patch(
        f"{world.twin.url}/apis/apps/v1/namespaces/production/deployments/{deployment}/scale",
        json={"spec": {"replicas": replicas}},
        headers={"content-type": "application/merge-patch+json"},
        timeout=10.0,
    )
    response.raise_for_status()


def _wait_exit(process: Any, *, timeout: float) -> int | None:
    if process is None:
        return None
    try:
        return int(process.wait(timeout=timeout))
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: it did not stop
        return None


def _wait_for(condition: Any, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
