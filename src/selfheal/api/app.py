"""selfheal's HTTP API: the endpoints other tools push alerts and telemetry to.

    POST /api/v1/alerts             Alertmanager webhook (version 4)      -> AlertSink
    POST /api/v1/otlp/v1/metrics    OTLP/HTTP metrics, protobuf or JSON   -> SampleSink
    POST /api/v1/write              Prometheus remote-write 1.0           -> SampleSink
    POST /api/v1/incidents/{id}/approve|deny  a person's verdict          -> ApprovalDesk
    POST /api/v1/guardrails/reset   close an open circuit breaker          -> GuardrailDesk
    GET  /api/v1/incidents[?state=&open=&limit=]  the newest incidents    -> IncidentBook
    GET  /api/v1/incidents/{id}     one incident's whole story             -> IncidentBook
    GET  /api/v1/incidents/{id}/audit  its audit records                   -> IncidentBook
    GET  /api/v1/audit[?after=&limit=&kind=]  the audit chain in pages     -> IncidentBook
    GET  /healthz                   liveness
    GET  /readyz                    readiness: 503 while input cannot be stored -> Health

Every route but the two health checks needs a credential and a role (api.guard, docs/
security.md): sender for the receivers, viewer for reads, approver for verdicts, admin
for a breaker reset.

Every receiving route does the same four things in order, so a request is either taken
whole or refused with nothing ingested (safety invariant 5):

1. check the headers (a wrong Content-Type or Content-Encoding is 415) before reading;
2. read the body, at most `max_body_bytes + 1` bytes of it (over the limit is 413, also when
   the body only grows too large once decompressed);
3. parse it completely with `selfheal.telemetry.receivers` (malformed is 400 with
   `{"error": ..., "path": ...}`, the path naming the bad field);
4. hand the result to the sink in one call (a sink's `TemporaryError` is 503 + Retry-After).

Parsing and the sink run in a worker thread: both are synchronous, and a large OTLP batch
must not stall the event loop. The answers are what each sender expects: 200 for
Alertmanager, 204 for remote-write, 200 with an empty `ExportMetricsServiceResponse` in the
request's encoding for OTLP. A route whose sink is not configured does not exist (404).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
import zlib
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import fastapi
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from selfheal.api import openapi, ports
from selfheal.api.auth import Authenticator, Caller
from selfheal.api.guard import Guard, RateLimit, RateLimiter
from selfheal.domain.errors import ConfigError, TemporaryError
from selfheal.domain.identity import canonical_identity
from selfheal.domain.model import IncidentState
from selfheal.telemetry import receivers
from selfheal.telemetry.receivers import alertmanager, otlp, remote_write
from selfheal.telemetry.receivers.payload import load_json

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")

ALERTS_PATH = "/api/v1/alerts"
OTLP_METRICS_PATH = "/api/v1/otlp/v1/metrics"
REMOTE_WRITE_PATH = "/api/v1/write"
DEFAULT_MAX_BODY_BYTES = 4 << 20
# Write requests per caller: generous enough for Prometheus's remote-write shards and
# Alertmanager's retries, small enough that one caller cannot fill the audit chain.
DEFAULT_RATE_LIMIT = RateLimit(per_second=50.0, burst=500)

_JSON = "application/json"
_PROTOBUF = "application/x-protobuf"
# The only `proto=` parameter remote-write 1.0 may carry; 2.0's messages are another format.
_REMOTE_WRITE_PROTO = "prometheus.WriteRequest"
_REMOTE_WRITE_VERSION = "0.1."
# zlib window bits for each HTTP content coding the OTLP route accepts (the Collector's
# otlphttp exporter sends gzip unless told otherwise).
_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Refused(Exception):
    """A request refused before its sink saw it: the status and what to tell the sender."""

    def __init__(self, status: int, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.path = path


def create_app(
    *,
    alerts: ports.AlertSink,
    samples: ports.SampleSink | None = None,
    approvals: ports.ApprovalDesk | None = None,
    incidents: ports.IncidentBook | None = None,
    health: ports.Health | None = None,
    guardrails: ports.GuardrailDesk | None = None,
    authenticator: Authenticator,
    rate_limit: RateLimit = DEFAULT_RATE_LIMIT,
    requests: ports.RequestLog | None = None,
    allowed_hosts: Sequence[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    clock_now: Callable[[], float] | None = None,
) -> fastapi.FastAPI:
    """The API app; without `samples` or `approvals`, their routes are left out.

    Every route but `/healthz` and `/readyz` needs a credential `authenticator` accepts,
    and the role the route needs (`guard.ROUTE_ROLES`); write requests are limited per
    caller (`rate_limit`) and recorded through `requests`.
    `clock_now` stamps OTLP points that carry no time (default: the wall clock). With
    `allowed_hosts`, a request whose Host header names another host is refused (400): a
    page in a browser that rebinds its own domain to 127.0.0.1 cannot reach the API.
    """
    now = clock_now or time.time
    deltas = otlp.DeltaAccumulator()
    # No Swagger or ReDoc pages: they load scripts from a CDN, and the callers are machines.
    app = fastapi.FastAPI(title="selfheal", docs_url=None, redoc_url=None)
    app.state.delta_accumulator = deltas
    # The last middleware added is the outermost: the Host check runs before the guard.
    app.add_middleware(
        Guard, authenticator=authenticator, limiter=RateLimiter(rate_limit), requests=requests
    )
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> Response:
        log.warning("refused %s %s: %s %s", request.method, request.url.path, exc.status, exc)
        return JSONResponse({"error": exc.message, "path": exc.path}, status_code=exc.status)

    @app.exception_handler(TemporaryError)
    async def unavailable(request: Request, exc: TemporaryError) -> Response:
        log.warning("sink busy for %s: %s", request.url.path, exc)
        return JSONResponse(
            {"error": str(exc), "path": None},
            status_code=503,
            headers={"Retry-After": str(max(1, math.ceil(exc.delay)))},
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        if health is None:
            return JSONResponse({"ready": True, "reason": "ok"})
        found = health.readiness()
        return JSONResponse(
            {"ready": found.ready, "reason": found.reason, **found.details},
            status_code=200 if found.ready else 503,
        )

    @app.post(ALERTS_PATH, openapi_extra=openapi.ALERTS)
    async def receive_alerts(request: Request) -> Response:
        _require_media_type(request, {_JSON})
        _require_encoding(request, {"identity"})
        body = await _read_body(request, limit=max_body_bytes)
        batch = await _parse(alertmanager.parse_webhook, body)
        sender = _caller(request).identity
        batch = dataclasses.replace(
            batch, alerts=tuple(dataclasses.replace(a, sender=sender) for a in batch.alerts)
        )
        await run_in_threadpool(alerts.receive, batch)
        return JSONResponse({"status": "ok", "alerts": len(batch.alerts)})

    if approvals is not None:
        _approval_routes(app, approvals, max_body_bytes=max_body_bytes)
    if guardrails is not None:
        _guardrail_routes(app, guardrails, max_body_bytes=max_body_bytes)
    if incidents is not None:
        _incident_routes(app, incidents)
    if samples is None:
        return app
    sink = samples

    @app.post(OTLP_METRICS_PATH, openapi_extra=openapi.OTLP_METRICS)
    async def receive_otlp_metrics(request: Request) -> Response:
        media_type = _require_media_type(request, otlp.MEDIA_TYPES)
        encoding = _require_encoding(request, {"identity", *_ZLIB_WBITS})
        raw = await _read_body(request, limit=max_body_bytes)
        body = await run_in_threadpool(_decompress, raw, encoding=encoding, limit=max_body_bytes)
        parsed = await _parse(
            otlp.parse_metrics, body, content_type=media_type, deltas=deltas, now=now()
        )
        await _write(sink, parsed)
        return Response(otlp.empty_response(media_type), media_type=media_type)

    @app.post(REMOTE_WRITE_PATH, openapi_extra=openapi.REMOTE_WRITE)
    async def receive_remote_write(request: Request) -> Response:
        _require_remote_write_headers(request)
        body = await _read_body(request, limit=max_body_bytes)
        parsed = await _parse(
            remote_write.parse_write_request, body, max_decoded_bytes=max_body_bytes
        )
        await _write(sink, parsed)
        return Response(status_code=204)

    return app


def _approval_routes(
    app: fastapi.FastAPI, desk: ports.ApprovalDesk, *, max_body_bytes: int
) -> None:
    """POST /api/v1/incidents/{id}/approve|deny with {"reason": TEXT}.

    The verdict is the caller's: the identity comes from the credential, never the body.
    A body that names someone else (`as`, as older clients sent) is refused.
    """

    async def verdict(request: Request, incident_id: str, *, approve: bool) -> Response:
        _require_media_type(request, {_JSON})
        body = await _read_body(request, limit=max_body_bytes)
        document = await _parse(load_json, body, source="approval")
        if not isinstance(document, dict):
            raise _Refused(400, "expected an object", path="$")
        caller = _caller(request)
        who, reason = caller.identity, document.get("reason", "")
        named = document.get("as")
        if named is not None and (
            not isinstance(named, str) or canonical_identity(named) != canonical_identity(who)
        ):
            raise _Refused(
                400,
                f"a verdict is given as the credential's identity ({who}); drop `as`",
                path="$.as",
            )
        if not isinstance(reason, str):
            raise _Refused(400, "the reason must be a string", path="$.reason")
        source = f"api {caller.method} from {_client(request)}"
        try:
            await run_in_threadpool(
                functools.partial(
                    desk.give_verdict,
                    incident_id,
                    approve=approve,
                    by=who,
                    reason=reason,
                    source=source,
                )
            )
        except ConfigError as exc:
            raise _Refused(409, str(exc)) from exc
        word = "approved" if approve else "denied"
        return JSONResponse({"status": word, "incident": incident_id, "by": who})

    @app.post("/api/v1/incidents/{incident_id}/approve", openapi_extra=openapi.VERDICT)
    async def approve(request: Request, incident_id: str) -> Response:
        return await verdict(request, incident_id, approve=True)

    @app.post("/api/v1/incidents/{incident_id}/deny", openapi_extra=openapi.VERDICT)
    async def deny(request: Request, incident_id: str) -> Response:
        return await verdict(request, incident_id, approve=False)


def _guardrail_routes(
    app: fastapi.FastAPI, desk: ports.GuardrailDesk, *, max_body_bytes: int
) -> None:
    """POST /api/v1/guardrails/reset with {"runbook", "target": "NS/NAME", "reason"} (admin)."""

    @app.post("/api/v1/guardrails/reset", openapi_extra=openapi.BREAKER_RESET)
    async def reset_breaker(request: Request) -> Response:
        _require_media_type(request, {_JSON})
        body = await _read_body(request, limit=max_body_bytes)
        document = await _parse(load_json, body, source="breaker reset")
        if not isinstance(document, dict):
            raise _Refused(400, "expected an object", path="$")
        runbook, target = document.get("runbook"), document.get("target")
        reason = document.get("reason", "")
        if not isinstance(runbook, str) or not runbook:
            raise _Refused(400, "name the runbook whose breaker opened", path="$.runbook")
        namespace, _, name = target.partition("/") if isinstance(target, str) else ("", "", "")
        if not namespace or not name:
            raise _Refused(400, "give the target as NAMESPACE/NAME", path="$.target")
        if not isinstance(reason, str):
            raise _Refused(400, "the reason must be a string", path="$.reason")
        caller = _caller(request)
        try:
            outcome = await run_in_threadpool(
                functools.partial(
                    desk.reset_breaker,
                    runbook=runbook,
                    namespace=namespace,
                    name=name,
                    by=caller.identity,
                    reason=reason,
                    source=f"api {caller.method} from {_client(request)}",
                )
            )
        except ConfigError as exc:
            raise _Refused(409, str(exc)) from exc
        if not outcome["reset"]:
            raise _Refused(
                409,
                f"no circuit breaker is open for {runbook} on {target}: {outcome['failures']} "
                f"failure(s), it opens at {outcome['opens_at']}; nothing recorded",
            )
        return JSONResponse(
            {"status": "reset", "runbook": runbook, "target": target, "by": caller.identity}
        )


def _incident_routes(app: fastapi.FastAPI, book: ports.IncidentBook) -> None:
    """GET the incidents, one incident, its audit records, and the audit chain in pages."""
    states = sorted(state.value for state in IncidentState)

    @app.get("/api/v1/incidents", openapi_extra=openapi.incident_list(states))
    async def list_incidents(request: Request) -> Response:
        query = request.query_params
        wanted = query.getlist("state")
        for state in wanted:
            if state not in states:
                raise _Refused(
                    400,
                    f"state {state!r} is not one of {', '.join(states)}",
                    path="$.query.state",
                )
        limit = _bounded_int(query.get("limit"), default=50, low=1, high=1000, name="limit")
        open_only = _flag(query.get("open"), name="open")
        found = await run_in_threadpool(
            book.list_incidents, states=wanted or None, open_only=open_only, limit=limit
        )
        return JSONResponse({"incidents": found})

    @app.get("/api/v1/incidents/{incident_id}")
    async def show_incident(incident_id: str) -> Response:
        found = await run_in_threadpool(book.incident, incident_id)
        if found is None:
            raise _Refused(404, f"no incident {incident_id!r}")
        return JSONResponse(found)

    @app.get("/api/v1/incidents/{incident_id}/audit")
    async def incident_audit(incident_id: str) -> Response:
        found = await run_in_threadpool(book.incident_audit, incident_id)
        if found is None:
            raise _Refused(404, f"no incident {incident_id!r}")
        return JSONResponse({"records": found})

    @app.get("/api/v1/audit", openapi_extra=openapi.AUDIT_PAGE)
    async def audit_records(request: Request) -> Response:
        query = request.query_params
        after = _bounded_int(query.get("after"), default=0, low=0, high=2**62, name="after")
        limit = _bounded_int(query.get("limit"), default=100, low=1, high=1000, name="limit")
        kind = query.get("kind")
        found = await run_in_threadpool(book.audit, after=after, limit=limit, kind=kind)
        return JSONResponse({"records": found})


def _caller(request: Request) -> Caller:
    """The authenticated caller the guard put on the request."""
    caller = request.scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller):  # the guard runs before every route; never reached
        raise _Refused(401, "this route needs a credential")
    return caller


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"


def _bounded_int(text: str | None, *, default: int, low: int, high: int, name: str) -> int:
    if text is None:
        return default
    if not _is_decimal(text) or not low <= int(text) <= high:
        raise _Refused(
            400, f"{name} must be an integer from {low} to {high}", path=f"$.query.{name}"
        )
    return int(text)


def _is_decimal(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also holds for "²", which `int` cannot read."""
    return text.isascii() and text.isdigit()


def _flag(text: str | None, *, name: str) -> bool:
    if text is None:
        return False
    if text.lower() not in {"true", "false", "1", "0"}:
        raise _Refused(400, f"{name} must be true or false", path=f"$.query.{name}")
    return text.lower() in {"true", "1"}


async def _write(sink: ports.SampleSink, parsed: list[receivers.TimedSample]) -> None:
    """One call to the sink; a request with no samples (metadata only, say) makes none."""
    if parsed:
        await run_in_threadpool(sink.write, parsed)


async def _parse(parser: Callable[_P, _T], *args: _P.args, **options: _P.kwargs) -> _T:
    """Run a receiver's parser off the event loop; its errors become 413 or 400."""
    try:
        return await run_in_threadpool(parser, *args, **options)
    except receivers.PayloadTooLarge as exc:
        raise _Refused(413, str(exc), path=exc.path) from exc
    except receivers.PayloadError as exc:
        raise _Refused(400, str(exc), path=exc.path) from exc


def _require_media_type(request: Request, accepted: set[str] | frozenset[str]) -> str:
    media_type = otlp.media_type(request.headers.get("content-type", ""))
    if media_type not in accepted:
        raise _Refused(
            415,
            f"Content-Type {media_type or '(none)'!r} is not accepted here; "
            f"send {' or '.join(sorted(accepted))}",
        )
    return media_type


def _require_encoding(request: Request, accepted: set[str]) -> str:
    encoding = request.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding not in accepted:
        raise _Refused(
            415,
            f"Content-Encoding {encoding!r} is not accepted here; "
            f"send {' or '.join(sorted(accepted))}",
        )
    return encoding


def _require_remote_write_headers(request: Request) -> None:
    """Remote-write 1.0: snappy-encoded protobuf, version 0.1.x when the sender says one."""
    content_type = request.headers.get("content-type", "")
    _require_media_type(request, {_PROTOBUF})
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "proto" and value.strip('"') != _REMOTE_WRITE_PROTO:
            raise _Refused(
                415, f"{content_type!r}: only remote-write 1.0 (proto={_REMOTE_WRITE_PROTO})"
            )
    _require_encoding(request, {"snappy"})
    version = request.headers.get("x-prometheus-remote-write-version")
    if version is not None and not version.strip().startswith(_REMOTE_WRITE_VERSION):
        raise _Refused(
            415, f"X-Prometheus-Remote-Write-Version {version!r}: only 0.1.x (1.0) is accepted"
        )


async def _read_body(request: Request, *, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (nothing more is read)."""
    declared = request.headers.get("content-length", "")
    if _is_decimal(declared) and int(declared) > limit:
        raise _Refused(413, f"the body is {declared} bytes, over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, *, encoding: str, limit: int) -> bytes:
    """Undo gzip or deflate, refusing (413) output over `limit`: a zip bomb stops there."""
    if encoding == "identity":
        return body
    decoder = zlib.decompressobj(wbits=_ZLIB_WBITS[encoding])
    try:
        decoded = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Refused(400, f"the body is not valid {encoding} data: {exc}") from exc
    if len(decoded) > limit:
        raise _Refused(413, f"the body decompresses to over the limit of {limit} bytes")
    if not decoder.eof or decoder.unused_data:
        raise _Refused(400, f"the body is not one complete {encoding} stream")
    return decoded
