"""`selfheal demo --stack prometheus`: the flash sale with real Prometheus and Alertmanager.

The twin runs at real speed. Prometheus scrapes its /metrics and evaluates the example
rules; Alertmanager routes the alerts to selfheal's webhook; selfheal scales through the
twin's Kubernetes API and verifies through Prometheus' query API. The run stops once the
first remediation has finished, and reports how long each hop took.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfheal.api import access
from selfheal.api.app import create_app
from selfheal.cli import loop, stack
from selfheal.cli.api_server import ApiServer
from selfheal.runtime.settings import (
    AlertSettings,
    AnomalySettings,
    ApiSettings,
    SourceSettings,
    TelemetrySettings,
    load_settings,
)
from selfheal.twin import server


def run_stack_demo(
    *,
    config: Path | None,
    scenario_name: str | None,
    state_dir: Path | None,
    on_event: loop.ProgressCallback | None = None,
    settle_after_s: float = 5.0,
) -> dict[str, Any]:
    """Run the flash sale through the real stack until the first remediation is over."""
    started = time.perf_counter()
    settings = load_settings(config or loop.find_default_config())
    state_dir = state_dir or Path(tempfile.mkdtemp(prefix="selfheal-stack-demo-"))
    workdir = stack.workdir()
    twin_port, api_port = server.free_port(), server.free_port()
    twin_url, api_url = f"http://127.0.0.1:{twin_port}", f"http://127.0.0.1:{api_port}"
    # The API's local token (made in the state directory) is Alertmanager's credential.
    access.local_token(state_dir)
    token_file = state_dir / access.LOCAL_TOKEN_FILE
    with (
        stack.start_alertmanager(
            webhook_url=f"{api_url}/api/v1/alerts", workdir=workdir, token_file=token_file
        ) as alertmanager,
        stack.start_prometheus(
            targets=[f"{twin_url}/metrics"],
            rule_files=[settings.path(p) for p in settings.rules],
            workdir=workdir,
            alertmanager_url=alertmanager.url,
        ) as prometheus,
    ):
        stacked = settings.model_copy(
            update={
                "telemetry": TelemetrySettings(
                    source=SourceSettings(kind="prometheus", url=prometheus.url),
                    evaluation_interval=settings.telemetry.evaluation_interval,
                ),
                "alerts": AlertSettings(source="alertmanager"),
                "api": ApiSettings(listen=f"127.0.0.1:{api_port}"),
                "state_dir": state_dir,
                # This demo measures the Prometheus -> Alertmanager -> webhook path; an
                # anomaly watch firing first would remediate without it.
                "anomalies": AnomalySettings(),
            }
        )
        run = loop.prepare_embedded(
            stacked, scenario_name=scenario_name, speed=1.0, state_dir=state_dir, port=twin_port
        )
        api = ApiServer(
            create_app(
                alerts=run.controller,
                approvals=run.controller,
                incidents=run.controller.incident_book,
                authenticator=access.authenticator_for(stacked),
                requests=run.controller.request_journal,
            ),
            port=api_port,
        )
        api.start()
        run.twin_server.start()
        finished = _first_remediation_over(run, settle_after_s)
        try:
            asyncio.run(
                loop.run_until(
                    run, duration=run.scenario.duration, on_event=on_event, done=finished
                )
            )
        finally:
            run.twin_server.stop()
            api.stop()
        result = loop.demo_report(run, state_dir=state_dir, started=started)
        run.controller.close()
    result["stack"] = {
        "prometheus": prometheus.url,
        "alertmanager": alertmanager.url,
        "api": api_url,
        "workdir": str(workdir),
    }
    result["latencies"] = [
        _latencies(item) for item in result["incidents"] if item["workflow_id"] is not None
    ]
    return result


def _first_remediation_over(run: loop.EmbeddedRun, settle: float) -> Callable[[], bool]:
    over_at: list[float] = []

    def done() -> bool:
        if not over_at and any(
            record.kind == "workflow.finished" for record in run.controller.store.audit.records()
        ):
            over_at.append(time.monotonic())
        return bool(over_at) and time.monotonic() - over_at[0] >= settle

    return done


def _latencies(item: dict[str, Any]) -> dict[str, Any]:
    def between(start: str, end: str) -> float | None:
        if item.get(start) is None or item.get(end) is None:
            return None
        return round(float(item[end]) - float(item[start]), 3)

    return {
        "alert": item["alert"],
        "onset_to_webhook_s": between("onset_s", "detected_s"),
        "webhook_to_scale_s": between("detected_s", "action_s"),
        "scale_to_verified_s": between("action_s", "verified_s"),
    }
