"""CPU quantities as Kubernetes writes them: `500m`, `0.5`, `2`."""

from __future__ import annotations

import re

_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")


def parse_cpu(value: object) -> float:
    """Return cores for a CPU quantity; raise ValueError naming the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"invalid CPU quantity {value!r}")
    if isinstance(value, int | float):
        cores = float(value)
    elif isinstance(value, str) and (match := _CPU.match(value.strip())):
        cores = float(match.group(1)) / (1000.0 if match.group(2) else 1.0)
    else:
        raise ValueError(f"invalid CPU quantity {value!r}: expected e.g. '500m', '0.5' or '2'")
    if cores < 0:
        raise ValueError(f"a CPU quantity cannot be negative, got {value!r}")
    return cores


def format_cpu(cores: float) -> str:
    """Render cores the way kube-state-metrics and kubectl show them (`500m`, `2`)."""
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
