"""Stream a detector over a NAB corpus, score it, and write NAB-format results.

The harness is the only thing that sees the labels. A detector is built fresh for each file
by a factory that takes no arguments, and is handed each row's timestamp and value, in
order, one at a time; so it cannot look ahead, cannot read labels and cannot be tuned per
file. Its scores are then scored per profile at one threshold for the whole corpus.

Cost is measured in two passes: one timed with `perf_counter` (tracemalloc would slow every
allocation and inflate the time), and, when asked, one under `tracemalloc` for the peak
memory of a file's run (the detector's state and the scores it has produced).

Run it: `python -m selfheal.detection.nab.harness <nab-root> [--out DIR]`.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from selfheal.detection.nab import baselines, corpus, scorer
from selfheal.domain.errors import ConfigError


class Detector(Protocol):
    """A streaming anomaly detector: one row in, scored then learned; higher = worse.

    The detection contract's `process_one`, so every registered detector fits as it is.
    """

    def process_one(self, t: float, x: float) -> float: ...


DetectorFactory = Callable[[], Detector]


@dataclass(frozen=True, slots=True)
class Run:
    """A detector's scores on every file of a corpus, and what producing them cost."""

    scores: tuple[tuple[float, ...], ...]  # per series, in corpus order
    microseconds_per_sample: float
    peak_memory_bytes: int | None  # largest tracemalloc peak over files; None if not measured


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A run scored for each profile, thresholds optimised over the whole corpus."""

    run: Run
    results: tuple[scorer.CorpusScore, ...]


def _stream(factory: DetectorFactory, series: corpus.Series) -> tuple[float, ...]:
    detector = factory()
    score = detector.process_one
    return tuple(
        score(timestamp, value)
        for timestamp, value in zip(series.timestamps, series.values, strict=True)
    )


def run_detector(
    data: corpus.Corpus, factory: DetectorFactory, *, measure_memory: bool = True
) -> Run:
    """Feed every series to a fresh detector; time it and optionally measure its memory."""
    started = time.perf_counter()
    scores = tuple(_stream(factory, series) for series in data.series)
    elapsed = time.perf_counter() - started
    samples = sum(series.rows for series in data.series)
    peak: int | None = None
    if measure_memory:
        peak = 0
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        try:
            for series in data.series:
                tracemalloc.reset_peak()
                baseline, _ = tracemalloc.get_traced_memory()
                _stream(factory, series)
                peak = max(peak, tracemalloc.get_traced_memory()[1] - baseline)
        finally:
            if not was_tracing:
                tracemalloc.stop()
    return Run(
        scores=scores,
        microseconds_per_sample=1e6 * elapsed / max(samples, 1),
        peak_memory_bytes=peak,
    )


def layouts(data: corpus.Corpus) -> list[scorer.RowLayout]:
    """Each series' rows placed against its windows and probation, for the scorer."""
    return [
        scorer.layout_rows(rows=s.rows, windows=s.windows, probation=s.probation)
        for s in data.series
    ]


def evaluate(
    data: corpus.Corpus,
    factory: DetectorFactory,
    *,
    profiles: Sequence[scorer.Profile] = scorer.STANDARD_PROFILES,
    measure_memory: bool = True,
) -> Evaluation:
    """Run a detector over a corpus and score it per profile at its optimised threshold."""
    run = run_detector(data, factory, measure_memory=measure_memory)
    rows = layouts(data)
    results = tuple(scorer.score_corpus(rows, run.scores, profile=p) for p in profiles)
    return Evaluation(run=run, results=results)


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One category scored at the threshold chosen on every other category."""

    category: str
    threshold: float
    raw: float
    normalized: float | None  # on the category's own 0..100 scale; None with no window


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """Leave-one-category-out thresholds for one profile, and the pooled held-out score."""

    profile: scorer.Profile
    folds: tuple[HeldOut, ...]
    normalized: float  # every category's held-out raw score, summed, on the corpus scale


def cross_validate(
    data: corpus.Corpus,
    run: Run,
    *,
    profiles: Sequence[scorer.Profile] = scorer.STANDARD_PROFILES,
) -> tuple[CrossValidation, ...]:
    """Score each category at a threshold optimised on the other categories only.

    The corpus-wide optimum picks its threshold knowing every file; here no file helps
    choose the threshold it is scored at, so the gap between the two figures is how much
    the threshold was fitted. Categories without a scorable window still take part: their
    false alarms count against the pooled score.
    """
    rows = layouts(data)
    categories = sorted({s.name.split("/")[0] for s in data.series})
    out = []
    for profile in profiles:
        folds = []
        pooled = 0.0
        for category in categories:
            inside = [s.name.split("/")[0] == category for s in data.series]
            train = [i for i, held in enumerate(inside) if not held]
            test = [i for i, held in enumerate(inside) if held]
            threshold = scorer.optimize_threshold(
                [rows[i] for i in train], [run.scores[i] for i in train], profile=profile
            ).threshold
            test_rows = [rows[i] for i in test]
            raw = _raw_score(rows, run, test, threshold=threshold, profile=profile)
            pooled += raw
            normalized = (
                scorer.normalize(raw, layouts=test_rows, profile=profile)
                if any(r.scorable_windows for r in test_rows)
                else None
            )
            folds.append(HeldOut(category, threshold, raw, normalized))
        total = scorer.normalize(pooled, layouts=rows, profile=profile)
        out.append(CrossValidation(profile=profile, folds=tuple(folds), normalized=total))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class FileSplits:
    """Held-out scores for one profile over random splits of the corpus by file."""

    profile: scorer.Profile
    held_out: tuple[tuple[str, ...], ...]  # each split's held-out files, by name
    scores: tuple[float, ...]  # one per split, normalized on the held-out files' own scale

    def quantile(self, q: float) -> float:
        """The q-quantile of the split scores, interpolated between the nearest two."""
        ordered = sorted(self.scores)
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def held_out_file_splits(
    data: corpus.Corpus,
    run: Run,
    *,
    splits: int = 60,
    held_out: int | None = None,
    seed: int = 0,
    profiles: Sequence[scorer.Profile] = scorer.STANDARD_PROFILES,
) -> tuple[FileSplits, ...]:
    """Score random sets of files at a threshold optimised on the remaining files only.

    NAB keeps 20 of its 58 files back, a third; by default each split holds back the same
    share of this corpus (13 of the development subset's 38), so a split's score is what a
    threshold chosen on the rest is worth on files it never saw. Category
    cross-validation pools six folds into one figure; these splits show the spread. A
    split whose held-out files have no scorable window cannot be normalized and is drawn
    again; the draws are seeded, so the figures are reproducible.
    """
    rows = layouts(data)
    files = len(rows)
    count = held_out if held_out is not None else max(1, round(files * 20 / 58))
    if not 0 < count < files:
        raise ConfigError(
            f"cannot hold out {count} of {files} files: at least one must be left to "
            "choose the threshold and one to score"
        )
    if not any(rows[i].scorable_windows for i in range(files)):
        raise ConfigError("the corpus has no scorable window: no split can be scored")
    generator = random.Random(seed)
    drawn: list[list[int]] = []
    while len(drawn) < splits:
        test = sorted(generator.sample(range(files), count))
        if any(rows[i].scorable_windows for i in test):
            drawn.append(test)
    out = []
    for profile in profiles:
        scores = []
        for test in drawn:
            held = set(test)
            train = [i for i in range(files) if i not in held]
            threshold = scorer.optimize_threshold(
                [rows[i] for i in train], [run.scores[i] for i in train], profile=profile
            ).threshold
            raw = _raw_score(rows, run, test, threshold=threshold, profile=profile)
            scores.append(scorer.normalize(raw, layouts=[rows[i] for i in test], profile=profile))
        names = tuple(tuple(data.series[i].name for i in test) for test in drawn)
        out.append(FileSplits(profile=profile, held_out=names, scores=tuple(scores)))
    return tuple(out)


def _raw_score(
    rows: Sequence[scorer.RowLayout],
    run: Run,
    files: Sequence[int],
    *,
    threshold: float,
    profile: scorer.Profile,
) -> float:
    """The summed raw score of some files of a run at a given threshold."""
    return sum(
        scorer.score_file(rows[i], run.scores[i], threshold=threshold, profile=profile).score
        for i in files
    )


def write_results(out_dir: Path, *, data: corpus.Corpus, run: Run, detector: str) -> list[Path]:
    """Write `<out>/<detector>/<category>/<detector>_<file>.csv` as NAB lays results out."""
    written = []
    for series, scores in zip(data.series, run.scores, strict=True):
        category, file_name = series.name.split("/")
        path = out_dir / detector / category / f"{detector}_{file_name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["timestamp", "value", "anomaly_score", "label"])
            rows = zip(series.timestamp_text, series.values, scores, series.labels(), strict=True)
            writer.writerows(
                [text, repr(value), repr(score), label] for text, value, score, label in rows
            )
        written.append(path)
    return written


def report(evaluation: Evaluation) -> str:
    """A short plain-text table of thresholds and scores per profile, and the run's cost."""
    lines = [f"{'profile':<20} {'threshold':>12} {'raw':>10} {'normalized':>10}"]
    lines += [
        f"{r.profile.name:<20} {r.threshold:>12.6f} {r.raw:>10.3f} {r.normalized:>10.2f}"
        for r in evaluation.results
    ]
    run = evaluation.run
    memory = "not measured" if run.peak_memory_bytes is None else f"{run.peak_memory_bytes} B"
    lines.append(f"{run.microseconds_per_sample:.2f} us/sample, peak memory per file {memory}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the windowed-Gaussian baseline over a NAB corpus and print its scores."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", type=Path, help="a NAB corpus: data/ and labels/ inside")
    parser.add_argument("--out", type=Path, help="write NAB result CSVs under this directory")
    args = parser.parse_args(argv)
    try:
        data = corpus.load_corpus(args.root)
    except (OSError, ConfigError) as exc:
        # A wrong path is the usual cause; say so instead of printing a traceback.
        sys.stderr.write(f"cannot read a NAB corpus at {args.root}: {exc}\n")
        return 2
    evaluation = evaluate(data, baselines.WindowedGaussian)
    if args.out is not None:
        write_results(args.out, data=data, run=evaluation.run, detector="windowedGaussian")
    sys.stdout.write(report(evaluation) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
