"""NAB's scoring rules, reimplemented from their description, on row indices.

How this maps to NAB v1.1's `Sweeper`:

* Each row gets, once per file, the window it lies in (or none) and an unweighted credit
  from the scaled sigmoid `sigma(y) = 2 / (1 + exp(5y)) - 1` (NAB caps it at -1 for y > 3).
  In a window `y = -(right - i + 1) / width`; outside, `y = |i - prev_right| / (prev_width - 1)`
  measured from the previous window, and a row before any window is worth -1 outright.
  `RowLayout` holds these; a profile only multiplies them by its weights.
* Probation rows are neither detections nor misses: NAB drops them before counting, so the
  TP/TN/FP/FN row counts and the scores here leave them out too.
* A detection is `anomaly_score >= threshold`. Each window keeps its best (= earliest)
  detection, `A_TP * sigma(y) / sigma(-1)`, or costs `-A_FN` if it has none; every
  detection outside windows adds `A_FP * sigma(y)`.
* The threshold is chosen as NAB's optimiser does: sweep every distinct anomaly score of the
  whole corpus from the top (starting above all, at 1.1, which is the detector that never
  fires), and take the best corpus score; ties go to the highest threshold, as NAB's stable
  sort of the sweep leaves them.
* Normalisation: `100 * (S - S_null) / (S_perfect - S_null)`, with `S_perfect = A_TP * windows`
  and `S_null` the score of the never-firing detector, `-A_FN` per scorable window.

NAB's published thresholds (e.g. numenta's 0.5421876907348634) come from an older optimiser
and are not anomaly-score values; scoring at a given threshold here behaves as NAB's
`scoreDataSet` does for such a value: every row whose score reaches it is a detection.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# NAB's sweep starts above every possible score, so "never fire" is always a candidate.
SWEEP_START = 1.1
# Beyond three previous-window widths a false positive costs the full -A_FP (NAB's cap).
_FAR_PAST_WINDOW = 3.0
_OUTSIDE = -1  # window number of a row outside every window


def scaled_sigmoid(y: float) -> float:
    """NAB's credit curve: ~1 early in a window, 0 at its right edge, -1 far past it."""
    if y > _FAR_PAST_WINDOW:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


_SIGMA_WINDOW_START = scaled_sigmoid(-1.0)


@dataclass(frozen=True, slots=True)
class Profile:
    """A NAB application profile: the weights of a hit, a false alarm and a miss."""

    name: str
    tp: float
    fp: float
    fn: float


STANDARD_PROFILES = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


def load_profiles(path: Path) -> tuple[Profile, ...]:
    """Profiles from NAB's `config/profiles.json` (the `CostMatrix` of each)."""
    with path.open() as handle:
        raw: dict[str, dict[str, dict[str, float]]] = json.load(handle)
    return tuple(
        Profile(name, tp=m["tpWeight"], fp=m["fpWeight"], fn=m["fnWeight"])
        for name, body in raw.items()
        for m in (body["CostMatrix"],)
    )


@dataclass(frozen=True, slots=True)
class RowLayout:
    """Per scored row (probation dropped): its window number and its unweighted credit."""

    first_scored: int  # rows before this are probation
    window: tuple[int, ...]  # window number, or -1 outside every window
    credit: tuple[float, ...]  # sigma(y); multiply by A_TP/sigma(-1) in windows, A_FP outside
    window_count: int  # all windows, including any that fall wholly in probation

    @property
    def scorable_windows(self) -> int:
        return len({w for w in self.window if w != _OUTSIDE})


def layout_rows(*, rows: int, windows: Sequence[tuple[int, int]], probation: int) -> RowLayout:
    """Place inclusive `(left, right)` row windows on `rows` rows, `probation` of them unscored."""
    window = [_OUTSIDE] * rows
    credit = [0.0] * rows
    for number, (left, right) in enumerate(windows):
        width = right - left + 1
        for i in range(left, right + 1):
            window[i] = number
            credit[i] = scaled_sigmoid(-(right - i + 1) / width)
    prev: tuple[int, int] | None = None  # (right index, width) of the last window passed
    edges = iter(sorted(windows))
    upcoming = next(edges, None)
    for i in range(rows):
        if upcoming is not None and i > upcoming[1]:
            prev = (upcoming[1], upcoming[1] - upcoming[0] + 1)
            upcoming = next(edges, None)
        if window[i] != _OUTSIDE:
            continue
        if prev is None:
            credit[i] = -1.0
        else:
            # NAB divides by (width - 1); a one-row window would divide by zero there too.
            credit[i] = scaled_sigmoid(abs(i - prev[0]) / max(prev[1] - 1, 1))
    return RowLayout(
        first_scored=probation,
        window=tuple(window[probation:]),
        credit=tuple(credit[probation:]),
        window_count=len(windows),
    )


@dataclass(frozen=True, slots=True)
class FileScore:
    """A file's raw score and NAB's row counts at one threshold."""

    score: float
    tp: int
    tn: int
    fp: int
    fn: int


def score_file(
    layout: RowLayout, scores: Sequence[float], *, threshold: float, profile: Profile
) -> FileScore:
    """Score one file's anomaly scores (all rows, probation included) at `threshold`."""
    scored = scores[layout.first_scored :]
    if len(scored) != len(layout.window):
        raise ValueError(f"{len(scores)} scores for {layout.first_scored + len(scored)} rows")
    best: dict[int, float] = {}
    false_alarms = 0.0
    tp = tn = fp = fn = 0
    for window, credit, value in zip(layout.window, layout.credit, scored, strict=True):
        fired = value >= threshold
        if window == _OUTSIDE:
            if fired:
                fp += 1
                false_alarms += profile.fp * credit
            else:
                tn += 1
        elif fired:
            tp += 1
            # Rows are in time order, so the first detection in a window is its earliest.
            best.setdefault(window, profile.tp * credit / _SIGMA_WINDOW_START)
        else:
            fn += 1
    missed = layout.scorable_windows - len(best)
    score = false_alarms + sum(best.values()) - profile.fn * missed
    return FileScore(score=score, tp=tp, tn=tn, fp=fp, fn=fn)


def null_score(layouts: Sequence[RowLayout], profile: Profile) -> float:
    """The corpus score of a detector that never fires: every scorable window missed."""
    return -profile.fn * sum(layout.scorable_windows for layout in layouts)


def perfect_score(layouts: Sequence[RowLayout], profile: Profile) -> float:
    """The corpus score of a detector firing on the first row of every window and nowhere else."""
    return profile.tp * sum(layout.window_count for layout in layouts)


def normalize(score: float, *, layouts: Sequence[RowLayout], profile: Profile) -> float:
    """NAB's 0 (never fires) to 100 (perfect) scale for a corpus raw score."""
    null = null_score(layouts, profile)
    if perfect_score(layouts, profile) == null:
        raise ValueError("the corpus has no scorable window, so a NAB score means nothing")
    return 100.0 * (score - null) / (perfect_score(layouts, profile) - null)


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """The corpus score if every row scoring at least `threshold` is a detection."""

    threshold: float
    score: float


def sweep(
    layouts: Sequence[RowLayout], scores: Sequence[Sequence[float]], *, profile: Profile
) -> list[SweepPoint]:
    """Corpus scores at every distinct anomaly score, from the top, as NAB's optimiser sweeps."""
    rows: list[tuple[float, int, float]] = []  # (anomaly score, window key, weighted credit)
    window_base = 0
    for layout, file_scores in zip(layouts, scores, strict=True):
        scored = file_scores[layout.first_scored :]
        for window, credit, value in zip(layout.window, layout.credit, scored, strict=True):
            if window == _OUTSIDE:
                rows.append((value, _OUTSIDE, profile.fp * credit))
            else:
                rows.append(
                    (value, window_base + window, profile.tp * credit / _SIGMA_WINDOW_START)
                )
        window_base += layout.window_count
    rows.sort(key=lambda row: row[0], reverse=True)
    missed = null_score(layouts, profile)
    best: dict[int, float] = {}
    # Kept incrementally: NAB re-sums per threshold, which only reorders float additions.
    total = missed
    points: list[SweepPoint] = []
    current = SWEEP_START
    for value, window, weighted in rows:
        if value != current:
            points.append(SweepPoint(current, total))
            current = value
        if window == _OUTSIDE:
            total += weighted
        else:
            previous = best.get(window, -profile.fn)
            if weighted > previous:
                best[window] = weighted
                total += weighted - previous
    points.append(SweepPoint(current, total))
    return points


def optimize_threshold(
    layouts: Sequence[RowLayout], scores: Sequence[Sequence[float]], *, profile: Profile
) -> SweepPoint:
    """The best corpus score over the sweep; ties go to the higher threshold, as in NAB."""
    best: SweepPoint | None = None
    for point in sweep(layouts, scores, profile=profile):
        if best is None or point.score > best.score:
            best = point
    assert best is not None  # the sweep always yields its starting point
    return best


@dataclass(frozen=True, slots=True)
class CorpusScore:
    """A detector's result on a corpus for one profile."""

    profile: Profile
    threshold: float
    raw: float
    normalized: float
    files: tuple[FileScore, ...]


def score_corpus(
    layouts: Sequence[RowLayout],
    scores: Sequence[Sequence[float]],
    *,
    profile: Profile,
    threshold: float | None = None,
) -> CorpusScore:
    """Score a corpus at `threshold`, or at the optimised one when it is None."""
    if threshold is None:
        threshold = optimize_threshold(layouts, scores, profile=profile).threshold
    files = tuple(
        score_file(layout, file_scores, threshold=threshold, profile=profile)
        for layout, file_scores in zip(layouts, scores, strict=True)
    )
    raw = sum(f.score for f in files)
    return CorpusScore(
        profile=profile,
        threshold=threshold,
        raw=raw,
        normalized=normalize(raw, layouts=layouts, profile=profile),
        files=files,
    )
