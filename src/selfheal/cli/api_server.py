"""selfheal's HTTP API served by uvicorn in a background thread, on a loopback port."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class ApiServer:
    """selfheal's HTTP API (the webhook receiver) served by uvicorn on a loopback port."""

    def __init__(self, app: Any, *, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
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
