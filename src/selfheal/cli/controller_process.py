"""`selfheal run`: the controller as a long-running process, until SIGTERM or Ctrl-C.

It starts the built-in twin when the config has a `twin:` section (else it acts on the
cluster the kubeconfig names), serves the API when the config has an `api:` section, and
logs what the controller does as it happens: each audit record worth telling becomes a log
line (cli/logs.py), so an operator sees incidents open, decisions, steps and pages without
opening the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import pydantic

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.cli import logs
from selfheal.cli.api_server import TlsFiles
from selfheal.cli.loop import prepare_embedded
from selfheal.domain.errors import ConfigError, SelfhealError, TemporaryError
from selfheal.runtime import state_clock
from selfheal.runtime.controller import Controller
from selfheal.runtime.coordinator import FENCED_EXIT_CODE
from selfheal.runtime.settings import ApiSettings, Settings, load_settings
from selfheal.telemetry.scrape import Target
from selfheal.twin import server

_log = logging.getLogger("selfheal")

# Real seconds between looks at the audit chain for new events to log.
_TELL_EVERY_S = 0.2
# Between full pages of records when the log is behind (real seconds).
_BEHIND_PAUSE_S = 0.1


def run_forever(
    *,
    config: Path,
    state_dir: Path | None,
    replica_id: str | None = None,
    api_listen: str | None = None,
) -> int:
    """Run the controller until SIGTERM or SIGINT; shut down cleanly. The exit code.

    3 when the replica was fenced (another took its work over while it was silent): it
    must not act any more, and a supervisor restarting it gives it a fresh start.
    """
    settings = overridden(
        load_settings(config), state_dir=state_dir, replica_id=replica_id, api_listen=api_listen
    )
    # The API's door is checked before anything starts: a bad token file or a bind beyond
    # loopback without authentication refuses the start.
    authenticator = _api_authenticator(settings)
    twin_server: server.TwinServer | None = None
    if settings.twin is not None:
        embedded = prepare_embedded(settings, scenario_name=None, speed=None, state_dir=None)
        controller = embedded.controller
        twin_server = embedded.twin_server
        twin_server.start()
        _log.info(
            "built-in twin (%s at %gx) on %s",
            embedded.scenario.name,
            embedded.clock.speed,
            twin_server.url,
        )
    else:
        controller = _controller_for_cluster(settings)
    api = None
    try:
        api = _start_api(settings, controller, authenticator)
        if api is not None:
            _log.info("API (webhooks, receivers, incidents) on %s", api.url)
        _log.info("controller running; state in %s", controller.state_dir)
        asyncio.run(_run_with_signals(controller))
    finally:
        if api is not None:
            api.stop()
        if twin_server is not None:
            twin_server.stop()
        controller.close()
    if controller.coordinator.fenced:
        _log.error("controller stopped: fenced by the other replicas")
        return FENCED_EXIT_CODE
    _log.info("controller stopped")
    return 0


def overridden(
    settings: Settings,
    *,
    state_dir: Path | None,
    replica_id: str | None,
    api_listen: str | None,
) -> Settings:
    """The settings with the command line's overrides, validated as the file's values are."""
    update: dict[str, Any] = {}
    if state_dir is not None:
        update["state_dir"] = state_dir.resolve()
    if replica_id is not None:
        update["replica"] = {**settings.replica.model_dump(), "id": replica_id}
    if api_listen is not None:
        update["api"] = {**(settings.api or ApiSettings()).model_dump(), "listen": api_listen}
    if not update:
        return settings
    try:
        return Settings.model_validate({**settings.model_dump(), **update})
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"--{where.replace('_', '-')}: {error['msg']}") from exc


def _controller_for_cluster(settings: Settings) -> Controller:
    # The cluster's configuration first: a kubeconfig or a service account that cannot be
    # used refuses the start before the state directory is made.
    kubeconfig = settings.path(settings.cluster.kubeconfig) if settings.cluster.kubeconfig else None
    cluster = KubernetesCluster(kubeconfig=kubeconfig, in_cluster=settings.cluster.in_cluster)
    if cluster.namespace is not None:
        _log.info(
            "in-cluster: Kubernetes API at %s as a service account of namespace %s",
            cluster.host,
            cluster.namespace,
        )
    state_dir = settings.path(settings.state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create state_dir {state_dir}: {exc.strerror}") from exc
    clock = state_clock.anchored_clock(state_dir, speed=settings.clock_speed)
    targets = [Target(url=t.url, job=t.job) for t in settings.telemetry.targets]
    return Controller(settings, clock=clock, cluster=cluster, targets=targets)


def _api_authenticator(settings: Settings) -> Any:
    """The API's Authenticator when the config has an `api` section (else None)."""
    if settings.api is None:
        return None
    from selfheal.api import access  # noqa: PLC0415 - only with an `api` section

    access.check_bind(settings.api)
    return access.authenticator_for(settings)


def _start_api(settings: Settings, controller: Controller, authenticator: Any) -> Any:
    """Serve the webhook, receivers and incident routes when the config has an `api` section."""
    if settings.api is None:
        return None
    from selfheal.api.app import create_app  # noqa: PLC0415 - only with an `api` section
    from selfheal.api.guard import RateLimit  # noqa: PLC0415
    from selfheal.cli.api_server import ApiServer  # noqa: PLC0415 - with an `api` section

    host, _, port = settings.api.listen.rpartition(":")
    limit = settings.api.rate_limit
    api = ApiServer(
        create_app(
            alerts=controller,
            samples=controller.telemetry,
            approvals=controller,
            incidents=controller.incident_book,
            health=controller.health,
            guardrails=controller,
            authenticator=authenticator,
            rate_limit=RateLimit(per_second=limit.per_second, burst=limit.burst),
            requests=controller.request_journal,
            allowed_hosts=settings.api.hosts(),
        ),
        host=host.strip("[]"),
        port=int(port) or server.free_port(),
        tls=None
        if settings.api.tls is None
        else TlsFiles(
            cert=settings.path(settings.api.tls.cert_file),
            key=settings.path(settings.api.tls.key_file),
            client_ca=None
            if settings.api.tls.client_ca_file is None
            else settings.path(settings.api.tls.client_ca_file),
        ),
    )
    api.start()
    return api


async def _run_with_signals(controller: Controller) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def run_then_stop() -> None:
        try:
            await controller.run(stop)
        finally:
            stop.set()  # the loop may end by itself (fenced): the event log ends with it

    async with asyncio.TaskGroup() as group:
        group.create_task(_tell_events(controller, stop))
        group.create_task(run_then_stop())


async def _tell_events(controller: Controller, stop: asyncio.Event) -> None:
    """Log each new audit record as it lands, until `stop`; then the last ones.

    Replicas share one audit chain: only the holder of the loop lease tells it, so the
    team's log says each thing once (the others keep their place in it, to take over).
    """
    after: int | None = None
    while True:
        stopping = stop.is_set()
        try:
            if after is None:
                last = await asyncio.to_thread(controller.store.audit.last)
                after = 0 if last is None else last.seq
            records = await asyncio.to_thread(
                controller.store.audit.records, after=after, limit=1000
            )
        except SelfhealError as exc:
            # The store is away, busy or cut us off: the loop reports it (/readyz); the log
            # catches up. Telling events is a courtesy and must never stop the controller.
            level = logging.DEBUG if isinstance(exc, TemporaryError) else logging.WARNING
            _log.log(level, "cannot read the audit chain for the log now: %s", exc)
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            continue
        telling = controller.coordinator.leader
        for record in records:
            after = record.seq
            if not telling:
                continue
            logs.log_event(
                kind=record.kind, subject=record.subject, payload=dict(record.payload), at=record.at
            )
        if stopping and not records:
            return
        # Nothing new: look again shortly. Behind (a storm writes thousands of records a
        # second): a pause between pages all the same, so telling yields the GIL to the
        # intake and the decisions it would otherwise compete with; the log catches up.
        pause = _TELL_EVERY_S if not records else _BEHIND_PAUSE_S
        if not stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
