"""selfheal's HTTP API served by uvicorn in a background thread."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """HTTPS: the server's certificate and key; with `client_ca`, callers need a certificate."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class ApiServer:
    """selfheal's HTTP API (the webhook receiver and the rest) served by uvicorn."""

    def __init__(
        self, app: Any, *, port: int, host: str = "127.0.0.1", tls: TlsFiles | None = None
    ) -> None:
        scheme = "https" if tls is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{port}"
        tls_options: dict[str, Any] = {}
        if tls is not None:
            tls_options = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
            if tls.client_ca is not None:
                tls_options |= {
                    "ssl_ca_certs": str(tls.client_ca),
                    "ssl_cert_reqs": ssl.CERT_REQUIRED,
                }
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            **tls_options,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="selfheal-api", daemon=True)

    def start(self, *, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
