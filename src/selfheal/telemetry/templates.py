"""Alert label and annotation templates, the subset of Prometheus' Go templates rules use.

Supported: `{{ $labels.name }}`, `{{ $value }}`, `{{ .Labels.name }}`, `{{ .Value }}`,
`{{ $externalLabels.name }}`, pipes into `humanize`, `humanizePercentage`,
`humanizeDuration`, `printf "%.2f"`-style calls (`{{ printf "%.1f" $value }}`), `toUpper`,
`toLower`, `title`. Anything else is refused when the rule file is loaded, naming the
template, so an alert never goes out with a template error in its text.
"""

from __future__ import annotations

import decimal
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


def _go_g(value: float, precision: int = 4) -> str:
    """Go's `%.4g`: like Python's, but NaN and infinities are spelt the Go way."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.{precision}g}"


def _scaled(value: float, prefixes: str, *, up: bool) -> tuple[float, str]:
    """Scale by 1000 per prefix (up: while |v| >= 1000; down: while |v| < 1), as Prometheus."""
    prefix = ""
    for candidate in prefixes:
        if (abs(value) < 1000) if up else (abs(value) >= 1):
            break
        prefix = candidate
        value = value / 1000 if up else value * 1000
    return value, prefix


def _si(value: float) -> str:
    """`humanize`: SI prefixes, four significant digits (k, M, ... and m, u, ...)."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _go_g(value)
    scaled, prefix = (
        _scaled(value, "kMGTPEZY", up=True)
        if abs(value) >= 1
        else _scaled(value, "munpfazy", up=False)
    )
    return f"{_go_g(scaled)}{prefix}"


def _duration(value: float) -> str:  # noqa: PLR0911 - one return per unit, as Prometheus
    """`humanizeDuration`: `1d 2h 3m 4s` from a minute up, `12.5s`, or `250ms` below 1 s."""
    if math.isnan(value) or math.isinf(value):
        return _go_g(value)
    if value == 0:
        return f"{_go_g(value)}s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        whole = int(abs(value))
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_g(abs(value))}s"
    scaled, prefix = _scaled(value, "munpfazy", up=False)
    return f"{_go_g(scaled)}{prefix}s"


_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "humanize": lambda text: _si(float(text)),
    "humanizePercentage": lambda text: f"{_go_g(float(text) * 100)}%",
    "humanizeDuration": lambda text: _duration(float(text)),
    "toUpper": str.upper,
    "toLower": str.lower,
    "title": str.title,
}


def format_value(value: float) -> str:
    """`$value` as Go prints a float64 with `%v`: shortest digits, exponent from 1e+06 up.

    Go switches to exponent form when the decimal exponent is below -4 or at least 6 (for
    shortest formatting it decides with precision 6), and writes at least two exponent
    digits: 1000000 -> `1e+06`, 123456 -> `123456`, 0.00001 -> `1e-05`.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    number = decimal.Decimal(repr(value)).normalize()
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    text_digits = "".join(str(d) for d in digits)
    decimal_exponent = len(digits) + exponent - 1
    minus = "-" if sign else ""
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = text_digits[0] + ("." + text_digits[1:] if len(text_digits) > 1 else "")
        direction = "+" if decimal_exponent >= 0 else "-"
        return f"{minus}{mantissa}e{direction}{abs(decimal_exponent):02d}"
    return minus + format(abs(number), "f")


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
