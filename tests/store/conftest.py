"""Stores for the store's tests: a SQLite file, and the local PostgreSQL when it is there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, exc, text

from selfheal.store import Store, open_store

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def store_on(backend: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh store: a SQLite file, or a throwaway schema in the local PostgreSQL."""
    if backend == "sqlite":
        with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
            yield store
        return
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 2})
    try:
        admin.connect().close()
    except exc.OperationalError as error:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({error.orig})")
    schema = f"selfheal_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with open_store(f"{PG_URL}?options=-csearch_path%3D{schema}") as store:
            yield store
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store test runs on SQLite and on PostgreSQL."""
    with store_on(request.param, tmp_path) as opened:
        yield opened
