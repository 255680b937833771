"""`selfheal demo --replicas N`: a team of replicas heals the twin while one of them is killed.

The replicas are `selfheal run` processes sharing a PostgreSQL database and a NATS
JetStream stream: the machine's servers when they answer on their default ports (a
database and a stream of the demo's own are made there and removed after), else servers
the demo starts itself on free loopback ports. Alertmanager's throttling alert about
order-service goes to one replica's webhook; the team opens an incident, decides, and one
replica starts the scale-up. In the middle of it (once the scale step has begun) that
replica gets `kill -9`. The others notice its silence, fence it, and finish its runbook
from the interrupted step; the twin's request log shows the deployment scaled once.

Everything is told as it happens through `tell` (dicts: the CLI renders them), and the
result is one dict (`--json`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from selfheal.lab import accounting
from selfheal.lab.ha_world import HaSettings, HaWorld
from selfheal.lab.servers import (
    ExistingNats,
    ExistingPostgres,
    NatsServer,
    PostgresServer,
)
from selfheal.lab.trials import BOUNDARIES, real_alert

Tell = Callable[[dict[str, Any]], None]
_WAIT_S = 120.0


def run(*, replicas: int = 3, tell: Tell | None = None) -> dict[str, Any]:
    """Run the team demo; the summary (see the module docstring)."""
    say: Tell = tell or (lambda _event: None)
    root = Path(tempfile.mkdtemp(prefix="selfheal-team-"))
    with _servers(root) as (postgres, nats, where):
        # The example's own daily budget, not the trials' unlimited one. Slower than the
        # trials (10x: a 6 s lease, a verify window of 2 s real) so that a busy machine's
        # scrapes still fill the runbook's rate windows and the story is the same on it.
        settings = HaSettings(
            replicas=replicas, budget_daily=100.0, speed=10.0, heartbeat=10.0, lease=60.0
        )
        world = HaWorld(root / "team", settings, postgres=postgres, nats=nats)
        with world:
            world.start_replicas()
            result = _story(world, where, say)
    if succeeded(result):
        shutil.rmtree(root, ignore_errors=True)
    else:
        result["logs"] = str(root / "team")  # the replicas' logs, kept to read what happened
    return result


def succeeded(result: dict[str, Any]) -> bool:
    """Whether the team finished the job: verified, nothing lost, repeated or left stuck."""
    return result["incident_state"] == "verified" and not (
        result["alerts_lost"] or result["duplicate_writes"] or result["stuck_incidents"]
    )


@contextlib.contextmanager
def _servers(root: Path) -> Iterator[tuple[ExistingPostgres, NatsServer | ExistingNats, str]]:
    machine_postgres, machine_nats = ExistingPostgres(), ExistingNats()
    if machine_postgres.reachable() and machine_nats.reachable():
        yield machine_postgres, machine_nats, "the machine's"
        return
    with PostgresServer() as postgres, NatsServer(root / "nats") as nats:
        yield postgres, nats, "the demo's own"


def _story(world: HaWorld, where: str, say: Tell) -> dict[str, Any]:
    began = time.monotonic()
    follower = _AuditFollower(world, began=began, say=say)
    leader = world.leader()
    say(
        {
            "kind": "team",
            "servers": where,
            "postgres": f"127.0.0.1:{world.postgres.port}/{world.database}",
            "nats": f"{world.nats.url} stream {world.stream}",
            "replicas": [
                {
                    "id": replica.replica_id,
                    "pid": None if replica.process is None else replica.process.pid,
                    "api": replica.api_url,
                    "leader": replica.replica_id == leader,
                }
                for replica in world.replicas
            ],
        }
    )
    receiver = world.replicas[1 % len(world.replicas)]
    others = [r.api_url for r in world.replicas if r is not receiver]
    sender = world.alert_sender([receiver.api_url, *others], attempts=60)
    sender.send([real_alert()])
    sender.close()
    say(
        {
            "kind": "step",
            "at_s": _since(began),
            "text": f"Alertmanager posts OrderServiceCPUThrottling to {receiver.replica_id}'s "
            "webhook: acknowledged once JetStream has stored it",
        }
    )
    scale_begun = BOUNDARIES["scale.begun"]
    follower.until(
        lambda: bool(world.query(f"SELECT 1 FROM audit_log WHERE {scale_begun}"))  # noqa: S608
    )
    incident = str(world.query("SELECT id FROM incidents")[0][0])
    victim_id = world.workflow_owner(incident) or receiver.replica_id
    victim = world.replica(victim_id)
    was_leader = world.leader() == victim_id
    killed_at = time.monotonic()
    victim.kill()
    say(
        {
            "kind": "fault",
            "at_s": _since(began),
            "text": f"kill -9 {victim_id}{' (the loop lease holder)' if was_leader else ''}, "
            "which runs the remediation, in the middle of its scale step",
        }
    )
    fenced = follower.until(
        lambda: bool(world.query("SELECT 1 FROM replicas WHERE id = ? AND fenced", victim_id))
    )
    takeover_s = time.monotonic() - killed_at if fenced else None
    # The fencing replica hands the workflow to the engine's queue; a live one picks it up.
    owner = world.workflow_owner(incident)
    deadline = time.monotonic() + 10.0
    while owner == victim_id and time.monotonic() < deadline:
        time.sleep(0.05)
        owner = world.workflow_owner(incident)
    say(
        {
            "kind": "takeover",
            "at_s": _since(began),
            "text": (
                f"the others fenced {victim_id} {takeover_s:.1f} s after the kill (lease "
                f"{world.lease_wall_s:g} s); its workflow "
                + (f"resumes on {owner}" if owner else "was finished by another replica")
                if takeover_s is not None
                else f"{victim_id} was not fenced within {_WAIT_S:g} s"
            ),
        }
    )
    follower.until(lambda: accounting.unsettled(world) == 0 and _state(world, incident) != "")
    follower.drain()
    accounts = accounting.account(world, [real_alert()])
    writes = [
        json.loads(entry["body"])["spec"]["replicas"]
        for entry in world.cluster_writes()
        if entry["path"].endswith("/deployments/order-service/scale") and entry["status"] == 200
    ]
    result = {
        "servers": where,
        "replicas": len(world.replicas),
        "incident": incident,
        "incident_state": _state(world, incident),
        "killed": victim_id,
        "killed_was_leader": was_leader,
        "takeover_s": None if takeover_s is None else round(takeover_s, 2),
        "lease_s": world.lease_wall_s,
        "scale_writes": writes,
        "alerts_lost": accounts.alerts_lost,
        "duplicate_writes": accounts.duplicate_writes,
        "stuck_incidents": accounts.stuck_incidents,
        "wall_s": _since(began),
    }
    say({"kind": "result", **result})
    return result


class _AuditFollower:
    """Tells each new audit record while the demo waits for something."""

    def __init__(self, world: HaWorld, *, began: float, say: Tell) -> None:
        self._world = world
        self._began = began
        self._say = say
        self._after = 0

    def until(self, condition: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + _WAIT_S
        while time.monotonic() < deadline:
            self.drain()
            if condition():
                self.drain()
                return True
            time.sleep(0.05)
        return False

    def drain(self) -> None:
        rows = self._world.query(
            "SELECT seq, kind, subject, payload FROM audit_log WHERE seq > ? ORDER BY seq",
            self._after,
        )
        for seq, kind, subject, payload in rows:
            self._after = int(seq)
            self._say(
                {
                    "kind": "audit",
                    "at_s": _since(self._began),
                    "record": {"kind": kind, "subject": subject, "payload": json.loads(payload)},
                }
            )


def _state(world: HaWorld, incident: str) -> str:
    rows = world.query("SELECT state FROM incidents WHERE id = ?", incident)
    state = str(rows[0][0]) if rows else ""
    return state if state in {"verified", "rolled_back", "escalated", "resolved"} else ""


def _since(began: float) -> float:
    return round(time.monotonic() - began, 2)
