"""Tests for the twin's Kubernetes label and field selector parsing and matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfheal.twin.selectors import (
    FieldSelector,
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    label_selector_from_match,
    parse_field_selector,
    parse_label_selector,
)

WEB = {"app": "web", "tier": "front", "app.kubernetes.io/name": "shop"}

# -------------------------------------------------------------------------- label strings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app!=api", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("app in (api,web)", True),
        ("app in (api,db)", False),
        ("missing in (x)", False),
        ("app notin (api,db)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("app.kubernetes.io/name=shop", True),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app in (web),!missing,tier", True),
    ],
)
def test_label_selector_operators_match_kubernetes_semantics(text: str, expected: bool) -> None:
    """Each operator, alone and combined, matches labels as the API server does."""
    assert parse_label_selector(text).matches(WEB) is expected


def test_empty_label_selector_selects_everything() -> None:
    """The empty string parses to a selector with no requirements that matches all."""
    selector = parse_label_selector("")
    assert selector == LabelSelector(())
    assert selector.matches({})
    assert selector.matches(WEB)


def test_whitespace_only_label_selector_selects_everything() -> None:
    """A selector of only whitespace is treated like the empty selector."""
    assert parse_label_selector("  \t ") == LabelSelector()


def test_label_selector_tolerates_whitespace_around_tokens() -> None:
    """Spaces around keys, operators, commas and set values do not change the result."""
    spaced = parse_label_selector("  app = web ,  tier in ( front , back ) , ! gone ")
    compact = parse_label_selector("app=web,tier in (front,back),!gone")
    assert spaced == compact


def test_label_selector_equals_with_empty_value_matches_empty_label() -> None:
    """`key=` requires the label to be present with the empty value."""
    selector = parse_label_selector("tier=")
    assert parse_label_selector("tier==") == selector
    assert selector.matches({"tier": ""})
    assert not selector.matches({"tier": "x"})
    assert not selector.matches({})


def test_label_selector_parses_into_sorted_deduplicated_requirements() -> None:
    """Set values are stored sorted without duplicates in a frozen dataclass."""
    selector = parse_label_selector("app in (web,api,web)")
    assert selector.requirements == (Requirement("app", Operator.IN, ("api", "web")),)
    with pytest.raises(AttributeError):
        selector.requirements = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        ",",
        "app=web,",
        ",app=web",
        "app=web,,tier",
        "!",
        "!app=web",
        "app in (web",
        "app in web",
        "app in ()",
        "app in (web,)",
        "app in (,web)",
        "app notin",
        "app=web=x",
        "app = web api",
        "app web",
        "app > 3",
        "app=(web)",
        "-app=web",
        "app-=web",
        "/app=web",
        "Example.COM/app=web",
        "app=-web",
        "a" * 64 + "=x",
        "app=" + "v" * 64,
        "app=we b",
    ],
)
def test_label_selector_with_bad_syntax_raises_selector_error(text: str) -> None:
    """Malformed selectors raise SelectorError (a ValueError) quoting the input."""
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert isinstance(caught.value, ValueError)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("app in (ok,-bad)", "invalid value '-bad'"),
        ("app in (ok bad)", "found 'bad'"),
        ("app web", "unknown operator 'web'"),
        ("app=web;tier=x", "invalid value 'web;tier'"),
        ("Example.COM/app=web", "invalid label key 'Example.COM/app'"),
        ("app=web)", "found ')'"),
    ],
)
def test_label_selector_error_message_names_the_offending_part(text: str, named: str) -> None:
    """The message points at the bad token, not just the whole selector."""
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert named in str(caught.value)


_NAMES = st.from_regex(r"\A[a-z0-9]([a-z0-9._-]{0,6}[a-z0-9])?\Z")
_KEYS = st.builds(
    lambda prefix, name: f"{prefix}/{name}" if prefix else name,
    st.sampled_from(["", "example.com", "app.kubernetes.io"]),
    _NAMES,
)
_REQUIREMENTS = st.one_of(
    st.builds(Requirement, _KEYS, st.sampled_from([Operator.EXISTS, Operator.DOES_NOT_EXIST])),
    st.builds(
        lambda key, op, value: Requirement(key, op, (value,)),
        _KEYS,
        st.sampled_from([Operator.EQUALS, Operator.NOT_EQUALS]),
        _NAMES | st.just(""),
    ),
    st.builds(
        lambda key, op, values: Requirement(key, op, tuple(sorted(values))),
        _KEYS,
        st.sampled_from([Operator.IN, Operator.NOT_IN]),
        st.frozensets(_NAMES, min_size=1, max_size=3),
    ),
)


@given(requirements=st.lists(_REQUIREMENTS, max_size=4))
def test_label_selector_string_form_parses_back_to_the_same_selector(
    requirements: list[Requirement],
) -> None:
    """str() of any selector is a selector string that parses back to an equal value."""
    selector = LabelSelector(tuple(requirements))
    assert parse_label_selector(str(selector)) == selector


@given(
    requirements=st.lists(_REQUIREMENTS, max_size=4),
    labels=st.dictionaries(_KEYS, _NAMES, max_size=4),
)
def test_label_selector_matches_only_when_every_requirement_matches(
    requirements: list[Requirement], labels: dict[str, str]
) -> None:
    """A selector matches exactly when all of its requirements match."""
    selector = LabelSelector(tuple(requirements))
    assert selector.matches(labels) == all(r.matches(labels) for r in requirements)


# ------------------------------------------------------------------ structured selectors


def test_label_selector_from_match_combines_labels_and_expressions() -> None:
    """MatchLabels and every matchExpressions operator are ANDed together."""
    selector = label_selector_from_match(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "app.kubernetes.io/name", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist", "values": []},
            ],
        }
    )
    assert selector.matches(WEB)
    assert not selector.matches({**WEB, "env": "prod"})
    assert not selector.matches({**WEB, "canary": "yes"})
    assert not selector.matches({"app": "web", "tier": "front"})


def test_label_selector_from_match_equals_the_parsed_string_form() -> None:
    """A structured selector equals the string selector with the same requirements."""
    structured = label_selector_from_match(
        {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]}
    )
    assert structured == parse_label_selector("app=web,x")


@pytest.mark.parametrize("selector", [{}, {"matchLabels": None, "matchExpressions": None}])
def test_empty_label_selector_object_selects_everything(selector: dict[str, object]) -> None:
    """An empty LabelSelector object matches every label set."""
    assert label_selector_from_match(selector).matches({"anything": "goes"})


@pytest.mark.parametrize(
    ("selector", "named"),
    [
        ({"matchLabel": {"a": "b"}}, "matchLabel"),
        ({"matchLabels": ["a"]}, "matchLabels"),
        ({"matchLabels": {"a": 1}}, "matchLabels"),
        ({"matchLabels": {"bad key": "b"}}, "bad key"),
        ({"matchExpressions": {"key": "a"}}, "matchExpressions"),
        ({"matchExpressions": ["a"]}, "matchExpressions[0]"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "matchExpressions[0].key"),
        ({"matchExpressions": [{"key": "a", "operator": "Gt"}]}, "matchExpressions[0].operator"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "matchExpressions[0]"),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": "b"}]},
            "matchExpressions[0].values",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]},
            "matchExpressions[0]",
        ),
        (
            {
                "matchExpressions": [
                    {"key": "a", "operator": "Exists"},
                    {"key": "b", "operator": "In", "values": [3]},
                ]
            },
            "matchExpressions[1].values",
        ),
    ],
)
def test_label_selector_from_match_with_bad_shape_raises_naming_the_part(
    selector: dict[str, object], named: str
) -> None:
    """Malformed LabelSelector objects raise SelectorError naming the bad field."""
    with pytest.raises(SelectorError) as caught:
        label_selector_from_match(selector)
    assert named in str(caught.value)


# ------------------------------------------------------------------------ field selectors

POD: dict[str, object] = {
    "metadata": {"name": "web-1", "namespace": "shop"},
    "spec": {"nodeName": "node-1", "hostNetwork": False, "priority": 5},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.name=web-1", True),
        ("metadata.name==web-1", True),
        ("metadata.name=web-2", False),
        ("metadata.name!=web-2", True),
        ("status.phase!=Running", False),
        ("spec.nodeName=node-1,metadata.namespace=shop", True),
        ("spec.nodeName=node-1,metadata.namespace=other", False),
        ("spec.schedulerName=", True),
        ("spec.schedulerName!=", False),
        ("spec.hostNetwork=false", True),
        ("spec.priority=5", True),
        ("metadata=x", False),
        ("metadata!=x", True),
        ("metadata.name.first=", True),
    ],
)
def test_field_selector_compares_dotted_paths_as_strings(text: str, expected: bool) -> None:
    """Field selectors look dotted paths up, treating missing fields as the empty string."""
    assert parse_field_selector(text).matches(POD) is expected


def test_empty_field_selector_selects_everything() -> None:
    """The empty string parses to a selector that matches any object."""
    selector = parse_field_selector("")
    assert selector == FieldSelector()
    assert selector.matches({})
    assert selector.matches(POD)


def test_field_selector_empty_node_name_selects_unscheduled_pods() -> None:
    """spec.nodeName= matches pods with no node, whether the field is absent or null."""
    selector = parse_field_selector("spec.nodeName=")
    assert selector.matches({"spec": {}})
    assert selector.matches({"spec": {"nodeName": None}})
    assert not selector.matches(POD)


def test_field_selector_tolerates_whitespace_around_terms() -> None:
    """Spaces around paths, operators and values are ignored."""
    assert parse_field_selector(" metadata.name = web-1 , status.phase != Failed ").matches(POD)


def test_field_selector_unescapes_backslash_escaped_separators() -> None:
    """Backslash escapes let values contain commas, equals signs and backslashes."""
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d,status.phase=x")
    assert selector.requirements[0].value == "a,b=c\\d"
    assert parse_field_selector(str(selector)) == selector


@pytest.mark.parametrize(
    "text",
    ["metadata.name", "=web", "metadata.name!web", "metadata..name=x", r"metadata.name=a\x", ","],
)
def test_field_selector_with_bad_syntax_raises_selector_error(text: str) -> None:
    """Malformed field selectors raise SelectorError quoting the input."""
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text)
    assert repr(text) in str(caught.value)
