"""A corpus in NAB's layout: `data/<category>/<file>.csv` plus `labels/combined_windows.json`.

Every CSV present under `data/` is read; no file name is assumed, because part of NAB is
held out and a corpus may hold any subset of it. Windows are turned into inclusive row
ranges once, here, so the scorer works on row indices only. A window edge that is not
exactly a row's timestamp is snapped inwards (first row at or after the start, last row at
or before the end); NAB's windows are cut from the data, so on NAB itself this is exact.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path

from selfheal.domain.errors import ConfigError, SourceLocation

# NAB v1.1: the first 15% of a file is probation, capped at 15% of 5000 rows.
PROBATION_FRACTION = 0.15
PROBATION_CAP = 750


def probation_length(rows: int) -> int:
    """Rows at the start of a file that a detector learns on and the scorer ignores."""
    return min(math.floor(PROBATION_FRACTION * rows), PROBATION_CAP)


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch for NAB's naive timestamps, which are read as UTC."""
    parsed = datetime.datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


@dataclass(frozen=True, slots=True)
class Series:
    """One data file: its rows and its anomaly windows as inclusive row ranges."""

    name: str  # "<category>/<file>.csv", the key NAB uses everywhere
    timestamp_text: tuple[str, ...]  # as written in the file, to write results NAB can read
    timestamps: tuple[float, ...]
    values: tuple[float, ...]
    windows: tuple[tuple[int, int], ...]

    @property
    def rows(self) -> int:
        return len(self.values)

    @property
    def probation(self) -> int:
        return probation_length(self.rows)

    def labels(self) -> list[int]:
        """NAB's `label` column: 1 on every row inside a window, 0 elsewhere."""
        out = [0] * self.rows
        for left, right in self.windows:
            out[left : right + 1] = [1] * (right - left + 1)
        return out


@dataclass(frozen=True, slots=True)
class Corpus:
    """All series of a corpus, in a stable (sorted by name) order."""

    root: Path
    series: tuple[Series, ...]

    @property
    def window_count(self) -> int:
        return sum(len(s.windows) for s in self.series)


def _window_rows(
    timestamps: tuple[float, ...], windows: list[tuple[float, float]], *, name: str, labels: Path
) -> tuple[tuple[int, int], ...]:
    ranges: list[tuple[int, int]] = []
    for index, (start, end) in sorted(enumerate(windows), key=lambda item: item[1][0]):
        inside = [i for i, t in enumerate(timestamps) if start <= t <= end]
        if not inside:
            raise ConfigError(
                "the window holds no row of the file",
                location=SourceLocation(str(labels), path=f'["{name}"][{index}]'),
            )
        ranges.append((inside[0], inside[-1]))
    return tuple(ranges)


def _read_rows(path: Path) -> tuple[list[str], list[float], list[float]]:
    """The timestamp texts, timestamps and values of a `timestamp,value` file."""
    texts: list[str] = []
    stamps: list[float] = []
    values: list[float] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"timestamp", "value"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(
                f"the header lacks {', '.join(sorted(missing))}: expected timestamp,value",
                location=SourceLocation(str(path), line=1),
            )
        for row in reader:
            where = SourceLocation(str(path), line=reader.line_num)
            text, value = row["timestamp"], row["value"]
            try:
                stamp = parse_timestamp(text or "")
            except ValueError:
                raise ConfigError(f"{text!r} is not a timestamp", location=where) from None
            try:
                number = float(value or "")
            except ValueError:
                raise ConfigError(f"{value!r} is not a number", location=where) from None
            texts.append(text)
            stamps.append(stamp)
            values.append(number)
    if not values:
        raise ConfigError("the file holds no rows", location=SourceLocation(str(path)))
    return texts, stamps, values


def read_series(
    path: Path, *, name: str, windows: list[tuple[float, float]], labels: Path
) -> Series:
    """Read one `timestamp,value` file and place its windows (from `labels`) on its rows."""
    texts, stamps, values = _read_rows(path)
    return Series(
        name=name,
        timestamp_text=tuple(texts),
        timestamps=tuple(stamps),
        values=tuple(values),
        windows=_window_rows(tuple(stamps), windows, name=name, labels=labels),
    )


def read_windows(path: Path) -> dict[str, list[tuple[float, float]]]:
    """`combined_windows.json`: per file, its windows as (start, end) timestamps."""
    try:
        raw: object = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        location = SourceLocation(str(path), line=exc.lineno, column=exc.colno)
        raise ConfigError(f"not JSON: {exc.msg}", location=location) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            'expected an object {"<category>/<file>.csv": [[start, end], ...]}',
            location=SourceLocation(str(path)),
        )
    out: dict[str, list[tuple[float, float]]] = {}
    for name, windows in raw.items():
        if not isinstance(windows, list):
            raise ConfigError(
                "expected a list of [start, end] windows",
                location=SourceLocation(str(path), path=f'["{name}"]'),
            )
        out[name] = []
        for index, window in enumerate(windows):
            where = SourceLocation(str(path), path=f'["{name}"][{index}]')
            if not (
                isinstance(window, list)
                and len(window) == 2
                and all(isinstance(edge, str) for edge in window)
            ):
                raise ConfigError("expected [start, end], two timestamps", location=where)
            try:
                start, end = parse_timestamp(window[0]), parse_timestamp(window[1])
            except ValueError:
                raise ConfigError(
                    f"{window} holds something not a timestamp", location=where
                ) from None
            if end < start:
                raise ConfigError(f"the window ends before it starts: {window}", location=where)
            out[name].append((start, end))
    return out


def load_corpus(root: Path) -> Corpus:
    """Read every `data/*/*.csv` under `root` with its windows from `labels/`.

    Raises `ConfigError` naming the file and line (or the JSON path) of anything malformed.
    """
    labels = root / "labels" / "combined_windows.json"
    if not labels.is_file():
        raise ConfigError(
            "no labels file: a NAB corpus has labels/combined_windows.json",
            location=SourceLocation(str(labels)),
        )
    all_windows = read_windows(labels)
    series = []
    for path in sorted((root / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        windows = all_windows.get(name, [])
        series.append(read_series(path, name=name, windows=windows, labels=labels))
    if not series:
        raise ConfigError(
            "no <category>/<file>.csv here; is this a NAB corpus?",
            location=SourceLocation(str(root / "data")),
        )
    return Corpus(root=root, series=tuple(series))


def read_anomaly_scores(path: Path) -> list[float]:
    """The `anomaly_score` column of a NAB result file, in row order."""
    with path.open(newline="") as handle:
        return [float(row["anomaly_score"]) for row in csv.DictReader(handle)]
