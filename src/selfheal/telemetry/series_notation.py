"""The two small notations of promtool's rule test files: series values and label sets.

A test's `input_series` gives each series as a label set (`up{job="api"}`) and its samples
in the *expanding notation*, one item per scrape interval:

    1 2 3       plain numbers (also `Inf`, `-Inf`, `NaN`, `1e3`, `.5`)
    a+bxn       n+1 samples a, a+b, ..., a+n*b      (`a-bxn` counts down)
    axn         n+1 samples of a                     (the same as `a+0xn`)
    _           no sample in this interval
    _xn         n intervals without samples          (n, not n+1: promtool's rule)
    stale       a stale marker: the series ends here

The same label-set syntax, with an empty text allowed, is how `exp_samples` name the series
they expect, so both parsers live here.

The rules mirror Prometheus 2.42's series lexer, surprises included, because a file must
mean the same here as under `promtool test rules`: `0x10` is ten more zeros (not 16), the
increment is added repeatedly (so `0.1+0.1x2` ends in 0.30000000000000004, as in Go), and
an item never contains a space (`1 + 1x2` is an error).
"""

from __future__ import annotations

import re

from selfheal.telemetry import promql
from selfheal.telemetry.promql import lexer
from selfheal.telemetry.tsdb import METRIC_NAME, STALE_NAN, Labels, is_valid_label_name

# One series may not expand to more samples than this: a typo like `1x1000000000` would
# otherwise exhaust memory before any test ran. A day of 1 s samples fits ten times over.
MAX_SAMPLES = 1_000_000

_NUMBER = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_ITEM = re.compile(
    rf"(?P<start>[+-]?(?:{_NUMBER}|(?i:inf|nan)))"
    rf"(?:(?P<op>[+-])(?P<step>{_NUMBER}))?"
    r"(?:x(?P<count>[0-9]+))?"
)
_BLANKS = re.compile(r"_(?:x(?P<count>[0-9]+))?")
_SPACE = re.compile(r"\S+")


class NotationError(ValueError):
    """A series value or label-set text is malformed; `position` is a 0-based offset."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message)
        self.position = position


def expand_values(text: str) -> list[float | None]:
    """The samples `text` stands for, one per interval: a float, `STALE_NAN`, or None.

    Raises NotationError naming the offending item and its offset in `text`.
    """
    values: list[float | None] = []
    for found in _SPACE.finditer(text):
        values += _expand_item(found.group(0), position=found.start())
        if len(values) > MAX_SAMPLES:
            raise NotationError(
                f"series values expand to more than {MAX_SAMPLES:,} samples",
                position=found.start(),
            )
    return values


def _expand_item(item: str, *, position: int) -> list[float | None]:
    if item == "stale":
        return [STALE_NAN]
    blanks = _BLANKS.fullmatch(item)
    if blanks is not None:
        count = blanks.group("count")
        return [None] * (1 if count is None else _count(count, item, position))
    found = _ITEM.fullmatch(item)
    if found is None or _is_word_then_x(found):
        raise NotationError(
            f"unexpected {item!r} in series values: expected a number, `a+bxn`, `a-bxn`, "
            "`axn`, `_`, `_xn` or `stale`",
            position=position,
        )
    start = float(found.group("start"))
    count = found.group("count")
    step_text = found.group("step")
    if count is None:
        if step_text is not None:
            raise NotationError(
                f"{item!r} in series values needs a repetition count: `{item}xN`",
                position=position + len(item),
            )
        return [start]
    step = 0.0 if step_text is None else float(step_text)
    if found.group("op") == "-":
        step = -step
    values: list[float | None] = []
    current = start
    # Repeated addition, not start + i*step: Go accumulates, and the last digits differ.
    for _ in range(_count(count, item, position) + 1):
        values.append(current)
        current += step
    return values


def _is_word_then_x(found: re.Match[str]) -> bool:
    """`Infx2` is one identifier to Prometheus' lexer, hence an error, not Inf repeated."""
    start = found.group("start").lstrip("+-")
    return start.isalpha() and found.group("count") is not None and found.group("op") is None


def _count(text: str, item: str, position: int) -> int:
    count = int(text)
    if count > MAX_SAMPLES:
        raise NotationError(
            f"repetition count in {item!r} is above the limit of {MAX_SAMPLES:,}",
            position=position,
        )
    return count


def parse_labels(text: str, *, allow_empty: bool = False) -> Labels:
    """Read `name{label="value", ...}` (name optional; `=` only) into a label set.

    With `allow_empty`, an empty text (or `{}`) is the empty label set, as `exp_samples`
    allow for a scalar result. Raises NotationError with the offset of the problem.
    """
    try:
        tokens = lexer.tokenize(text)
    except promql.PromQLError as exc:
        raise NotationError(exc.detail, position=exc.position or 0) from exc
    reader = _LabelReader(tokens)
    labels = reader.read()
    if not labels and not allow_empty:
        raise NotationError("a series needs a metric name or at least one label", position=0)
    return labels


class _LabelReader:
    def __init__(self, tokens: list[lexer.Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> lexer.Token:
        return self.tokens[self.index]

    def take(self) -> lexer.Token:
        token = self.tokens[self.index]
        if token.kind is not lexer.Kind.EOF:
            self.index += 1
        return token

    def unexpected(self, token: lexer.Token, expected: str) -> NotationError:
        return NotationError(
            f"unexpected {token.describe()} in label set, expected {expected}",
            position=token.position,
        )

    def read(self) -> Labels:
        pairs: dict[str, str] = {}
        name = None
        first = self.peek()
        if _is_name(first):
            name = first.text
            self.take()
        if self.peek().kind is lexer.Kind.PUNCTUATION and self.peek().value == "{":
            self.take()
            self._pairs(pairs)
        end = self.peek()
        if end.kind is not lexer.Kind.EOF:
            raise self.unexpected(end, "end of input" if pairs or name else "a metric name or {")
        if name is not None:
            # The name before the braces wins over a __name__ inside them, as in promtool.
            pairs[METRIC_NAME] = name
        return Labels(pairs)

    def _pairs(self, pairs: dict[str, str]) -> None:
        while True:
            token = self.take()
            if token.kind is lexer.Kind.PUNCTUATION and token.value == "}":
                return
            if not _is_name(token) or ":" in token.text:
                raise self.unexpected(token, "a label name or }")
            equals = self.take()
            if equals.kind is not lexer.Kind.PUNCTUATION or equals.value != "=":
                raise self.unexpected(equals, '"=" (a series has exact label values)')
            value = self.take()
            if value.kind is not lexer.Kind.STRING:
                raise self.unexpected(value, "a quoted label value")
            pairs[token.text] = value.value
            after = self.take()
            if after.kind is lexer.Kind.PUNCTUATION and after.value == "}":
                return
            if after.kind is not lexer.Kind.PUNCTUATION or after.value != ",":
                raise self.unexpected(after, '"," or "}"')


def _is_name(token: lexer.Token) -> bool:
    """Identifiers, and keywords too: `sum` or `on` are fine metric and label names."""
    if token.kind in {lexer.Kind.IDENTIFIER, lexer.Kind.METRIC_IDENTIFIER, lexer.Kind.KEYWORD}:
        return True
    return token.kind is lexer.Kind.NUMBER and is_valid_label_name(token.text)
