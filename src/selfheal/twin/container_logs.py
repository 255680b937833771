"""What the twin's containers print: a small ring of log lines per container.

Kubernetes keeps a container's log on its node, keeps the previous container's log beside
it after a restart (`kubectl logs --previous`), and drops both when the pod goes. The twin
does the same with bounded rings, filled from the model as things happen:

- the kubelet starting a container: start-up lines (image, CPU limit, port), then a
  readiness line once the start-up delay has passed;
- the traffic model, every `SUMMARY_EVERY_S` scenario seconds: a request summary per pod,
  a warning when the pod is throttled or slow, an error when requests time out (504) or
  fail because an upstream did (502);
- a crash: the container's last words, after which a new container starts a new log.

The model has no memory, so there is no OOMKilled to report. Every line is a plain function
of the model's state at a scenario time, so a run's logs are as deterministic as the run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from selfheal.twin import quantity

# 200 lines keep half an hour of summaries; at ~120 bytes a line, ~25 kB per container.
LINES_PER_CONTAINER = 200
SUMMARY_EVERY_S = 10.0
# Throttled in a quarter of the CFS periods is when latency starts to show it.
_THROTTLED_WARNING_SHARE = 0.25
# Counts are fractional in the fluid traffic model; below half a request, nothing happened.
_NOTHING = 0.5
# The port every scenario's pod template declares (simulation._pod_template).
_PORT = 8080


class LoggedPod(Protocol):
    """What the logs need to know of a pod (cluster_objects.Pod has it)."""

    @property
    def uid(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def image(self) -> str: ...

    @property
    def cpu_limit(self) -> float: ...

    @property
    def restarts(self) -> int: ...

    @property
    def started_at(self) -> float | None: ...


class RequestCounters(Protocol):
    """A container's cumulative request and CPU counters (simulation.PodTelemetry has them)."""

    @property
    def requests(self) -> dict[str, float]: ...

    @property
    def duration_sum(self) -> float: ...

    @property
    def duration_count(self) -> float: ...

    @property
    def throttled_periods(self) -> float: ...

    @property
    def periods(self) -> float: ...


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line: when (scenario seconds), its place in its container's log, and its text."""

    at: float
    sequence: int
    text: str


@dataclass
class ContainerLog:
    """The newest lines of one container's log; `written` counts every line ever written."""

    lines: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LINES_PER_CONTAINER))
    written: int = 0

    def append(self, *, at: float, text: str) -> None:
        self.lines.append(LogLine(at, self.written, text))
        self.written += 1

    def since(self, sequence: int) -> list[LogLine]:
        """Lines numbered `sequence` or later that the ring still holds."""
        return [line for line in self.lines if line.sequence >= sequence]


@dataclass(frozen=True, slots=True)
class _Window:
    """Cumulative counters at the last summary (or the container's start), and when."""

    since: float = 0.0
    ok: float = 0.0
    failed: float = 0.0
    timed_out: float = 0.0
    duration_sum: float = 0.0
    duration_count: float = 0.0
    throttled_periods: float = 0.0
    periods: float = 0.0


@dataclass
class _PodLogs:
    current: ContainerLog = field(default_factory=ContainerLog)
    previous: ContainerLog | None = None
    window: _Window = field(default_factory=_Window)
    # A container announces readiness once; a node coming back is not the app's news.
    announced_ready: bool = False


class ContainerLogs:
    """The logs of every container of the cluster, keyed by pod UID."""

    def __init__(self) -> None:
        self._pods: dict[str, _PodLogs] = {}

    def current(self, uid: str) -> ContainerLog | None:
        logs = self._pods.get(uid)
        return logs.current if logs else None

    def previous(self, uid: str) -> ContainerLog | None:
        logs = self._pods.get(uid)
        return logs.previous if logs else None

    def forget(self, uid: str) -> None:
        """The pod is gone, and its logs with it."""
        self._pods.pop(uid, None)

    def write(self, uid: str, *, at: float, text: str) -> None:
        self._of(uid, at=at).current.append(at=at, text=text)

    def _of(self, uid: str, *, at: float) -> _PodLogs:
        logs = self._pods.get(uid)
        if logs is None:
            logs = self._pods[uid] = _PodLogs(window=_Window(since=at))
        return logs

    # ---- what the kubelet sees ----------------------------------------------------------
    def started(self, pod: LoggedPod, *, at: float) -> None:
        restart = f" (restart {pod.restarts})" if pod.restarts else ""
        self.write(
            pod.uid,
            at=at,
            text=f"INFO  {pod.service} starting{restart}: image={pod.image} "
            f"cpu.limit={quantity.format_cpu(pod.cpu_limit)}",
        )
        self.write(pod.uid, at=at, text=f"INFO  listening on :{_PORT}")

    def ready(self, pod: LoggedPod, *, at: float) -> None:
        logs = self._of(pod.uid, at=at)
        if logs.announced_ready:
            return
        logs.announced_ready = True
        warm_up = at - (pod.started_at if pod.started_at is not None else at)
        logs.current.append(at=at, text=f"INFO  warm-up done after {warm_up:.0f}s, ready to serve")

    def crashed(self, pod: LoggedPod, *, at: float) -> None:
        """The running container dies; a new one (`pod.restarts` already counted) starts."""
        self.write(pod.uid, at=at, text="ERROR unhandled error in request worker: shutting down")
        self.write(pod.uid, at=at, text="FATAL exiting with status 1")
        logs = self._pods[pod.uid]
        # The new container's counters start from zero, as its telemetry's do.
        self._pods[pod.uid] = _PodLogs(previous=logs.current, window=_Window(since=at))
        self.started(pod, at=at)

    # ---- what the traffic model sees ----------------------------------------------------
    def summarize(
        self,
        pod: LoggedPod,
        *,
        at: float,
        counters: RequestCounters,
        latency_target: float,
        failing_upstream: str | None,
    ) -> None:
        """Log what the pod served since its last summary, and what went wrong."""
        logs = self._of(pod.uid, at=pod.started_at if pod.started_at is not None else at)
        now = _Window(
            since=at,
            ok=counters.requests.get("200", 0.0),
            failed=counters.requests.get("502", 0.0),
            timed_out=counters.requests.get("504", 0.0),
            duration_sum=counters.duration_sum,
            duration_count=counters.duration_count,
            throttled_periods=counters.throttled_periods,
            periods=counters.periods,
        )
        before = logs.window
        if now.duration_count < before.duration_count:
            before = _Window(since=before.since)
        logs.window = now
        count = now.duration_count - before.duration_count
        if count < _NOTHING:
            return
        ok, failed = now.ok - before.ok, now.failed - before.failed
        timed_out = now.timed_out - before.timed_out
        mean_ms = 1000 * (now.duration_sum - before.duration_sum) / count
        periods = now.periods - before.periods
        throttled = (now.throttled_periods - before.throttled_periods) / periods if periods else 0
        current = logs.current
        current.append(
            at=at,
            text=f"INFO  served {count:.0f} requests in the last {at - before.since:.0f}s: "
            f"{ok:.0f} ok, {failed + timed_out:.0f} errors, mean latency {mean_ms:.0f} ms",
        )
        if throttled >= _THROTTLED_WARNING_SHARE:
            current.append(
                at=at,
                text=f"WARN  CPU throttled in {throttled:.0%} of scheduler periods at limit "
                f"{quantity.format_cpu(pod.cpu_limit)}: requests are queueing",
            )
        if mean_ms > 1000 * latency_target:
            current.append(
                at=at,
                text=f"WARN  slow responses: mean latency {mean_ms:.0f} ms is over the "
                f"{1000 * latency_target:.0f} ms target",
            )
        if timed_out >= _NOTHING:
            current.append(
                at=at,
                text=f"ERROR {timed_out:.0f} requests timed out waiting in the queue "
                "(504 Gateway Timeout)",
            )
        if failed >= _NOTHING:
            upstream = failing_upstream or "upstream"
            current.append(
                at=at,
                text=f"ERROR {failed:.0f} requests failed: {upstream} answered with errors "
                "(502 Bad Gateway)",
            )
