"""Who may call the twin's Kubernetes API: an optional bearer-token check.

A real API server refuses a request without valid credentials (401); by default the twin
takes every request, which is what demos and most tests want. A test of a client's
credentials (the in-cluster service-account token, its rotation) gives the twin the token it
expects: then every request to the Kubernetes API (`/api...`, `/apis...`) must carry
`Authorization: Bearer <token>`, or it is answered as the API server answers it, a 401
Status. The expected token can change while the twin runs, as a rotated token does.

`/metrics`, the health endpoints and the twin's own `/twin/...` routes stay open: they are
not the Kubernetes API, and telemetry scrapes them without credentials.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from selfheal.twin.kube.errors import ApiError

_API_PREFIXES = ("/api/", "/apis/")
_BEARER = b"bearer "


class BearerTokenCheck:
    """ASGI middleware: with an expected token, the Kubernetes API answers only its bearer."""

    def __init__(self, app: Any, *, expected: Callable[[], str | None]) -> None:
        self.app = app
        self._expected = expected

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        expected = self._expected()
        if expected is None or scope["type"] != "http" or not _is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is not None and hmac.compare_digest(token, expected.encode()):
            await self.app(scope, receive, send)
            return
        refusal = ApiError(401, "Unauthorized", "Unauthorized").response()
        await refusal(scope, receive, send)


def _is_api(path: str) -> bool:
    return path in {"/api", "/apis"} or path.startswith(_API_PREFIXES)


def _bearer(scope: Any) -> bytes | None:
    """The token of the request's `Authorization: Bearer` header, if it has one."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization" and value[: len(_BEARER)].lower() == _BEARER:
            token: bytes = value[len(_BEARER) :].strip()
            return token
    return None
