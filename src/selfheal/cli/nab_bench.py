"""`selfheal bench nab`: a detector on a NAB corpus, scored by NAB's rules."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from selfheal.detection import batch, contract, registry
from selfheal.detection.nab import baselines, corpus
from selfheal.detection.nab import harness as nab_harness
from selfheal.domain.errors import ConfigError, SourceLocation

_PROFILE_KEYS = {
    "standard": "standard",
    "reward_low_FP_rate": "reward_low_FP_rate",
    "reward_low_FN_rate": "reward_low_FN_rate",
}


def detectors() -> dict[str, Callable[[], nab_harness.Detector]]:
    """Detector factories by name; the first is the default (the registry's)."""
    names = [registry.DEFAULT, *sorted(set(registry.DETECTORS) - {registry.DEFAULT})]
    found: dict[str, Callable[[], nab_harness.Detector]] = {
        name: functools.partial(_wrap, registry.DETECTORS[name]) for name in names
    }
    found["windowed-gaussian"] = baselines.WindowedGaussian
    return found


def _wrap(make: Callable[..., contract.Detector]) -> nab_harness.Detector:
    return make(seed=0)


def run(*, data: Path, detector: str | None, results_out: Path | None) -> dict[str, Any]:
    available = detectors()
    name = detector or next(iter(available))
    if name not in available:
        raise ConfigError(
            f"no detector named {name!r}; available: {', '.join(available)}",
            location=SourceLocation("--detector"),
        )
    if not (data / "data").is_dir() or not (data / "labels").is_dir():
        raise ConfigError(
            f"{data} is not a corpus in NAB's layout (data/ and labels/)",
            location=SourceLocation("--data"),
        )
    loaded = corpus.load_corpus(data)
    evaluation = nab_harness.evaluate(loaded, available[name])
    if results_out is not None:
        nab_harness.write_results(results_out, data=loaded, run=evaluation.run, detector=name)
    memory = evaluation.run.peak_memory_bytes
    folds = nab_harness.cross_validate(loaded, evaluation.run)
    splittable = len(loaded.series) > 1 and any(
        layout.scorable_windows for layout in nab_harness.layouts(loaded)
    )
    splits = nab_harness.held_out_file_splits(loaded, evaluation.run) if splittable else ()
    batch_cost = (
        _batch_cost(loaded, name=name, streamed=evaluation.run.scores)
        if name in registry.BATCH_PATHS
        else None
    )
    return {
        "detector": name,
        "files": len(loaded.series),
        "scores": {r.profile.name: round(r.normalized, 2) for r in evaluation.results},
        "thresholds": {r.profile.name: r.threshold for r in evaluation.results},
        "us_per_sample": round(evaluation.run.microseconds_per_sample, 3),
        "peak_memory_mb": None if memory is None else round(memory / 2**20, 3),
        # The same scores computed for every file at once on the vectorized batch path.
        "batch_us_per_sample": batch_cost,
        # Each category scored at the threshold chosen on the other categories: how much
        # of the corpus-wide figure survives not knowing the file it is scored on.
        "cross_validation": {
            cv.profile.name: {
                "pooled": round(cv.normalized, 2),
                "by_category": {
                    fold.category: None if fold.normalized is None else round(fold.normalized, 2)
                    for fold in cv.folds
                },
            }
            for cv in folds
        },
        # Random thirds of the files scored at a threshold chosen on the rest: the spread a
        # reader should expect on files the figures above never saw.
        "file_splits": None
        if not splits
        else {
            "held_out_files": len(splits[0].held_out[0]),
            "splits": len(splits[0].scores),
            **{
                split.profile.name: {
                    "min": round(min(split.scores), 2),
                    "lower_quartile": round(split.quantile(0.25), 2),
                    "median": round(split.quantile(0.5), 2),
                }
                for split in splits
            },
        },
    }


def _batch_cost(loaded: corpus.Corpus, *, name: str, streamed: Sequence[Sequence[float]]) -> float:
    """Cost per sample of scoring every file at once on the detector's batch path.

    The scores are checked against the streaming run's: a batch path that drifted from its
    detector would report a cost for different results.
    """
    timestamps = [list(series.timestamps) for series in loaded.series]
    values = [list(series.values) for series in loaded.series]
    make = functools.partial(registry.BATCH_PATHS[name], seed=0)
    started = time.perf_counter()
    scores = batch.score_series(make, timestamps, values)
    elapsed = time.perf_counter() - started
    if scores != [list(s) for s in streamed]:
        raise RuntimeError(f"the batch path of {name} scored the corpus unlike its detector")
    return round(elapsed / sum(len(v) for v in values) * 1e6, 3)


def print_result(console: Console, result: dict[str, Any]) -> None:
    table = Table(
        title=f"NAB: {result['detector']} on {result['files']} files", header_style="bold"
    )
    for column in ("profile", "normalized score", "threshold", "cross-validated"):
        table.add_column(column, justify="right")
    for profile, score in result["scores"].items():
        pooled = result["cross_validation"][profile]["pooled"]
        table.add_row(
            profile, f"{score:.2f}", f"{result['thresholds'][profile]:.6g}", f"{pooled:.2f}"
        )
    console.print(table)
    console.print(
        f"{result['us_per_sample']} us per sample, peak memory {result['peak_memory_mb']} MB"
    )
    console.print(
        "cross-validated: each category scored at the threshold chosen on the others, pooled"
    )
    splits = result["file_splits"]
    if splits is None:
        console.print("held-out file splits: none (they need two files and a scorable window)")
    else:
        spread = "; ".join(
            f"{profile} median {splits[profile]['median']:.2f}, lower quartile "
            f"{splits[profile]['lower_quartile']:.2f}"
            for profile in result["scores"]
        )
        console.print(
            f"held out {splits['held_out_files']} files at a time ({splits['splits']} seeded "
            f"splits, threshold chosen on the rest): {spread}"
        )
    if result["batch_us_per_sample"] is not None:
        console.print(
            f"batch path: {result['batch_us_per_sample']} us per sample with the "
            f"{result['files']} files advanced together (same scores; its cost falls with "
            "the number of series, `selfheal bench` measures 1000)"
        )
