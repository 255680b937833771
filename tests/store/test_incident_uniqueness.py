import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import exc, text

from selfheal.domain.model import Fingerprint, Incident, IncidentState
from selfheal.store import Store, audit


def open_at_once(store: Store, fingerprints: list[str]) -> list[tuple[Incident, bool]]:
    """Open or join one incident per entry, all threads released at the same moment."""
    start = threading.Barrier(len(fingerprints), timeout=30)

    def opener(fingerprint: str) -> tuple[Incident, bool]:
        start.wait()
        return store.incidents.open_or_join(
            Fingerprint(fingerprint),
            alert_name="HighLatency",
            labels={"service": fingerprint},
            annotations={},
            at=1000.0,
        )

    with ThreadPoolExecutor(max_workers=len(fingerprints)) as pool:
        return [future.result() for future in [pool.submit(opener, f) for f in fingerprints]]


def test_two_threads_opening_one_fingerprint_make_one_incident_with_two_alerts(
    store: Store,
) -> None:
    """Two simultaneous alerts with one fingerprint: one opens, the other joins."""
    results = open_at_once(store, ["fp-checkout", "fp-checkout"])
    assert sorted(joined for _, joined in results) == [False, True]
    (incident,) = store.incidents.list()
    assert incident.alert_count == 2
    assert {opened.id for opened, _ in results} == {incident.id}
    assert audit.verify(store).ok


def test_eight_threads_opening_one_fingerprint_count_eight_alerts(store: Store) -> None:
    """However many alerts race, one incident counts them all."""
    results = open_at_once(store, ["fp-cart"] * 8)
    assert sum(not joined for _, joined in results) == 1
    (incident,) = store.incidents.list()
    assert incident.alert_count == 8
    assert [record.kind for record in store.audit.records()].count("incident.joined") == 7


def test_different_fingerprints_opened_at_once_make_separate_incidents(store: Store) -> None:
    """Concurrent alerts about different things each open their own incident."""
    results = open_at_once(store, [f"fp-{number}" for number in range(6)])
    assert not any(joined for _, joined in results)
    assert len(store.incidents.list(open_only=True)) == 6


def test_the_unique_index_refuses_a_second_open_incident_written_behind_the_store(
    store: Store,
) -> None:
    """Even a raw INSERT cannot add a second open incident for a fingerprint."""
    store.incidents.open_or_join(
        Fingerprint("fp-db"), alert_name="A", labels={}, annotations={}, at=1.0
    )
    insert = text(
        "INSERT INTO incidents (id, fingerprint, alert_name, labels, annotations, state,"
        " opened_at, onset_at, updated_at, alert_count, last_alert_at)"
        " VALUES (:id, 'fp-db', 'A', '{}', '{}', :state, 1, 1, 1, 1, 1)"
    )
    with pytest.raises(exc.IntegrityError), store.engine.begin() as connection:
        connection.execute(insert, {"id": "intruder", "state": "remediating"})
    with store.engine.begin() as connection:
        connection.execute(insert, {"id": "old-and-resolved", "state": "resolved"})
    assert len(store.incidents.list()) == 2


def test_a_resolved_incident_makes_way_for_a_new_one(store: Store) -> None:
    """After resolution, the same fingerprint opens a new incident with a new id."""
    fingerprint = Fingerprint("fp-again")
    first, _ = store.incidents.open_or_join(
        fingerprint, alert_name="A", labels={}, annotations={}, at=1.0
    )
    store.incidents.set_state(first.id, IncidentState.RESOLVED, at=2.0)
    assert store.incidents.open_for(fingerprint) is None
    second, joined = store.incidents.open_or_join(
        fingerprint, alert_name="A", labels={}, annotations={}, at=3.0
    )
    assert not joined
    assert second.id != first.id
    assert (second.alert_count, store.incidents.open_for(fingerprint)) == (1, second)
    store.incidents.set_state(second.id, IncidentState.RESOLVED, at=4.0)
    assert len(store.incidents.list(state=IncidentState.RESOLVED)) == 2


def test_of_eight_threads_claiming_one_incident_for_deciding_exactly_one_wins(
    store: Store,
) -> None:
    """Replicas deciding one incident at once: one claim moves it, the others get None."""
    ((incident, _),) = open_at_once(store, ["fp-claim"])
    start = threading.Barrier(8, timeout=30)

    def claimer(_: int) -> Incident | None:
        start.wait()
        return store.incidents.claim(
            incident.id,
            IncidentState.DECIDING,
            at=1001.0,
            reason="evaluating policy",
            allowed_from={IncidentState.OPEN},
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(claimer, range(8)))
    winners = [claim for claim in claims if claim is not None]
    assert len(winners) == 1
    assert winners[0].state is IncidentState.DECIDING
    moves = list(store.audit.records(kind="incident.state"))
    assert len(moves) == 1
