"""Tests for the twin's merge, strategic merge and JSON patch implementations."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal.twin.patching import (
    JSONValue,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)

MERGE_KEYS = {
    "spec.template.spec.containers": "name",
    "spec.template.spec.containers.env": "name",
    "spec.template.spec.containers.ports": "containerPort",
    "spec.template.spec.volumes": "name",
    "status.conditions": "type",
}

# ------------------------------------------------------------------------------ strategies

_KEYS = st.sampled_from(["a", "b", "c", "d", "e/f", "g~h", ""])
_SCALARS = (
    st.booleans()
    | st.integers(min_value=-5, max_value=5)
    | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.text(max_size=3)
)


def _json(*, nulls: bool) -> st.SearchStrategy[Any]:
    leaves = st.none() | _SCALARS if nulls else _SCALARS
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=4)
        ),
        max_leaves=12,
    )


_JSON = _json(nulls=True)
_JSON_WITHOUT_NULLS = _json(nulls=False)
_OBJECTS = st.dictionaries(_KEYS, _JSON, max_size=5)


def _container(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.just(name)},
        optional={
            "image": st.sampled_from(["app:1", "app:2", None]),
            "env": st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["A", "B"])},
                    optional={
                        "value": st.sampled_from(["1", "2"]),
                        "$patch": st.just("delete"),
                    },
                ),
                max_size=2,
            ),
            "$patch": st.sampled_from(["delete", "replace"]),
        },
    )


_CONTAINER_LISTS = st.lists(
    st.sampled_from(["web", "sidecar", "init"]).flatmap(_container), max_size=3
)


def _deployment(containers: list[Any]) -> dict[str, Any]:
    return {"spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}}


def _strip_directives(value: Any) -> Any:
    """Remove "$patch" keys so generated documents look like stored objects."""
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if k != "$patch"}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return value


def _merge_diff(source: JSONValue, target: JSONValue) -> JSONValue:
    """Build the merge patch that turns ``source`` into ``target``."""
    if not isinstance(source, dict) or not isinstance(target, dict):
        return copy.deepcopy(target)
    patch: dict[str, JSONValue] = {key: None for key in source if key not in target}
    for key, value in target.items():
        if key not in source:
            patch[key] = copy.deepcopy(value)
        elif source[key] != value or type(source[key]) is not type(value):
            patch[key] = _merge_diff(source[key], value)
    return patch


# ----------------------------------------------------------------------------- PatchError


def test_patch_error_is_a_value_error_carrying_path_and_message() -> None:
    """PatchError exposes path and message and renders both in str()."""
    error = PatchError("/spec/replicas", "must be an integer")
    assert isinstance(error, ValueError)
    assert error.path == "/spec/replicas"
    assert error.message == "must be an integer"
    assert "/spec/replicas" in str(error)
    assert "must be an integer" in str(error)


def test_patch_error_for_whole_document_renders_only_the_message() -> None:
    """A PatchError with an empty path renders just its message."""
    assert str(PatchError("", "patch must be an object")) == "patch must be an object"


# ---------------------------------------------------------------------------- merge patch

RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("document", "patch", "expected"), RFC7386_EXAMPLES)
def test_merge_patch_matches_every_rfc7386_appendix_example(
    document: JSONValue, patch: JSONValue, expected: JSONValue
) -> None:
    """Each RFC 7386 Appendix A example produces the documented result."""
    assert apply_merge_patch(document, patch) == expected


def test_merge_patch_null_deletes_key() -> None:
    """A null value in the patch deletes that key from the target."""
    assert apply_merge_patch({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_merge_patch_merges_nested_dicts_recursively() -> None:
    """Nested objects merge key by key rather than being replaced."""
    document: JSONValue = {"metadata": {"labels": {"app": "web", "tier": "front"}, "name": "x"}}
    patch: JSONValue = {"metadata": {"labels": {"tier": "back"}}}
    assert apply_merge_patch(document, patch) == {
        "metadata": {"labels": {"app": "web", "tier": "back"}, "name": "x"}
    }


def test_merge_patch_replaces_lists_wholesale() -> None:
    """A list in the patch replaces the target list instead of merging into it."""
    document: JSONValue = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    patch: JSONValue = {"spec": {"containers": [{"name": "c"}]}}
    assert apply_merge_patch(document, patch) == {"spec": {"containers": [{"name": "c"}]}}


def test_merge_patch_with_non_dict_patch_replaces_whole_document() -> None:
    """A scalar or list patch replaces the document entirely."""
    assert apply_merge_patch({"a": 1}, [1, 2]) == [1, 2]
    assert apply_merge_patch({"a": 1}, 7) == 7


def test_merge_patch_returns_a_document_sharing_nothing_with_its_inputs() -> None:
    """Mutating the result never reaches back into the document or the patch."""
    document: dict[str, JSONValue] = {"keep": {"x": [1]}}
    patch: dict[str, JSONValue] = {"new": {"y": [2]}}
    result = apply_merge_patch(document, patch)
    assert isinstance(result, dict)
    keep = result["keep"]
    new = result["new"]
    assert isinstance(keep, dict)
    assert isinstance(new, dict)
    keep["x"] = "changed"
    new["y"] = "changed"
    assert document == {"keep": {"x": [1]}}
    assert patch == {"new": {"y": [2]}}


@given(document=_OBJECTS)
def test_merge_patch_with_empty_patch_returns_an_equal_document(document: JSONValue) -> None:
    """Applying the empty merge patch to any object leaves it unchanged."""
    assert apply_merge_patch(document, {}) == document


@given(source=_OBJECTS, target=st.dictionaries(_KEYS, _JSON_WITHOUT_NULLS, max_size=5))
def test_merge_patch_of_derived_diff_turns_source_into_target(
    source: JSONValue, target: JSONValue
) -> None:
    """Applying the merge diff computed from source to target reproduces target."""
    patch = _merge_diff(source, target)
    assert apply_merge_patch(source, patch) == target


@given(document=_JSON, patch=_JSON)
def test_merge_patch_never_mutates_its_inputs(document: JSONValue, patch: JSONValue) -> None:
    """The document and patch compare equal to saved deep copies after patching."""
    saved_document, saved_patch = copy.deepcopy(document), copy.deepcopy(patch)
    apply_merge_patch(document, patch)
    assert document == saved_document
    assert patch == saved_patch


# ------------------------------------------------------------------- strategic merge patch


def _smp(document: JSONValue, patch: JSONValue) -> JSONValue:
    return apply_strategic_merge_patch(document, patch, merge_keys=MERGE_KEYS)


def test_strategic_merge_merges_containers_by_name_and_appends_new_ones() -> None:
    """Containers matched by name merge in place; unknown names append in patch order."""
    document = _deployment([{"name": "web", "image": "web:1"}, {"name": "log", "image": "l:1"}])
    patch = _deployment(
        [{"name": "new-b", "image": "b:1"}, {"name": "web", "image": "web:2"}, {"name": "new-a"}]
    )
    assert _smp(document, patch) == _deployment(
        [
            {"name": "web", "image": "web:2"},
            {"name": "log", "image": "l:1"},
            {"name": "new-b", "image": "b:1"},
            {"name": "new-a"},
        ]
    )


def test_strategic_merge_merges_nested_env_and_ports_by_their_own_keys() -> None:
    """Lists inside a merged container use their own merge keys from merge_keys."""
    document = _deployment(
        [
            {
                "name": "web",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
            }
        ]
    )
    patch = _deployment(
        [
            {
                "name": "web",
                "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
            }
        ]
    )
    assert _smp(document, patch) == _deployment(
        [
            {
                "name": "web",
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "value": "3"},
                    {"name": "C", "value": "4"},
                ],
                "ports": [
                    {"containerPort": 80, "protocol": "TCP", "name": "http"},
                    {"containerPort": 443},
                ],
            }
        ]
    )


def test_strategic_merge_list_element_delete_directive_removes_matching_element() -> None:
    """An element {"$patch": "delete", key: v} removes the element with that key."""
    document = _deployment([{"name": "web"}, {"name": "sidecar"}])
    patch = _deployment([{"$patch": "delete", "name": "sidecar"}])
    assert _smp(document, patch) == _deployment([{"name": "web"}])


def test_strategic_merge_list_element_delete_of_absent_key_is_a_no_op() -> None:
    """Deleting an element whose key is not present changes nothing and adds nothing."""
    document = _deployment([{"name": "web"}])
    patch = _deployment([{"$patch": "delete", "name": "ghost"}])
    assert _smp(document, patch) == document


def test_strategic_merge_creates_a_keyed_list_missing_from_the_document() -> None:
    """A keyed list absent from the document is built from the patch elements."""
    document: JSONValue = {"status": {}}
    patch: JSONValue = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert _smp(document, patch) == patch


def test_strategic_merge_merges_status_conditions_by_type() -> None:
    """status.conditions merge by their type field."""
    document: JSONValue = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "Starting"},
                {"type": "Available", "status": "False"},
            ]
        }
    }
    patch: JSONValue = {
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": None}]}
    }
    assert _smp(document, patch) == {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Available", "status": "False"},
            ]
        }
    }


def test_strategic_merge_replaces_lists_at_paths_without_a_merge_key() -> None:
    """A list whose path has no merge key is replaced wholesale."""
    document = _deployment([{"name": "web", "args": ["--a", "--b"]}])
    patch = _deployment([{"name": "web", "args": ["--c"]}])
    assert _smp(document, patch) == _deployment([{"name": "web", "args": ["--c"]}])


def test_strategic_merge_null_deletes_key() -> None:
    """A null value removes the key, as in a merge patch."""
    document: JSONValue = {"metadata": {"annotations": {"a": "1", "b": "2"}}}
    patch: JSONValue = {"metadata": {"annotations": {"a": None}}}
    assert _smp(document, patch) == {"metadata": {"annotations": {"b": "2"}}}


def test_strategic_merge_replace_directive_replaces_the_target_dict() -> None:
    """A dict carrying "$patch": "replace" replaces the target dict minus the directive."""
    document: JSONValue = {"spec": {"selector": {"app": "web", "tier": "front"}, "replicas": 2}}
    patch: JSONValue = {"spec": {"selector": {"$patch": "replace", "app": "api"}}}
    assert _smp(document, patch) == {"spec": {"selector": {"app": "api"}, "replicas": 2}}


def test_strategic_merge_replace_directive_on_list_element_replaces_that_element() -> None:
    """A keyed list element with "$patch": "replace" replaces the matching element."""
    document = _deployment([{"name": "web", "image": "web:1", "command": ["run"]}])
    patch = _deployment([{"name": "web", "image": "web:2", "$patch": "replace"}])
    assert _smp(document, patch) == _deployment([{"name": "web", "image": "web:2"}])


def test_strategic_merge_delete_directive_removes_the_whole_dict() -> None:
    """A dict carrying "$patch": "delete" is removed from its parent."""
    document: JSONValue = {"spec": {"strategy": {"type": "RollingUpdate"}, "replicas": 2}}
    patch: JSONValue = {"spec": {"strategy": {"$patch": "delete"}}}
    assert _smp(document, patch) == {"spec": {"replicas": 2}}


def test_strategic_merge_delete_directive_at_top_level_yields_empty_object() -> None:
    """Deleting the document itself leaves an empty object."""
    assert _smp({"a": 1}, {"$patch": "delete"}) == {}


def test_strategic_merge_retain_keys_drops_keys_not_listed() -> None:
    """$retainKeys keeps only the listed keys of the merged dict."""
    document: JSONValue = {
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"x": 1}}}
    }
    patch: JSONValue = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert _smp(document, patch) == {"spec": {"strategy": {"type": "Recreate"}}}


def test_strategic_merge_set_element_order_reorders_keyed_list() -> None:
    """$setElementOrder reorders by merge key, unmentioned elements trailing in order."""
    document = _deployment([{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}])
    patch: JSONValue = {
        "spec": {
            "template": {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}}
        }
    }
    assert _smp(document, patch) == _deployment(
        [{"name": "c"}, {"name": "a"}, {"name": "b"}, {"name": "d"}]
    )


def test_strategic_merge_set_element_order_applies_after_merging_new_elements() -> None:
    """Elements appended by the same patch are placed where the order says."""
    document = _deployment([{"name": "a"}])
    patch = _deployment([{"name": "b"}])
    spec = patch["spec"]["template"]["spec"]
    spec["$setElementOrder/containers"] = [{"name": "b"}, {"name": "a"}]
    assert _smp(document, patch) == _deployment([{"name": "b"}, {"name": "a"}])


def test_strategic_merge_set_element_order_reorders_primitive_list() -> None:
    """$setElementOrder on a list without merge key orders by the values themselves."""
    document: JSONValue = {"metadata": {"finalizers": ["x", "y", "z"]}}
    patch: JSONValue = {"metadata": {"$setElementOrder/finalizers": ["z", "x"]}}
    assert _smp(document, patch) == {"metadata": {"finalizers": ["z", "x", "y"]}}


def test_strategic_merge_set_element_order_on_missing_list_is_ignored() -> None:
    """Ordering a list the document does not have leaves the document unchanged."""
    document: JSONValue = {"metadata": {"name": "x"}}
    patch: JSONValue = {"metadata": {"$setElementOrder/finalizers": ["a"]}}
    assert _smp(document, patch) == document


def test_strategic_merge_delete_from_primitive_list_removes_listed_values() -> None:
    """$deleteFromPrimitiveList/<field> drops the listed values from that list."""
    document: JSONValue = {"metadata": {"finalizers": ["a", "b", "c", "b"]}}
    patch: JSONValue = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "missing"]}}
    assert _smp(document, patch) == {"metadata": {"finalizers": ["a", "c"]}}


def test_strategic_merge_unknown_dollar_key_raises_naming_its_path() -> None:
    """An unrecognised $-prefixed key is rejected with a pointer to it."""
    with pytest.raises(PatchError) as caught:
        _smp({"spec": {}}, {"spec": {"$frobnicate": True}})
    assert caught.value.path == "/spec/$frobnicate"


def test_strategic_merge_unknown_patch_directive_value_raises() -> None:
    """A "$patch" value other than replace, delete or merge is rejected."""
    with pytest.raises(PatchError, match="explode"):
        _smp({"spec": {}}, {"spec": {"$patch": "explode"}})


def test_strategic_merge_list_element_without_merge_key_raises_naming_element() -> None:
    """An element of a keyed list that lacks the merge key is rejected."""
    patch = _deployment([{"name": "web"}, {"image": "anonymous"}])
    with pytest.raises(PatchError) as caught:
        _smp(_deployment([]), patch)
    assert caught.value.path == "/spec/template/spec/containers/1"
    assert "name" in caught.value.message


def test_strategic_merge_primitive_element_in_keyed_list_raises() -> None:
    """A non-object element in a keyed list cannot carry a merge key and is rejected."""
    with pytest.raises(PatchError):
        _smp(_deployment([]), _deployment(["web"]))


@pytest.mark.parametrize("patch", [[], "x", None, 3])
def test_strategic_merge_rejects_a_patch_that_is_not_an_object(patch: JSONValue) -> None:
    """Strategic merge patches must be JSON objects."""
    with pytest.raises(PatchError) as caught:
        _smp({"a": 1}, patch)
    assert caught.value.path == ""


@pytest.mark.parametrize(
    "patch",
    [
        {"spec": {"$retainKeys": "type"}},
        {"spec": {"$retainKeys": [1]}},
        {"spec": {"$setElementOrder/x": "a"}},
        {"spec": {"$deleteFromPrimitiveList/x": "a"}},
    ],
)
def test_strategic_merge_rejects_malformed_directive_values(patch: JSONValue) -> None:
    """Directive values of the wrong shape raise PatchError under /spec."""
    with pytest.raises(PatchError) as caught:
        _smp({"spec": {"x": ["a"]}}, patch)
    assert caught.value.path.startswith("/spec/$")


@given(document=st.dictionaries(_KEYS, _JSON, max_size=4), patch=_OBJECTS)
def test_strategic_merge_without_lists_or_directives_equals_merge_patch(
    document: JSONValue, patch: JSONValue
) -> None:
    """With no merge keys and no directives, strategic merge behaves like merge patch."""
    assert apply_strategic_merge_patch(document, patch, merge_keys={}) == apply_merge_patch(
        document, patch
    )


@settings(max_examples=60)
@given(existing=_CONTAINER_LISTS, patch_containers=_CONTAINER_LISTS)
def test_strategic_merge_never_mutates_its_inputs(
    existing: list[dict[str, Any]], patch_containers: list[dict[str, Any]]
) -> None:
    """The document and patch compare equal to saved deep copies after patching."""
    document = _deployment(_strip_directives(existing))
    patch = _deployment(patch_containers)
    saved_document, saved_patch = copy.deepcopy(document), copy.deepcopy(patch)
    _smp(document, patch)
    assert document == saved_document
    assert patch == saved_patch


# ----------------------------------------------------------------------------- JSON patch

RFC6902_SUCCESSES = [
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    (
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    (
        {"a": {"b": 1}},
        [{"op": "copy", "from": "/a", "path": "/c"}],
        {"a": {"b": 1}, "c": {"b": 1}},
    ),
]


@pytest.mark.parametrize(("document", "operations", "expected"), RFC6902_SUCCESSES)
def test_json_patch_matches_rfc6902_appendix_examples(
    document: JSONValue, operations: JSONValue, expected: JSONValue
) -> None:
    """Successful RFC 6902 Appendix A examples produce the documented result."""
    assert apply_json_patch(document, operations) == expected


@pytest.mark.parametrize(
    ("document", "operations", "where"),
    [
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "/0/path"),
        (
            {"q": {"bar": 2}},
            [{"op": "test", "path": "/a", "value": 1}],
            "/0/path",
        ),
        ({"foo": "bar"}, [{"op": "test", "path": "/foo", "value": "baz"}], "/0/path"),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], "/0/path"),
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/5", "value": 1}], "/0/path"),
    ],
)
def test_json_patch_rfc6902_error_examples_raise_naming_the_operation(
    document: JSONValue, operations: JSONValue, where: str
) -> None:
    """Failing RFC 6902 Appendix A examples raise PatchError pointing at the operation."""
    with pytest.raises(PatchError) as caught:
        apply_json_patch(document, operations)
    assert caught.value.path == where


def test_json_patch_pointer_unescapes_tilde_and_slash() -> None:
    """~1 decodes to / and ~0 to ~ in pointer tokens."""
    operations: JSONValue = [
        {"op": "replace", "path": "/a~1b", "value": 1},
        {"op": "replace", "path": "/m~0n", "value": 2},
    ]
    assert apply_json_patch({"a/b": 0, "m~n": 0}, operations) == {"a/b": 1, "m~n": 2}


def test_json_patch_dash_appends_to_list() -> None:
    """The "-" token with add appends to the end of a list."""
    assert apply_json_patch([1], [{"op": "add", "path": "/-", "value": 2}]) == [1, 2]


def test_json_patch_empty_pointer_addresses_whole_document() -> None:
    """An empty path replaces the whole document."""
    operations: JSONValue = [{"op": "replace", "path": "", "value": {"new": True}}]
    assert apply_json_patch({"old": 1}, operations) == {"new": True}


def test_json_patch_replace_overwrites_list_element_instead_of_inserting() -> None:
    """Replace on a list index swaps that element and keeps the length."""
    assert apply_json_patch([1, 2, 3], [{"op": "replace", "path": "/1", "value": 9}]) == [1, 9, 3]


def test_json_patch_failed_test_raises_with_op_index_in_path() -> None:
    """A failing test operation raises PatchError naming its index and pointer."""
    operations: JSONValue = [
        {"op": "add", "path": "/a", "value": 1},
        {"op": "test", "path": "/a", "value": 2},
    ]
    with pytest.raises(PatchError) as caught:
        apply_json_patch({}, operations)
    assert caught.value.path == "/1/path"
    assert "/a" in caught.value.message


def test_json_patch_test_distinguishes_booleans_from_numbers() -> None:
    """Test compares with JSON semantics, so true does not equal 1."""
    with pytest.raises(PatchError):
        apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": True}])


def test_json_patch_move_into_own_child_is_rejected() -> None:
    """Moving a location into one of its children raises PatchError."""
    with pytest.raises(PatchError) as caught:
        apply_json_patch({"a": {"b": {}}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}])
    assert caught.value.path == "/0/path"


def test_json_patch_missing_from_location_is_reported_at_from() -> None:
    """A move or copy whose source does not exist points at the from member."""
    with pytest.raises(PatchError) as caught:
        apply_json_patch({}, [{"op": "copy", "from": "/nope", "path": "/x"}])
    assert caught.value.path == "/0/from"


def test_json_patch_removing_the_whole_document_is_rejected() -> None:
    """Remove with an empty path has no meaningful result and raises PatchError."""
    with pytest.raises(PatchError):
        apply_json_patch({"a": 1}, [{"op": "remove", "path": ""}])


@pytest.mark.parametrize(
    ("operations", "where"),
    [
        ({"op": "add"}, ""),
        (["add"], "/0"),
        ([{"path": "/a", "value": 1}], "/0/op"),
        ([{"op": "frobnicate", "path": "/a"}], "/0/op"),
        ([{"op": "add", "value": 1}], "/0/path"),
        ([{"op": "add", "path": 3, "value": 1}], "/0/path"),
        ([{"op": "add", "path": "/a"}], "/0/value"),
        ([{"op": "replace", "path": "/a"}], "/0/value"),
        ([{"op": "move", "path": "/b"}], "/0/from"),
        ([{"op": "add", "path": "a", "value": 1}], "/0/path"),
        ([{"op": "add", "path": "/a~2", "value": 1}], "/0/path"),
        ([{"op": "add", "path": "/list/01", "value": 1}], "/0/path"),
        ([{"op": "remove", "path": "/list/-"}], "/0/path"),
        ([{"op": "add", "path": "/a/x/y", "value": 1}], "/0/path"),
    ],
)
def test_json_patch_rejects_malformed_operations_naming_the_member(
    operations: JSONValue, where: str
) -> None:
    """Malformed operation lists raise PatchError pointing at the bad member."""
    with pytest.raises(PatchError) as caught:
        apply_json_patch({"a": 1, "list": [0, 1]}, operations)
    assert caught.value.path == where


def _pointer(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


@st.composite
def _valid_then_failing_patch(draw: st.DrawFn) -> tuple[dict[str, Any], list[JSONValue]]:
    """Draw an object, some operations that succeed on it, and one that fails last."""
    document = draw(st.dictionaries(_KEYS, _JSON, min_size=1, max_size=5))
    keys = sorted(document)
    operations: list[JSONValue] = []
    if draw(st.booleans()):
        first = keys[0]
        operations.append(
            {"op": "test", "path": _pointer(first), "value": copy.deepcopy(document[first])}
        )
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        pointer = _pointer(draw(st.sampled_from(keys)))
        kind = draw(st.sampled_from(["replace", "add", "copy"]))
        if kind == "copy":
            operations.append({"op": "copy", "from": pointer, "path": "/copied"})
        else:
            operations.append({"op": kind, "path": pointer, "value": draw(_JSON)})
    failing: list[JSONValue] = [
        {"op": "remove", "path": "/absent-key"},
        # Generated strings are at most three characters, so this value never matches.
        {"op": "test", "path": "/copied", "value": "never-drawn"},
        {"op": "replace", "path": "/absent-key/x", "value": 1},
        {"op": "unknown", "path": "/a"},
    ]
    operations.append(draw(st.sampled_from(failing)))
    return document, operations


@given(case=_valid_then_failing_patch())
def test_json_patch_is_atomic_when_a_later_operation_fails(
    case: tuple[dict[str, Any], list[JSONValue]],
) -> None:
    """A failing operation raises and leaves the input equal to its saved deep copy."""
    document, operations = case
    saved_document, saved_operations = copy.deepcopy(document), copy.deepcopy(operations)
    with pytest.raises(PatchError) as caught:
        apply_json_patch(document, operations)
    assert caught.value.path.startswith(f"/{len(operations) - 1}/")
    assert document == saved_document
    assert operations == saved_operations


@given(document=_JSON, value=_JSON, key=_KEYS)
def test_json_patch_never_mutates_its_inputs_on_success(
    document: JSONValue, value: JSONValue, key: str
) -> None:
    """A successful patch returns a new document and leaves both inputs untouched."""
    wrapped: JSONValue = {"root": document}
    target = f"/root{_pointer(key)}" if isinstance(document, dict) else "/root"
    operations: JSONValue = [
        {"op": "add", "path": target, "value": value},
        {"op": "copy", "from": "/root", "path": "/copy"},
    ]
    saved_wrapped, saved_operations = copy.deepcopy(wrapped), copy.deepcopy(operations)
    result = apply_json_patch(wrapped, operations)
    assert isinstance(result, dict)
    assert result["copy"] == result["root"]
    assert wrapped == saved_wrapped
    assert operations == saved_operations
