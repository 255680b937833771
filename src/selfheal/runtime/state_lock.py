"""One controller per state directory: an exclusive lock, and who holds it.

Two controllers on one state would each recover the other's live workflows (DBOS names
every executor `local`) and act twice. So a controller takes an exclusive `flock` on
`controller.lock` in its state directory before it opens anything, and a second one is
refused with the holder's pid, host, config and start time, which the lock file carries.
The operating system releases the lock when the process dies however it dies, so a
`kill -9` never leaves a stale lock behind; the file itself stays, and the CLI reads it to
find the config that owns a state directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from selfheal.domain.errors import ConfigError

LOCK_FILE = "controller.lock"


class StateLock:
    """The exclusive hold of a state directory by this process (see the module docstring)."""

    def __init__(self, state_dir: Path, *, config: Path | None) -> None:
        self.path = state_dir / LOCK_FILE
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = holder_of(state_dir)
            os.close(descriptor)
            raise ConfigError(
                f"state directory {state_dir} is in use by another controller"
                f"{_describe(holder)}; stop it first, or give this one its own state_dir"
            ) from None
        self._descriptor: int | None = descriptor
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "config": None if config is None else str(config.resolve()),
            "started_at": time.time(),
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(info).encode("utf-8"), 0)

    def release(self) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None


def holder_of(state_dir: Path) -> dict[str, Any]:
    """What the lock file says of the controller that holds (or last held) the state."""
    try:
        data = json.loads((state_dir / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return ""
    parts = [f"pid {holder.get('pid')}", f"on {holder.get('host')}"]
    if holder.get("config"):
        parts.append(f"config {holder['config']}")
    started = holder.get("started_at")
    if isinstance(started, int | float):
        parts.append("since " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)))
    return " (" + ", ".join(parts) + ")"
