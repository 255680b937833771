"""The door every API request passes: who is calling, may they, not too often, on the record.

An ASGI middleware in front of the routes. In order, for every request but the health
checks (`OPEN_PATHS`):

1. authenticate the `Authorization` header (`auth.Authenticator`); unknown: 401;
2. find the role the route needs (`ROUTE_ROLES`; any other path needs a caller, no role, and
   then answers as the app does, usually 404); lacking it: 403 naming the role;
3. for write methods (and for failed authentication, which is how tokens are guessed),
   take one request from the caller's budget (by identity, or by address when unknown);
   empty: 429 with Retry-After;
4. hand the request on with the caller in `request.state.caller`;
5. after a write request is answered, record it (identity, roles, method, route, source
   address, status) through the `RequestLog` port, into the audit chain.

Refused requests are answered here, so no route code runs for them. A 429 is not recorded:
its whole point is to cost the controller nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from selfheal.api import ports
from selfheal.api.auth import Authenticator, AuthError, Caller, forbidden

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# (method, path pattern, role). The first match wins; a path matching none needs only an
# authenticated caller.
ROUTE_ROLES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), role)
    for method, pattern, role in (
        ("POST", r"^/api/v1/alerts$", "sender"),
        ("POST", r"^/api/v1/otlp/v1/metrics$", "sender"),
        ("POST", r"^/api/v1/write$", "sender"),
        ("POST", r"^/api/v1/incidents/[^/]+/(approve|deny)$", "approver"),
        ("POST", r"^/api/v1/guardrails/reset$", "admin"),
        ("GET", r"^/api/v1/incidents(/[^/]+(/audit)?)?$", "viewer"),
        ("GET", r"^/api/v1/audit$", "viewer"),
    )
)
# How many callers' budgets are remembered; the least recently seen are forgotten first.
_MAX_BUCKETS = 10_000


def role_for(method: str, path: str) -> str | None:
    """The role a request needs, or None when any authenticated caller may make it."""
    for route_method, pattern, role in ROUTE_ROLES:
        if method == route_method and pattern.match(path):
            return role
    return None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A caller's budget of write requests: `per_second` on average, `burst` at once."""

    per_second: float
    burst: int


class RateLimiter:
    """Token buckets per caller key; thread-safe."""

    def __init__(self, limit: RateLimit, *, now: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._now = now
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one request from `key`'s budget: 0.0 if allowed, else seconds to wait."""
        limit = self._limit
        with self._lock:
            now = self._now()
            tokens, last = self._buckets.pop(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - last) * limit.per_second)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / limit.per_second
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > _MAX_BUCKETS:
                self._buckets.popitem(last=False)
            return wait


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(
        self,
        app: Asgi,
        *,
        authenticator: Authenticator,
        limiter: RateLimiter,
        requests: ports.RequestLog | None,
    ) -> None:
        self._app = app
        self._auth = authenticator
        self._limiter = limiter
        self._requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        source = _source(scope)
        writing = method in WRITE_METHODS
        try:
            caller = await run_in_threadpool(self._auth.authenticate, _authorization(scope))
        except AuthError as refused:
            if await self._over_budget(f"address:{_host(scope)}", send):
                return
            await _refuse(send, refused)
            if writing:
                await self._record(None, method, path, source, refused.status)
            return
        role = role_for(method, path)
        if role is not None and not caller.holds(role):
            await _refuse(send, forbidden(caller, role))
            if writing:
                await self._record(caller, method, path, source, 403)
            return
        if writing and await self._over_budget(f"identity:{caller.identity}", send):
            return
        scope.setdefault("state", {})["caller"] = caller
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_noting_status)
        finally:
            if writing:
                await self._record(caller, method, path, source, status)

    async def _over_budget(self, key: str, send: Send) -> bool:
        wait = self._limiter.take(key)
        if wait <= 0:
            return False
        await _answer(
            send,
            429,
            {"error": "too many requests from this caller; retry later", "path": None},
            {"retry-after": str(max(1, math.ceil(wait)))},
        )
        return True

    async def _record(
        self, caller: Caller | None, method: str, path: str, source: str, status: int
    ) -> None:
        if self._requests is None:
            return
        try:
            await run_in_threadpool(
                functools.partial(
                    self._requests.record_request,
                    identity=None if caller is None else caller.identity,
                    roles=() if caller is None else tuple(sorted(caller.roles)),
                    method=method,
                    route=path,
                    source=source,
                    status=status,
                )
            )
        except Exception:
            log.exception(
                "could not record %s %s (status %d) in the audit chain", method, path, status
            )


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


def _host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _source(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


async def _refuse(send: Send, refused: AuthError) -> None:
    headers = {"www-authenticate": 'Bearer realm="selfheal"'} if refused.status == 401 else {}
    await _answer(send, refused.status, {"error": refused.message, "path": None}, headers)


async def _answer(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    content = json.dumps(body).encode("utf-8")
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode("ascii")),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})
