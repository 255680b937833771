"""OpenTelemetry names into Prometheus names, the way Prometheus' OTLP receiver makes them.

So a rule written against series that Prometheus ingested over OTLP works unchanged here.
This is the receiver's default `UnderscoreEscapingWithSuffixes` translation of Prometheus
2.x (`otlptranslator`):

- a metric name is split into words at every character that is not an ASCII letter or digit
  (so `.`, `-`, `/`, `:` and runs of `_` all become one `_`), and rejoined with `_`;
- the unit becomes suffix words: `s` -> `seconds`, `By` -> `bytes`, `ms` -> `milliseconds`,
  ... (`UNITS`); a rate unit `X/Y` adds `X_per_Y` with `Y` singular (`By/s` ->
  `bytes_per_second`); an annotation in braces (`{request}`) adds nothing; a suffix already
  among the name's words is not repeated;
- a monotonic sum ends in `_total` (moved to the end if the name has it elsewhere);
- a gauge with unit `1` ends in `_ratio`;
- a name that would start with a digit gets a leading `_`.

Label names: each character that is not `[a-zA-Z0-9_]` becomes `_`; a name starting with a
digit gets `key_` in front; one starting with a single `_` gets `key` in front (names
starting with `__` are reserved for Prometheus and kept). Two attributes that sanitize to
the same name have their values joined with `;`, in order of the original keys.
"""

from __future__ import annotations

import decimal
import math
import re
from typing import Literal

MetricKind = Literal["gauge", "sum", "counter", "histogram", "summary"]

UNITS = {
    # time
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    # bytes
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    # SI
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    # other
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
PER_UNITS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}

_WORD_BREAK = re.compile(r"[^a-zA-Z0-9]+")
_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str, *, unit: str, kind: MetricKind) -> str:
    """The Prometheus name of an OpenTelemetry metric; `counter` is a monotonic sum.

    Histograms and summaries get their `_bucket`, `_sum`, `_count` from the caller. An empty
    result means the name had no letters or digits at all.
    """
    words = _words(name)
    main, _, per = unit.partition("/")
    main_word = _unit_word(main.strip(), UNITS)
    per_word = _unit_word(per.strip(), PER_UNITS)
    if per_word:
        per_word = f"per_{per_word}"
        if per_word in words:
            per_word = ""
    if main_word in words:
        main_word = ""
    words += [word for word in (main_word, per_word) if word]
    if kind == "counter":
        words = [word for word in words if word != "total"] + ["total"]
    if kind == "gauge" and unit == "1":
        words = [word for word in words if word != "ratio"] + ["ratio"]
    joined = "_".join(words)
    return f"_{joined}" if joined[:1].isdigit() else joined


def label_name(key: str) -> str:
    """The Prometheus label name for an attribute key (empty for an empty key)."""
    if not key:
        return ""
    sanitized = _LABEL_CHAR.sub("_", key)
    if sanitized[0].isdigit():
        return f"key_{sanitized}"
    if sanitized.startswith("_") and not sanitized.startswith("__"):
        return f"key{sanitized}"
    return sanitized


def format_float(value: float) -> str:
    """A float as Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes it: `le="0.005"`.

    The shortest decimal that reads back as the same double, never in exponent form, with
    `+Inf`, `-Inf` and `NaN` spelled as Prometheus spells them.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    # repr() is the shortest round-tripping form; Decimal rewrites it without an exponent.
    return format(decimal.Decimal(repr(value)).normalize(), "f")


def _words(text: str) -> list[str]:
    return [word for word in _WORD_BREAK.split(text) if word]


def _unit_word(unit: str, table: dict[str, str]) -> str:
    """A unit's suffix: from `table` if listed, else the unit itself made name-safe."""
    if not unit or "{" in unit or "}" in unit:
        return ""
    return "_".join(_words(table.get(unit, unit)))
