"""Durations as Prometheus writes them (`90s`, `5m`, `1h30m`, `250ms`) or plain seconds."""

from __future__ import annotations

import re

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(value: object) -> float:
    """Return seconds for `value`: a non-negative number, or a string like `1h30m` or `250ms`.

    Raises ValueError with a message suitable for a user when the value is not a duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s' or '5m', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a duration like '30s' or '5m', got {value!r}")
    text = value.strip()
    position = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"expected a duration like '30s', '5m' or '1h30m', got {value!r}"
            ) from None
        if number < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return number
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly (`1h2m3s`, `250ms`), the inverse of `parse_duration`."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    remaining = round(seconds)
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
