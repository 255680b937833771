"""The in-memory TSDB: label sets, appends, selection, retention and staleness."""

from __future__ import annotations

import math

import pytest

from selfheal.telemetry import tsdb
from selfheal.telemetry.tsdb import STALE_NAN, TSDB, Labels, Matcher, MatchOp


def up(**labels: str) -> Labels:
    return Labels({"__name__": "up", **labels})


def everything(db: TSDB, *matchers: Matcher) -> list[tuple[Labels, list[tuple[float, float]]]]:
    chosen = matchers or (Matcher("__name__", MatchOp.REGEX, ".+"),)
    return db.select(list(chosen), start=-math.inf, end=math.inf)


# -- label sets -------------------------------------------------------------------------------


def test_labels_sort_by_name_and_drop_empty_values() -> None:
    """A label with an empty value is the same as no label, as in Prometheus."""
    labels = Labels({"zone": "a", "__name__": "up", "empty": ""})
    assert list(labels) == ["__name__", "zone"]
    assert labels == Labels(zone="a", __name__="up")
    assert "empty" not in labels


def test_labels_are_hashable_and_equal_whatever_the_input_order() -> None:
    """Two label sets built in different orders are one dictionary key."""
    first = Labels([("b", "2"), ("a", "1")])
    second = Labels({"a": "1", "b": "2"})
    assert first == second
    assert {first: 1}[second] == 1
    assert first == {"a": "1", "b": "2"}


def test_labels_without_keep_and_with_make_new_sets() -> None:
    """Derived label sets leave the original untouched; an empty value removes a label."""
    labels = up(job="api", instance="a")
    assert labels.without("__name__") == Labels(job="api", instance="a")
    assert labels.keep("job") == Labels(job="api")
    assert labels.with_(job="web", extra="x") == up(job="web", instance="a", extra="x")
    assert labels.with_(instance="") == up(job="api")
    assert labels == up(job="api", instance="a")
    assert labels.to_dict() == {"__name__": "up", "instance": "a", "job": "api"}
    assert labels.get("missing") is None
    assert labels.name == "up"


def test_labels_render_as_prometheus_prints_them() -> None:
    """Error messages show label sets the way Prometheus does, quotes escaped."""
    assert str(Labels({"a": "x", "b": 'say "hi"\n'})) == '{a="x", b="say \\"hi\\"\\n"}'


def test_labels_order_pair_by_pair_like_prometheus() -> None:
    """Sorting compares name then value label by label; a prefix sorts first."""
    ordered = sorted([Labels(a="2"), Labels(a="1", b="1"), Labels(a="1")])
    assert ordered == [Labels(a="1"), Labels(a="1", b="1"), Labels(a="2")]


# -- matchers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matcher", "value", "matches"),
    [
        (Matcher("job", MatchOp.EQUAL, "api"), "api", True),
        (Matcher("job", MatchOp.NOT_EQUAL, "api"), "api", False),
        (Matcher("job", MatchOp.REGEX, "ap"), "api", False),  # anchored at both ends
        (Matcher("job", MatchOp.REGEX, "ap.*"), "api", True),
        (Matcher("job", MatchOp.NOT_REGEX, "ap.*"), "api", False),
        (Matcher("job", MatchOp.REGEX, "a|api"), "api", True),  # the anchor wraps alternation
        (Matcher("job", MatchOp.REGEX, "[[:alpha:]]+"), "api", True),  # RE2 POSIX classes
        (Matcher("job", MatchOp.REGEX, "api"), "api\n", False),  # no Python `$` leniency
        (Matcher("job", MatchOp.EQUAL, ""), "", True),  # a missing label reads as ""
    ],
)
def test_matchers_follow_prometheus_semantics(matcher: Matcher, value: str, matches: bool) -> None:
    """Regular expressions are fully anchored RE2; a missing label compares as ""."""
    assert matcher.matches(value) is matches


@pytest.mark.parametrize("pattern", ["(", "a(?=b)", "(a)\\1"])
def test_matchers_refuse_what_re2_refuses(pattern: str) -> None:
    """Invalid patterns, look-around and back-references are errors, as in RE2."""
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher("job", MatchOp.REGEX, pattern)


def test_matchers_print_as_promql() -> None:
    """A matcher prints as it is written in a selector."""
    assert str(Matcher("path", MatchOp.NOT_REGEX, '/a"b')) == 'path!~"/a\\"b"'


# -- appends and selection --------------------------------------------------------------------


def test_append_rejects_out_of_order_and_duplicate_timestamps() -> None:
    """A sample not newer than the series' last one is ignored and counted, as Prometheus."""
    db = TSDB()
    assert db.append(up(), timestamp=10, value=1)
    assert not db.append(up(), timestamp=10, value=2)
    assert not db.append(up(), timestamp=5, value=3)
    assert db.samples(up()) == [(10, 1)]
    assert db.stats().out_of_order == 2


def test_select_takes_samples_after_start_up_to_and_including_end() -> None:
    """The window is half-open, (start, end], like a Prometheus range."""
    db = TSDB()
    for t in (10, 20, 30, 40):
        db.append(up(), timestamp=t, value=t)
    [(labels, samples)] = db.select([Matcher("__name__", MatchOp.EQUAL, "up")], start=10, end=30)
    assert labels == up()
    assert samples == [(20, 20), (30, 30)]


def test_select_applies_every_matcher_and_sorts_series_by_labels() -> None:
    """Only series matching all matchers come back, in label order; empty ones are left out."""
    db = TSDB()
    db.append(up(job="web", instance="b"), timestamp=1, value=1)
    db.append(up(job="api", instance="a"), timestamp=1, value=1)
    db.append(up(job="api"), timestamp=1, value=1)
    db.append(Labels(__name__="down", job="api"), timestamp=1, value=1)
    found = everything(
        db, Matcher("__name__", MatchOp.EQUAL, "up"), Matcher("job", MatchOp.REGEX, "a.*")
    )
    assert [labels for labels, _ in found] == [up(instance="a", job="api"), up(job="api")]
    missing_instance = everything(
        db, Matcher("__name__", MatchOp.EQUAL, "up"), Matcher("instance", MatchOp.EQUAL, "")
    )
    assert [labels for labels, _ in missing_instance] == [up(job="api")]
    assert db.select([Matcher("job", MatchOp.EQUAL, "api")], start=5, end=10) == []


def test_an_empty_label_set_is_refused() -> None:
    """Every series needs at least one label to be found again."""
    with pytest.raises(ValueError, match="label"):
        TSDB().append({}, timestamp=1, value=1)


def test_label_values_and_series_list_what_is_stored() -> None:
    """The index answers which values a label takes and which series exist."""
    db = TSDB()
    db.append(up(job="web"), timestamp=1, value=1)
    db.append(up(job="api"), timestamp=1, value=1)
    assert db.label_values("job") == ["api", "web"]
    assert db.series() == [up(job="api"), up(job="web")]
    assert len(db) == 2


# -- retention and limits ---------------------------------------------------------------------


def test_retention_trims_samples_older_than_the_newest_timestamp_minus_retention() -> None:
    """Retention is measured back from the newest sample the database has seen."""
    db = TSDB(retention=60)
    for t in range(0, 200, 10):
        db.append(up(), timestamp=t, value=t)
    assert [t for t, _ in db.samples(up())] == list(range(130, 200, 10))


def test_a_series_with_no_samples_left_is_dropped() -> None:
    """An idle series disappears once all its samples are past retention."""
    db = TSDB(retention=60)
    db.append(up(job="idle"), timestamp=0, value=1)
    for t in range(0, 200, 10):
        db.append(up(job="busy"), timestamp=t, value=t)
    db.compact()
    assert db.series() == [up(job="busy")]
    assert db.stats().dropped_series == 1
    assert db.label_values("job") == ["busy"]


def test_select_never_returns_samples_past_retention_even_before_a_sweep() -> None:
    """Samples awaiting the periodic sweep are already invisible to queries."""
    db = TSDB(retention=100)
    db.append(up(job="idle"), timestamp=0, value=1)
    db.append(up(job="busy"), timestamp=101, value=1)
    assert [labels for labels, _ in everything(db)] == [up(job="busy")]


def test_max_points_caps_each_series() -> None:
    """A series keeps at most `max_points` samples, the newest."""
    db = TSDB(max_points=3)
    for t in range(10):
        db.append(up(), timestamp=t, value=t)
    assert db.samples(up()) == [(7, 7), (8, 8), (9, 9)]
    assert db.stats().samples == 3


def test_settings_must_be_positive() -> None:
    """Retention and the per-series cap must make sense."""
    with pytest.raises(ValueError, match="retention"):
        TSDB(retention=0)
    with pytest.raises(ValueError, match="max_points"):
        TSDB(max_points=0)


# -- staleness --------------------------------------------------------------------------------


def test_the_stale_marker_is_recognised_by_its_bits_not_by_equality() -> None:
    """STALE_NAN is one NaN among many: only its bit pattern identifies it."""
    assert math.isnan(STALE_NAN)
    assert tsdb.is_stale(STALE_NAN)
    assert not tsdb.is_stale(math.nan)
    assert not tsdb.is_stale(1.0)


def test_mark_stale_ends_a_known_series_once() -> None:
    """A marker is appended to a live series; unknown or already-stale series are left alone."""
    db = TSDB()
    db.append(up(), timestamp=1, value=1)
    assert db.mark_stale(up(), 2)
    assert not db.mark_stale(up(), 3)
    assert not db.mark_stale(up(job="never"), 3)
    [(_, last)] = db.samples(up())[-1:]
    assert tsdb.is_stale(last)


def test_ingest_applies_one_scrape_with_its_vanished_series() -> None:
    """The scraper's sink: samples at the scrape time, then markers for vanished series."""
    db = TSDB()
    db.ingest(at=1, samples=[({"__name__": "up", "job": "a"}, 1.0)])
    db.ingest(
        at=2,
        samples=[({"__name__": "up", "job": "b"}, 1.0)],
        stale=[{"__name__": "up", "job": "a"}],
    )
    assert tsdb.is_stale(db.samples(up(job="a"))[-1][1])
    assert db.samples(up(job="b")) == [(2, 1.0)]
