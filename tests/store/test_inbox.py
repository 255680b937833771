"""The durable inbox: alerts a sender was told were taken, stored first, counted once."""

from __future__ import annotations

import math

import pytest

from selfheal.domain.model import Alert, AlertState, Fingerprint
from selfheal.store import AlertStateChange, Arrival, InboxFull, Store


def alert(name: str = "Slow", *, pod: str = "a", state: AlertState = AlertState.FIRING) -> Alert:
    return Alert(
        name=name,
        labels={"alertname": name, "pod": pod},
        annotations={"summary": "slow"},
        state=state,
        value=math.nan,
        active_at=100.0,
        fired_at=100.0,
        resolved_at=None if state == AlertState.FIRING else 200.0,
        source="alertmanager",
    )


def test_accepted_alerts_wait_in_arrival_order_and_read_back_whole(store: Store) -> None:
    """What is accepted is what the loop takes: same alert, NaN value included, in order."""
    accepted = store.inbox.accept(
        [alert(pod="a"), alert(pod="b")], source="alertmanager", at=1.0, max_pending=10
    )
    assert accepted == 2
    pending = store.inbox.pending(limit=10)
    assert [entry.alert.labels["pod"] for entry in pending] == ["a", "b"]
    assert math.isnan(pending[0].alert.value)
    assert pending[0].alert.state == AlertState.FIRING
    assert store.inbox.pending_count() == 2


def test_a_senders_retry_of_the_same_alerts_is_stored_once(store: Store) -> None:
    """Alertmanager retries a notification whole: the second copy adds nothing."""
    store.inbox.accept([alert(pod="a")], source="alertmanager", at=1.0, max_pending=10)
    again = store.inbox.accept(
        [alert(pod="a"), alert(pod="c")], source="alertmanager", at=2.0, max_pending=10
    )
    assert again == 1
    assert store.inbox.pending_count() == 2


def test_a_full_inbox_refuses_the_whole_request_and_stores_none_of_it(store: Store) -> None:
    """Past `max_pending` the request is refused with a retry delay; nothing is half-taken."""
    store.inbox.accept([alert(pod="a")], source="alertmanager", at=1.0, max_pending=2)
    with pytest.raises(InboxFull, match="retry later") as refused:
        store.inbox.accept(
            [alert(pod="b"), alert(pod="c")], source="alertmanager", at=2.0, max_pending=2
        )
    assert refused.value.delay >= 1
    assert store.inbox.pending_count() == 1


def test_consuming_writes_the_incidents_and_marks_the_alerts_in_one_go(store: Store) -> None:
    """The incidents and the processed marks commit together; nothing is taken twice."""
    store.inbox.accept(
        [alert(pod="a"), alert(pod="b")], source="alertmanager", at=1.0, max_pending=10
    )
    entries = store.inbox.pending(limit=10)
    arrivals = [
        Arrival(Fingerprint("fp-slow"), "Slow", entry.alert.labels, {}) for entry in entries
    ]
    results = store.inbox.consume(
        entries,
        arrivals=arrivals,
        states=[AlertStateChange("alert-a", "fp-slow", firing=True)],
        at=5.0,
    )
    assert [joined for _, joined in results] == [False, True]
    assert results[1][0].alert_count == 2
    assert store.inbox.pending(limit=10) == []
    assert store.inbox.firing_incident_keys() == {"fp-slow"}
    store.inbox.consume(
        [], arrivals=[], states=[AlertStateChange("alert-a", "fp-slow", firing=False)], at=6.0
    )
    assert store.inbox.firing_incident_keys() == set()


def test_a_consume_that_fails_leaves_every_alert_pending(store: Store) -> None:
    """A write that fails half-way rolls back whole: the alerts are still there to take."""
    store.inbox.accept([alert(pod="a")], source="alertmanager", at=1.0, max_pending=10)
    entries = store.inbox.pending(limit=10)
    broken = Arrival(Fingerprint("fp"), "Slow", {"bad": object()}, {})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        store.inbox.consume(entries, arrivals=[broken], states=[], at=5.0)
    assert len(store.inbox.pending(limit=10)) == 1
    assert store.incidents.list() == ()


def test_processed_alerts_are_pruned_after_a_while(store: Store) -> None:
    store.inbox.accept([alert(pod="a")], source="alertmanager", at=1.0, max_pending=10)
    store.inbox.consume(store.inbox.pending(limit=10), arrivals=[], states=[], at=10.0)
    assert store.inbox.prune(processed_before=5.0) == 0
    assert store.inbox.prune(processed_before=11.0) == 1
    # Once forgotten, the same alert is news again.
    assert store.inbox.accept([alert(pod="a")], source="alertmanager", at=12.0, max_pending=10)


def test_an_alert_told_twice_in_one_take_keeps_its_last_state(store: Store) -> None:
    """Firing then resolved in one batch (and a state already stored): the last word wins."""
    store.inbox.consume(
        [], arrivals=[], states=[AlertStateChange("alert-b", "fp-b", firing=True)], at=1.0
    )
    store.inbox.consume(
        [],
        arrivals=[],
        states=[
            AlertStateChange("alert-a", "fp-a", firing=True),
            AlertStateChange("alert-b", "fp-b", firing=False),
            AlertStateChange("alert-a", "fp-a", firing=False),
            AlertStateChange("alert-c", "fp-c", firing=True),
        ],
        at=2.0,
    )
    assert store.inbox.firing_incident_keys() == {"fp-c"}
