"""`selfheal bench ha`: replicas killed, paused and cut off, a storm, and intake throughput.

It starts everything it needs on loopback (a PostgreSQL and a NATS server of its own, the
twin, three `selfheal run` replicas) and runs, in one team of replicas:

- kill trials (SIGKILL of the replica running a remediation, at each stage in turn and at
  random moments), pause trials (SIGSTOP past the lease, then SIGCONT), NATS restarted in
  the middle of a storm, PostgreSQL crashed in the middle of a remediation (ha_trials);
- a storm: `storm_per_minute` alerts a minute for `storm_minutes`, spread over the
  replicas, every one of which must end up in an incident;

then, each on a fresh state, intake throughput side by side: alerts a second accepted by
the webhook (stored durably: in SQLite's inbox for the embedded default, on JetStream for
replicas) and each request's latency, for the embedded default and 1, 2 and 3 replicas.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Self

from selfheal.lab import accounting
from selfheal.lab.alert_sender import AlertSender, Sent, alert
from selfheal.lab.ha_trials import KILL_MOMENTS, HaTrialResult, Trials
from selfheal.lab.ha_world import HaSettings, HaWorld, shared_servers
from selfheal.lab.servers import NatsServer, PostgresServer
from selfheal.lab.world import World, WorldSettings

# Alerts in one webhook request of the throughput runs (Alertmanager groups alerts into
# one notification; 50 is a busy group).
ALERTS_PER_REQUEST = 50
SENDERS = 8


def run(
    *,
    trials: int = 100,
    pauses: int | None = None,
    restarts: int = 2,
    storm_per_minute: int = 10_000,
    storm_minutes: float = 5.0,
    throughput_alerts: int = 20_000,
    seed: int = 0,
    directory: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every trial, the storm and the throughput runs; the one-object report."""
    root = directory or Path(tempfile.mkdtemp(prefix="selfheal-ha-"))
    tell = progress or (lambda _text: None)
    began = time.monotonic()
    results: list[HaTrialResult] = []
    settings = HaSettings()
    with shared_servers(root) as (postgres, nats):
        with HaWorld(root / "trials", settings, postgres=postgres, nats=nats) as world:
            world.start_replicas()
            runner = Trials(world, seed=seed)
            plan = plan_trials(trials, pauses=pauses, restarts=restarts)
            for index, (kind, moment) in enumerate(plan, start=1):
                result = _run_one(runner, kind, moment)
                tell(f"{index}/{len(plan)} {result.detail}: {verdict(result)}")
                results.append(result)
        with HaWorld(root / "storm", settings, postgres=postgres, nats=nats) as world:
            world.start_replicas()
            storm = storm_run(world, per_minute=storm_per_minute, minutes=storm_minutes)
            tell(f"storm: {storm}")
        throughput = [
            throughput_run(
                root / f"throughput-{replicas}",
                replicas=replicas,
                alerts=throughput_alerts,
                servers=(postgres, nats),
            )
            for replicas in (0, 1, 2, 3)
        ]
        for line in throughput:
            tell(f"throughput: {line}")
    return report(
        results,
        storm=storm,
        throughput=throughput,
        lease_s=settings.lease / settings.speed,
        wall_s=time.monotonic() - began,
    )


def plan_trials(kills: int, *, pauses: int | None, restarts: int) -> list[tuple[str, str | None]]:
    """Kills at every moment in turn (then random), pauses, and each server restarted."""
    plan: list[tuple[str, str | None]] = [
        ("kill", KILL_MOMENTS[index % len(KILL_MOMENTS)]) for index in range(kills)
    ]
    plan += [("pause", None)] * (max(1, kills // 10) if pauses is None else pauses)
    plan += [("nats-restart", None), ("postgres-restart", None)] * restarts
    return plan


def _run_one(runner: Trials, kind: str, moment: str | None) -> HaTrialResult:
    if kind == "kill":
        return runner.kill(moment)
    if kind == "pause":
        return runner.pause(moment)
    if kind == "nats-restart":
        return runner.nats_restart()
    return runner.postgres_restart(moment)


def storm_run(world: HaWorld, *, per_minute: int, minutes: float) -> dict[str, Any]:
    """Paced alerts (each a new incident) over all replicas; is every one accounted for?"""
    total = int(per_minute * minutes)
    interval = 60.0 / per_minute * ALERTS_PER_REQUEST  # seconds between requests
    sent = Sent()
    began = time.monotonic()
    now = time.time()
    items = [alert("StormAlert", {"instance": f"storm-{i}"}, starts_at=now) for i in range(total)]
    parts = [
        items[start : start + ALERTS_PER_REQUEST]
        for start in range(0, len(items), ALERTS_PER_REQUEST)
    ]
    senders = _SenderPerThread(world.api_urls(), sent, token=world.credentials.sender)

    def send(index: int, part: list[dict[str, Any]]) -> None:
        # Paced: request `index` leaves at its moment, whatever the ones before it took.
        delay = began + index * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        senders.get(index).send(part)

    with senders, concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
        for future in [pool.submit(send, index, part) for index, part in enumerate(parts)]:
            future.result()
    sent_s = time.monotonic() - began
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not accounting.all_taken(world, sent.acked):
        time.sleep(2.0)
    drained_s = time.monotonic() - began - sent_s
    accounts = accounting.account(world, sent.acked)
    return {
        "alerts_per_minute": per_minute,
        "minutes": minutes,
        "alerts_sent": len(sent.acked),
        "alerts_lost": accounts.alerts_lost,
        "given_up": sent.failed,
        "send_s": round(sent_s, 1),
        "drain_after_send_s": round(drained_s, 1),
        "webhook_p99_ms": _quantile_ms(sent.latencies_s, 0.99),
    }


def throughput_run(
    directory: Path,
    *,
    replicas: int,
    alerts: int,
    servers: tuple[PostgresServer, NatsServer],
) -> dict[str, Any]:
    """Alerts a second the webhook accepts, and request latency, for one setup.

    `replicas` 0 is the embedded default: one `selfheal run` on SQLite, no servers.
    """
    if replicas == 0:
        world: World = World(
            directory, WorldSettings(scenario="steady", speed=30, max_pending=alerts * 2)
        )
        setup = "embedded"
    else:
        postgres, nats = servers
        world = HaWorld(
            directory,
            HaSettings(replicas=replicas, max_pending=alerts * 2),
            postgres=postgres,
            nats=nats,
        )
        setup = f"replicas-{replicas}"
    with world:
        if isinstance(world, HaWorld):
            world.start_replicas()
            urls = world.api_urls()
        else:
            assert world.controller is not None
            world.controller.start()
            world.controller.wait_ready()
            urls = [world.api_url]
        measured = measure_intake(urls, alerts=alerts, token=world.credentials.sender)
    return {"setup": setup, **measured}


def measure_intake(urls: Sequence[str], *, alerts: int, token: str) -> dict[str, Any]:
    """Post `alerts` (in requests of ALERTS_PER_REQUEST) from SENDERS threads, flat out."""
    now = time.time()
    items = [alert("LoadAlert", {"instance": f"load-{i}"}, starts_at=now) for i in range(alerts)]
    parts = [
        items[start : start + ALERTS_PER_REQUEST]
        for start in range(0, len(items), ALERTS_PER_REQUEST)
    ]
    sent = Sent()
    senders = _SenderPerThread(urls, sent, token=token)
    began = time.monotonic()
    with senders, concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
        futures = [
            pool.submit(lambda index, part: senders.get(index).send(part), index, part)
            for index, part in enumerate(parts)
        ]
        for future in futures:
            future.result()
    elapsed = time.monotonic() - began
    return {
        "alerts": len(sent.acked),
        "alerts_per_request": ALERTS_PER_REQUEST,
        "alerts_per_s": round(len(sent.acked) / elapsed, 1),
        "p50_ms": _quantile_ms(sent.latencies_s, 0.5),
        "p99_ms": _quantile_ms(sent.latencies_s, 0.99),
        "refused": sent.refused,
    }


class _SenderPerThread:
    """One AlertSender (one connection pool) per sending thread; all closed at the end.

    Each thread's sender starts at another replica, as a load balancer spreads clients.
    """

    def __init__(self, urls: Sequence[str], sent: Sent, *, token: str) -> None:
        self._urls = list(urls)
        self._sent = sent
        self._token = token
        self._local = threading.local()
        self._all: list[AlertSender] = []
        self._lock = threading.Lock()

    def get(self, index: int) -> AlertSender:
        sender: AlertSender | None = getattr(self._local, "sender", None)
        if sender is None:
            first = index % len(self._urls)
            urls = [*self._urls[first:], *self._urls[:first]]
            sender = AlertSender(urls, attempts=60, sent=self._sent, token=self._token)
            self._local.sender = sender
            with self._lock:
                self._all.append(sender)
        return sender

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        for sender in self._all:
            sender.close()


def report(
    results: Sequence[HaTrialResult],
    *,
    storm: dict[str, Any] | None,
    throughput: Sequence[dict[str, Any]],
    lease_s: float,
    wall_s: float,
) -> dict[str, Any]:
    """The summed counts, takeover times, the storm and the throughput lines."""
    takeovers = [r.takeover_s for r in results if r.kind in {"kill", "pause"}]
    measured = [t for t in takeovers if t is not None]
    pauses = [r for r in results if r.kind == "pause"]
    return {
        "trials": len(results),
        "kill_trials": sum(1 for r in results if r.kind == "kill"),
        "pause_trials": len(pauses),
        "nats_restarts": sum(1 for r in results if r.kind == "nats-restart"),
        "postgres_restarts": sum(1 for r in results if r.kind == "postgres-restart"),
        "alerts_sent": sum(r.alerts_sent for r in results)
        + (0 if storm is None else int(storm["alerts_sent"])),
        "alerts_lost": sum(r.accounts.alerts_lost for r in results)
        + (0 if storm is None else int(storm["alerts_lost"])),
        "duplicate_writes": sum(r.accounts.duplicate_writes for r in results),
        "unfinished_incidents": sum(r.unfinished for r in results),
        "false_notifications": sum(r.accounts.false_notifications for r in results),
        "replica_crashes": sum(r.crashes for r in results),
        "fenced_restarts": sum(r.fenced_restarts for r in results),
        "takeovers_missed": len(takeovers) - len(measured),
        "takeover_s_max": max(measured) if measured else None,
        "takeover_s_median": round(statistics.median(measured), 3) if measured else None,
        "lease_s": round(lease_s, 3),
        "paused_replicas_stopped": sum(1 for r in pauses if r.extra.get("woke_and_stopped")),
        "storm": storm,
        "throughput": list(throughput),
        "wall_s": round(wall_s, 1),
        "results": [
            {
                "kind": r.kind,
                "detail": r.detail,
                **asdict(r.accounts),
                "unfinished": r.unfinished,
                "takeover_s": r.takeover_s,
                "crashes": r.crashes,
                "fenced_restarts": r.fenced_restarts,
                **r.extra,
            }
            for r in results
        ],
    }


def verdict(result: HaTrialResult) -> str:
    """'ok', or what went wrong in one trial."""
    bad = {
        "alerts_lost": result.accounts.alerts_lost,
        "duplicate_writes": result.accounts.duplicate_writes,
        "unfinished": result.unfinished,
        "crashes": result.crashes,
    }
    if result.kind in {"kill", "pause"} and result.takeover_s is None:
        bad["takeover_missed"] = 1
    if result.kind == "pause" and not result.extra.get("woke_and_stopped"):
        bad["paused_replica_kept_running"] = 1
    failing = {name: value for name, value in bad.items() if value}
    suffix = "" if result.takeover_s is None else f" (takeover {result.takeover_s:.2f} s)"
    if result.fenced_restarts:
        suffix += f" ({result.fenced_restarts} live replica(s) fenced and restarted)"
    return ("ok" if not failing else f"FAILED {failing} {list(result.accounts.notes)}") + suffix


def _quantile_ms(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)
