"""A fault-injecting HTTP/1.1 reverse proxy in front of the Kubernetes API (the twin).

The fault harness puts it between a client (the official Python client, kubectl) and the twin
to make chosen calls answer 500 or 409, hang, or lose their connection, and so prove that the
controller survives what a real API server under stress does. Faults happen on the wire, not
in a mocked client, so the errors the client sees are the ones urllib3 and kubectl really raise
when a socket is reset or a read times out.

It speaks HTTP/1.1 itself on asyncio streams instead of being an ASGI app, because an ASGI
server can neither reset a connection nor hold one without answering; only the owner of the
socket can. Each connection is read request by request (keep-alive: urllib3 and Go pool their
connections), each request is matched against the rules, then broken, or forwarded with httpx
and its answer written back with a buffered Content-Length body. Watches and log follows are
refused with 501: the controller never watches, and buffering an endless stream would hang.

Rules form a chain. A request walks the rules in order; every rule whose method and path match
counts it, and the first whose window (`after`, `times`) is open takes it; later rules never
see a request an earlier one took. So `[500 once, reset once]` on one path answers the first
call with a 500, resets the second, and lets the rest through.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Self

import httpx

__all__ = ["FaultProxy", "FaultRule"]

_log = logging.getLogger(__name__)

_ACTIONS = frozenset({"status", "delay", "reset", "hang"})
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
)
_STATUS_REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
# The API server itself refuses request bodies over 3 MiB; this bound only stops a runaway client.
_MAX_BODY = 64 * 1024 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_STREAMING_QUERY = re.compile(r"(?:^|&)(?:watch|follow)=(?:true|1)(?:&|$)")
# The twin answers in milliseconds; streams, the only slow answers, are refused before forwarding.
_UPSTREAM_TIMEOUT_S = 30.0
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Which requests to break, how, and how many times."""

    path: str
    action: Literal["status", "delay", "reset", "hang"]
    method: str | None = None
    status: int = 500
    delay_s: float = 0.0
    times: int | None = 1
    after: int = 0

    def __post_init__(self) -> None:
        try:  # a bad pattern fails where the rule is written, not inside the proxy's thread
            re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"path {self.path!r} is not a regular expression: {exc}") from exc
        if self.action not in _ACTIONS:
            raise ValueError(f"action must be one of {sorted(_ACTIONS)}, got {self.action!r}")
        if not 400 <= self.status <= 599:
            raise ValueError(f"status must be an error code (400-599), got {self.status}")
        if self.delay_s < 0 or self.after < 0 or (self.times is not None and self.times < 0):
            raise ValueError("delay_s, after and times must not be negative")

    def matches(self, method: str, path: str) -> bool:
        method_ok = self.method is None or self.method.upper() == method.upper()
        return method_ok and re.search(self.path, path) is not None


@dataclass(slots=True)
class _Counted:
    rule: FaultRule
    seen: int = 0


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]

    def tokens(self, name: str) -> set[str]:
        return {t.strip().lower() for v in self.values(name) for t in v.split(",") if t.strip()}

    @property
    def keep_alive(self) -> bool:
        if self.version == "HTTP/1.0":
            return "keep-alive" in self.tokens("connection")
        return "close" not in self.tokens("connection")

    @property
    def streams(self) -> bool:
        query = self.target.partition("?")[2]
        return _STREAMING_QUERY.search(query) is not None or "/watch/" in self.path


class _BadRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FaultProxy:
    """Serves on a free loopback port, forwarding to `upstream` except where a rule breaks."""

    def __init__(self, upstream: str, *, rules: Sequence[FaultRule] = ()) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._rules = [_Counted(rule) for rule in rules]
        self._injected: list[dict[str, Any]] = []
        self._forwarded = 0
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fault proxy is not listening: call start() first")
        return f"http://127.0.0.1:{self._port}"

    @property
    def injected(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._injected]

    @property
    def forwarded(self) -> int:
        with self._lock:
            return self._forwarded

    def set_rules(self, rules: Sequence[FaultRule]) -> None:
        with self._lock:
            self._rules = [_Counted(rule) for rule in rules]

    def start(self) -> None:
        self._thread.start()
        if not self._listening.wait(_START_TIMEOUT_S) or self._port is None:
            raise RuntimeError(f"the fault proxy in front of {self.upstream} did not start")

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stopping.set)
        if self._thread.is_alive():
            self._thread.join(timeout=_START_TIMEOUT_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception:  # noqa: BLE001 - a thread has no caller to raise to; the log is it
            _log.exception("the fault proxy in front of %s stopped on an error", self.upstream)
        finally:
            self._listening.set()  # start() must not wait out its timeout for a dead thread

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        open_connections: set[asyncio.Task[None]] = set()
        async with (
            httpx.AsyncClient(trust_env=False) as client,
            asyncio.TaskGroup() as connections,
        ):

            def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                task = connections.create_task(self._connection(client, reader, writer))
                open_connections.add(task)
                task.add_done_callback(open_connections.discard)

            server = await asyncio.start_server(accept, host="127.0.0.1", port=0)
            self._port = int(server.sockets[0].getsockname()[1])
            self._listening.set()
            await self._stopping.wait()
            server.close()
            for task in open_connections:
                task.cancel()
            await server.wait_closed()

    async def _connection(
        self,
        client: httpx.AsyncClient,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            while await self._exchange(client, reader, writer):
                pass
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left mid-request or mid-answer: there is no one to answer
        except Exception:  # noqa: BLE001 - one connection's failure must not end the others
            _log.exception("the fault proxy failed on a connection")
        finally:
            writer.close()

    async def _exchange(
        self,
        client: httpx.AsyncClient,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request; return whether the connection may carry another."""
        try:
            request = await _read_request(reader, writer)
        except _BadRequestError as exc:
            await _send_plain(writer, exc.status, str(exc), keep_alive=False)
            return False
        if request is None:
            return False
        rule = self._take(request)
        if rule is None or rule.action == "delay":
            if rule is not None:
                await asyncio.sleep(rule.delay_s)
            return await self._forward(client, request, writer)
        if rule.action == "status":
            await _send_status(writer, rule.status, keep_alive=request.keep_alive)
            return request.keep_alive
        if rule.action == "hang":
            await asyncio.sleep(rule.delay_s)
        _reset(writer)
        return False

    def _take(self, request: _Request) -> FaultRule | None:
        """The rule that breaks this request, if any; records the fault it injects."""
        with self._lock:
            for counted in self._rules:
                rule = counted.rule
                if not rule.matches(request.method, request.path):
                    continue
                seen, counted.seen = counted.seen, counted.seen + 1
                if seen >= rule.after and (rule.times is None or seen < rule.after + rule.times):
                    entry: dict[str, Any] = {
                        "method": request.method,
                        "path": request.path,
                        "action": rule.action,
                    }
                    if rule.action == "status":
                        entry["status"] = rule.status
                    entry["at"] = time.time()
                    self._injected.append(entry)
                    return rule
        return None

    async def _forward(
        self, client: httpx.AsyncClient, request: _Request, writer: asyncio.StreamWriter
    ) -> bool:
        keep_alive = request.keep_alive
        if request.streams:
            message = "the fault proxy buffers answers, so it does not relay watches or follows"
            await _send_plain(writer, 501, message, keep_alive=keep_alive)
            return keep_alive
        dropped = _HOP_BY_HOP | request.tokens("connection") | {"host", "content-length", "expect"}
        outgoing = httpx.Request(
            request.method,
            self.upstream + request.target,
            headers=[
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers
                if not _hop_by_hop(name, dropped)
            ],
            content=request.body,
            extensions={"timeout": httpx.Timeout(_UPSTREAM_TIMEOUT_S).as_dict()},
        )
        try:
            response = await client.send(outgoing, stream=True)
            try:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            await _send_plain(
                writer, 504, f"{self.upstream} did not answer: {exc!r}", keep_alive=keep_alive
            )
            return keep_alive
        except httpx.HTTPError as exc:
            await _send_plain(
                writer, 502, f"cannot reach {self.upstream}: {exc!r}", keep_alive=keep_alive
            )
            return keep_alive
        with self._lock:
            self._forwarded += 1
        connection = {
            token.strip().lower()
            for value in response.headers.get_list("connection")
            for token in value.split(",")
        }
        # A HEAD or 304 answer announces the length of a body it does not carry: keep it.
        own_length = request.method != "HEAD" and response.status_code != 304
        headers = [
            (name, value)
            for name, value in response.headers.raw
            if not _hop_by_hop(name.decode("latin-1"), _HOP_BY_HOP | connection)
            and not (own_length and name.lower() == b"content-length")
        ]
        if own_length and response.status_code != 204:
            headers.append((b"Content-Length", str(len(body)).encode()))
        reason = response.reason_phrase or _phrase(response.status_code)
        await _write(writer, response.status_code, reason, headers, body, keep_alive=keep_alive)
        return keep_alive


def _hop_by_hop(name: str, dropped: frozenset[str] | set[str]) -> bool:
    lowered = name.lower()
    return lowered in dropped or lowered.startswith("proxy-")


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> _Request | None:
    """The next request on the connection, or None if the client closed it between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    except asyncio.LimitOverrunError as exc:
        raise _BadRequestError(431, "the request head is too large") from exc
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha():
        raise _BadRequestError(400, f"malformed request line {lines[0][:100]!r}")
    method, target, version = parts
    if version not in {"HTTP/1.1", "HTTP/1.0"}:
        raise _BadRequestError(505, f"{version[:20]!r} is not HTTP/1.1")
    if target.startswith(("http://", "https://")):  # absolute form, as sent to a proxy
        target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _BadRequestError(400, f"malformed header line {line[:100]!r}")
        headers.append((name, value.strip()))
    request = _Request(method.upper(), target, version, headers)
    if "100-continue" in request.tokens("expect"):
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return replace(request, body=await _read_body(reader, request))


async def _read_body(reader: asyncio.StreamReader, request: _Request) -> bytes:
    encodings = request.tokens("transfer-encoding")
    if encodings:
        if encodings != {"chunked"}:
            raise _BadRequestError(501, f"transfer encodings {sorted(encodings)} are unsupported")
        return await _read_chunked(reader)
    lengths = set(request.values("content-length"))
    if not lengths:
        return b""
    length = lengths.pop()
    if lengths or not length.isdigit():
        raise _BadRequestError(400, "the Content-Length header is malformed")
    if int(length) > _MAX_BODY:
        raise _BadRequestError(413, f"request bodies are limited to {_MAX_BODY} bytes")
    return await reader.readexactly(int(length))


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_text = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise _BadRequestError(400, f"malformed chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > _MAX_BODY:
            raise _BadRequestError(413, f"request bodies are limited to {_MAX_BODY} bytes")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _BadRequestError(400, "a chunk does not end with CRLF")
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailers: nothing upstream needs them
    return bytes(body)


async def _send_status(writer: asyncio.StreamWriter, status: int, *, keep_alive: bool) -> None:
    """Answer as the API server does when it fails: a Status object with the code's reason."""
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "injected fault",
            "reason": _STATUS_REASONS.get(status, "Unknown"),
            "code": status,
        }
    ).encode()
    headers = [(b"Content-Type", b"application/json"), (b"Content-Length", b"%d" % len(body))]
    await _write(writer, status, _phrase(status), headers, body, keep_alive=keep_alive)


async def _send_plain(
    writer: asyncio.StreamWriter, status: int, message: str, *, keep_alive: bool
) -> None:
    body = message.encode() + b"\n"
    headers = [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", b"%d" % len(body)),
    ]
    await _write(writer, status, _phrase(status), headers, body, keep_alive=keep_alive)


async def _write(
    writer: asyncio.StreamWriter,
    status: int,
    reason: str,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    *,
    keep_alive: bool,
) -> None:
    lines = [f"HTTP/1.1 {status} {reason}".encode("latin-1")]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Connection: keep-alive" if keep_alive else b"Connection: close")
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP reset, as a crashed or overloaded server would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # the client may already have gone
            # Linger on with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
