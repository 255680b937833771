"""`store.budget`: remediation costs charged per day against the daily budget.

A charge made by a runbook step carries the step's idempotency key, so a step re-run after
a crash finds its own charge (`charged`) instead of paying twice, and a step whose effect
did not happen can be refunded by the same key.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from selfheal.domain.errors import GuardrailViolation
from selfheal.domain.model import IncidentId
from selfheal.store import audit, schema

if TYPE_CHECKING:
    from selfheal.store.database import Store


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One charge (or refund, a negative amount) in the budget ledger."""

    id: int
    day: str
    amount: float
    currency: str
    reason: str
    incident_id: IncidentId | None
    created_at: float
    key: str | None = None


def day_of(at: float) -> str:
    """The budget day ('YYYY-MM-DD', UTC) that a scenario time falls on."""
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).date().isoformat()


class BudgetLedger:
    """`store.budget`: remediation costs per day, charged against an optional limit."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def spent_on(self, day: str, *, currency: str = "USD") -> float:
        _check_day(day)
        with self._store.read() as session:
            return _spent(session, day=day, currency=currency)

    def charge(
        self,
        *,
        day: str,
        amount: float,
        currency: str,
        reason: str,
        at: float,
        incident_id: IncidentId | None = None,
        limit: float | None = None,
        key: str | None = None,
    ) -> LedgerEntry:
        """Charge `amount` to `day`; with `limit`, refuse a charge that would exceed it.

        The check and the charge are one transaction, so concurrent charges cannot
        together overspend the limit. With a `key` already charged, the first entry stands.
        """
        _check_day(day)
        if not math.isfinite(amount):
            raise ValueError(f"a charge is a finite amount, not {amount}")
        with self._store.write() as session:
            if key is not None:
                existing = session.scalar(
                    select(schema.BudgetLedgerRow).where(schema.BudgetLedgerRow.key == key)
                )
                if existing is not None:
                    return _entry(existing)
            spent = _spent(session, day=day, currency=currency)
            if limit is not None and amount > 0 and spent + amount > limit:
                raise GuardrailViolation(
                    f"budget for {day}: {spent:g} {currency} spent, {amount:g} more would "
                    f"exceed the limit of {limit:g} ({reason})"
                )
            row = schema.BudgetLedgerRow(
                day=day,
                amount=amount,
                currency=currency,
                reason=reason,
                incident_id=incident_id,
                created_at=at,
                key=key,
            )
            session.add(row)
            session.flush()
            payload = {
                "entry_id": row.id,
                "amount": amount,
                "currency": currency,
                "reason": reason,
                "incident_id": incident_id,
            }
            if key is not None:
                payload["key"] = key
            audit.append_in(session, kind="budget.charged", subject=day, payload=payload, at=at)
            return _entry(row)

    def find(self, key: str) -> LedgerEntry | None:
        """The entry charged under `key`, if any."""
        with self._store.read() as session:
            row = session.scalar(
                select(schema.BudgetLedgerRow).where(schema.BudgetLedgerRow.key == key)
            )
            return None if row is None else _entry(row)


def _spent(session: Session, *, day: str, currency: str) -> float:
    ledger = schema.BudgetLedgerRow
    total = session.scalar(
        select(func.coalesce(func.sum(ledger.amount), 0.0)).where(
            ledger.day == day, ledger.currency == currency
        )
    )
    return float(total or 0.0)


def _check_day(day: str) -> None:
    try:
        parsed = datetime.date.fromisoformat(day)
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat() != day:
        raise ValueError(f"a budget day is written YYYY-MM-DD, not {day!r}")


def _entry(row: schema.BudgetLedgerRow) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        day=row.day,
        amount=row.amount,
        currency=row.currency,
        reason=row.reason,
        incident_id=None if row.incident_id is None else IncidentId(row.incident_id),
        created_at=row.created_at,
        key=row.key,
    )
