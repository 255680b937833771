"""The `pods/log` subresource: a container's log as plain text, as the kubelet serves it.

`kubectl logs POD` (and `deployment/NAME`, which picks one of its pods) asks for
`GET /api/v1/namespaces/NS/pods/NAME/log?container=C`, adding `tailLines`, `timestamps`,
`previous`, `sinceSeconds` or `sinceTime`, `limitBytes` and `follow` from its flags, and
prints the body as it arrives. The answer is `text/plain`, not JSON. Failures are Status
objects with the codes a real API server gives, since kubectl prints them as they come:
404 for an unknown pod, 400 for an unknown container, a container still waiting to start,
or `--previous` without a previous container, 422 for an option out of range. A pod not yet
bound to a node has an empty log, as on a real cluster.

The lines themselves come from the model (container_logs.py).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response, StreamingResponse

from selfheal.twin.cluster import Cluster
from selfheal.twin.cluster_objects import Pod
from selfheal.twin.container_logs import ContainerLog, LogLine
from selfheal.twin.kube import errors, validation

_MEDIA_TYPE = "text/plain"
_FOLLOW_POLL_S = 0.2
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"", "0", "f", "F", "false", "FALSE", "False"}


@dataclass(frozen=True, slots=True)
class LogOptions:
    """The query of one log request, checked (PodLogOptions in Kubernetes)."""

    container: str
    follow: bool
    previous: bool
    timestamps: bool
    tail_lines: int | None
    # Scenario seconds: lines written at or after this time.
    since: float | None
    limit_bytes: int | None


def respond(
    *,
    cluster: Cluster,
    pod: Pod,
    rendered: dict[str, Any],
    query: Mapping[str, str],
    refresh: Callable[[], None],
    now: float,
) -> Response:
    """The log the query asks for; `refresh` brings the model up to date while following."""
    options = parse_options(query, pod=rendered, epoch=cluster.epoch, now=now)
    # The model runs the template's first container; one added beside it prints nothing.
    modelled = rendered["spec"]["containers"][0]["name"]
    if options.container != modelled or pod.node is None:
        # An unbound pod has no log yet, as on a real cluster.
        return Response(b"", media_type=_MEDIA_TYPE)
    log = _container_log(cluster, pod, options)
    lines = select(log.lines, options)
    body = render(lines, options=options, epoch=cluster.epoch)
    if not options.follow:
        return Response(body, media_type=_MEDIA_TYPE)

    def still_writing() -> ContainerLog | None:
        refresh()
        live = cluster.pods.get(pod.name)
        if live is None or live.uid != pod.uid or cluster.logs.current(pod.uid) is not log:
            return None
        return log

    return StreamingResponse(
        _follow(
            first=body,
            after=log.written,
            current=still_writing,
            options=options,
            epoch=cluster.epoch,
        ),
        media_type=_MEDIA_TYPE,
    )


def parse_options(
    query: Mapping[str, str], *, pod: dict[str, Any], epoch: float, now: float
) -> LogOptions:
    name = pod["metadata"]["name"]
    containers = [str(c.get("name", "")) for c in pod["spec"].get("containers", [])]
    container = query.get("container", "")
    if not container:
        if len(containers) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, "
                f"choose one of: [{' '.join(containers)}]"
            )
        container = containers[0]
    elif container not in containers:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    tail_lines = _integer(query, "tailLines")
    limit_bytes = _integer(query, "limitBytes")
    since_seconds = _integer(query, "sinceSeconds")
    since_time = query.get("sinceTime")
    causes: list[validation.Cause] = []
    if tail_lines is not None and tail_lines < 0:
        causes.append(_cause("tailLines", tail_lines, "must be greater than or equal to 0"))
    if limit_bytes is not None and limit_bytes < 1:
        causes.append(_cause("limitBytes", limit_bytes, "must be greater than 0"))
    if since_seconds is not None and since_seconds < 1:
        causes.append(_cause("sinceSeconds", since_seconds, "must be greater than 0"))
    if since_seconds is not None and since_time:
        causes.append(
            validation.Cause(
                "sinceSeconds",
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
                "FieldValueForbidden",
            )
        )
    if causes:
        raise errors.invalid("PodLogOptions", name, "", causes)
    since: float | None = None
    if since_seconds is not None:
        since = now - since_seconds
    elif since_time:
        since = _parse_time(since_time) - epoch
    return LogOptions(
        container=container,
        follow=_boolean(query, "follow"),
        previous=_boolean(query, "previous"),
        timestamps=_boolean(query, "timestamps"),
        tail_lines=tail_lines,
        since=since,
        limit_bytes=limit_bytes,
    )


def _container_log(cluster: Cluster, pod: Pod, options: LogOptions) -> ContainerLog:
    if options.previous:
        previous = cluster.logs.previous(pod.uid)
        if previous is None:
            raise errors.bad_request(
                f'previous terminated container "{options.container}" in pod "{pod.name}" not found'
            )
        return previous
    current = cluster.logs.current(pod.uid)
    if current is None or pod.started_at is None:
        raise errors.bad_request(
            f'container "{options.container}" in pod "{pod.name}" is waiting to start: '
            "ContainerCreating"
        )
    return current


def select(lines: Iterable[LogLine], options: LogOptions) -> list[LogLine]:
    """The lines `sinceSeconds`/`sinceTime` and `tailLines` leave, oldest first."""
    chosen: list[LogLine] = [
        line for line in lines if options.since is None or line.at >= options.since - 1e-9
    ]
    if options.tail_lines is not None:
        chosen = chosen[len(chosen) - options.tail_lines :] if options.tail_lines else []
    return chosen


def render(lines: list[LogLine], *, options: LogOptions, epoch: float) -> bytes:
    """Lines as the kubelet writes them: optionally prefixed by an RFC 3339 nano timestamp."""
    text = "".join(
        f"{_timestamp(epoch + line.at)} {line.text}\n" if options.timestamps else f"{line.text}\n"
        for line in lines
    )
    body = text.encode()
    return body[: options.limit_bytes] if options.limit_bytes is not None else body


async def _follow(
    *,
    first: bytes,
    after: int,
    current: Callable[[], ContainerLog | None],
    options: LogOptions,
    epoch: float,
) -> AsyncIterator[bytes]:
    """The log so far, then each new line, until the container stops or the pod goes."""
    budget = options.limit_bytes
    sent = 0
    chunk = first
    while True:
        if chunk:
            if budget is not None:
                chunk = chunk[: budget - sent]
            sent += len(chunk)
            yield chunk
        if budget is not None and sent >= budget:
            return
        await asyncio.sleep(_FOLLOW_POLL_S)
        log = current()
        if log is None:
            return
        new = log.since(after)
        after = log.written
        chunk = render(new, options=options, epoch=epoch)


def _timestamp(moment: float) -> str:
    """RFC 3339 with nine fractional digits, as the kubelet stamps log lines."""
    seconds = int(moment // 1)
    nanos = round((moment - seconds) * 1e9)
    if nanos >= 1_000_000_000:  # rounding reached the next second
        seconds, nanos = seconds + 1, 0
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def _parse_time(value: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise errors.bad_request(f"sinceTime: invalid RFC 3339 time {value!r}") from exc
    if moment.tzinfo is None:  # RFC 3339 always has an offset; read a bare time as UTC
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _integer(query: Mapping[str, str], key: str) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise errors.bad_request(f"{key}: invalid integer {value!r}") from exc


def _boolean(query: Mapping[str, str], key: str) -> bool:
    value = query.get(key, "")
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.bad_request(f"{key}: invalid boolean {value!r}")


def _cause(field: str, value: int, rule: str) -> validation.Cause:
    return validation.Cause(field, f"Invalid value: {value}: {rule}")
