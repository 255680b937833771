"""What every repository shares: JSON columns as the audit chain hashed them, a row by key.

JSON columns are stored through the audit chain's canonical JSON, so a table row holds
exactly the value its audit record hashed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from selfheal.domain.errors import PermanentError
from selfheal.store import audit, schema


class RecordNotFound(PermanentError):
    """The record asked for does not exist; retrying will not create it."""


def to_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """`value` as the plain JSON object the audit chain hashes (tuples as lists, and so on)."""
    return audit.Canonical(json.loads(audit.canonical_json(value)))


_Row = TypeVar("_Row", bound=schema.Base)


def get_row(session: Session, model: type[_Row], key: str) -> _Row:
    """The row of `model` with primary key `key`; RecordNotFound if there is none."""
    row = session.get(model, key)
    if row is None:
        raise RecordNotFound(f"no {model.__tablename__} record {key!r}")
    return row
