"""YAML that is cheap to write and costly to load is refused at its place, before it costs."""

from __future__ import annotations

import pytest

from selfheal.domain.errors import ConfigError
from selfheal.formats import guarded_yaml
from selfheal.formats.sourced_yaml import load_yaml


def billion_laughs(levels: int = 9) -> str:
    """Nine anchors, each of nine aliases of the one before: 9**9 values from 1 KB."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [
        f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]"
        for level in range(1, levels + 1)
    ]
    return "\n".join(lines) + "\n"


def refusal(
    text: str, *, loader: type[guarded_yaml.GuardedLoader] = guarded_yaml.GuardedLoader
) -> str:
    with pytest.raises(ConfigError) as raised:
        load_yaml(text, source="f.yaml", loader=loader)
    return str(raised.value)


def test_billion_laughs_is_refused_at_the_anchor_that_multiplies() -> None:
    """The nine copies of the last anchor aliased (l8, line 9) add the most; named there."""
    message = refusal(billion_laughs())
    assert message.startswith("f.yaml:9:5: invalid YAML: aliases of this anchor expand")
    assert "over the limit of 100,000" in message


def test_shared_blocks_and_merge_keys_still_load() -> None:
    """Aliases as people use them (a few shared blocks, `<<: *defaults`) are fine."""
    text = (
        "defaults: &defaults {retries: 2, timeout: 30s}\n"
        "steps:\n"
        "  - {<<: *defaults, name: a}\n"
        "  - {<<: *defaults, name: b, retries: 3}\n"
        "labels: &labels [x, y]\n"
        "again: *labels\n"
    )
    data = load_yaml(text, source="f.yaml").data
    assert data["steps"][1] == {"retries": 3, "timeout": "30s", "name": "b"}
    assert data["again"] == ["x", "y"]


def test_expansion_just_under_the_limit_loads() -> None:
    """The limit is on values added by aliases; five levels of nine (59,049) are allowed."""
    data = load_yaml(billion_laughs(levels=4), source="f.yaml").data
    assert len(data["l4"]) == 9


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    """A value that contains itself would send every walk of the data round forever."""
    assert refusal("a: &a [1, *a]\n").startswith(
        "f.yaml:1:4: invalid YAML: an alias inside its own anchor"
    )
    assert "its own anchor" in refusal("&m {b: *m}\n")


def test_nesting_past_the_limit_is_refused_where_it_goes_too_deep() -> None:
    """`[[[[...` deeper than MAX_DEPTH is refused, not a RecursionError in PyYAML."""
    depth = guarded_yaml.MAX_DEPTH
    assert load_yaml("[" * depth + "]" * depth, source="f.yaml").data is not None
    message = refusal("[" * 100_000)
    assert message == f"f.yaml:1:{depth + 1}: invalid YAML: nested more than {depth} levels deep"


def test_block_nesting_past_the_limit_is_refused_too() -> None:
    """Indented mappings nest through the same composer as flow brackets."""
    text = "".join(" " * level + "a:\n" for level in range(3000))
    assert "nested more than 100 levels deep" in refusal(text)


def test_aliases_that_nest_past_the_limit_are_refused() -> None:
    """Each anchor 10 levels deep holding the previous: shallow text, deep data."""
    lines = ["x0: &x0 " + "[" * 10 + "1" + "]" * 10]
    lines += [f"x{i}: &x{i} " + "[" * 10 + f"*x{i - 1}" + "]" * 10 for i in range(1, 30)]
    assert "aliases nest this more than 100 levels deep" in refusal("\n".join(lines))


@pytest.mark.parametrize(
    "number",
    ["9" * 5000, ":".join(["59"] * 100_000), "0b" + "1" * 20_000],
    ids=["5000 digits", "sexagesimal", "binary"],
)
def test_numbers_longer_than_any_real_one_are_refused(number: str) -> None:
    """Long numbers cost PyYAML quadratic time or Python a ValueError; both are refused."""
    assert refusal(f"a: {number}\n") == (
        "f.yaml:1:4: invalid YAML: a number of more than 100 characters"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!int x\n", "f.yaml:1:4: invalid YAML: not a valid int: 'x'"),
        ("a: !!bool maybe\n", "f.yaml:1:4: invalid YAML: not a valid bool: 'maybe'"),
        ("b: 1\na: 2001-13-45\n", "f.yaml:2:4: invalid YAML: not a valid timestamp: '2001-13-45'"),
        ("a: !!timestamp soon\n", "f.yaml:1:4: invalid YAML: not a valid timestamp: 'soon'"),
    ],
)
def test_a_scalar_pyyaml_cannot_convert_is_refused_at_its_place(text: str, expected: str) -> None:
    """The constructors' own exceptions become ConfigErrors at the value."""
    assert refusal(text) == expected


def test_a_character_yaml_forbids_is_named_at_its_line_and_column() -> None:
    """A NUL in the text is refused where it is, not at an offset into the whole text."""
    assert refusal("a: 1\nb: x\x00y\n") == (
        "f.yaml:2:5: invalid YAML: character U+0000 is not allowed in YAML text"
    )


def test_a_loader_with_more_constructors_keeps_the_limits() -> None:
    """Subclasses (the promtool test reader's) get every guard."""

    class Textual(guarded_yaml.GuardedLoader):
        """Reads booleans as text."""

    Textual.add_constructor("tag:yaml.org,2002:bool", lambda loader, node: node.value)
    assert load_yaml("a: yes\n", source="f.yaml", loader=Textual).data == {"a": "yes"}
    assert "aliases of this anchor" in refusal(billion_laughs(), loader=Textual)
    assert "nested more than" in refusal("[" * 1000, loader=Textual)
