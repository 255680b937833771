"""Parse and evaluate Kubernetes label and field selectors for the digital twin's API server.

The twin must filter ``list`` and ``watch`` requests exactly as a real API server does for
``?labelSelector=`` and ``?fieldSelector=``, and must evaluate the structured
``LabelSelector`` objects found in Deployments, Services and PodDisruptionBudgets.

Semantics follow the Kubernetes ``labels`` and ``fields`` packages: ``!=`` and ``notin``
also match objects that lack the label entirely, and a field selector treats a missing
field as the empty string (so ``spec.nodeName=`` selects unscheduled pods).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard


class SelectorError(ValueError):
    """A selector string or ``LabelSelector`` object is malformed."""


class Operator(StrEnum):
    """Label requirement operators, valued as written in selector strings."""

    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


# --------------------------------------------------------------------- label validation

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(_NAME)
_DNS_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
_MAX_NAME = 63
_MAX_PREFIX = 253


def _validate_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (
        not prefix or len(prefix) > _MAX_PREFIX or not _DNS_SUBDOMAIN_RE.fullmatch(prefix)
    ):
        raise SelectorError(f"invalid label key {key!r}: prefix must be a DNS subdomain")
    if not name or len(name) > _MAX_NAME or not _NAME_RE.fullmatch(name):
        raise SelectorError(
            f"invalid label key {key!r}: name must be 1-63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )


def _validate_value(key: str, value: str) -> None:
    # Empty values are legal: ``tier=`` selects objects whose tier label is "".
    if value and (len(value) > _MAX_NAME or not _NAME_RE.fullmatch(value)):
        raise SelectorError(f"invalid value {value!r} for label {key!r}")


# -------------------------------------------------------------------------- requirements


@dataclass(frozen=True)
class Requirement:
    """One comma-separated term of a label selector; parsers store ``values`` sorted, unique."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether ``labels`` satisfy this requirement."""
        present = self.key in labels
        match self.operator:
            case Operator.EXISTS:
                return present
            case Operator.DOES_NOT_EXIST:
                return not present
            case Operator.EQUALS | Operator.IN:
                return present and labels[self.key] in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return not present or labels[self.key] not in self.values

    def __str__(self) -> str:
        match self.operator:
            case Operator.EXISTS:
                return self.key
            case Operator.DOES_NOT_EXIST:
                return f"!{self.key}"
            case Operator.EQUALS | Operator.NOT_EQUALS:
                return f"{self.key}{self.operator.value}{self.values[0]}"
            case Operator.IN | Operator.NOT_IN:
                return f"{self.key} {self.operator.value} ({','.join(self.values)})"


def _requirement(key: str, operator: Operator, values: Iterable[str] = ()) -> Requirement:
    """Build a validated requirement."""
    _validate_key(key)
    unique = tuple(sorted(set(values)))
    for value in unique:
        _validate_value(key, value)
    if operator in (Operator.IN, Operator.NOT_IN) and not unique:
        raise SelectorError(f"operator {operator.value!r} on {key!r} needs at least one value")
    if operator in (Operator.EQUALS, Operator.NOT_EQUALS) and len(unique) != 1:
        raise SelectorError(f"operator {operator.value!r} on {key!r} needs exactly one value")
    if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and unique:
        raise SelectorError(f"existence test on {key!r} takes no values")
    return Requirement(key=key, operator=operator, values=unique)


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of label requirements; no requirements selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether ``labels`` satisfy every requirement."""
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


# ------------------------------------------------------------------- label string parser

# Characters that end an identifier, as in the Kubernetes selector lexer.
_SPECIAL = frozenset("!=,() \t\n\r")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
        elif text.startswith(("==", "!="), position):
            tokens.append(text[position : position + 2])
            position += 2
        elif char in _SPECIAL:
            tokens.append(char)
            position += 1
        else:
            end = position
            while end < len(text) and text[end] not in _SPECIAL and not text[end].isspace():
                end += 1
            tokens.append(text[position:end])
            position = end
    return tokens


def _is_identifier(token: str | None) -> TypeGuard[str]:
    return token is not None and token[0] not in _SPECIAL


class _LabelParser:
    """Recursive-descent parser over tokens; commas inside ``( )`` separate set values."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._position = 0

    def _peek(self) -> str | None:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _next(self) -> str | None:
        token = self._peek()
        self._position += 1
        return token

    def _fail(self, problem: str) -> SelectorError:
        return SelectorError(f"invalid label selector {self._text!r}: {problem}")

    def parse(self) -> LabelSelector:
        requirements: list[Requirement] = []
        if self._peek() is None:
            return LabelSelector()
        while True:
            requirements.append(self._requirement())
            token = self._next()
            if token is None:
                return LabelSelector(tuple(requirements))
            if token != ",":
                raise self._fail(f"expected ',' but found {token!r}")

    def _requirement(self) -> Requirement:
        token = self._next()
        if token == "!":
            key = self._next()
            if not _is_identifier(key):
                raise self._fail("expected a label key after '!'")
            return self._build(key, Operator.DOES_NOT_EXIST, ())
        if not _is_identifier(token):
            found = "end of input" if token is None else repr(token)
            raise self._fail(f"expected a label key but found {found}")
        key = token
        operator_token = self._peek()
        if operator_token is None or operator_token == ",":
            return self._build(key, Operator.EXISTS, ())
        self._position += 1
        if operator_token in ("=", "=="):
            return self._build(key, Operator.EQUALS, (self._single_value(key),))
        if operator_token == "!=":
            return self._build(key, Operator.NOT_EQUALS, (self._single_value(key),))
        if operator_token == "in":
            return self._build(key, Operator.IN, self._value_set(key))
        if operator_token == "notin":
            return self._build(key, Operator.NOT_IN, self._value_set(key))
        raise self._fail(f"unknown operator {operator_token!r} after {key!r}")

    def _single_value(self, key: str) -> str:
        token = self._peek()
        if token is None or token == ",":
            return ""  # ``key=`` compares against the empty value
        if not _is_identifier(token):
            raise self._fail(f"invalid value {token!r} for {key!r}")
        self._position += 1
        return token

    def _value_set(self, key: str) -> list[str]:
        if self._next() != "(":
            raise self._fail(f"expected '(' after set operator on {key!r}")
        values: list[str] = []
        while True:
            token = self._next()
            if token is None:
                raise self._fail(f"unclosed '(' in values for {key!r}")
            if token == ")" and not values:
                return values
            if not _is_identifier(token):
                raise self._fail(f"expected a value for {key!r} but found {token!r}")
            values.append(token)
            separator = self._next()
            if separator == ")":
                return values
            if separator != ",":
                found = "end of input" if separator is None else repr(separator)
                raise self._fail(f"expected ',' or ')' in values for {key!r} but found {found}")

    def _build(self, key: str, operator: Operator, values: Iterable[str]) -> Requirement:
        try:
            return _requirement(key, operator, values)
        except SelectorError as error:
            raise self._fail(str(error)) from None


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``?labelSelector=`` string; the empty string selects everything."""
    return _LabelParser(text).parse()


# ------------------------------------------------------------- structured LabelSelector

_MATCH_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def label_selector_from_match(selector: Mapping[str, object]) -> LabelSelector:
    """Convert a Kubernetes ``LabelSelector`` object (``matchLabels``/``matchExpressions``)."""
    if not isinstance(selector, Mapping):
        raise SelectorError("label selector must be an object")
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SelectorError(f"unknown label selector fields: {', '.join(sorted(unknown))}")
    requirements: list[Requirement] = []

    match_labels = selector.get("matchLabels")
    if match_labels is None:
        match_labels = {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be an object of strings")
    for key, value in match_labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError(f"matchLabels entry {key!r} must map a string to a string")
        requirements.append(_requirement(key, Operator.EQUALS, (value,)))

    expressions = selector.get("matchExpressions")
    if expressions is None:
        expressions = []
    if not isinstance(expressions, list):
        raise SelectorError("matchExpressions must be a list")
    for index, expression in enumerate(expressions):
        requirements.append(_expression_requirement(expression, index))
    return LabelSelector(tuple(requirements))


def _expression_requirement(expression: object, index: int) -> Requirement:
    where = f"matchExpressions[{index}]"
    if not isinstance(expression, Mapping):
        raise SelectorError(f"{where} must be an object")
    key = expression.get("key")
    if not isinstance(key, str):
        raise SelectorError(f"{where}.key must be a string")
    operator_name = expression.get("operator")
    if not isinstance(operator_name, str) or operator_name not in _MATCH_OPERATORS:
        raise SelectorError(
            f"{where}.operator must be one of In, NotIn, Exists, DoesNotExist, "
            f"not {operator_name!r}"
        )
    values = expression.get("values")
    if values is None:
        values = []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise SelectorError(f"{where}.values must be a list of strings")
    try:
        return _requirement(key, _MATCH_OPERATORS[operator_name], (str(v) for v in values))
    except SelectorError as error:
        raise SelectorError(f"{where}: {error}") from None


# ------------------------------------------------------------------------ field selectors


@dataclass(frozen=True)
class FieldRequirement:
    """``path=value`` (``negated`` False) or ``path!=value`` (``negated`` True)."""

    path: str
    value: str
    negated: bool = False

    def matches(self, obj: Mapping[str, object]) -> bool:
        """Return whether the field at ``path`` in ``obj`` satisfies this requirement."""
        actual = _field_value(obj, self.path)
        equal = actual == self.value
        return not equal if self.negated else equal

    def __str__(self) -> str:
        operator = "!=" if self.negated else "="
        return f"{self.path}{operator}{_escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field requirements; no requirements selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, object]) -> bool:
        """Return whether ``obj`` satisfies every requirement."""
        return all(requirement.matches(obj) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def _field_value(obj: Mapping[str, object], path: str) -> str | None:
    """Return the field as the API server would print it; None if it is not a scalar."""
    current: object = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return ""
        current = current[part]
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, (str, int, float)):
        return str(current)
    # A mapping or list never equals a selector value, so ``!=`` matches it.
    return None


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` not preceded by a backslash escape, keeping escapes intact."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape_field_value(raw: str, text: str) -> str:
    result: list[str] = []
    characters = iter(raw)
    for char in characters:
        if char != "\\":
            result.append(char)
            continue
        following = next(characters, None)
        if following not in ("\\", ",", "="):
            raise SelectorError(f"invalid field selector {text!r}: bad escape in {raw!r}")
        result.append(following)
    return "".join(result)


def _parse_field_term(term: str, text: str) -> FieldRequirement:
    escaped = False
    for position, char in enumerate(term):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "!=":
            if term.startswith("!=", position):
                negated, width = True, 2
            elif term.startswith("==", position):
                negated, width = False, 2
            elif char == "=":
                negated, width = False, 1
            else:
                raise SelectorError(f"invalid field selector {text!r}: stray '!' in {term!r}")
            path = term[:position].strip()
            if not path or not re.fullmatch(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*", path):
                raise SelectorError(f"invalid field selector {text!r}: bad field path {path!r}")
            raw_value = term[position + width :].strip()
            return FieldRequirement(
                path=path, value=_unescape_field_value(raw_value, text), negated=negated
            )
    raise SelectorError(f"invalid field selector {text!r}: {term!r} has no '=', '==' or '!='")


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a ``?fieldSelector=`` string; the empty string selects everything."""
    if not text.strip():
        return FieldSelector()
    return FieldSelector(
        tuple(_parse_field_term(term, text) for term in _split_unescaped(text, ","))
    )
