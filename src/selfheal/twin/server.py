"""Serving the twin: the model kept in step with a clock, behind one HTTP port.

One port serves the Kubernetes API subset and `/metrics`, as a real cluster's API server and
a scrape target would, so selfheal reaches the twin only over the wire and the same code can
later talk to a real cluster. `TwinServer` runs uvicorn in a background thread for tests and
for the demo; `selfheal twin` runs it in the foreground.

Plain HTTP by default. For tests of how a client reaches a real API server (in a pod: HTTPS
checked against the cluster's CA, a service-account bearer token), `TwinServer` also serves
HTTPS with a given certificate and key, and can require a bearer token (`access.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from selfheal.domain.time import ScaledClock, ScenarioClock
from selfheal.twin import exposition
from selfheal.twin.access import BearerTokenCheck
from selfheal.twin.kube.api import KubeApi
from selfheal.twin.scenario import Scenario
from selfheal.twin.simulation import Simulation

# How often, in real seconds, the model is brought up to date when nobody is asking.
_TICK_INTERVAL_S = 0.1
_EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Twin:
    """A simulation driven by a scaled clock: `sync()` runs it up to the clock's time."""

    def __init__(self, scenario: Scenario, *, clock: ScenarioClock) -> None:
        self.clock = clock
        self.simulation = Simulation(scenario, epoch=clock.epoch)

    def sync(self) -> None:
        self.simulation.advance_to(self.clock.elapsed())


_MAX_LOGGED_BODY = 4096
_REQUEST_LOG_SIZE = 10_000


class RequestLog:
    """An ASGI middleware that records every request that may change the cluster.

    Tests and demos read it (`GET /twin/requests`) to prove what a controller did: that a
    crash and a resume still sent exactly one scale, for instance.
    """

    def __init__(self, app: Any, twin: Twin) -> None:
        self.app = app
        self.twin = twin
        self.entries: deque[dict[str, Any]] = deque(maxlen=_REQUEST_LOG_SIZE)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        status: dict[str, int] = {}

        async def receive_and_keep() -> Any:
            message = await receive()
            if message["type"] == "http.request" and len(body) < _MAX_LOGGED_BODY:
                body.extend(message.get("body", b"")[: _MAX_LOGGED_BODY - len(body)])
            return message

        async def send_and_note(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive_and_keep, send_and_note)
        self.entries.append(
            {
                "at_s": round(self.twin.simulation.elapsed, 3),
                "wall": time.time(),
                "method": scope["method"],
                "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1"),
                "status": status.get("code"),
                "body": body.decode("utf-8", "replace"),
            }
        )


def create_app(twin: Twin) -> RequestLog:
    """The ASGI app: Kubernetes API, `/metrics`, `/healthz`, a model ticker, a request log."""
    kube = KubeApi(twin)

    async def metrics(_request: Request) -> Response:
        twin.sync()
        return PlainTextResponse(exposition.render(twin.simulation), media_type=_EXPOSITION_TYPE)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def scenario_status(_request: Request) -> Response:
        twin.sync()
        simulation = twin.simulation
        return JSONResponse(
            {
                "scenario": simulation.scenario.name,
                "elapsed_s": simulation.elapsed,
                "speed": twin.clock.speed,
                "load_factor": simulation.load_factor,
                "services": {
                    name: {
                        "rps": tick.rps,
                        "p95_s": tick.p95,
                        "error_ratio": tick.error_ratio,
                        "ready_pods": tick.ready_pods,
                    }
                    for name, tick in simulation.service_ticks.items()
                },
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async def keep_in_step() -> None:
            while True:
                twin.sync()
                await asyncio.sleep(_TICK_INTERVAL_S)

        ticker = asyncio.create_task(keep_in_step())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def requests_log(_request: Request) -> Response:
        return JSONResponse(list(log.entries))

    routes = [
        Route("/twin/requests", requests_log, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", healthz, methods=["GET"]),
        Route("/livez", healthz, methods=["GET"]),
        Route("/twin/status", scenario_status, methods=["GET"]),
        *kube.routes(),
    ]
    log = RequestLog(Starlette(routes=routes, lifespan=lifespan), twin)
    return log


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A PEM server certificate (chain) and its private key: the twin then serves HTTPS."""

    certificate: Path
    key: Path


class TwinServer:
    """The twin served by uvicorn on 127.0.0.1 in a background thread.

    With `tls`, over HTTPS; with `expected_token`, its Kubernetes API answers only requests
    bearing that token (settable while it runs, as a rotated token changes).
    """

    def __init__(
        self,
        twin: Twin,
        *,
        port: int = 0,
        tls: TlsFiles | None = None,
        expected_token: str | None = None,
    ) -> None:
        self.twin = twin
        self.port = port or free_port()
        self.tls = tls
        self.expected_token = expected_token
        self.request_log = create_app(twin)
        app: ASGIApp = BearerTokenCheck(self.request_log, expected=lambda: self.expected_token)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Open watch streams must not hold up a stop for minutes.
            timeout_graceful_shutdown=2,
            ssl_certfile=str(tls.certificate) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="twin-server", daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the twin did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serving(scenario: Scenario, *, speed: float, port: int = 0) -> Iterator[TwinServer]:
    """Run a scenario's twin on loopback for the duration of a `with` block."""
    server = TwinServer(Twin(scenario, clock=ScaledClock(speed=speed)), port=port)
    with server:
        yield server


def kubeconfig(
    url: str,
    *,
    namespace: str,
    token: str = "selfheal-twin",  # noqa: S107 - the twin takes any token unless told one
    certificate_authority: Path | None = None,
) -> dict[str, Any]:
    """A kubeconfig that points kubectl and the clients at the twin.

    For a twin served over HTTPS, `certificate_authority` is the CA file its certificate is
    checked against.
    """
    cluster: dict[str, Any] = {"server": url}
    if certificate_authority is not None:
        cluster["certificate-authority"] = str(certificate_authority)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "selfheal-twin", "cluster": cluster}],
        "users": [{"name": "selfheal-twin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "selfheal-twin",
                "context": {
                    "cluster": "selfheal-twin",
                    "user": "selfheal-twin",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "selfheal-twin",
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str, *, namespace: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(kubeconfig(url, namespace=namespace), sort_keys=False), encoding="utf-8"
    )
    return path
