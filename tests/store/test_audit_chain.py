import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from selfheal.domain.model import Fingerprint
from selfheal.store import Store, audit, open_store, schema


def append_some(store: Store, count: int) -> None:
    for number in range(1, count + 1):
        store.audit.append("test.event", f"subject-{number}", {"n": number}, at=100.0 + number)


def run_sql(store: Store, statement: str, **params: Any) -> None:
    """Tamper with the database behind the store's back."""
    with store.engine.begin() as connection:
        connection.execute(text(statement), params)


def payload_text(store: Store, seq: int) -> str:
    with store.engine.connect() as connection:
        value = connection.execute(
            text("SELECT CAST(payload AS TEXT) FROM audit_log WHERE seq = :seq"), {"seq": seq}
        ).scalar_one()
    return str(value)


def test_the_first_record_links_to_sixty_four_zeros(store: Store) -> None:
    """Record 1 has seq 1 and a prev_hash of 64 zeros."""
    record = store.audit.append("test.event", "s", {}, at=1.0)
    assert record.seq == 1
    assert record.prev_hash == "0" * 64


def test_each_hash_is_sha256_of_the_canonical_record(store: Store) -> None:
    """The documented rule, recomputed independently, gives each stored hash."""
    append_some(store, 3)
    previous = "0" * 64
    for record in store.audit.records():
        document = {
            "seq": record.seq,
            "at": record.at,
            "kind": record.kind,
            "subject": record.subject,
            "payload": record.payload,
            "prev_hash": previous,
        }
        text_form = json.dumps(document, sort_keys=True, separators=(",", ":"))
        assert record.prev_hash == previous
        assert record.hash == hashlib.sha256(text_form.encode()).hexdigest()
        previous = record.hash


def test_canonical_json_sorts_keys_drops_whitespace_and_writes_floats_as_repr() -> None:
    """Keys are sorted, there is no whitespace, and floats are written as repr writes them."""
    value = {"b": [1, 0.1, 1e16, (2, 3)], "a": {"z": None, "y": True}, "é": "ü"}
    assert audit.canonical_json(value) == (
        '{"a":{"y":true,"z":null},"b":[1,0.1,1e+16,[2,3]],"é":"ü"}'
    )


@pytest.mark.parametrize("value", [{"x": float("nan")}, {"x": float("inf")}, {1: "a"}, {"x": {1}}])
def test_canonical_json_refuses_what_has_no_single_json_form(value: Any) -> None:
    """NaN, infinity, non-string keys and non-JSON types are refused, not guessed at."""
    with pytest.raises((TypeError, ValueError)):
        audit.canonical_json(value)


def test_records_appended_in_a_transaction_are_seen_by_its_own_queries(store: Store) -> None:
    """Records are written at the next flush in one statement, not one by one.

    A query later in the same transaction sees them, and a rollback takes them all away.
    """
    with store.write() as session:
        for number in range(3):
            audit.append_in(session, kind="test.event", subject=f"s{number}", payload={}, at=1.0)
        seen = session.scalars(select(schema.AuditRow.seq).order_by(schema.AuditRow.seq)).all()
        assert seen == [1, 2, 3]
        audit.append_in(session, kind="test.event", subject="s3", payload={}, at=2.0)
    assert [record.seq for record in store.audit.records()] == [1, 2, 3, 4]

    def append_then_fail() -> None:
        with store.write() as session:
            audit.append_in(session, kind="test.event", subject="lost", payload={}, at=3.0)
            raise RuntimeError("the transaction fails after the append")

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert [record.subject for record in store.audit.records()][-1] == "s3"
    assert audit.verify(store).ok


def test_an_untouched_chain_verifies(store: Store) -> None:
    """Appends and audited repository writes make a chain that verifies."""
    append_some(store, 4)
    store.incidents.open_or_join(
        Fingerprint("fp"), alert_name="HighLatency", labels={}, annotations={}, at=200.0
    )
    report = audit.verify(store)
    assert report == audit.ChainReport(
        ok=True, records=5, first_broken_seq=None, reason="the chain of 5 records is intact"
    )


def test_an_empty_chain_verifies(store: Store) -> None:
    """A new store has an empty chain, and it verifies."""
    report = audit.verify(store)
    assert (report.ok, report.records) == (True, 0)


def test_an_edited_payload_is_named_by_its_seq(store: Store) -> None:
    """Changing a record's payload with raw SQL breaks the chain at that record."""
    append_some(store, 5)
    run_sql(store, "UPDATE audit_log SET payload = :payload WHERE seq = 3", payload='{"n":33}')
    report = audit.verify(store)
    assert (report.ok, report.first_broken_seq, report.records) == (False, 3, 5)
    assert "edited" in report.reason


def test_a_deleted_record_is_named_by_its_missing_seq(store: Store) -> None:
    """Deleting a record leaves a gap in seq, and verify names the missing seq."""
    append_some(store, 5)
    run_sql(store, "DELETE FROM audit_log WHERE seq = 2")
    report = audit.verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 2)
    assert "missing" in report.reason


def test_swapped_payloads_break_the_chain_at_the_first_of_them(store: Store) -> None:
    """Swapping two records' payloads is caught at the earlier of the two."""
    append_some(store, 6)
    second, fifth = payload_text(store, 2), payload_text(store, 5)
    run_sql(store, "UPDATE audit_log SET payload = :p WHERE seq = 2", p=fifth)
    run_sql(store, "UPDATE audit_log SET payload = :p WHERE seq = 5", p=second)
    report = audit.verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 2)


def test_reordered_records_break_the_chain_where_the_order_changes(store: Store) -> None:
    """Swapping two whole records' places breaks the link at the earlier place."""
    append_some(store, 5)
    run_sql(store, "UPDATE audit_log SET seq = -1 WHERE seq = 2")
    run_sql(store, "UPDATE audit_log SET seq = 2 WHERE seq = 4")
    run_sql(store, "UPDATE audit_log SET seq = 4 WHERE seq = -1")
    report = audit.verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 2)
    assert "does not link" in report.reason


def test_a_relinked_record_with_a_consistent_hash_is_still_caught(store: Store) -> None:
    """A record re-hashed over a forged prev_hash no longer links to its predecessor."""
    append_some(store, 4)
    (third,) = store.audit.records(after=2, limit=1)
    forged_prev = "f" * 64
    forged = audit.record_hash(
        seq=3,
        at=third.at,
        kind=third.kind,
        subject=third.subject,
        payload=third.payload,
        prev_hash=forged_prev,
    )
    run_sql(
        store,
        "UPDATE audit_log SET prev_hash = :p, hash = :h WHERE seq = 3",
        p=forged_prev,
        h=forged,
    )
    report = audit.verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 3)


def test_records_cut_off_the_end_are_caught_by_the_chain_head(store: Store) -> None:
    """Deleting the newest records, which no link shows, is caught by the chain head."""
    append_some(store, 5)
    run_sql(store, "DELETE FROM audit_log WHERE seq >= 4")
    report = audit.verify(store)
    assert (report.ok, report.first_broken_seq, report.records) == (False, 4, 3)


def test_a_payload_edited_into_invalid_json_is_a_broken_link(tmp_path: Path) -> None:
    """Verify reports an unreadable payload as broken instead of crashing (SQLite allows it)."""
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        append_some(store, 3)
        run_sql(store, "UPDATE audit_log SET payload = '{not json' WHERE seq = 2")
        report = audit.verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 2)


def test_concurrent_appends_from_eight_threads_make_one_valid_chain(store: Store) -> None:
    """Eight threads appending at once never fork the chain or skip a seq."""
    threads, per_thread = 8, 25
    start = threading.Barrier(threads, timeout=30)

    def appender(number: int) -> None:
        start.wait()
        for index in range(per_thread):
            store.audit.append("test.event", f"thread-{number}", {"i": index}, at=float(index))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(appender, number) for number in range(threads)]:
            future.result()
    report = audit.verify(store)
    assert (report.ok, report.records) == (True, threads * per_thread)
    assert [record.seq for record in store.audit.records()] == list(
        range(1, threads * per_thread + 1)
    )


def test_an_in_memory_store_is_safe_to_share_between_threads() -> None:
    """The in-memory store (one shared connection) serializes threads instead of mixing them."""
    with open_store("sqlite://") as store:

        def appender(number: int) -> None:
            for index in range(20):
                store.audit.append("test.event", f"thread-{number}", {"i": index}, at=1.0)
                audit.verify(store)

        with ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(appender, number) for number in range(4)]:
                future.result()
        report = audit.verify(store)
    assert (report.ok, report.records) == (True, 80)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
appends = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12),
        st.text(max_size=12),
        st.dictionaries(st.text(max_size=6), json_values, max_size=4),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(appends)
def test_any_sequence_of_appends_verifies(
    entries: list[tuple[str, str, dict[str, Any], float]],
) -> None:
    """Whatever kinds, subjects, payloads and times are appended, the chain verifies."""
    with open_store("sqlite://") as store:
        for kind, subject, payload, at in entries:
            store.audit.append(kind, subject, payload, at=at)
        report = audit.verify(store)
    assert (report.ok, report.records) == (True, len(entries))


@settings(max_examples=40, deadline=None)
@given(appends.filter(bool), st.data())
def test_editing_any_record_is_named_by_its_seq(
    entries: list[tuple[str, str, dict[str, Any], float]], data: st.DataObject
) -> None:
    """Wrapping any one record's payload in another object is caught at that record."""
    target = data.draw(st.integers(min_value=1, max_value=len(entries)))
    with open_store("sqlite://") as store:
        for kind, subject, payload, at in entries:
            store.audit.append(kind, subject, payload, at=at)
        tampered = '{"tampered":' + payload_text(store, target) + "}"
        run_sql(store, "UPDATE audit_log SET payload = :p WHERE seq = :s", p=tampered, s=target)
        report = audit.verify(store)
    assert (report.ok, report.first_broken_seq) == (False, target)
