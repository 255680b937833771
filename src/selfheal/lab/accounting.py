"""Counting what went wrong after a trial, from the records alone.

Everything is read back from what the world kept: the alerts the sender was told were
taken, the controller's audit chain and tables (read-only), the twin's log of requests
that changed the cluster. The counts are the reliability figures of docs/reliability.md:

- `alerts_lost`: acknowledged alerts that no `incident.opened` or `incident.joined`
  record accounts for (a sender's retry of the same alert counts once);
- `duplicate_writes`: scale requests that repeated one already made (same deployment, same
  replicas) - the effect of one step done twice;
- `stuck_incidents`: incidents left `deciding`, `open` with no decision, or `remediating` /
  `awaiting_approval` with no run in progress, once the world has settled;
- `false_notifications`: pages that state a replica count the cluster did not have when
  they were sent.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selfheal.lab.world import World

RESTING = frozenset({"open", "verified", "rolled_back", "escalated", "resolved"})
# What a page may claim about a deployment's replicas, and where the number is.
_CLAIMS = (
    re.compile(
        r"Now: production/(?P<deployment>[a-z0-9-]+) has (?P<replicas>\d+) replicas desired"
    ),
    re.compile(r"(?P<deployment>[a-z0-9-]+) set back to (?P<replicas>\d+) replicas"),
)


@dataclass(frozen=True, slots=True)
class Accounts:
    """The counts of one trial (see the module docstring)."""

    alerts_acked: int
    alerts_lost: int
    duplicate_writes: int
    stuck_incidents: int
    false_notifications: int
    incidents: int
    notes: tuple[str, ...] = ()


def all_taken(world: World, acked: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every acknowledged alert is in an incident yet (it may still be on its way)."""
    return not (_keys(acked) - _accounted(world))


def account(
    world: World,
    acked: Sequence[Mapping[str, Any]],
    *,
    initial: int = 2,
    writes_since: float = 0.0,
) -> Accounts:
    """Count a settled world's losses, duplicates, stuck incidents and false pages.

    `writes_since`: the wall time this trial's writes begin at (a world that runs several
    trials resets the cluster between them, and those writes are not the trial's).
    """
    notes: list[str] = []
    acked_keys = _keys(acked)
    lost = acked_keys - _accounted(world)
    if lost:
        notes.append(f"{len(lost)} acknowledged alert(s) in no incident, e.g. {min(lost)}")
    writes = Counter(
        (entry["path"], _replicas_of(entry["body"]))
        for entry in world.cluster_writes()
        if entry["wall"] >= writes_since
        and entry["path"].endswith("/scale")
        and entry["status"] == 200
    )
    duplicates = sum(count - 1 for count in writes.values() if count > 1)
    if duplicates:
        notes.append(f"scale writes repeated: {dict(writes)}")
    stuck = _stuck(world)
    if stuck:
        notes.append(f"stuck: {stuck}")
    false_pages = _false_notifications(world, initial=initial)
    if false_pages:
        notes.append(f"false pages: {false_pages}")
    incidents = world.query("SELECT count(*) FROM incidents")
    return Accounts(
        alerts_acked=len(acked_keys),
        alerts_lost=len(lost),
        duplicate_writes=duplicates,
        stuck_incidents=len(stuck),
        false_notifications=len(false_pages),
        incidents=int(incidents[0][0]) if incidents else 0,
        notes=tuple(notes),
    )


def _keys(acked: Sequence[Mapping[str, Any]]) -> set[str]:
    return {_labels_key(item["labels"]) for item in acked}


def _accounted(world: World) -> set[str]:
    """The label sets of every alert an incident took (opened or joined)."""
    accounted: set[str] = set()
    for kind, payload_text in world.query(
        "SELECT kind, payload FROM audit_log WHERE kind IN ('incident.opened', 'incident.joined')"
    ):
        payload = json.loads(payload_text)
        labels = payload.get("labels") if kind == "incident.opened" else payload.get("alert_labels")
        if isinstance(labels, dict):
            accounted.add(_labels_key(labels))
    return accounted


def unsettled(world: World) -> int:
    """How many incidents are not resting yet, or runs still running (0: settled)."""
    return len(_stuck(world)) + len(
        world.query("SELECT workflow_id FROM workflow_runs WHERE status = 'running'")
    )


def _stuck(world: World) -> list[str]:
    rows = world.query(
        "SELECT i.id, i.state, "
        "(SELECT count(*) FROM decisions d WHERE d.incident_id = i.id), "
        "(SELECT count(*) FROM workflow_runs r WHERE r.incident_id = i.id "
        " AND r.status = 'running') "
        "FROM incidents i"
    )
    stuck = []
    for incident_id, state, decisions, running in rows:
        if state not in RESTING and not running:
            stuck.append(f"{incident_id} {state}")
        elif state == "open" and not decisions:
            stuck.append(f"{incident_id} open, never decided")
    return stuck


def _false_notifications(world: World, *, initial: int) -> list[str]:
    false = []
    for message, created_at in world.query("SELECT message, created_at FROM notifications"):
        wall = world.wall_of(float(created_at))
        for claim in _CLAIMS:
            for found in claim.finditer(message):
                actual = world.replicas_at(found["deployment"], wall + 0.5, initial=initial)
                if actual != int(found["replicas"]):
                    false.append(f"{found.group(0)!r} but it had {actual}")
    return false


def _replicas_of(body: str) -> int | None:
    """The replicas a scale request asked for (its resourceVersion differs every time)."""
    try:
        return int(json.loads(body)["spec"]["replicas"])
    except (ValueError, KeyError, TypeError):
        return None


def _labels_key(labels: Mapping[str, Any]) -> str:
    return json.dumps(dict(labels), sort_keys=True)
