"""Alert label and annotation templates, the subset of Prometheus' Go templates rules use.

Supported: `{{ $labels.name }}`, `{{ $value }}`, `{{ .Labels.name }}`, `{{ .Value }}`,
`{{ $externalLabels.name }}`, pipes into `humanize`, `humanizePercentage`,
`humanizeDuration`, `printf "%.2f"`-style calls (`{{ printf "%.1f" $value }}`), `toUpper`,
`toLower`, `title`. Anything else is refused when the rule file is loaded, naming the
template, so an alert never goes out with a template error in its text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
_VARIABLE = re.compile(
    r"^(?:\$labels\.(\w+)|\.Labels\.(\w+)|\$externalLabels\.(\w+)|(\$value|\.Value))$"
)
_PRINTF = re.compile(r'^printf\s+"((?:[^"\\]|\\.)*)"\s+(\S+)$')


class TemplateError(ValueError):
    """A template uses something this subset does not support."""


def _si(value: float) -> str:
    if value == 0 or math.isnan(value) or math.isinf(value):
        return f"{value:.4g}"
    magnitude = abs(value)
    for factor, suffix in (
        (1e24, "Y"),
        (1e21, "Z"),
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ):
        if magnitude >= factor:
            return f"{value / factor:.4g}{suffix}"
    for factor, suffix in (
        (1e-3, "m"),
        (1e-6, "u"),
        (1e-9, "n"),
        (1e-12, "p"),
        (1e-15, "f"),
        (1e-18, "a"),
        (1e-21, "z"),
        (1e-24, "y"),
    ):
        if magnitude >= factor:
            return f"{value / factor:.4g}{suffix}"
    return f"{value:.4g}"


def _duration(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return f"{value:.4g}"
    if abs(value) < 1:
        return f"{value * 1000:.4g}ms"
    sign = "-" if value < 0 else ""
    seconds = abs(value)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, whole = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    parts.append(f"{whole + seconds % 1:.4g}s" if seconds % 1 else f"{whole}s")
    return sign + "".join(parts)


_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "humanize": lambda text: _si(float(text)),
    "humanizePercentage": lambda text: f"{float(text) * 100:.4g}%",
    "humanizeDuration": lambda text: _duration(float(text)),
    "toUpper": str.upper,
    "toLower": str.lower,
    "title": str.title,
}


def format_value(value: float) -> str:
    """`$value` as Prometheus prints a float64: shortest round-trip form."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    return text.removesuffix(".0") if text.endswith(".0") and "e" not in text else text


@dataclass(frozen=True)
class Template:
    """A parsed template; `render` fills it for one alert."""

    text: str

    def __post_init__(self) -> None:
        for match in _ACTION.finditer(self.text):
            _resolve(match.group(1), labels={}, value=0.0, external={}, check_only=True)

    def render(
        self, *, labels: Mapping[str, str], value: float, external: Mapping[str, str] | None = None
    ) -> str:
        return _ACTION.sub(
            lambda match: _resolve(
                match.group(1),
                labels=labels,
                value=value,
                external=external or {},
                check_only=False,
            ),
            self.text,
        )


def _resolve(
    action: str,
    *,
    labels: Mapping[str, str],
    value: float,
    external: Mapping[str, str],
    check_only: bool,
) -> str:
    stages = [stage.strip() for stage in action.split("|")]
    head, pipes = stages[0], stages[1:]
    printf = _PRINTF.match(head)
    if printf:
        text = _printf(
            printf.group(1),
            _operand(printf.group(2), labels, value, external, action=action),
            check_only=check_only,
        )
    else:
        text = _operand(head, labels, value, external, action=action)
    for pipe in pipes:
        function = _FUNCTIONS.get(pipe)
        if function is None:
            raise TemplateError(
                f"unsupported template function {pipe!r} in {{{{ {action} }}}}; "
                f"supported: {', '.join(sorted(_FUNCTIONS))}, printf"
            )
        if not check_only:
            try:
                text = function(text)
            except ValueError as exc:
                raise TemplateError(f"{pipe} needs a number, got {text!r}") from exc
    return text


def _operand(
    token: str, labels: Mapping[str, str], value: float, external: Mapping[str, str], *, action: str
) -> str:
    match = _VARIABLE.match(token)
    if match is None:
        raise TemplateError(
            f"unsupported template {{{{ {action} }}}}: use $labels.NAME, "
            "$value, $externalLabels.NAME, pipes or printf"
        )
    label, dotted, external_name, is_value = match.groups()
    if is_value:
        return format_value(value)
    if external_name:
        return external.get(external_name, "")
    return labels.get(label or dotted, "")


def _printf(pattern: str, operand: str, *, check_only: bool) -> str:
    if not re.fullmatch(r"[^%]*%[-+ 0#]*\d*(?:\.\d+)?[dfegsvq][^%]*", pattern):
        raise TemplateError(f"unsupported printf format {pattern!r}")
    if check_only:
        return ""
    converted = pattern.replace("%v", "%s").replace("%q", '"%s"')
    try:
        number = float(operand)
    except ValueError:
        return converted % operand if "%s" in converted else pattern
    if re.search(r"%[-+ 0#]*\d*d", converted):
        return converted % int(number)
    return converted % (number if "%s" not in converted else operand)
