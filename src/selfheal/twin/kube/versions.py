"""resourceVersion bookkeeping: a new version whenever an object's content changes.

The twin renders objects from its model on every read, so versions are assigned by content:
when an object's rendering differs from the last one seen, it gets the next number from one
global counter (as etcd's revision is global). Optimistic concurrency then works as on a
real cluster: an update carrying a version other than the current one gets 409 Conflict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


class Versions:
    """Content-addressed resourceVersions from one global counter."""

    def __init__(self) -> None:
        self._counter = 1000
        self._seen: dict[str, tuple[str, int]] = {}

    @property
    def current(self) -> str:
        return str(self._counter)

    def stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Set `metadata.resourceVersion` on `obj` (in place) and return it."""
        metadata = obj["metadata"]
        metadata.pop("resourceVersion", None)
        key = f"{obj['kind']}/{metadata.get('namespace', '')}/{metadata['name']}/{metadata['uid']}"
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
        known = self._seen.get(key)
        if known is None or known[0] != digest:
            self._counter += 1
            known = (digest, self._counter)
            self._seen[key] = known
        metadata["resourceVersion"] = str(known[1])
        return obj

    def forget_missing(self, kind: str, live: Iterable[dict[str, Any]]) -> None:
        """Drop bookkeeping of objects of `kind` that no longer exist."""
        keep = {
            f"{kind}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}/"
            f"{o['metadata']['uid']}"
            for o in live
        }
        for key in [key for key in self._seen if key.startswith(f"{kind}/") and key not in keep]:
            del self._seen[key]
