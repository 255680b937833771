r"""Regular expressions over label values, as Prometheus reads them: RE2, in linear time.

Patterns here come from users: label matchers (`job=~"api|web"`) in rule files and in
queries, and `label_replace`'s regex. They are run by RE2 (google-re2), whose matching time
is linear in the length of the text whatever the pattern: `(a+)+$` against a long run of
`a`s ending in `b`, which keeps a backtracking engine such as Python's `re` busy for hours,
costs RE2 one pass. RE2 is also Prometheus' dialect (Go's `regexp` is RE2), so a pattern
means the same here as in Prometheus, and what RE2 refuses (back-references, look-around)
is refused with RE2's reason.

This is the one module that imports `re2`; its errors become `RegexError` here.

Text reaches RE2 as UTF-8. A Python string may hold a lone surrogate, which UTF-8 cannot;
such code units are passed through as their three-byte form ("surrogatepass") and come
back the same way in captured groups, so no label value makes matching fail. One escape
C++ RE2 accepts is refused as Go refuses it: `\C` (any single byte), which could end a
captured group inside a character.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

_ENCODING = "utf-8"
_ERRORS = "surrogatepass"
# Answers remembered per pattern. A rule runs its matchers against the same label values at
# every evaluation, and a match through the binding costs about ten times one by Python's
# `re` (1.5 us, mostly crossing into C++); remembered, a selector over 2,000 series costs
# what it did with `re`. The bound keeps a stream of ever-new values from growing it.
_MEMO_ENTRIES = 4096


def _options() -> Any:
    """RE2's defaults are Go's (leftmost-first, `.` stops at a newline, Perl classes)."""
    options = re2.Options()
    # Errors come back as exceptions with the reason; RE2 need not also log them to stderr.
    options.log_errors = False
    return options


_OPTIONS = _options()


class RegexError(ValueError):
    """A pattern that RE2, and so Prometheus, does not accept; the message says why."""


@dataclass(frozen=True, slots=True)
class Captures:
    """What a successful search captured: group 0 is the whole match, None an unset group."""

    groups: tuple[str | None, ...]
    names: Mapping[str, int]

    def text(self, group: int) -> str:
        """A group's text; "" for a group that took no part or does not exist, as in Go."""
        if 0 <= group < len(self.groups):
            return self.groups[group] or ""
        return ""


class Regex:
    """A compiled RE2 pattern; `RegexError` if RE2 refuses it."""

    __slots__ = ("_answers", "_compiled", "_names", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        refused = _go_refusal(pattern)
        if refused is not None:
            raise RegexError(_message(pattern, refused))
        try:
            self._compiled = re2.compile(_encode(pattern), _OPTIONS)
        except re2.error as exc:
            raise RegexError(_message(pattern, _reason(exc))) from exc
        # The binding names the groups of a bytes pattern in bytes.
        self._names: Mapping[str, int] = {
            _decode(name): index for name, index in self._compiled.groupindex.items()
        }
        self._answers: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of `text` matches (Prometheus' label matchers are anchored)."""
        answer = self._answers.get(text)
        if answer is None:
            answer = self._compiled.fullmatch(_encode(text)) is not None
            if len(self._answers) >= _MEMO_ENTRIES:
                self._answers.clear()
            self._answers[text] = answer
        return answer

    def search(self, text: str) -> Captures | None:
        """The leftmost match anywhere in `text` and its groups, or None."""
        found = self._compiled.search(_encode(text))
        if found is None:
            return None
        groups = tuple(
            None if raw is None else _decode(raw) for raw in (found.group(0), *found.groups())
        )
        return Captures(groups, self._names)


def _encode(text: str) -> bytes:
    return text.encode(_ENCODING, _ERRORS)


def _decode(raw: bytes) -> str:
    return raw.decode(_ENCODING, _ERRORS)


def _reason(exc: Exception) -> str:
    """RE2's reason, which the binding hands over as bytes."""
    detail = exc.args[0] if exc.args else str(exc)
    if isinstance(detail, bytes):
        return detail.decode(_ENCODING, "replace")
    return str(detail)


def _message(pattern: str, reason: str) -> str:
    return f"invalid regular expression `{pattern}`: {reason}"


def _go_refusal(pattern: str) -> str | None:
    r"""Why Go's regexp refuses a pattern C++ RE2 would take, or None: only `\C` today.

    Escapes are skipped two characters at a time, and `\Q...\E` quotes everything inside
    it, so a `\C` that is itself quoted or escaped (`\\C`) is not one.
    """
    index = 0
    while index < len(pattern):
        if pattern[index] != "\\":
            index += 1
            continue
        following = pattern[index + 1 : index + 2]
        if following == "C":
            return "invalid escape sequence: \\C (Go's regexp, as Prometheus uses, has none)"
        if following == "Q":
            end = pattern.find("\\E", index + 2)
            if end < 0:
                return None
            index = end
        index += 2
    return None
