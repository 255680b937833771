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
    timestamps: tuple[float, ...], windows: list[list[str]], name: str
) -> tuple[tuple[int, int], ...]:
    ranges: list[tuple[int, int]] = []
    for start_text, end_text in sorted(windows, key=lambda w: parse_timestamp(w[0])):
        start, end = parse_timestamp(start_text), parse_timestamp(end_text)
        inside = [i for i, t in enumerate(timestamps) if start <= t <= end]
        if not inside:
            raise ValueError(f"{name}: window {start_text} .. {end_text} holds no row")
        ranges.append((inside[0], inside[-1]))
    return tuple(ranges)


def read_series(path: Path, *, name: str, windows: list[list[str]]) -> Series:
    """Read one `timestamp,value` file and place its windows on its rows."""
    texts: list[str] = []
    values: list[float] = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            texts.append(row["timestamp"])
            values.append(float(row["value"]))
    stamps = tuple(parse_timestamp(t) for t in texts)
    return Series(
        name=name,
        timestamp_text=tuple(texts),
        timestamps=stamps,
        values=tuple(values),
        windows=_window_rows(stamps, windows, name),
    )


def load_corpus(root: Path) -> Corpus:
    """Read every `data/*/*.csv` under `root` with its windows from `labels/`."""
    with (root / "labels" / "combined_windows.json").open() as handle:
        all_windows: dict[str, list[list[str]]] = json.load(handle)
    series = []
    for path in sorted((root / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        series.append(read_series(path, name=name, windows=all_windows.get(name, [])))
    if not series:
        raise ValueError(f"{root / 'data'} holds no <category>/<file>.csv; is this a NAB corpus?")
    return Corpus(root=root, series=tuple(series))


def read_anomaly_scores(path: Path) -> list[float]:
    """The `anomaly_score` column of a NAB result file, in row order."""
    with path.open(newline="") as handle:
        return [float(row["anomaly_score"]) for row in csv.DictReader(handle)]
