"""Watches: a list's changes streamed as ADDED, MODIFIED and DELETED lines of JSON.

The twin renders objects from its model on each read, so a watch polls: every
`_WATCH_POLL_S` it brings the model up to date, renders the watched objects again and
reports the difference from the last snapshot by resourceVersion (versions.py). A watch
asked with `sendInitialEvents=true` (kubectl's watch-list) first gets every object and a
bookmark that marks the end of them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.responses import StreamingResponse

from selfheal.twin.kube.kinds import Kind

JsonObject = dict[str, Any]
_WATCH_POLL_S = 0.2
_DEFAULT_TIMEOUT_S = 300.0
_MAX_TIMEOUT_S = 1800.0


def stream(
    *,
    kind: Kind,
    query: Mapping[str, str],
    snapshot: Callable[[], dict[str, JsonObject]],
    refresh: Callable[[], None],
    resource_version: Callable[[], str],
) -> StreamingResponse:
    """Stream changes of the objects `snapshot` renders (keyed by UID) until the timeout."""
    since = query.get("resourceVersion")
    timeout = min(float(query.get("timeoutSeconds") or _DEFAULT_TIMEOUT_S), _MAX_TIMEOUT_S)
    initial_events = query.get("sendInitialEvents") == "true"

    async def events() -> AsyncIterator[bytes]:
        seen = snapshot()
        for obj in seen.values():
            version = int(obj["metadata"]["resourceVersion"])
            if initial_events or not since or since == "0" or version > int(since):
                change = "ADDED" if initial_events or not since or since == "0" else "MODIFIED"
                yield _line(change, obj)
        if initial_events:
            # Watch-list clients wait for this bookmark before trusting their cache.
            yield _line(
                "BOOKMARK",
                {
                    "kind": kind.kind,
                    "apiVersion": kind.api_version,
                    "metadata": {
                        "resourceVersion": resource_version(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                },
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(_WATCH_POLL_S)
            refresh()
            current = snapshot()
            for uid, obj in current.items():
                previous = seen.get(uid)
                if previous is None:
                    yield _line("ADDED", obj)
                elif previous["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                    yield _line("MODIFIED", obj)
            for uid, obj in seen.items():
                if uid not in current:
                    yield _line("DELETED", obj)
            seen = current

    return StreamingResponse(events(), media_type="application/json")


def _line(change: str, obj: JsonObject) -> bytes:
    return (json.dumps({"type": change, "object": obj}) + "\n").encode()
