"""An in-memory time-series database with Prometheus' data model.

A series is identified by its full label set, metric name (`__name__`) included. Each series
keeps its samples `(timestamp seconds, value)` in time order in a bounded buffer: samples
older than `retention` (measured from the newest timestamp the database has seen, because the
database has no clock of its own) are trimmed as new ones arrive, at most `max_points` are
kept per series, and a series left with no samples is dropped. Out-of-order and duplicate
appends are ignored and counted, as Prometheus' head block does.

Staleness follows Prometheus exactly: a series that disappears gets a *stale marker*, a NaN
with one particular bit pattern (`STALE_NAN`), so instant queries stop returning it at once
instead of for the 5-minute lookback. NaN never equals itself, so the marker is recognised
by its bits (`is_stale`), never with `==`.

`select` is the read port the PromQL evaluator (`promql.Queryable`) uses. It goes through an
inverted index (label name -> value -> series ids), so a query for one metric touches only
that metric's series however many others are stored.

The database is not thread-safe: it is meant to be owned by one asyncio event loop, as the
scraper and the rule evaluator are.
"""

from __future__ import annotations

import bisect
import enum
import math
import re
import struct
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from selfheal.telemetry import label_regex

STALE_NAN: float = struct.unpack(">d", bytes.fromhex("7ff0000000000002"))[0]
_STALE_BITS = bytes.fromhex("7ff0000000000002")

METRIC_NAME = "__name__"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def is_stale(value: float) -> bool:
    """Whether `value` is Prometheus' stale marker (compared by bit pattern, not by `==`)."""
    return value != value and struct.pack(">d", value) == _STALE_BITS  # noqa: PLR0124


def is_valid_label_name(name: str) -> bool:
    """Whether `name` is a legal Prometheus label name."""
    return _LABEL_NAME.fullmatch(name) is not None


class Labels(Mapping[str, str]):
    """An immutable, hashable label set, sorted by name.

    A label whose value is the empty string is the same as no label at all (Prometheus'
    rule), so such pairs are dropped on construction. Label sets order like Prometheus'
    `labels.Compare`: pair by pair, name then value, shorter first.
    """

    __slots__ = ("_hash", "_map", "_pairs")

    _pairs: tuple[tuple[str, str], ...]
    _hash: int
    _map: dict[str, str] | None

    def __init__(
        self,
        labels: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        /,
        **more: str,
    ) -> None:
        merged = dict(labels.items() if isinstance(labels, Mapping) else labels)
        merged.update(more)
        self._pairs = tuple(sorted((k, v) for k, v in merged.items() if v != ""))
        self._hash = hash(self._pairs)
        self._map = None

    @classmethod
    def from_sorted(cls, pairs: tuple[tuple[str, str], ...]) -> Labels:
        """Wrap pairs already sorted by name with no empty values (a fast path, unchecked)."""
        made = cls.__new__(cls)
        # Filling the slots of a fresh instance of this very class: not foreign access.
        made._pairs = pairs  # noqa: SLF001
        made._hash = hash(pairs)  # noqa: SLF001
        made._map = None  # noqa: SLF001
        return made

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return self._pairs

    @property
    def name(self) -> str:
        """The metric name, or "" when the set has none."""
        return self.get(METRIC_NAME, "")

    def _lookup(self) -> dict[str, str]:
        if self._map is None:
            self._map = dict(self._pairs)
        return self._map

    def __getitem__(self, name: str) -> str:
        return self._lookup()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Labels):
            return self._hash == other._hash and self._pairs == other._pairs
        if isinstance(other, Mapping):
            return dict(self._pairs) == dict(other.items())
        return NotImplemented

    def __lt__(self, other: Labels) -> bool:
        return self._pairs < other._pairs

    def without(self, *names: str) -> Labels:
        """This set minus the named labels."""
        if not names:
            return self
        drop = set(names)
        return Labels.from_sorted(tuple(pair for pair in self._pairs if pair[0] not in drop))

    def keep(self, *names: str) -> Labels:
        """Only the named labels of this set."""
        wanted = set(names)
        return Labels.from_sorted(tuple(pair for pair in self._pairs if pair[0] in wanted))

    def with_(self, labels: Mapping[str, str] | None = None, /, **more: str) -> Labels:
        """This set with labels added or replaced; an empty value removes the label."""
        merged = dict(self._pairs)
        merged.update(labels or {})
        merged.update(more)
        return Labels(merged)

    def to_dict(self) -> dict[str, str]:
        return dict(self._pairs)

    def __str__(self) -> str:
        # Prometheus' own rendering, used in its error messages: {a="1", b="2"}.
        inner = ", ".join(f"{name}={quote(value)}" for name, value in self._pairs)
        return "{" + inner + "}"

    def __repr__(self) -> str:
        return f"Labels({dict(self._pairs)!r})"


def quote(text: str) -> str:
    """Double-quote `text` with Go-style escapes, so PromQL reads back the same string."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


class MatchOp(enum.StrEnum):
    """The four label matcher operators of PromQL."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher. A label the series lacks is matched as the empty string.

    Regular expressions are RE2 (`label_regex`), fully anchored, as in Prometheus. Building
    a matcher with an expression RE2 refuses raises `label_regex.RegexError`, a ValueError.
    """

    name: str
    op: MatchOp
    value: str
    _regex: label_regex.Regex | None = field(
        init=False, default=None, compare=False, repr=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.op in {MatchOp.REGEX, MatchOp.NOT_REGEX}:
            object.__setattr__(self, "_regex", label_regex.Regex(self.value))

    def matches(self, value: str) -> bool:
        """Whether a label value (or "" for a missing label) satisfies this matcher."""
        if self.op is MatchOp.EQUAL:
            return value == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value)
        return found if self.op is MatchOp.REGEX else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{quote(self.value)}"


class _Series:
    """One series' samples: parallel time and value arrays read from `head` on.

    Trimming only advances `head`; the dead prefix is cut off once it is at least half the
    buffer, so each append costs O(1) amortised and the arrays stay sorted for `bisect`.
    """

    __slots__ = ("head", "id", "labels", "times", "values")

    def __init__(self, series_id: int, labels: Labels) -> None:
        self.id = series_id
        self.labels = labels
        self.times = array("d")
        self.values = array("d")
        self.head = 0

    def __len__(self) -> int:
        return len(self.times) - self.head

    def last_time(self) -> float:
        return self.times[-1] if len(self) else -math.inf

    def trim_before(self, cutoff: float) -> int:
        """Drop samples with a timestamp before `cutoff`; return how many were dropped."""
        start = self.head
        if start < len(self.times) and self.times[start] < cutoff:
            self.head = bisect.bisect_left(self.times, cutoff, lo=start)
        return self._compact(start)

    def trim_to(self, max_points: int) -> int:
        start = self.head
        self.head = max(self.head, len(self.times) - max_points)
        return self._compact(start)

    def _compact(self, old_head: int) -> int:
        dropped = self.head - old_head
        if self.head and self.head * 2 >= len(self.times):
            del self.times[: self.head]
            del self.values[: self.head]
            self.head = 0
        return dropped


@dataclass(frozen=True, slots=True)
class TSDBStats:
    """Counters for monitoring the database itself."""

    series: int
    samples: int
    appended: int
    out_of_order: int
    trimmed: int
    dropped_series: int


class TSDB:
    """Series in memory, with retention, a per-series cap and Prometheus staleness."""

    def __init__(self, *, retention: float = 3600.0, max_points: int = 20_000) -> None:
        if retention <= 0:
            raise ValueError(f"retention must be positive, got {retention}")
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, got {max_points}")
        self.retention = retention
        self.max_points = max_points
        self._by_labels: dict[Labels, _Series] = {}
        self._by_id: dict[int, _Series] = {}
        self._index: dict[str, dict[str, set[int]]] = {}
        self._next_id = 0
        self._newest = -math.inf
        # Idle series are trimmed by a sweep over all series; sweeping every 1% of the
        # retention keeps that cost negligible while select() hides what is not yet swept.
        self._sweep_every = retention / 100
        self._next_sweep = -math.inf
        self._appended = 0
        self._out_of_order = 0
        self._trimmed = 0
        self._dropped_series = 0

    # -- writing ---------------------------------------------------------------------------

    def append(self, labels: Labels | Mapping[str, str], *, timestamp: float, value: float) -> bool:
        """Add one sample; False (and counted) if it is not newer than the series' last."""
        key = labels if isinstance(labels, Labels) else Labels(labels)
        series = self._by_labels.get(key)
        if series is None:
            if not key:
                raise ValueError("a series needs at least one label")
            if timestamp < self._newest - self.retention:
                self._trimmed += 1
                return True  # already beyond retention: accepted, and gone at once
            series = self._create(key)
        elif timestamp <= series.last_time():
            self._out_of_order += 1
            return False
        series.times.append(timestamp)
        series.values.append(value)
        self._appended += 1
        if len(series.times) - series.head > self.max_points:
            self._trimmed += series.trim_to(self.max_points)
        if timestamp > self._newest:
            self._newest = timestamp
            if timestamp >= self._next_sweep:
                self.compact()
                return True
        self._trimmed += series.trim_before(self._cutoff())
        if not len(series):
            self._drop(series)
        return True

    def mark_stale(self, labels: Labels | Mapping[str, str], timestamp: float) -> bool:
        """End a series now, as Prometheus does when a target stops exposing it.

        Does nothing (and returns False) for an unknown series, one already marked stale, or
        a timestamp not after the series' last sample.
        """
        key = labels if isinstance(labels, Labels) else Labels(labels)
        series = self._by_labels.get(key)
        if series is None or not len(series) or is_stale(series.values[-1]):
            return False
        return self.append(key, timestamp=timestamp, value=STALE_NAN)

    def ingest(
        self,
        *,
        at: float,
        samples: Iterable[tuple[Mapping[str, str], float]],
        stale: Iterable[Mapping[str, str]] = (),
    ) -> None:
        """Apply one scrape: append every sample at `at`, then mark vanished series stale."""
        for labels, value in samples:
            self.append(labels, timestamp=at, value=value)
        for labels in stale:
            self.mark_stale(labels, at)

    def compact(self) -> None:
        """Trim every series to the retention window and drop the empty ones."""
        cutoff = self._cutoff()
        for series in list(self._by_id.values()):
            self._trimmed += series.trim_before(cutoff)
            if not len(series):
                self._drop(series)
        self._next_sweep = self._newest + self._sweep_every

    # -- reading ---------------------------------------------------------------------------

    def select(
        self, matchers: Sequence[Matcher], *, start: float, end: float
    ) -> list[tuple[Labels, list[tuple[float, float]]]]:
        """Series matching all `matchers`, each with its samples in `start < t <= end`.

        Series are returned sorted by label set (Prometheus' storage order); series with no
        samples in the window are left out. Samples past retention are never returned, even
        before the next sweep removes them.
        """
        start = max(start, math.nextafter(self._cutoff(), -math.inf))
        found: list[tuple[Labels, list[tuple[float, float]]]] = []
        for series_id in self._candidates(matchers):
            series = self._by_id[series_id]
            labels = series.labels
            if not all(m.matches(labels.get(m.name, "")) for m in matchers):
                continue
            times = series.times
            low = bisect.bisect_right(times, start, lo=series.head)
            high = bisect.bisect_right(times, end, lo=low)
            if low < high:
                found.append(
                    (labels, list(zip(times[low:high], series.values[low:high], strict=True)))
                )
        found.sort(key=lambda item: item[0].pairs)
        return found

    def samples(self, labels: Labels | Mapping[str, str]) -> list[tuple[float, float]]:
        """All retained samples of one series, oldest first (empty if unknown)."""
        key = labels if isinstance(labels, Labels) else Labels(labels)
        series = self._by_labels.get(key)
        if series is None:
            return []
        low = bisect.bisect_left(series.times, self._cutoff(), lo=series.head)
        return list(zip(series.times[low:], series.values[low:], strict=True))

    def series(self) -> list[Labels]:
        """Every stored label set, sorted."""
        return sorted(self._by_labels, key=lambda labels: labels.pairs)

    def label_values(self, name: str) -> list[str]:
        """The values a label takes across stored series, sorted."""
        return sorted(self._index.get(name, {}))

    @property
    def newest(self) -> float:
        """The newest timestamp ever appended (-inf when empty): the database's "now"."""
        return self._newest

    def stats(self) -> TSDBStats:
        return TSDBStats(
            series=len(self._by_id),
            samples=sum(len(series) for series in self._by_id.values()),
            appended=self._appended,
            out_of_order=self._out_of_order,
            trimmed=self._trimmed,
            dropped_series=self._dropped_series,
        )

    def __len__(self) -> int:
        return len(self._by_id)

    # -- internals -------------------------------------------------------------------------

    def _cutoff(self) -> float:
        return self._newest - self.retention

    def _create(self, labels: Labels) -> _Series:
        series = _Series(self._next_id, labels)
        self._next_id += 1
        self._by_labels[labels] = series
        self._by_id[series.id] = series
        for name, value in labels.pairs:
            self._index.setdefault(name, {}).setdefault(value, set()).add(series.id)
        return series

    def _drop(self, series: _Series) -> None:
        del self._by_labels[series.labels]
        del self._by_id[series.id]
        self._dropped_series += 1
        for name, value in series.labels.pairs:
            values = self._index[name]
            ids = values[value]
            ids.discard(series.id)
            if not ids:
                del values[value]
                if not values:
                    del self._index[name]

    def _candidates(self, matchers: Sequence[Matcher]) -> Iterable[int]:
        """Ids of series that may match: intersect the index over matchers that need a value.

        A matcher that accepts "" also accepts series without the label, which the index
        cannot list, so only the others narrow the search; the caller checks every matcher.
        """
        sets: list[set[int]] = []
        for matcher in matchers:
            if matcher.matches(""):
                continue
            values = self._index.get(matcher.name, {})
            if matcher.op is MatchOp.EQUAL:
                sets.append(values.get(matcher.value, set()))
            else:
                union: set[int] = set()
                for value, ids in values.items():
                    if matcher.matches(value):
                        union |= ids
                sets.append(union)
        if not sets:
            return list(self._by_id)
        sets.sort(key=len)
        result = set(sets[0])
        for other in sets[1:]:
            result &= other
            if not result:
                break
        return result
