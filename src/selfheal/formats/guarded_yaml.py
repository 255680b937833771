"""PyYAML's safe loader, refusing documents that are cheap to write and costly to load.

The safe loader runs no code, but a small document can still make it, or whatever walks
its data next, spend unbounded time or stack:

- aliases of aliases ("billion laughs"): nine anchors of nine aliases each are 387 million
  values to the validation, templating and JSON that walk the data, from a 1 KB file;
- an alias inside its own anchor (`&a [*a]`): a value that contains itself;
- nesting a few hundred levels deep (`[[[[...`): PyYAML composes recursively and would end
  in a RecursionError;
- long numbers: PyYAML converts sexagesimal numbers (`1:2:3:...`) in quadratic time, and
  Python refuses to convert an integer of more than 4300 digits (a ValueError).

A scalar PyYAML cannot convert (`!!int x`, the date `2001-13-45`) raises the library's own
exceptions; here it is a `ConstructorError` at the value, like every other YAML error, so
`sourced_yaml` maps it to file:line:col.
"""

from __future__ import annotations

from typing import Any

import yaml

# Real files nest under 15 levels; 100 is far above them and far below Python's recursion
# limit, which PyYAML's recursive composer would otherwise reach.
MAX_DEPTH = 100
# Values that aliases may add beyond those written. Shared blocks and merge keys (`<<: *x`)
# in real files add hundreds; a hundred thousand more still validate in well under a second.
MAX_ALIAS_EXPANSION = 100_000
# A float64 needs 24 characters at most, an int64 20 digits; no number a user means is
# longer than this, and a longer one costs PyYAML quadratic time (see above).
MAX_NUMBER_LENGTH = 100

_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


class GuardedLoader(yaml.SafeLoader):
    """The safe loader with the limits above; subclass it to add constructors."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        # Counting expanded values costs a walk of the tree; only aliases make it necessary.
        self.aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                # types-PyYAML leaves the pure-Python parser's peek_event unannotated.
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
            node: yaml.Node | None = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag in _NUMBER_TAGS and len(str(node.value)) > MAX_NUMBER_LENGTH:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"a number of more than {MAX_NUMBER_LENGTH} characters",
                node.start_mark,
            )
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
            # The scalar constructors' own failures: int("x"), a bool that is not one, a
            # timestamp that does not match, a month 13.
            kind = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"not a valid {kind}: {node.value!r}", node.start_mark
            ) from exc


def refuse_alias_bombs(root: yaml.Node) -> None:
    """Raise ComposerError when aliases make the document much larger or deeper than written.

    Counts the values and levels the document holds with every alias expanded, without
    expanding them (each node's figures are remembered), and refuses an alias inside its
    own anchor. Bounding the expanded depth too keeps every recursive walk of the data
    (validation, templating, JSON) within Python's stack. A size error points at the
    anchor whose copies add the most.
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    references: dict[int, int] = {}
    nodes: dict[int, yaml.Node] = {}
    entered: set[int] = set()
    # Iterative, because expanded aliases may nest deeper than the text does.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            heights[key] = 1 + max((heights[id(child)] for child in children), default=0)
            if heights[key] > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"aliases nest this more than {MAX_DEPTH} levels deep",
                    node.start_mark,
                )
            entered.discard(key)
            continue
        if key in sizes:
            continue
        if key in entered:
            raise yaml.composer.ComposerError(
                None,
                None,
                "an alias inside its own anchor (a value that contains itself)",
                node.start_mark,
            )
        entered.add(key)
        nodes[key] = node
        stack.append((node, True))
        for child in _children(node):
            references[id(child)] = references.get(id(child), 0) + 1
            if id(child) not in sizes:
                stack.append((child, False))
    added = sizes[id(root)] - len(sizes)
    if added > MAX_ALIAS_EXPANSION:
        culprit = max(
            (key for key, count in references.items() if count > 1),
            key=lambda key: sizes[key] * (references[key] - 1),
        )
        raise yaml.composer.ComposerError(
            None,
            None,
            f"aliases of this anchor expand the document by {added:,} values, over the "
            f"limit of {MAX_ALIAS_EXPANSION:,}; write the values out, or share less",
            nodes[culprit].start_mark,
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        items: list[yaml.Node] = node.value
        return items
    if isinstance(node, yaml.MappingNode):
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        return [part for pair in pairs for part in pair]
    return []
