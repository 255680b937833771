"""Bringing a store made by an earlier selfheal up to the current tables.

`create_all` makes missing tables (such as `audit_checkpoints`, which came after the first
release) but never changes existing ones, so columns added since a state directory was
made are added here: nullable, so old rows stay valid, and with the same uniqueness as a
new store's (as an index, which SQLite can add to a table that exists). Each step checks
before it acts, so running it again changes nothing.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

# (table, column, SQL type): columns added after the first release of the store.
_ADDED_COLUMNS = (
    ("notifications", "key", "VARCHAR(512)"),
    ("budget_ledger", "key", "VARCHAR(512)"),
    ("inbox", "urgent", "BOOLEAN DEFAULT 0"),
)


def upgrade(engine: Engine) -> None:
    """Add the columns (and their unique indexes) a store made earlier lacks."""
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    missing = [
        (table, column, sql_type)
        for table, column, sql_type in _ADDED_COLUMNS
        if table in tables and column not in {c["name"] for c in inspector.get_columns(table)}
    ]
    if not missing:
        return
    with engine.begin() as connection:
        for table, column, sql_type in missing:
            connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
            connection.execute(
                text(f"CREATE UNIQUE INDEX IF NOT EXISTS uq_{table}_{column} ON {table} ({column})")
            )
