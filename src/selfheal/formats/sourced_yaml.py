"""YAML loading that keeps the line and column of every value.

Users' files (scenarios, rules, runbooks, configs) are validated with pydantic, whose errors
carry a path like `faults.2.type` but no position. Composing the YAML node tree alongside the
plain data lets us map that path back to `file:line:col`, so an error reads like a
compiler's and points at the exact value to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.formats import guarded_yaml, text_files

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


@dataclass(frozen=True, slots=True)
class SourcedDocument:
    """Parsed YAML data plus its node tree, for looking up positions by path."""

    source: str
    data: Any
    root: yaml.Node | None

    def locate(self, path: Sequence[str | int]) -> SourceLocation:
        """Return the position of the value at `path`, or of its deepest existing ancestor."""
        node = self.root
        for part in path:
            child = _child(node, part)
            if child is None:
                break
            node = child
        line = column = None
        if node is not None:
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
        return SourceLocation(self.source, line, column, format_path(path))


def format_path(path: Sequence[str | int]) -> str:
    """Render a path as users write it: `faults[2].type`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        for key, value in pairs:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        items: list[yaml.Node] = node.value
        if 0 <= part < len(items):
            return items[part]
    return None


def load_yaml(
    text: str,
    *,
    source: str,
    loader: type[guarded_yaml.GuardedLoader] = guarded_yaml.GuardedLoader,
) -> SourcedDocument:
    """Parse one YAML document, raising ConfigError with file:line:col on a syntax error.

    One pass composes the node tree (for positions) and builds the data from it. The
    loader's limits (`guarded_yaml`) refuse documents that are costly to load (deep
    nesting, aliases that multiply the values, endless numbers) before any data is built.
    """
    try:
        parser = loader(text)
    except yaml.reader.ReaderError as exc:  # raised on the whole text, before parsing
        raise _unprintable(exc, text=text, source=source) from exc
    try:
        root = parser.get_single_node()
        if root is not None and parser.aliases:
            guarded_yaml.refuse_alias_bombs(root)
        data = None if root is None else parser.construct_document(root)
    except yaml.YAMLError as exc:
        raise _invalid(exc, source=source) from exc
    finally:
        parser.dispose()
    return SourcedDocument(source=source, data=data, root=root)


def load_yaml_documents(
    text: str,
    *,
    source: str,
    loader: type[guarded_yaml.GuardedLoader] = guarded_yaml.GuardedLoader,
) -> list[SourcedDocument]:
    """Parse every document of a YAML stream (`---` between them), each with its positions.

    For files other tools write several objects into (Kubernetes manifests). Empty
    documents are left out; errors name file:line:col as `load_yaml`'s do.
    """
    try:
        parser = loader(text)
    except yaml.reader.ReaderError as exc:
        raise _unprintable(exc, text=text, source=source) from exc
    documents: list[SourcedDocument] = []
    try:
        while parser.check_node():
            before = parser.aliases
            root = parser.get_node()
            if root is None:
                continue
            if parser.aliases > before:
                guarded_yaml.refuse_alias_bombs(root)
            data = parser.construct_document(root)
            if data is not None:  # an empty document (`---` twice) holds nothing to read
                documents.append(SourcedDocument(source=source, data=data, root=root))
    except yaml.YAMLError as exc:
        raise _invalid(exc, source=source) from exc
    finally:
        parser.dispose()
    return documents


def _invalid(error: yaml.YAMLError, *, source: str) -> ConfigError:
    """A YAML error at its line and column when PyYAML knows them."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark
        location = SourceLocation(
            source,
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
        )
        return ConfigError(f"invalid YAML: {error.problem}", location=location)
    return ConfigError(f"invalid YAML: {error}", location=SourceLocation(source))


def _unprintable(error: yaml.reader.ReaderError, *, text: str, source: str) -> ConfigError:
    """A character YAML forbids (a NUL, a control character), at its line and column."""
    position: int = error.position
    line = text.count("\n", 0, position) + 1
    column = position - text.rfind("\n", 0, position)
    return ConfigError(
        f"invalid YAML: character U+{error.character:04X} is not allowed in YAML text",
        location=SourceLocation(source, line, column),
    )


def load_model(model: type[ModelT], document: SourcedDocument) -> ModelT:
    """Validate a document against a pydantic model; the first error names its place."""
    try:
        return model.model_validate(document.data)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        # A misspelt field also makes the real one "missing"; the misspelling is the news.
        errors.sort(key=lambda error: error.get("type") != "extra_forbidden")
        error = errors[0]
        path = _data_path(document.data, error["loc"])
        message = _describe(error)
        if error.get("type") == "extra_forbidden":
            missing = [
                str(other["loc"][-1])
                for other in errors
                if other.get("type") == "missing" and other["loc"][:-1] == error["loc"][:-1]
            ]
            guess = difflib.get_close_matches(str(error["loc"][-1]), missing, n=1)
            if guess:
                message = f"unknown field; did you mean {guess[0]!r}?"
                errors = [
                    other for other in errors if other["loc"] != (*error["loc"][:-1], guess[0])
                ]
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(message, location=document.locate(path)) from exc


def load_model_file(model: type[ModelT], path: Path, *, kind: text_files.FileKind) -> ModelT:
    """Read a YAML file of `kind` and validate it; errors name the file and position."""
    text = text_files.read_text(path, kind=kind)
    return load_model(model, load_yaml(text, source=str(path)))


def _data_path(data: Any, loc: Sequence[Any]) -> list[str | int]:
    """Drop the parts of a pydantic error path that are not keys in the data.

    A tagged union adds its tag value (`faults.2.load_step.factor`); users never wrote that
    key, so it would only confuse them.
    """
    path: list[str | int] = []
    current = data
    for part in loc:
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            current = current[part]
        elif isinstance(current, dict) and part in current.values():
            continue
        else:
            current = None
        path.append(part)
    return path


def _describe(error: Any) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field (check its spelling; see the documentation for allowed fields)"
    if kind == "missing":
        return "required field is missing"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")
