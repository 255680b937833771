"""Apply the three patch formats the Kubernetes API server accepts to JSON-like documents.

The digital twin serves ``PATCH`` requests the way a real API server does, so controllers
under test can use merge patches (RFC 7386), strategic merge patches (the Kubernetes
dialect, subset) and JSON patches (RFC 6902) unchanged.

Every public function deep-copies its inputs before working, so callers may keep stored
objects and patches without defensive copies, and a failed patch never leaves a
half-applied document behind.

Strategic merge patch needs per-field knowledge (which lists merge by which key). The real
server reads it from Go struct tags; here the caller passes it as ``merge_keys``, keyed by
dotted field paths with list positions dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TypeAlias

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

_PATCH_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ELEMENT_ORDER = "$setElementOrder/"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """A patch could not be applied; ``path`` locates the problem ("" for the whole input)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class _Deleted:
    """Marker returned when a ``$patch: delete`` directive removes the dict being merged."""


_DELETED = _Deleted()


def _escape_pointer_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _json_equal(left: JSONValue, right: JSONValue) -> bool:
    """Compare with JSON semantics: unlike Python, ``true`` is not equal to ``1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            _json_equal(value, right[key]) for key, value in left.items()
        )
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            _json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, (dict, list)) or isinstance(right, (dict, list)):
        return False
    return left == right


# --------------------------------------------------------------------------- merge patch


def apply_merge_patch(document: JSONValue, patch: JSONValue) -> JSONValue:
    """Return ``document`` with the RFC 7386 JSON merge ``patch`` applied."""
    return _merge(copy.deepcopy(document), patch)


def _merge(target: JSONValue, patch: JSONValue) -> JSONValue:
    # ``target`` is already a private copy, so it may be modified in place.
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, JSONValue] = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


# ----------------------------------------------------------------- strategic merge patch


def apply_strategic_merge_patch(
    document: JSONValue,
    patch: JSONValue,
    *,
    merge_keys: Mapping[str, str],
) -> dict[str, JSONValue]:
    """Return ``document`` with a Kubernetes strategic merge ``patch`` applied.

    ``merge_keys`` maps dotted field paths without list positions (for example
    ``"spec.template.spec.containers"``) to the key that identifies elements of that list.
    Lists at paths not in ``merge_keys`` are replaced wholesale.
    """
    if not isinstance(patch, dict):
        raise PatchError("", "strategic merge patch must be a JSON object")
    if not isinstance(document, dict):
        raise PatchError("", "strategic merge patch target must be a JSON object")
    merger = _StrategicMerger(merge_keys)
    result = merger.merge_dict(copy.deepcopy(document), patch, field_path="", pointer="")
    # Deleting the whole object leaves nothing behind, which is an empty object here.
    return {} if isinstance(result, _Deleted) else result


class _StrategicMerger:
    """Recursive strategic merge; ``field_path`` is dotted without list indexes."""

    def __init__(self, merge_keys: Mapping[str, str]) -> None:
        self._merge_keys = merge_keys

    def merge_dict(
        self,
        target: dict[str, JSONValue],
        patch: dict[str, JSONValue],
        *,
        field_path: str,
        pointer: str,
    ) -> dict[str, JSONValue] | _Deleted:
        directive = patch.get(_PATCH_DIRECTIVE)
        if directive == "delete":
            return _DELETED
        if directive == "replace":
            rest = {k: v for k, v in patch.items() if k != _PATCH_DIRECTIVE}
            # Merging onto an empty dict keeps nested directive and null handling uniform.
            return self.merge_dict({}, rest, field_path=field_path, pointer=pointer)
        if directive not in (None, "merge"):
            raise PatchError(
                f"{pointer}/{_escape_pointer_token(_PATCH_DIRECTIVE)}",
                f"unknown $patch directive {directive!r}",
            )

        retain_keys: list[str] | None = None
        element_orders: dict[str, list[JSONValue]] = {}
        regular: dict[str, JSONValue] = {}
        for key, value in patch.items():
            key_pointer = f"{pointer}/{_escape_pointer_token(key)}"
            if key == _PATCH_DIRECTIVE:
                continue
            if key == _RETAIN_KEYS:
                retain_keys = _string_list(value, key_pointer)
            elif key.startswith(_SET_ELEMENT_ORDER):
                if not isinstance(value, list):
                    raise PatchError(key_pointer, "$setElementOrder value must be a list")
                element_orders[key.removeprefix(_SET_ELEMENT_ORDER)] = value
            elif key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
                field = key.removeprefix(_DELETE_FROM_PRIMITIVE_LIST)
                self._delete_from_primitive_list(target, field, value, pointer=key_pointer)
            elif key.startswith("$"):
                raise PatchError(key_pointer, f"unsupported patch directive {key!r}")
            else:
                regular[key] = value

        for key, value in regular.items():
            self._merge_field(
                target,
                key,
                value,
                field_path=_child_path(field_path, key),
                pointer=f"{pointer}/{_escape_pointer_token(key)}",
            )

        for field, order in element_orders.items():
            self._set_element_order(
                target,
                field,
                order,
                field_path=_child_path(field_path, field),
                pointer=f"{pointer}/{_escape_pointer_token(_SET_ELEMENT_ORDER + field)}",
            )

        if retain_keys is not None:
            for key in [k for k in target if k not in retain_keys]:
                del target[key]
        return target

    def _merge_field(
        self,
        target: dict[str, JSONValue],
        key: str,
        value: JSONValue,
        *,
        field_path: str,
        pointer: str,
    ) -> None:
        if value is None:
            target.pop(key, None)
            return
        current = target.get(key)
        if isinstance(value, dict):
            merged = self.merge_dict(
                current if isinstance(current, dict) else {},
                value,
                field_path=field_path,
                pointer=pointer,
            )
            if isinstance(merged, _Deleted):
                target.pop(key, None)
            else:
                target[key] = merged
        elif isinstance(value, list) and field_path in self._merge_keys:
            target[key] = self._merge_list(
                current if isinstance(current, list) else [],
                value,
                merge_key=self._merge_keys[field_path],
                field_path=field_path,
                pointer=pointer,
            )
        else:
            target[key] = copy.deepcopy(value)

    def _merge_list(
        self,
        target: list[JSONValue],
        patch: list[JSONValue],
        *,
        merge_key: str,
        field_path: str,
        pointer: str,
    ) -> list[JSONValue]:
        for index, element in enumerate(patch):
            element_pointer = f"{pointer}/{index}"
            if not isinstance(element, dict) or merge_key not in element:
                raise PatchError(
                    element_pointer, f"list element is missing merge key {merge_key!r}"
                )
            key_value = element[merge_key]
            if element.get(_PATCH_DIRECTIVE) == "delete":
                # Kubernetes removes every element carrying the key, not just the first.
                target[:] = [
                    item
                    for item in target
                    if not (isinstance(item, dict) and _json_equal(item.get(merge_key), key_value))
                ]
                continue
            position, existing = _find_by_key(target, merge_key, key_value)
            merged = self.merge_dict(
                existing, element, field_path=field_path, pointer=element_pointer
            )
            if isinstance(merged, _Deleted):
                continue
            if position is None:
                target.append(merged)
            else:
                target[position] = merged
        return target

    def _set_element_order(
        self,
        target: dict[str, JSONValue],
        field: str,
        order: list[JSONValue],
        *,
        field_path: str,
        pointer: str,
    ) -> None:
        current = target.get(field)
        if current is None:
            return
        if not isinstance(current, list):
            raise PatchError(pointer, f"field {field!r} is not a list")
        merge_key = self._merge_keys.get(field_path)
        wanted: list[JSONValue] = []
        for index, entry in enumerate(order):
            if merge_key is not None and isinstance(entry, dict):
                if merge_key not in entry:
                    raise PatchError(f"{pointer}/{index}", f"missing merge key {merge_key!r}")
                wanted.append(entry[merge_key])
            else:
                wanted.append(entry)

        def identity(item: JSONValue) -> JSONValue:
            if merge_key is not None and isinstance(item, dict):
                return item.get(merge_key)
            return item

        def rank(item: JSONValue) -> int:
            ident = identity(item)
            for position, value in enumerate(wanted):
                if _json_equal(ident, value):
                    return position
            return len(wanted)

        # sorted() is stable, so unmentioned elements keep their relative order at the end.
        target[field] = sorted(current, key=rank)

    @staticmethod
    def _delete_from_primitive_list(
        target: dict[str, JSONValue],
        field: str,
        values: JSONValue,
        *,
        pointer: str,
    ) -> None:
        if not isinstance(values, list):
            raise PatchError(pointer, "$deleteFromPrimitiveList value must be a list")
        current = target.get(field)
        if current is None:
            return
        if not isinstance(current, list):
            raise PatchError(pointer, f"field {field!r} is not a list")
        target[field] = [item for item in current if not any(_json_equal(item, v) for v in values)]


def _child_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _find_by_key(
    items: list[JSONValue], merge_key: str, value: JSONValue
) -> tuple[int | None, dict[str, JSONValue]]:
    """Return the position and element whose merge key equals ``value``, or ``(None, {})``."""
    for position, item in enumerate(items):
        if isinstance(item, dict) and merge_key in item and _json_equal(item[merge_key], value):
            return position, item
    return None, {}


def _string_list(value: JSONValue, pointer: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PatchError(pointer, "$retainKeys value must be a list of strings")
    return [item for item in value if isinstance(item, str)]


# ---------------------------------------------------------------------------- JSON patch


def apply_json_patch(document: JSONValue, operations: JSONValue) -> JSONValue:
    """Return ``document`` with the RFC 6902 JSON patch ``operations`` applied atomically.

    On failure a :class:`PatchError` is raised whose ``path`` points into ``operations``
    (for example ``"/1/path"``), and no partial result escapes.
    """
    if not isinstance(operations, list):
        raise PatchError("", "JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for index, operation in enumerate(operations):
        result = _apply_operation(result, operation, index)
    return result


_OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")


def _apply_operation(document: JSONValue, operation: JSONValue, index: int) -> JSONValue:
    if not isinstance(operation, dict):
        raise PatchError(f"/{index}", f"operation {index} must be a JSON object")
    op = operation.get("op")
    if not isinstance(op, str):
        raise PatchError(f"/{index}/op", f"operation {index} needs a string 'op'")
    if op not in _OPERATIONS:
        raise PatchError(f"/{index}/op", f"operation {index} has unknown op {op!r}")
    path = _member_string(operation, "path", index)
    where = f"/{index}/path"
    label = f"operation {index} ({op} {path!r})"
    tokens = _parse_pointer(path, where, label)

    if op in ("add", "replace", "test"):
        if "value" not in operation:
            raise PatchError(f"/{index}/value", f"{label} needs a 'value'")
        value = copy.deepcopy(operation["value"])
        if op == "add":
            return _set(document, tokens, value, insert=True, where=where, label=label)
        if op == "replace":
            _get(document, tokens, where=where, label=label)
            return _set(document, tokens, value, insert=False, where=where, label=label)
        actual = _get(document, tokens, where=where, label=label)
        if not _json_equal(actual, value):
            raise PatchError(where, f"{label}: test failed, found {actual!r}")
        return document

    if op == "remove":
        return _remove(document, tokens, where=where, label=label)

    source = _member_string(operation, "from", index)
    from_where = f"/{index}/from"
    from_tokens = _parse_pointer(source, from_where, label)
    value = copy.deepcopy(_get(document, from_tokens, where=from_where, label=label))
    if op == "move":
        if tokens[: len(from_tokens)] == from_tokens and len(tokens) > len(from_tokens):
            raise PatchError(where, f"{label}: cannot move a location into its own child")
        if tokens == from_tokens:
            return document
        document = _remove(document, from_tokens, where=from_where, label=label)
    return _set(document, tokens, value, insert=True, where=where, label=label)


def _member_string(operation: dict[str, JSONValue], name: str, index: int) -> str:
    value = operation.get(name)
    if not isinstance(value, str):
        raise PatchError(f"/{index}/{name}", f"operation {index} needs a string {name!r}")
    return value


def _parse_pointer(pointer: str, where: str, label: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(where, f"{label}: JSON pointer must start with '/'")
    tokens = []
    for raw in pointer[1:].split("/"):
        stripped = raw.replace("~0", "").replace("~1", "")
        if "~" in stripped:
            raise PatchError(where, f"{label}: invalid '~' escape in {raw!r}")
        # Order matters: "~01" must decode to "~1", not "/".
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _list_index(
    items: list[JSONValue], token: str, *, allow_end: bool, where: str, label: str
) -> int:
    if token == "-" and allow_end:
        return len(items)
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(where, f"{label}: {token!r} is not a valid list index")
    position = int(token)
    limit = len(items) if allow_end else len(items) - 1
    if position > limit:
        raise PatchError(where, f"{label}: list index {position} is out of range")
    return position


def _get(document: JSONValue, tokens: list[str], *, where: str, label: str) -> JSONValue:
    current = document
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(where, f"{label}: member {token!r} does not exist")
            current = current[token]
        elif isinstance(current, list):
            current = current[
                _list_index(current, token, allow_end=False, where=where, label=label)
            ]
        else:
            raise PatchError(where, f"{label}: cannot descend into a scalar at {token!r}")
    return current


def _set(
    document: JSONValue,
    tokens: list[str],
    value: JSONValue,
    *,
    insert: bool,
    where: str,
    label: str,
) -> JSONValue:
    """Store ``value`` at ``tokens``.

    ``insert`` shifts list elements (add) instead of overwriting one (replace).
    """
    if not tokens:
        return value
    parent = _get(document, tokens[:-1], where=where, label=label)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        position = _list_index(parent, last, allow_end=insert, where=where, label=label)
        if insert:
            parent.insert(position, value)
        else:
            parent[position] = value
    else:
        raise PatchError(where, f"{label}: parent of the target is not a container")
    return document


def _remove(document: JSONValue, tokens: list[str], *, where: str, label: str) -> JSONValue:
    if not tokens:
        raise PatchError(where, f"{label}: cannot remove the whole document")
    parent = _get(document, tokens[:-1], where=where, label=label)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(where, f"{label}: member {last!r} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_list_index(parent, last, allow_end=False, where=where, label=label)]
    else:
        raise PatchError(where, f"{label}: parent of the target is not a container")
    return document
