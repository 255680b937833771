"""The NAB scorer reproduces the official scorer, and the harness keeps detectors honest."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from selfheal.detection.nab import baselines, corpus, harness, scorer
from selfheal.domain.errors import ConfigError

NAB_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "nab"
needs_nab = pytest.mark.skipif(
    not (NAB_ROOT / "data").is_dir(),
    reason=f"the NAB dataset is not beside the checkout at {NAB_ROOT}",
)
PROFILES = {p.name: p for p in scorer.STANDARD_PROFILES}


@pytest.fixture(scope="module")
def nab() -> corpus.Corpus:
    return corpus.load_corpus(NAB_ROOT)


@pytest.fixture(scope="module")
def numenta_scores(nab: corpus.Corpus) -> list[list[float]]:
    return [
        corpus.read_anomaly_scores(NAB_ROOT / "reference" / "numenta" / s.name) for s in nab.series
    ]


def reference_rows() -> dict[tuple[str, str], dict[str, str]]:
    with (NAB_ROOT / "reference" / "numenta" / "per_file_scores.csv").open(newline="") as handle:
        return {(row["Profile"], row["File"]): row for row in csv.DictReader(handle)}


@needs_nab
def test_the_profiles_file_holds_the_standard_profiles() -> None:
    """config/profiles.json and the built-in profiles agree."""
    assert set(scorer.load_profiles(NAB_ROOT / "config" / "profiles.json")) == set(
        scorer.STANDARD_PROFILES
    )


@needs_nab
@pytest.mark.parametrize("profile", list(PROFILES))
def test_numenta_per_file_scores_match_the_official_scorer(
    nab: corpus.Corpus, numenta_scores: list[list[float]], profile: str
) -> None:
    """Every file's Score, TP, TN, FP and FN equal NAB's at NAB's published threshold."""
    reference = reference_rows()
    threshold = float(reference[profile, nab.series[0].name]["Threshold"])
    result = scorer.score_corpus(
        harness.layouts(nab), numenta_scores, profile=PROFILES[profile], threshold=threshold
    )
    for series, got in zip(nab.series, result.files, strict=True):
        want = reference[profile, series.name]
        assert got.score == pytest.approx(float(want["Score"]), abs=1e-9), series.name
        assert (got.tp, got.tn, got.fp, got.fn) == tuple(
            int(want[k]) for k in ("TP", "TN", "FP", "FN")
        ), series.name
    assert result.raw == pytest.approx(float(reference[profile, "Totals"]["Score"]), abs=1e-9)


@needs_nab
@pytest.mark.parametrize("profile", list(PROFILES))
def test_numenta_normalized_scores_match_the_published_row(
    nab: corpus.Corpus, numenta_scores: list[list[float]], profile: str
) -> None:
    """The numenta row of reference/scores.json comes out to 0.01 at its thresholds."""
    published = json.loads((NAB_ROOT / "reference" / "scores.json").read_text())
    result = scorer.score_corpus(
        harness.layouts(nab),
        numenta_scores,
        profile=PROFILES[profile],
        threshold=published["thresholds"]["numenta"][profile],
    )
    assert result.normalized == pytest.approx(published["scores"]["numenta"][profile], abs=0.01)


@needs_nab
@pytest.mark.parametrize("profile", list(PROFILES))
def test_the_optimised_threshold_never_scores_below_the_published_one(
    nab: corpus.Corpus, numenta_scores: list[list[float]], profile: str
) -> None:
    """NAB's sweep optimiser finds a threshold at least as good as the published one."""
    published = json.loads((NAB_ROOT / "reference" / "scores.json").read_text())
    layouts = harness.layouts(nab)
    optimised = scorer.score_corpus(layouts, numenta_scores, profile=PROFILES[profile])
    assert optimised.normalized >= published["scores"]["numenta"][profile] - 0.005


def first_rows_of_windows(series: corpus.Series) -> list[float]:
    scores = [0.0] * series.rows
    for left, _ in series.windows:
        scores[left] = 1.0
    return scores


def untimed_run(scores: Iterable[Sequence[float]]) -> harness.Run:
    """A harness run made of given per-file scores, for testing what is done with them."""
    return harness.Run(
        scores=tuple(tuple(file_scores) for file_scores in scores),
        microseconds_per_sample=0.0,
        peak_memory_bytes=None,
    )


@needs_nab
@pytest.mark.parametrize("profile", list(PROFILES))
def test_a_silent_detector_scores_0_and_an_oracle_scores_100(
    nab: corpus.Corpus, profile: str
) -> None:
    """Never firing normalises to 0; firing on each window's first row only to 100."""
    layouts = harness.layouts(nab)
    silent = scorer.score_corpus(
        layouts, [[0.0] * s.rows for s in nab.series], profile=PROFILES[profile]
    )
    oracle = scorer.score_corpus(
        layouts, [first_rows_of_windows(s) for s in nab.series], profile=PROFILES[profile]
    )
    assert silent.normalized == pytest.approx(0.0)
    assert oracle.normalized == pytest.approx(100.0)


@needs_nab
def test_cross_validation_scores_each_category_at_a_threshold_chosen_without_it(
    nab: corpus.Corpus,
) -> None:
    """An oracle is perfect in every fold; a detector firing everywhere is not rescued."""
    oracle = untimed_run(first_rows_of_windows(s) for s in nab.series)
    categories = sorted({s.name.split("/")[0] for s in nab.series})
    for result in harness.cross_validate(nab, oracle):
        assert [fold.category for fold in result.folds] == categories
        assert result.normalized == pytest.approx(100.0)
        for fold in result.folds:
            assert fold.threshold == 1.0
            assert fold.normalized is None or fold.normalized == pytest.approx(100.0)
    # Scores that rank one category's rows above every window elsewhere: the threshold
    # chosen on the other categories fires on all of that category's rows.
    noisy = untimed_run(
        first_rows_of_windows(s) if s.name.split("/")[0] != categories[-1] else [2.0] * s.rows
        for s in nab.series
    )
    standard = harness.cross_validate(nab, noisy, profiles=[PROFILES["standard"]])[0]
    last = standard.folds[-1]
    assert last.threshold == 1.0
    assert last.normalized is not None
    assert last.normalized < 0.0
    assert standard.normalized < 100.0


@needs_nab
def test_file_splits_score_held_out_files_at_a_threshold_chosen_on_the_rest(
    nab: corpus.Corpus,
) -> None:
    """Seeded splits hold back a third of the files; a bad file hurts only when held out."""
    oracle = untimed_run(first_rows_of_windows(s) for s in nab.series)
    for result in harness.held_out_file_splits(nab, oracle, splits=12):
        assert len(result.scores) == len(result.held_out) == 12
        assert all(len(files) == round(len(nab.series) * 20 / 58) for files in result.held_out)
        assert result.quantile(0.0) == pytest.approx(100.0)
        assert result.quantile(1.0) == pytest.approx(100.0)
    # One file scored 0.5 on every row, below the 1.0 the others give their windows' first
    # rows: a threshold chosen on the other files is 1.0 and misses that file's windows, while
    # one chosen with it among them is also 1.0 and scores the others perfectly. So exactly
    # the splits holding it back fall below 100.
    blind_file = next(s.name for s in nab.series if s.windows)
    blind = untimed_run(
        [0.5] * s.rows if s.name == blind_file else first_rows_of_windows(s) for s in nab.series
    )
    [standard] = harness.held_out_file_splits(
        nab, blind, splits=30, seed=7, profiles=[PROFILES["standard"]]
    )
    held = [blind_file in files for files in standard.held_out]
    assert any(held)
    assert not all(held)
    for holds_it, score in zip(held, standard.scores, strict=True):
        assert (score < 100.0 - 1e-9) == holds_it, (holds_it, score)
    [again] = harness.held_out_file_splits(
        nab, blind, splits=30, seed=7, profiles=[PROFILES["standard"]]
    )
    assert again == standard  # seeded: the same draws and the same scores
    [other] = harness.held_out_file_splits(
        nab, blind, splits=30, seed=8, profiles=[PROFILES["standard"]]
    )
    assert other.held_out != standard.held_out


@needs_nab
def test_file_splits_refuse_to_hold_out_every_file_or_none(nab: corpus.Corpus) -> None:
    silent = untimed_run([0.0] * s.rows for s in nab.series)
    for count in (0, len(nab.series)):
        with pytest.raises(ConfigError, match=f"cannot hold out {count} of"):
            harness.held_out_file_splits(nab, silent, held_out=count)


class Recorder:
    """A detector that records what it is shown and never fires."""

    def __init__(self, seen: list[tuple[object, ...]]) -> None:
        self.seen = seen

    def process_one(self, *args: object, **kwargs: object) -> float:
        assert not kwargs
        self.seen.append(args)
        return 0.0


@needs_nab
def test_detectors_see_only_timestamps_and_values_in_order(nab: corpus.Corpus) -> None:
    """The harness builds a detector per file with no arguments and shows it no labels."""
    seen: list[list[tuple[object, ...]]] = []

    def factory(*args: object, **kwargs: object) -> Recorder:
        assert not args
        assert not kwargs
        seen.append([])
        return Recorder(seen[-1])

    harness.run_detector(nab, factory, measure_memory=False)
    assert len(seen) == len(nab.series)
    for series, shown in zip(nab.series, seen, strict=True):
        assert shown == list(zip(series.timestamps, series.values, strict=True))
        assert all(type(t) is float and type(v) is float for t, v in shown)


@needs_nab
def test_the_baseline_runs_end_to_end_and_writes_nab_results(
    nab: corpus.Corpus, tmp_path: Path
) -> None:
    """The windowed Gaussian scores between 0 and 100 and its CSVs carry NAB's labels."""
    evaluation = harness.evaluate(nab, baselines.WindowedGaussian, measure_memory=False)
    assert all(0.0 <= r.normalized <= 100.0 for r in evaluation.results)
    paths = harness.write_results(tmp_path, data=nab, run=evaluation.run, detector="wg")
    assert len(paths) == len(nab.series)
    series = next(s for s in nab.series if s.windows)
    path = tmp_path / "wg" / series.name.replace("/", "/wg_")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    labelled = [i for i, row in enumerate(rows) if row["label"] == "1"]
    assert labelled == [i for left, right in series.windows for i in range(left, right + 1)]


def test_the_baseline_scores_an_outlier_near_one_and_the_mean_near_zero() -> None:
    """After a steady noisy history, a far outlier scores ~1 and a typical value low."""
    rng = random.Random(7)
    detector = baselines.WindowedGaussian(window=500)
    for i in range(1000):
        detector.process_one(float(i), 1e9 + rng.gauss(0.0, 1.0))
    assert detector.process_one(1000.0, 1e9) < 0.5
    assert detector.process_one(1001.0, 1e9 + 50.0) > 0.999


def test_a_corpus_without_windows_has_no_normalized_score() -> None:
    """Normalising needs S_perfect != S_null; with no window it refuses rather than divide."""
    layout = scorer.layout_rows(rows=100, windows=[], probation=15)
    with pytest.raises(ValueError, match="no scorable window"):
        scorer.normalize(0.0, layouts=[layout], profile=scorer.STANDARD_PROFILES[0])


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    """NAB's probation: floor(0.15 * rows), never more than 750 rows."""
    assert corpus.probation_length(1000) == 150
    assert corpus.probation_length(4032) == 604
    assert corpus.probation_length(22695) == 750


# --- properties on synthetic files ----------------------------------------------------------


grid = st.integers(0, 20).map(lambda k: k / 20)


@st.composite
def files(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], int, list[float]]:
    """A file: rows, non-overlapping windows after probation, probation, scores."""
    rows = draw(st.integers(min_value=20, max_value=200))
    probation = corpus.probation_length(rows)
    cuts = sorted(draw(st.sets(st.integers(probation, rows - 1), min_size=0, max_size=8).map(list)))
    windows = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2) if cuts[i + 1] > cuts[i]]
    # A coarse grid: many ties, as real detectors produce, and exact order-preserving maps.
    scores = draw(st.lists(grid, min_size=rows, max_size=rows))
    return rows, windows, probation, scores


profiles = st.sampled_from(scorer.STANDARD_PROFILES)


@given(files(), profiles, grid)
@settings(max_examples=200)
def test_scores_are_unchanged_by_a_strictly_increasing_rescaling(
    file: tuple[int, list[tuple[int, int]], int, list[float]],
    profile: scorer.Profile,
    threshold: float,
) -> None:
    """Only which rows reach the threshold matters, not by how much."""
    rows, windows, probation, scores = file
    layout = scorer.layout_rows(rows=rows, windows=windows, probation=probation)
    plain = scorer.score_file(layout, scores, threshold=threshold, profile=profile)
    squashed = scorer.score_file(
        layout, [s * s for s in scores], threshold=threshold * threshold, profile=profile
    )
    assert plain == squashed


@given(files(), profiles, grid, st.randoms())
@settings(max_examples=200)
def test_scores_are_unchanged_by_shuffling_probation_rows(
    file: tuple[int, list[tuple[int, int]], int, list[float]],
    profile: scorer.Profile,
    threshold: float,
    shuffler: random.Random,
) -> None:
    """Probation rows are not scored, so their order (or values) cannot matter."""
    rows, windows, probation, scores = file
    layout = scorer.layout_rows(rows=rows, windows=windows, probation=probation)
    head = scores[:probation]
    shuffler.shuffle(head)
    assert scorer.score_file(
        layout, head + scores[probation:], threshold=threshold, profile=profile
    ) == scorer.score_file(layout, scores, threshold=threshold, profile=profile)


@given(files(), profiles, grid, st.randoms())
@settings(max_examples=200)
def test_scores_are_unchanged_by_shuffling_rows_before_the_first_window(
    file: tuple[int, list[tuple[int, int]], int, list[float]],
    profile: scorer.Profile,
    threshold: float,
    shuffler: random.Random,
) -> None:
    """Every false alarm before the first window costs the full A_FP wherever it falls."""
    rows, windows, probation, scores = file
    end = windows[0][0] if windows else rows
    layout = scorer.layout_rows(rows=rows, windows=windows, probation=probation)
    middle = scores[probation:end]
    shuffler.shuffle(middle)
    shuffled = scores[:probation] + middle + scores[end:]
    assert scorer.score_file(
        layout, shuffled, threshold=threshold, profile=profile
    ).score == pytest.approx(
        scorer.score_file(layout, scores, threshold=threshold, profile=profile).score
    )


@given(st.lists(files(), min_size=1, max_size=4), profiles)
@settings(max_examples=100)
def test_the_sweep_agrees_with_scoring_each_threshold_directly(
    corpus_files: list[tuple[int, list[tuple[int, int]], int, list[float]]],
    profile: scorer.Profile,
) -> None:
    """Each sweep point is the corpus score at that threshold, and the best is optimal."""
    assume(any(w for _, w, _, _ in corpus_files))
    layouts = [scorer.layout_rows(rows=r, windows=w, probation=p) for r, w, p, _ in corpus_files]
    scores = [s for *_, s in corpus_files]
    points = scorer.sweep(layouts, scores, profile=profile)
    assert points[0].score == pytest.approx(scorer.null_score(layouts, profile))
    for point in points[:: max(1, len(points) // 10)]:
        direct = scorer.score_corpus(layouts, scores, profile=profile, threshold=point.threshold)
        assert direct.raw == pytest.approx(point.score)
    best = scorer.score_corpus(layouts, scores, profile=profile)
    assert best.raw == pytest.approx(max(p.score for p in points))
    assert -1e-9 <= best.normalized <= 100.0 + 1e-9


@given(files(), profiles, grid)
@settings(max_examples=200)
def test_a_later_detection_in_an_already_detected_window_changes_nothing(
    file: tuple[int, list[tuple[int, int]], int, list[float]],
    profile: scorer.Profile,
    threshold: float,
) -> None:
    """Only the earliest detection in a window counts."""
    rows, windows, probation, scores = file
    layout = scorer.layout_rows(rows=rows, windows=windows, probation=probation)
    before = scorer.score_file(layout, scores, threshold=threshold, profile=profile)
    raised = list(scores)
    for left, right in windows:
        fired = [i for i in range(left, right + 1) if scores[i] >= threshold]
        if fired:
            raised[right] = max(raised[right], threshold)
    after = scorer.score_file(layout, raised, threshold=threshold, profile=profile)
    assert after.score == pytest.approx(before.score)
