"""`{{ ... }}` references in runbook parameters.

A runbook step's params may refer to the runbook's params (`{{ params.replicas }}`), to the
output of an earlier step (`{{ steps.scale.previous_replicas }}`) and to the incident
(`{{ incident.id }}`). A value that is exactly one reference keeps the referenced value's
type (an int stays an int); a reference inside longer text is interpolated as text.
References are plain dotted paths: no expressions, no function calls, nothing evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*\}\}")
ROOTS = frozenset({"params", "steps", "incident"})


class TemplateError(ValueError):
    """A reference that cannot be resolved; the message names it."""


def references(value: Any) -> list[str]:
    """Every dotted path referenced anywhere inside `value` (strings, lists, mappings)."""
    found: list[str] = []
    if isinstance(value, str):
        found += [match.group(1) for match in _REFERENCE.finditer(value)]
    elif isinstance(value, Mapping):
        for item in value.values():
            found += references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found += references(item)
    return found


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Resolve every reference in `value` against `context`, recursively."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), context)
        return _REFERENCE.sub(lambda match: str(_lookup(match.group(1), context)), value)
    if isinstance(value, Mapping):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, context) for item in value]
    return value


def _lookup(path: str, context: Mapping[str, Any]) -> Any:
    current: Any = context
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            raise TemplateError(f"'{{{{ {path} }}}}' cannot be resolved: no {part!r}")
        current = current[part]
    return current
