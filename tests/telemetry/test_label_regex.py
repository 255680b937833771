"""Label regular expressions are RE2, as in Prometheus: linear time, RE2's refusals, no crash.

A pattern in a rule file or a query is the user's, so a hostile one must cost no more than a
pass over the text; the catastrophic-backtracking classic `(a+)+$` is run here at a length a
backtracking engine would not finish in a lifetime.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal.telemetry import TSDB, label_regex, promql
from selfheal.telemetry.tsdb import Labels, Matcher, MatchOp

# Long enough that Python's backtracking `re` would need about 2**50_000 steps.
LONG_RUN = "a" * 50_000 + "b"
EVIL = "(a+)+$"


@pytest.mark.timeout(120)
def test_a_catastrophic_backtracking_pattern_answers_in_one_pass() -> None:
    """`(a+)+$` against a long run of a's ending in b: RE2 says no match, and returns."""
    assert label_regex.Regex(EVIL).fullmatch(LONG_RUN) is False
    assert label_regex.Regex(EVIL).fullmatch(LONG_RUN[:-1]) is True
    assert label_regex.Regex(EVIL).search(LONG_RUN) is None


@pytest.mark.timeout(120)
def test_a_catastrophic_pattern_in_a_query_selects_and_relabels_correctly() -> None:
    """Through PromQL: the matcher and label_replace give Prometheus' answer, in time."""
    db = TSDB()
    db.append(Labels(__name__="up", job=LONG_RUN), timestamp=0.0, value=1.0)
    db.append(Labels(__name__="up", job="aaaa"), timestamp=0.0, value=1.0)

    def query(text: str) -> list[Labels]:
        result = promql.evaluate(promql.parse(text), storage=db, at=0.0)
        assert isinstance(result, promql.Vector)
        return sorted(sample.labels for sample in result.samples)

    assert query(f'up{{job=~"{EVIL}"}}') == [Labels(__name__="up", job="aaaa")]
    assert query(f'up{{job!~"{EVIL}"}}') == [Labels(__name__="up", job=LONG_RUN)]
    relabelled = query(f'label_replace(up, "run", "$1", "job", "{EVIL}")')
    assert Labels(job="aaaa", run="aaaa", __name__="up") in relabelled
    assert Labels(job=LONG_RUN, __name__="up") in relabelled


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "invalid escape sequence: \\1"),
        ("a(?=b)", "invalid perl operator: (?="),
        ("(?<!x)a", "invalid perl operator: (?<!"),
        ("(", "missing ): ("),
        ("x{1001}", "invalid repetition size: {1001}"),
        ("a\\C", "invalid escape sequence: \\C"),
    ],
)
def test_what_re2_refuses_is_refused_naming_the_pattern_and_the_reason(
    pattern: str, reason: str
) -> None:
    r"""Back-references, look-around, bad syntax, and Go's missing `\C` are all refused."""
    with pytest.raises(label_regex.RegexError) as caught:
        label_regex.Regex(pattern)
    assert str(caught.value).startswith(f"invalid regular expression `{pattern}`: ")
    assert reason in str(caught.value)


def test_a_back_reference_in_a_selector_is_a_parse_error_at_the_pattern() -> None:
    """The PromQL error points at the string and says what RE2 could not accept."""
    with pytest.raises(promql.PromQLError) as caught:
        promql.parse('up{job=~"(a)\\\\1"}')
    assert caught.value.column == 9
    assert "invalid regular expression `(a)\\1`: invalid escape sequence: \\1" in str(caught.value)


def test_a_back_reference_in_label_replace_is_an_error_naming_it() -> None:
    """label_replace's regex is checked when the call runs, with Prometheus' wording."""
    db = TSDB()
    db.append(Labels(__name__="up", job="a"), timestamp=0.0, value=1.0)
    expression = promql.parse('label_replace(up, "x", "$1", "job", "(a)\\\\1")')
    with pytest.raises(
        promql.PromQLError, match=r"invalid regular expression in label_replace\(\)"
    ):
        promql.evaluate(expression, storage=db, at=0.0)


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("a\\\\C", "a\\C", True),  # an escaped backslash, then a plain C
        ("\\Qa\\C\\E", "a\\C", True),  # quoted text is literal
        ("(?i)k", "\u212a", True),  # case folding is Unicode's, as in Go (the Kelvin sign)
        ("\\d+", "\u0663", False),  # \d is ASCII digits only, as in Go
        ("\\s", "\v", False),  # Go's \s has no vertical tab
        ("[[:alpha:]]+", "api", True),  # POSIX classes
        ("a\\z", "a", True),  # end of text, RE2's spelling
        ("a.c", "a\nc", False),  # `.` stops at a newline without (?s)
        ("(?s)a.c", "a\nc", True),
        ("a{,2}", "a{,2}", True),  # not a repetition, a literal, as in Go
    ],
)
def test_patterns_mean_what_they_mean_in_prometheus(pattern: str, text: str, matches: bool) -> None:
    """RE2 semantics, checked on the points where Python's `re` differs from Go's regexp."""
    assert Matcher("job", MatchOp.REGEX, pattern).matches(text) is matches


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        ("$1-$name", "ab-b"),
        ("${1}x", "abx"),
        ("$1x", ""),  # the name runs on: group "1x", absent
        ("$\u00b2", "$\u00b2"),  # "²" is neither a letter nor a decimal digit: no name
        ("$$1", "$1"),
    ],
)
def test_label_replace_expands_groups_as_go_does(replacement: str, expected: str) -> None:
    """Go's Regexp.ExpandString: numbers are ASCII digits, names are letters and digits."""
    db = TSDB()
    db.append(Labels(__name__="up", job="ab"), timestamp=0.0, value=1.0)
    query = f'label_replace(up, "x", "{replacement}", "job", "(a(?P<name>b))")'
    result = promql.evaluate(promql.parse(query), storage=db, at=0.0)
    assert isinstance(result, promql.Vector)
    assert result.samples[0].labels.get("x", "") == expected


def test_label_replace_searches_the_anchored_pattern_as_prometheus_does() -> None:
    """Prometheus wraps the regex in `^(?:...)$` and searches; so does this engine.

    The wrap shows with an unbalanced pattern: `a)|(b` compiles wrapped, and then matches
    "a" at the start or "b" at the end (promtool 2.42 gives the same three answers).
    """
    db = TSDB()
    for job in ("a", "b", "xa"):
        db.append(Labels(__name__="up", job=job), timestamp=0.0, value=1.0)
    result = promql.evaluate(
        promql.parse('label_replace(up, "x", "$1", "job", "a)|(b")'), storage=db, at=0.0
    )
    assert isinstance(result, promql.Vector)
    assert sorted(sample.labels for sample in result.samples) == [
        Labels(__name__="up", job="a"),
        Labels(__name__="up", job="b", x="b"),
        Labels(__name__="up", job="xa"),
    ]


# Text with everything a Python string can hold, lone surrogates included.
ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=40)
# Patterns from pieces both engines read alike, so Python's `re` can check RE2's answers.
PIECES = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "\\d", "x?", "(a|b)", "(a*)", "é"])
PATTERNS = st.lists(PIECES, min_size=1, max_size=6).map("".join)


@settings(max_examples=300)
@given(pattern=PATTERNS, text=ANY_TEXT)
def test_matching_any_text_never_fails(pattern: str, text: str) -> None:
    """Matching and capturing work on any string, surrogates and all, and never raise."""
    compiled = label_regex.Regex(pattern)
    compiled.fullmatch(text)
    found = compiled.search(text)
    if found is not None:
        assert found.text(0) in text


@settings(max_examples=300)
@given(
    pattern=PATTERNS,
    text=st.text(st.sampled_from("ab1é\n"), max_size=8),
)
def test_answers_agree_with_a_backtracking_engine_where_the_dialects_agree(
    pattern: str, text: str
) -> None:
    """On patterns both dialects read alike, RE2 and Python's `re` find the same matches."""
    python = re.compile(pattern, re.ASCII)
    ours = label_regex.Regex(pattern)
    assert ours.fullmatch(text) is (python.fullmatch(text) is not None)
    found, expected = ours.search(text), python.search(text)
    assert (found is None) is (expected is None)
    if found is not None and expected is not None:
        assert found.groups == (expected.group(0), *expected.groups())


def test_a_missing_label_matches_as_the_empty_string() -> None:
    """`=~""` and `=~".*"` match a series without the label; `=~".+"` does not."""
    assert Matcher("job", MatchOp.REGEX, "").matches("")
    assert Matcher("job", MatchOp.REGEX, ".*").matches("")
    assert not Matcher("job", MatchOp.REGEX, ".+").matches("")


def test_remembered_answers_stay_right_past_the_memo_bound() -> None:
    """Answers are remembered per pattern, up to a bound; past it they are still right."""
    compiled = label_regex.Regex("[0-9]*[05]")
    values = [str(number) for number in range(10_000)]
    for _ in range(2):
        assert [compiled.fullmatch(value) for value in values] == [
            int(value) % 5 == 0 for value in values
        ]
