"""What every receiver shares: the sample it produces, the error it raises, a JSON reader.

A receiver turns a request body into domain values or raises `PayloadError`, never both:
it reads the whole payload before it returns anything, so a bad item anywhere rejects the
batch (safety invariant 5: nothing is half-applied). The error names the place as a JSON
path (`alerts[3].startsAt`) or, for protobuf, the same path in the message's JSON field names
(`timeseries[2].samples[0].value`), so a sender's operator can find the bad item.

`JsonObject` reads one JSON object and remembers where it is, so every type check can say
where it failed without the parsers threading paths through by hand.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from selfheal.domain.errors import ConfigError, SourceLocation

# proto3's JSON mapping writes 64-bit integers as strings and accepts doubles as strings; only
# these spellings, not everything Python's int() and float() accept ("1_000", " 7", "nan").
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Lone surrogates: JSON's \u escapes can spell them, UTF-8 cannot encode them.
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (int, "number"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


@dataclass(frozen=True, slots=True)
class TimedSample:
    """One sample with its own timestamp, as pushed by a sender (not scraped).

    `labels` include `__name__`; `timestamp` is in Unix seconds.
    """

    labels: dict[str, str]
    timestamp: float
    value: float


class PayloadError(ConfigError):
    """A request body is malformed; `location.path` names the bad field, when there is one."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(
            message, location=SourceLocation(source, line=line, column=column, path=path or None)
        )

    @property
    def path(self) -> str | None:
        """The JSON or protobuf field path of the bad value; None for the body as a whole."""
        return self.location.path if self.location else None


class PayloadTooLarge(PayloadError):
    """The payload decodes to more bytes than the receiver accepts."""


def child(path: str, key: str | int) -> str:
    """The path of a member (`a.b`) or an element (`a[3]`) under `path`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def load_json(body: bytes, *, source: str) -> object:
    r"""Parse a JSON body; a syntax error names its line and column.

    A string JSON can spell but UTF-8 cannot hold (a lone surrogate escape such as
    `"\ud800"`) is refused at its path: nothing downstream could store or hash it.
    """
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"invalid JSON: {exc.msg}", source=source, line=exc.lineno, column=exc.colno
        ) from exc
    except RecursionError as exc:
        raise PayloadError("the JSON nests too deeply", source=source) from exc
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the body is not UTF-8 text: {exc.reason}", source=source) from exc
    bad = _first_unencodable(document, "")
    if bad is not None:
        raise PayloadError(
            "not valid Unicode text: a lone surrogate (\\ud800-\\udfff) that UTF-8 cannot hold",
            source=source,
            path=bad,
        )
    return document


def _first_unencodable(value: object, path: str) -> str | None:
    """The path of the first string (or key) holding a lone surrogate, if any."""
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return where
        elif isinstance(item, dict):
            for key, member in reversed(list(item.items())):
                if not key.isascii() and _SURROGATE.search(key):
                    return child(where, key.encode("utf-8", "backslashreplace").decode())
                stack.append((member, child(where, key)))
        elif isinstance(item, list):
            stack.extend((member, child(where, i)) for i, member in reversed(list(enumerate(item))))
    return None


def type_name(value: object) -> str:
    """A JSON type's name for error messages (`object`, `array`, `string`, ...)."""
    if isinstance(value, bool):
        return "boolean"
    for python_type, name in _JSON_TYPE_NAMES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class JsonObject:
    """A JSON object being read, with the document's name and the object's path in it.

    A member that is absent or `null` counts as missing: proto3's JSON mapping reads `null`
    as the default value, and Alertmanager never sends one.
    """

    source: str
    path: str
    data: Mapping[str, object]

    @classmethod
    def root(cls, value: object, *, source: str) -> JsonObject:
        if not isinstance(value, dict):
            raise PayloadError(
                f"expected a JSON object, got {type_name(value)}", source=source, path=""
            )
        return cls(source, "", value)

    def error(self, key: str | int | None, message: str) -> PayloadError:
        path = self.path if key is None else child(self.path, key)
        return PayloadError(message, source=self.source, path=path)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _required(self, key: str) -> object:
        value = self.data.get(key)
        if value is None:
            raise self.error(key, "is required")
        return value

    def string(self, key: str, *, default: str | None = None) -> str:
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required")
            return default
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {type_name(value)}")
        return value

    def integer(self, key: str, *, default: int | None = None) -> int:
        """An integer, as a JSON number or (proto3 JSON's form for 64-bit ints) a string."""
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required")
            return default
        return _as_integer(value, source=self.source, path=child(self.path, key))

    def integers(self, key: str) -> list[int]:
        """An array of integers (numbers or strings, as `integer` reads them)."""
        path = child(self.path, key)
        return [
            _as_integer(value, source=self.source, path=child(path, index))
            for index, value in enumerate(self.array(key))
        ]

    def number(self, key: str, *, default: float | None = None) -> float:
        """A double: a JSON number, or a string (`"NaN"`, `"Infinity"`, `"1.5"`) as in proto3."""
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required")
            return default
        return _as_number(value, source=self.source, path=child(self.path, key))

    def numbers(self, key: str) -> list[float]:
        """An array of doubles (numbers or strings, as `number` reads them)."""
        path = child(self.path, key)
        return [
            _as_number(value, source=self.source, path=child(path, index))
            for index, value in enumerate(self.array(key))
        ]

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {type_name(value)}")
        return value

    def obj(self, key: str) -> JsonObject:
        value = self._required(key)
        if not isinstance(value, dict):
            raise self.error(key, f"expected an object, got {type_name(value)}")
        return JsonObject(self.source, child(self.path, key), value)

    def optional_obj(self, key: str) -> JsonObject | None:
        return self.obj(key) if self.has(key) else None

    def array(self, key: str) -> list[object]:
        """A JSON array; a missing one is empty (proto3 omits empty repeated fields)."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected an array, got {type_name(value)}")
        return value

    def objects(self, key: str) -> list[JsonObject]:
        """A JSON array of objects, each with its own path (`key[i]`)."""
        items = []
        path = child(self.path, key)
        for index, value in enumerate(self.array(key)):
            if not isinstance(value, dict):
                raise PayloadError(
                    f"expected an object, got {type_name(value)}",
                    source=self.source,
                    path=child(path, index),
                )
            items.append(JsonObject(self.source, child(path, index), value))
        return items

    def string_map(self, key: str, *, required: bool = True) -> dict[str, str]:
        """An object whose values are all strings (labels, annotations)."""
        if not self.has(key):
            if required:
                raise self.error(key, "is required")
            return {}
        mapping = self.obj(key)
        for name, value in mapping.data.items():
            if not isinstance(value, str):
                raise mapping.error(name, f"expected a string, got {type_name(value)}")
        return {name: str(value) for name, value in mapping.data.items()}


def _as_integer(value: object, *, source: str, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise PayloadError(
        f"expected an integer, got {type_name(value)} {value!r}", source=source, path=path
    )


def _as_number(value: object, *, source: str, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        if value in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[value]
        if _NUMBER.fullmatch(value):
            return float(value)
    raise PayloadError(
        f"expected a number, got {type_name(value)} {value!r}", source=source, path=path
    )
