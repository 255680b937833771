"""Logs of a running controller: one line per event, as text for people or JSON for tools.

`selfheal run` logs what the controller does as it happens: each audit record worth telling
(an incident opened, a decision, a runbook step, a page) becomes one log line, beside the
controller's own warnings and errors. `--log-format json` writes every line as one JSON
object (`time`, `level`, `logger`, `message`, and for events `event`, `subject`, `incident`
and the scenario time `at`), so a log shipper needs no parsing rules.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, Literal

from rich.text import Text

from selfheal.cli import events

LogFormat = Literal["text", "json"]
LEVELS = ("debug", "info", "warning", "error")
EVENTS = logging.getLogger("selfheal.events")

# Record attributes every LogRecord has; anything else on a record was passed as `extra`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per record, with its `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class TextLines(logging.Formatter):
    """`2026-12-07T17:30:01Z info    message`: a time, a level, what happened."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso(record.created)} {record.levelname.lower():<7} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(*, level: str, log_format: LogFormat) -> None:
    """Send every log record at `level` or above to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else TextLines())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries' chatter stays at warnings whatever our level.
    for noisy in ("httpx", "httpcore", "dbos", "uvicorn.access", "kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_event(*, kind: str, subject: str, payload: dict[str, Any], at: float) -> None:
    """Log one audit record as an event line (records not worth a line go to debug)."""
    described = events.describe(kind, subject, payload)
    message = Text.from_markup(described).plain if described is not None else f"{kind} {subject}"
    EVENTS.log(
        logging.INFO if described is not None else logging.DEBUG,
        message,
        extra={
            "event": kind,
            "subject": subject,
            "incident": _incident_of(kind, subject, payload),
            "at": at,
        },
    )


def _incident_of(kind: str, subject: str, payload: dict[str, Any]) -> str | None:
    """The incident an audit record is about, when it is about one."""
    if kind.startswith(("incident.", "decision.", "remediation.")):
        return subject
    if subject.startswith("remediate."):  # a run, its steps and its approvals
        workflow = subject.partition("/")[0]
        return workflow.removeprefix("remediate.").rpartition(".")[0] or None
    found = payload.get("incident_id")
    return found if isinstance(found, str) else None


def _iso(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
