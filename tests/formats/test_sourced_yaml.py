"""YAML that remembers positions, so validation errors name file:line:col."""

from __future__ import annotations

import pydantic
import pytest

from selfheal.domain.errors import ConfigError
from selfheal.formats.sourced_yaml import load_model, load_yaml, load_yaml_documents


class Step(pydantic.BaseModel):
    """A runbook-like step."""

    model_config = pydantic.ConfigDict(extra="forbid")
    name: str
    retries: int = 0


class Book(pydantic.BaseModel):
    """A runbook-like document of steps."""

    model_config = pydantic.ConfigDict(extra="forbid")
    steps: list[Step]


def test_locate_finds_nested_list_items() -> None:
    """A path into a list of mappings resolves to the value's line and column."""
    document = load_yaml("steps:\n  - name: a\n  - name: b\n    retries: 2\n", source="f.yaml")
    location = document.locate(["steps", 1, "retries"])
    assert (location.line, location.column) == (4, 14)
    assert str(location) == "f.yaml:4:14 (steps[1].retries)"


def test_validation_error_points_at_the_bad_value() -> None:
    """A value of the wrong type is reported at its own position."""
    document = load_yaml("steps:\n  - name: a\n    retries: many\n", source="b.yaml")
    with pytest.raises(ConfigError) as raised:
        load_model(Book, document)
    assert str(raised.value).startswith("b.yaml:3:14 (steps[0].retries):")


def test_misspelt_key_suggests_the_right_one() -> None:
    """An unknown key next to a missing one of similar spelling suggests it."""
    document = load_yaml("steps:\n  - nme: a\n", source="c.yaml")
    with pytest.raises(ConfigError) as raised:
        load_model(Book, document)
    assert "did you mean 'name'" in str(raised.value)
    assert "more problem" not in str(raised.value)


def test_each_document_of_a_stream_keeps_its_own_positions() -> None:
    """Several documents (`---`): each locates its values at their line in the whole file.

    Empty documents are left out.
    """
    text = "kind: A\n---\n---\nkind: B\nrules:\n  - verbs: [get]\n"
    first, second = load_yaml_documents(text, source="m.yaml")
    assert (first.data, second.data["kind"]) == ({"kind": "A"}, "B")
    assert str(second.locate(["rules", 0, "verbs"])) == "m.yaml:6:12 (rules[0].verbs)"


def test_an_error_in_a_later_document_names_its_line() -> None:
    """A syntax error in the second document is at its line, as in a single document."""
    with pytest.raises(ConfigError, match=r"^m\.yaml:3:\d+: invalid YAML"):
        load_yaml_documents("kind: A\n---\nkind: B: C\n", source="m.yaml")
