"""An Alertmanager stand-in: webhook notifications (payload version 4) with its retries.

Alertmanager retries a notification that got a 5xx or no answer, with backoff; a 2xx means
the receiver took every alert in it. The sender keeps what it was told: every alert of an
acknowledged notification is one the controller must account for, whatever happens to it
afterwards (a `kill -9` a millisecond later included).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

ALERTS_PATH = "/api/v1/alerts"


def alert(
    name: str,
    labels: Mapping[str, str],
    *,
    starts_at: float,
    summary: str = "",
    resolved: bool = False,
) -> dict[str, Any]:
    """One element of a webhook's `alerts`, as Alertmanager writes it."""
    return {
        "status": "resolved" if resolved else "firing",
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": summary} if summary else {},
        "startsAt": _rfc3339(starts_at),
        "endsAt": _rfc3339(starts_at + 60) if resolved else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": "",
    }


def notification(alerts: Sequence[Mapping[str, Any]], *, group: str = "{}") -> dict[str, Any]:
    """A whole webhook body around some alerts."""
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "selfheal",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": list(alerts),
    }


@dataclass
class Sent:
    """What the sender was told: acknowledged alerts, refusals, and each request's latency."""

    acked: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0  # answers asking for a retry (503, 429), each retried
    failed: int = 0  # notifications given up on after the last retry
    latencies_s: list[float] = field(default_factory=list)


class AlertSender:
    """Posts notifications to a selfheal API the way Alertmanager does, retrying."""

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        attempts: int = 10,
        timeout: float = 10.0,
        sent: Sent | None = None,
        token: str | None = None,
    ) -> None:
        # Several URLs (replicas behind a load balancer): each attempt goes to the next, so
        # a retry after a refusal or a dead replica reaches another one.
        urls = [url] if isinstance(url, str) else list(url)
        self._urls = [each.rstrip("/") + ALERTS_PATH for each in urls]
        self._turn = -1  # the first attempt goes to the first URL
        self._attempts = attempts
        # Alertmanager's `http_config.authorization`: the same bearer token on every request.
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self.sent = sent or Sent()

    def close(self) -> None:
        self._client.close()

    def send(self, alerts: Sequence[Mapping[str, Any]], *, group: str = "{}") -> bool:
        """Post one notification until it is taken or the attempts run out; True if taken."""
        body = notification(alerts, group=group)
        pause = 0.1
        for _ in range(self._attempts):
            began = time.monotonic()
            self._turn += 1
            url = self._urls[self._turn % len(self._urls)]
            try:
                response = self._client.post(url, json=body)
            except httpx.HTTPError:
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            self.sent.latencies_s.append(time.monotonic() - began)
            if response.status_code == 200:
                self.sent.acked.extend(dict(item) for item in alerts)
                return True
            if response.status_code in {429, 503} or response.status_code >= 500:
                self.sent.refused += 1
                retry_after = response.headers.get("retry-after", "")
                wait = float(retry_after) if retry_after.isdigit() else pause
                time.sleep(min(wait, 2.0))
                pause = min(pause * 2, 2.0)
                continue
            break  # a 4xx: the notification itself is wrong; Alertmanager drops it too
        self.sent.failed += 1
        return False


def _rfc3339(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
