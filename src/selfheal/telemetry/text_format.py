r"""A fast parser of Prometheus' text exposition format (version 0.0.4).

The controller scrapes every second and replays a scenario day in seconds, so parsing is on
the hot path; prometheus_client's parser builds metric-family objects per scrape and costs
about three times as much. This one reads what a scrape needs, `(labels, value)` per sample
line: `name{label="value",...} value [timestamp]`, the label block optional.

- `#` lines (HELP, TYPE, comments) and blank lines are skipped.
- Label values unescape `\\`, `\"` and `\n` (backslash, double quote, newline).
- Values are Go floats: `+Inf`, `-Inf`, `NaN` included. A sample's own timestamp is read
  and ignored, as Prometheus does with `honor_timestamps: false`: a scrape's samples share
  the scrape's time.
- A malformed line raises `ValueError` naming its line number, and nothing of the text is
  returned: a scrape is ingested whole or not at all.
"""

from __future__ import annotations

import re

__all__ = ["parse_samples"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# A line without labels, the common case for counters and gauges.
_PLAIN = re.compile(rf"({_NAME})[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*")
# A line with labels: the name, the label block (quoted values may hold braces), the value.
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_ONE_PAIR = rf"[ \t]*{_LABEL_NAME}[ \t]*=[ \t]*{_QUOTED}[ \t]*"
# The whole line is checked by one match (pairs separated by commas, one trailing comma
# allowed); the pairs are then read out of the label block with _PAIR.
_LABELLED = re.compile(
    rf"({_NAME})[ \t]*\{{((?:{_ONE_PAIR}(?:,{_ONE_PAIR})*,?)?)[ \t]*\}}"
    r"[ \t]*(\S+)(?:[ \t]+-?\d+)?[ \t]*"
)
_PAIR = re.compile(rf'({_LABEL_NAME})[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_SPECIAL = {"+Inf": float("inf"), "Inf": float("inf"), "-Inf": float("-inf"), "NaN": float("nan")}


def _value(text: str, line_number: int) -> float:
    special = _SPECIAL.get(text)
    if special is not None:
        return special
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"line {line_number}: {text!r} is not a sample value") from None


def _unescape(value: str, line_number: int) -> str:
    if "\\" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        escaped = _ESCAPES.get(match.group(1))
        if escaped is None:
            raise ValueError(f"line {line_number}: invalid escape \\{match.group(1)}")
        return escaped

    return _ESCAPE.sub(replace, value)


def parse_samples(text: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of an exposition as `({"__name__": name, **labels}, value)`, in order."""
    samples: list[tuple[dict[str, str], float]] = []
    for line_number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if "{" not in line:
            plain = _PLAIN.fullmatch(line)
            if plain is None:
                raise ValueError(f"line {line_number}: not a sample: {raw!r}")
            samples.append(({"__name__": plain.group(1)}, _value(plain.group(2), line_number)))
            continue
        labelled = _LABELLED.fullmatch(line)
        if labelled is None:
            raise ValueError(f"line {line_number}: not a sample: {raw!r}")
        name, block, value = labelled.group(1, 2, 3)
        pairs = _PAIR.findall(block)
        labels = {"__name__": name}
        for label, text_value in pairs:
            labels[label] = _unescape(text_value, line_number) if "\\" in text_value else text_value
        if len(labels) != len(pairs) + 1:
            raise ValueError(f"line {line_number}: a label is given twice: {raw!r}")
        samples.append((labels, _value(value, line_number)))
    return samples
