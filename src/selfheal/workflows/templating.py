"""`{{ ... }}` references in runbook parameters.

A runbook step's params may refer to the runbook's params (`{{ params.replicas }}`), to the
output of an earlier step (`{{ steps.scale.previous_replicas }}`; every step also has
`status`, `ok` or `failed`, `error`, and `summary`, one line on what it did or why it
failed), to the incident (`{{ incident.id }}`) and, in
compensation steps, to the failure they answer (`{{ failure.step }}`, `{{ failure.error }}`).
A value that is exactly one reference keeps the referenced value's type (an int stays an
int); a reference inside longer text is interpolated as text. References are plain dotted
paths: no expressions, no function calls, nothing evaluated. A reference that cannot be
resolved fails the step, except in a step type that renders leniently (messages to people),
where it reads `unknown`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*\}\}")
ROOTS = frozenset({"params", "steps", "incident", "failure"})


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


def render(value: Any, context: Mapping[str, Any], *, missing: str | None = None) -> Any:
    """Resolve every reference in `value` against `context`, recursively.

    With `missing`, a reference that cannot be resolved becomes that text instead of
    raising TemplateError.
    """
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), context, missing)
        return _REFERENCE.sub(lambda match: str(_lookup(match.group(1), context, missing)), value)
    if isinstance(value, Mapping):
        return {key: render(item, context, missing=missing) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, context, missing=missing) for item in value]
    return value


def _lookup(path: str, context: Mapping[str, Any], missing: str | None = None) -> Any:
    current: Any = context
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            if missing is not None:
                return missing
            raise TemplateError(f"'{{{{ {path} }}}}' cannot be resolved: no {part!r}")
        current = current[part]
    return missing if current is None and missing is not None else current
