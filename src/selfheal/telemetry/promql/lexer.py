"""Turns PromQL text into tokens, each with its offset for error messages.

The lexer follows Prometheus' rules where they surprise: keywords are case-insensitive
(`SUM`, `And`), `Inf` and `NaN` in any case are numbers, a run like `1h30m` is one duration
token, number literals go through Go's integer parsing first (so `0x1f` is 31 and a leading
zero means octal: `010` is 8), and strings use Go's escapes in double or single quotes,
with backticks for raw strings.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from selfheal.telemetry.promql.ast import PromQLError


class Kind(enum.Enum):
    """Token kinds; the value is how error messages name the kind."""

    IDENTIFIER = "identifier"  # a label or metric name without colons
    METRIC_IDENTIFIER = "metric name"  # a name with colons (recording rule style)
    KEYWORD = "keyword"
    NUMBER = "number"
    DURATION = "duration"
    STRING = "string"
    OPERATOR = "operator"
    PUNCTUATION = "punctuation"
    EOF = "end of input"


KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "atan2",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    }
)


@dataclass(frozen=True, slots=True)
class Token:
    """One lexeme: its kind, its text as written, and where it starts.

    For keywords `value` is the lower-cased keyword; for strings it is the decoded text; for
    numbers and durations it is the text as written.
    """

    kind: Kind
    value: str
    position: int
    text: str = ""

    def describe(self) -> str:
        """The token as an error message names it."""
        if self.kind is Kind.EOF:
            return "end of input"
        if self.kind is Kind.STRING:
            return f"string {self.text}"
        if self.kind in {Kind.OPERATOR, Kind.PUNCTUATION}:
            return f'"{self.value}"'
        return f'{self.kind.value} "{self.text or self.value}"'


# ASCII only, as Prometheus' lexer: `str.isdigit` also holds for "²" and "٣", which no
# number pattern reads.
_DIGITS = frozenset("0123456789")
_WORD = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_OPERATORS = ("==", "!=", "=~", "!~", ">=", "<=", "+", "-", "*", "/", "%", "^", ">", "<", "@")
_PUNCTUATION = "(){}[],=:"
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_UNIT_MILLIS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
# Prometheus holds a duration in Go's time.Duration, int64 nanoseconds, and refuses longer.
_NANOS_PER_MILLI = 1_000_000
_MAX_INT64 = 2**63 - 1
_DURATION_PART = re.compile(r"([0-9]+)(ms|[smhdwy])")
_DURATION_ORDER = ("y", "w", "d", "h", "m", "s", "ms")


def tokenize(text: str) -> list[Token]:
    """All tokens of `text`, ending with an EOF token; PromQLError on a lexical error."""
    return _Lexer(text).run()


def duration_seconds(token: Token, expression: str) -> float:
    """Seconds in a duration token, refusing units out of order or repeated, as Prometheus."""
    last = -1
    millis = 0
    for count, unit in _DURATION_PART.findall(token.value):
        order = _DURATION_ORDER.index(unit)
        if order <= last:
            raise PromQLError(
                f'bad duration "{token.value}": units must go from largest to smallest, '
                "each at most once",
                expression=expression,
                position=token.position,
            )
        last = order
        millis += int(count) * _UNIT_MILLIS[unit]
    if millis * _NANOS_PER_MILLI > _MAX_INT64:  # Go's time.Duration: about 292 years
        raise PromQLError("duration out of range", expression=expression, position=token.position)
    return millis / 1000


def number_value(token: Token, expression: str) -> float:
    """The value of a number token, read as Go's ParseInt(base 0) then ParseFloat would."""
    text = token.value
    lowered = text.lower()
    if lowered in {"inf", "nan"}:
        return float(lowered)
    try:
        if lowered.startswith("0x"):
            return float(int(text, 16))
        if text.isdigit():
            # Go's base-0 integers: a leading 0 means octal, and a bad octal ("08") falls
            # through to float parsing, which reads it as decimal.
            if len(text) > 1 and text[0] == "0" and set(text) <= set("01234567"):
                return float(int(text, 8))
            return float(int(text, 10))
        return float(text)
    except (ValueError, OverflowError) as exc:
        raise PromQLError(
            f'bad number "{text}"', expression=expression, position=token.position
        ) from exc


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[Token] = []
        # Inside [...] a colon separates a subquery's range from its step; elsewhere it may
        # start a metric name (":requests:rate5m"), as in Prometheus' lexer.
        self.in_brackets = False

    def error(self, message: str, position: int | None = None) -> PromQLError:
        at = self.pos if position is None else position
        return PromQLError(message, expression=self.text, position=at)

    def emit(self, kind: Kind, value: str, *, start: int, text: str | None = None) -> None:
        self.tokens.append(
            Token(kind, value, start, self.text[start : self.pos] if text is None else text)
        )

    def run(self) -> list[Token]:
        text = self.text
        while True:
            self._skip_space()
            if self.pos >= len(text):
                self.tokens.append(Token(Kind.EOF, "", len(text)))
                return self.tokens
            char = text[self.pos]
            if char in "\"'`":
                self._string(char)
            elif char in _DIGITS or (char == "." and text[self.pos + 1 : self.pos + 2] in _DIGITS):
                self._number_or_duration()
            elif char.isalpha() or char == "_" or (char == ":" and not self.in_brackets):
                self._word()
            else:
                self._symbol(char)

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n":
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _word(self) -> None:
        start = self.pos
        found = _WORD.match(self.text, start)
        if found is None:  # a letter outside ASCII
            raise self.error(f"unexpected character {self.text[start]!r}")
        word = found.group(0)
        self.pos = found.end()
        lowered = word.lower()
        if lowered in KEYWORDS:
            self.emit(Kind.KEYWORD, lowered, start=start)
        elif lowered in {"inf", "nan"}:
            self.emit(Kind.NUMBER, word, start=start)
        elif ":" in word:
            self.emit(Kind.METRIC_IDENTIFIER, word, start=start)
        else:
            self.emit(Kind.IDENTIFIER, word, start=start)

    def _number_or_duration(self) -> None:
        start = self.pos
        duration = _DURATION.match(self.text, start)
        number = _NUMBER.match(self.text, start)
        if duration is not None and (number is None or duration.end() > number.end()):
            self.pos = duration.end()
            kind = Kind.DURATION
        else:
            assert number is not None
            self.pos = number.end()
            kind = Kind.NUMBER
        following = self.text[self.pos : self.pos + 1]
        if following.isalnum() or following in {"_", "."}:
            raise self.error(
                f'bad number or duration syntax: "{self.text[start : self.pos + 1]}"', start
            )
        self.emit(kind, self.text[start : self.pos], start=start)

    def _symbol(self, char: str) -> None:
        start = self.pos
        for operator in _OPERATORS:
            if self.text.startswith(operator, start):
                self.pos += len(operator)
                self.emit(Kind.OPERATOR, operator, start=start)
                return
        if char in _PUNCTUATION:
            if char in "[]":
                self.in_brackets = char == "["
            self.pos += 1
            self.emit(Kind.PUNCTUATION, char, start=start)
            return
        if char == "!":
            raise self.error('unexpected character after "!": expected "=" or "~"')
        raise self.error(f"unexpected character {char!r}")

    def _string(self, quote: str) -> None:
        start = self.pos
        self.pos += 1
        text = self.text
        if quote == "`":
            end = text.find("`", self.pos)
            if end < 0:
                raise self.error("unterminated raw string", start)
            value = text[self.pos : end]
            self.pos = end + 1
            self.emit(Kind.STRING, value, start=start)
            return
        parts: list[str] = []
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.error("unterminated quoted string", start)
            char = text[self.pos]
            if char == quote:
                self.pos += 1
                break
            if char == "\\":
                parts.append(self._escape(quote))
            else:
                parts.append(char)
                self.pos += 1
        self.emit(Kind.STRING, "".join(parts), start=start)

    def _escape(self, quote: str) -> str:
        """Decode the escape at `pos` (which is at the backslash) and step past it."""
        text = self.text
        start = self.pos
        kind = text[self.pos + 1 : self.pos + 2]
        self.pos += 2
        if kind in _ESCAPES:
            return _ESCAPES[kind]
        if kind == quote:
            return quote
        digits = {"x": 2, "u": 4, "U": 8}.get(kind)
        if digits is not None:
            code = text[self.pos : self.pos + digits]
            if len(code) != digits or not all(c in "0123456789abcdefABCDEF" for c in code):
                raise self.error(f"invalid escape sequence \\{kind}{code}", start)
            self.pos += digits
            value = int(code, 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise self.error(f"escape sequence \\{kind}{code} is an invalid code point", start)
            return chr(value)
        if kind and kind in "01234567":
            code = text[start + 1 : start + 4]
            if len(code) != 3 or not all(c in "01234567" for c in code) or int(code, 8) > 0xFF:
                raise self.error(f"invalid octal escape sequence \\{code}", start)
            self.pos = start + 4
            return chr(int(code, 8))
        if not kind:
            raise self.error("unterminated quoted string", start)
        raise self.error(f"unknown escape sequence \\{kind}", start)
