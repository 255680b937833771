"""The fault harness's trials: kill at every stage, storms, hostile input, API faults, a full disk.

Each trial builds a fresh `World` (the twin behind a fault proxy, `selfheal run` as a
process), does one kind of damage, lets the world settle, and counts what went wrong with
`accounting.account`. `selfheal bench faults` runs many of them; the tests run a sample.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import random
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from selfheal.lab import accounting
from selfheal.lab.alert_sender import AlertSender, alert
from selfheal.lab.credentials import LabCredentials
from selfheal.lab.fault_proxy import FaultRule
from selfheal.lab.world import World, WorldSettings

# The alert the harness's remediation answers: order-service throttled, scale it up.
REAL_LABELS = {
    "namespace": "production",
    "service": "order-service",
    "deployment": "order-service",
    "severity": "critical",
    "remediation": "scale-up",
}
# Each stage boundary of one remediation, as the first audit record that shows it passed.
BOUNDARIES: dict[str, str] = {
    "incident.opened": "kind = 'incident.opened'",
    "deciding": "kind = 'incident.state' AND CAST(payload AS TEXT) LIKE '%deciding%'",
    "decision.recorded": "kind = 'decision.recorded'",
    "workflow.started": "kind = 'workflow.started'",
    "budget.charged": "kind = 'budget.charged'",
    "scale.begun": "kind = 'action.begun' AND subject LIKE '%/scale'",
    "scale.completed": "kind = 'action.completed' AND subject LIKE '%/scale'",
    "wait.completed": "kind = 'action.completed' AND subject LIKE '%/wait'",
    "verify.completed": "kind = 'action.completed' AND subject LIKE '%/verify'",
    "workflow.finished": "kind = 'workflow.finished'",
}
# Kill right after the webhook answered: the alert is only in the durable inbox.
ACKED = "acked"
SETTLE_S = 180.0


@dataclass
class TrialResult:
    """One trial: what was done, and the counts."""

    kind: str
    detail: str
    accounts: accounting.Accounts
    controller_crashes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def real_alert(*, at: float | None = None) -> dict[str, Any]:
    return alert(
        "OrderServiceCPUThrottling",
        REAL_LABELS,
        starts_at=time.time() if at is None else at,
        summary="order-service is CPU-throttled",
    )


def settle(world: World, *, timeout: float = SETTLE_S) -> None:
    """Wait until every incident rests and no run is in progress (or `timeout` passes)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        assert world.controller is not None
        world.controller.check_exit()
        if accounting.unsettled(world) == 0 and world.query("SELECT 1 FROM incidents LIMIT 1"):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.5:  # and stays so for a moment
                return
        else:
            quiet_since = None
        time.sleep(0.1)


def _wait_for(world: World, condition: str, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if world.query(f"SELECT 1 FROM audit_log WHERE {condition} LIMIT 1"):  # noqa: S608
            return True
        time.sleep(0.005)
    return False


def kill_trial(
    directory: Path, *, boundary: str | None = None, delay: float | None = None, speed: float = 30
) -> TrialResult:
    """One remediation; SIGKILL at a stage boundary (or after `delay` s); restart; count."""
    with World(directory, WorldSettings(scenario="steady", speed=speed)) as world:
        controller = world.controller
        assert controller is not None
        controller.start()
        controller.wait_ready()
        sender = world.alert_sender()
        sender.send([real_alert()])
        reached = True
        if boundary is not None and boundary != ACKED:
            reached = _wait_for(world, BOUNDARIES[boundary], timeout=60)
        elif delay is not None:
            time.sleep(delay)
        controller.kill()
        controller.start()
        controller.wait_ready()
        settle(world)
        code, _ = controller.terminate()
        sender.close()
        crashes = len(controller.exits) + (0 if code == 0 else 1)
        what = boundary if boundary is not None else f"random {delay:.2f}s"
        return TrialResult(
            "kill",
            what,
            accounting.account(world, sender.sent.acked),
            controller_crashes=crashes,
            extra={"boundary_reached": reached},
        )


def storm_trial(
    directory: Path, *, junk: int = 5000, batch: int = 250, senders: int = 4, speed: float = 1
) -> TrialResult:
    """`junk` incidents from a flood, one real alert in its middle: how fast is each decided?

    At real speed by default, as in production: a faster scenario clock would have the loop
    scrape the twin many times a real second, a load no real deployment has.
    """
    settings = WorldSettings(scenario="steady", speed=speed, max_pending=junk * 2)
    with World(directory, settings) as world:
        controller = world.controller
        assert controller is not None
        controller.start()
        controller.wait_ready()
        now = time.time()
        flood = [
            alert(f"JunkAlert{i % 50}", {"instance": f"host-{i}", "job": "junk"}, starts_at=now)
            for i in range(junk)
        ]
        batches = [flood[start : start + batch] for start in range(0, len(flood), batch)]
        gaps = _TickWatch(world.api_url)
        gaps.start()
        began = time.monotonic()
        shared = world.alert_sender()
        with concurrent.futures.ThreadPoolExecutor(senders) as pool:
            futures = [pool.submit(_send_one, world, shared, part) for part in batches]
            for index, future in enumerate(futures):
                future.result()
                if index == len(futures) // 2:
                    real_sent = time.time()
                    shared.send([real_alert()])
        sent_s = time.monotonic() - began
        decided = _wait_count(world, "SELECT count(*) FROM decisions", junk + 1, timeout=300)
        storm_decide_s = time.monotonic() - began
        acted = _first_scale_after(world, real_sent, timeout=120)
        gaps.stop()
        settle(world, timeout=60)
        code, _ = controller.terminate()
        shared.close()
        return TrialResult(
            "storm",
            f"{junk} junk alerts",
            accounting.account(world, shared.sent.acked),
            controller_crashes=len(controller.exits) + (0 if code == 0 else 1),
            extra={
                "storm_incidents": junk,
                "storm_decided": decided,
                "storm_decide_s": round(storm_decide_s, 2),
                "storm_send_s": round(sent_s, 2),
                "real_incident_act_s_during_storm": None
                if acted is None
                else round(acted - real_sent, 2),
                "max_tick_gap_s": round(gaps.max_gap, 2),
                "webhook_p99_ms": round(_quantile(shared.sent.latencies_s, 0.99) * 1000, 1),
            },
        )


def hostile_trial(directory: Path, *, flood: int = 20_000, speed: float = 30) -> TrialResult:
    """Malformed and hostile requests, a flood past the inbox's bound, SIGTERM mid-flood."""
    settings = WorldSettings(scenario="steady", speed=speed, max_pending=2_000)
    with World(directory, settings) as world:
        controller = world.controller
        assert controller is not None
        controller.start()
        controller.wait_ready()
        answers = _hostile_requests(world.api_url, world.credentials)
        sender = world.alert_sender(attempts=50)
        sender.send([real_alert()])
        now = time.time()
        alerts = [
            alert("FloodAlert", {"instance": f"host-{i}"}, starts_at=now) for i in range(flood)
        ]
        parts = [alerts[start : start + 500] for start in range(0, len(alerts), 500)]
        stop_s: float | None = None
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(sender.send, part) for part in parts]
            time.sleep(1.0)
            code, stop_s = controller.terminate(timeout=120)  # SIGTERM in the middle
            controller.start()  # senders' retries reach the restarted controller
            for future in futures:
                future.result()
        controller.wait_ready()
        _wait_count(
            world,
            "SELECT count(*) FROM inbox WHERE processed_at IS NULL",
            0,
            timeout=300,
            at_most=True,
        )
        settle(world, timeout=120)
        alive = controller.alive
        final, _ = controller.terminate()
        sender.close()
        return TrialResult(
            "hostile",
            f"malformed requests, {flood} alerts past a bound of 2000, SIGTERM mid-flood",
            accounting.account(world, sender.sent.acked),
            controller_crashes=len(controller.exits) + (0 if alive and final == 0 else 1),
            extra={
                "answers": answers,
                "refused_and_retried": sender.sent.refused,
                "given_up": sender.sent.failed,
                "sigterm_exit_code": code,
                "sigterm_stop_s": round(stop_s, 2),
            },
        )


# Faults on the Kubernetes API, each on the calls of one step of the scale-up. The scale
# faults last (times=None): every attempt fails, the runbook must compensate and say so.
API_FAULTS: dict[str, list[FaultRule]] = {
    "scale-500": [
        FaultRule(path=r"/order-service/scale$", method="PATCH", action="status", times=None)
    ],
    "scale-409": [
        FaultRule(
            path=r"/order-service/scale$", method="PATCH", action="status", status=409, times=None
        )
    ],
    "scale-reset": [
        FaultRule(path=r"/order-service/scale$", method="PATCH", action="reset", times=None)
    ],
    "read-timeout": [
        FaultRule(path=r"/deployments/order-service$", method="GET", action="hang", delay_s=12.0)
    ],
    "wait-flaky": [
        FaultRule(
            path=r"/deployments/order-service$", method="GET", action="status", after=2, times=3
        )
    ],
}


def api_fault_trial(directory: Path, *, fault: str, speed: float = 30) -> TrialResult:
    """A remediation while the Kubernetes API fails as `fault` says; is what people hear true?"""
    with World(directory, WorldSettings(scenario="steady", speed=speed)) as world:
        controller = world.controller
        assert controller is not None
        world.faults(API_FAULTS[fault])
        controller.start()
        controller.wait_ready()
        sender = world.alert_sender()
        sender.send([real_alert()])
        settle(world)
        code, _ = controller.terminate()
        sender.close()
        states = world.query("SELECT state FROM incidents")
        spent = world.query("SELECT coalesce(sum(amount), 0) FROM budget_ledger")
        pages = world.query("SELECT message FROM notifications")
        assert world.proxy is not None
        return TrialResult(
            "api-fault",
            fault,
            accounting.account(world, sender.sent.acked),
            controller_crashes=len(controller.exits) + (0 if code == 0 else 1),
            extra={
                "incident_states": [row[0] for row in states],
                "budget_spent": round(float(spent[0][0]), 2) if spent else 0.0,
                "pages": [row[0] for row in pages],
                "faults_injected": len(world.proxy.injected),
            },
        )


def disk_full_trial(directory: Path, *, speed: float = 30) -> TrialResult | None:
    """The state on a small tmpfs, filled mid-run: input refused, nothing lost, then resumed.

    None when this machine does not let us mount a tmpfs (it needs root).
    """
    mount = directory / "state"
    mount.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or not _mount_tmpfs(mount, size="16m"):
        return None
    try:
        with World(directory, WorldSettings(scenario="steady", speed=speed)) as world:
            controller = world.controller
            assert controller is not None
            controller.start()
            controller.wait_ready()
            sender = world.alert_sender(attempts=200)
            sender.send([real_alert()])
            settle(world)
            filler = mount / "filler"
            _fill(filler)
            now = time.time()
            full_alerts = [
                alert("DiskFullAlert", {"instance": f"host-{i}"}, starts_at=now) for i in range(50)
            ]
            refused_before = sender.sent.refused
            retrying = threading.Thread(target=sender.send, args=(full_alerts,))
            retrying.start()
            time.sleep(2.0)
            readyz = httpx.get(f"{world.api_url}/readyz", timeout=5.0)
            unready = readyz.status_code == 503
            refused = sender.sent.refused - refused_before
            filler.unlink()
            retrying.join(timeout=120)
            settle(world, timeout=120)
            code, _ = controller.terminate()
            sender.close()
            return TrialResult(
                "disk-full",
                "state on a 16 MiB tmpfs, filled while alerts arrive, then freed",
                accounting.account(world, sender.sent.acked),
                controller_crashes=len(controller.exits) + (0 if code == 0 else 1),
                extra={"refused_while_full": refused, "unready_while_full": unready},
            )
    finally:
        subprocess.run(  # noqa: S603 - an argument list of our own path
            ["umount", "-l", str(mount)],  # noqa: S607
            check=False,
            capture_output=True,
        )


class _TickWatch:
    """Polls `/readyz` and keeps the longest time the loop went without a tick."""

    def __init__(self, api_url: str) -> None:
        self._url = f"{api_url}/readyz"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self.max_gap = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.wait(0.1):
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                    age = client.get(self._url).json()["last_tick_age_s"]
                    self.max_gap = max(self.max_gap, float(age))


def _send_one(world: World, shared: AlertSender, part: list[dict[str, Any]]) -> None:
    sender = world.alert_sender(attempts=50, sent=shared.sent)
    try:
        sender.send(part)
    finally:
        sender.close()


def _wait_count(
    world: World, sql: str, wanted: int, *, timeout: float, at_most: bool = False
) -> int:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        rows = world.query(sql)
        count = int(rows[0][0]) if rows else -1
        if count >= 0 and ((count <= wanted) if at_most else (count >= wanted)):
            return count
        time.sleep(0.05)
    return count


def _first_scale_after(world: World, wall: float, *, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in world.cluster_writes():
            if entry["path"].endswith("/order-service/scale") and entry["wall"] >= wall:
                return float(entry["wall"])
        time.sleep(0.05)
    return None


def _hostile_requests(api_url: str, credentials: LabCredentials) -> dict[str, int]:
    """Requests built to break the API; the status each got (all should be 4xx).

    Most carry a valid credential, so they reach the parsers they aim at; the last few
    try the door itself: no credential, a wrong one, and a sender's token on a verdict.
    """
    surrogate = (
        b'{"version":"4","status":"firing","receiver":"r","groupKey":"k","alerts":[{"status":'
        b'"firing","labels":{"alertname":"X","pod":"\\ud800"},"annotations":{},'
        b'"startsAt":"2026-01-01T00:00:00Z"}]}'
    )
    sender = {"content-type": "application/json", **credentials.header(credentials.sender)}
    approver = {"content-type": "application/json", **credentials.header(credentials.approver)}
    viewer = credentials.header(credentials.viewer)
    tries: dict[str, tuple[str, str, bytes, dict[str, str]]] = {
        "lone surrogate": ("POST", "/api/v1/alerts", surrogate, sender),
        "deep JSON approve": (
            "POST",
            "/api/v1/incidents/x/approve",
            b"[" * 200_000 + b"]" * 200_000,
            approver,
        ),
        "not JSON": ("POST", "/api/v1/alerts", b"{not json", sender),
        "wrong type": ("POST", "/api/v1/alerts", b"{}", {**sender, "content-type": "text/plain"}),
        "too large": ("POST", "/api/v1/alerts", b" " * (5 << 20), sender),
        "foreign Host": ("POST", "/api/v1/alerts", b"{}", {**sender, "host": "evil.test"}),
        "unknown incident": ("GET", "/api/v1/incidents/%00%ff", b"", viewer),
        "no credential": ("POST", "/api/v1/alerts", b"{}", {"content-type": "application/json"}),
        "wrong token": (
            "POST",
            "/api/v1/alerts",
            b"{}",
            {"content-type": "application/json", "authorization": "Bearer not-a-token"},
        ),
        "sender approves": ("POST", "/api/v1/incidents/x/approve", b"{}", sender),
    }
    answers = {}
    with httpx.Client(timeout=30.0) as client:
        for name, (method, path, body, headers) in tries.items():
            try:
                response = client.request(method, api_url + path, content=body, headers=headers)
                answers[name] = response.status_code
            except httpx.HTTPError:
                answers[name] = 0
    return answers


def _mount_tmpfs(path: Path, *, size: str) -> bool:
    result = subprocess.run(  # noqa: S603
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],  # noqa: S607
        check=False,
        capture_output=True,
    )
    return result.returncode == 0


def _fill(path: Path) -> None:
    """Write zeros until the file system is full."""
    chunk = b"\0" * (1 << 16)
    with path.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(chunk)
            out.flush()


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def random_delays(count: int, *, seed: int = 7, upto: float = 2.5) -> list[float]:
    """Seeded random kill moments (real seconds after the alert was taken)."""
    rng = random.Random(seed)
    return [rng.uniform(0.0, upto) for _ in range(count)]
