"""The outbox port's contract (durable queue, leases, retries, dead messages): every backend passes every
test here."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.outbox import OutboxMessage
from c360.graph.store import GraphStore
from store_contract import T

LEASE = timedelta(seconds=60)


def mail(mid: str, minutes: int = 0, **kw: Any) -> OutboxMessage:
    fields: dict[str, Any] = {"subject": "Your consent receipt", "kind": "consent_receipt", **kw}
    return OutboxMessage(
        mid, "email", "ann@example.com", f"Hello {mid}", created_at=T + timedelta(minutes=minutes), **fields
    )


def text(mid: str, minutes: int = 0) -> OutboxMessage:
    return OutboxMessage(
        mid, "sms", "+447700900123", "Case 7 is yours", "case_assigned", T + timedelta(minutes=minutes)
    )


def test_enqueue_is_idempotent_and_refuses_other_content_under_a_known_id(store: GraphStore) -> None:
    a, b = mail("a", case_id="K1"), text("b")
    assert store.enqueue([a, b]) == ["a", "b"]
    assert store.enqueue([a, mail("c")]) == ["c"]  # a producer's retry: a is queued once
    assert store.enqueue([a, a]) == []
    with pytest.raises(ConflictError):
        store.enqueue([mail("d"), replace(a, body="Other text")])
    assert store.outbox_message("d") is None  # nothing of a refused batch is written
    with pytest.raises(ConflictError):
        store.enqueue([mail("e"), replace(mail("e"), to="bob@example.com")])
    item = store.outbox_message("a")
    assert item is not None
    assert (item.message, item.status, item.attempts, item.next_attempt_at) == (a, "pending", 0, a.created_at)
    assert store.outbox_counts() == {"pending": 3, "sending": 0, "sent": 0, "dead": 0}


def test_claim_takes_due_messages_oldest_first_up_to_the_limit(store: GraphStore) -> None:
    later = mail("m0", 0, not_before=T + timedelta(hours=2))
    store.enqueue([mail("m3", 3), mail("m1", 1), later, mail("m2", 2), text("s1", 1)])
    now, lease = T + timedelta(minutes=10), timedelta(hours=3)
    first = store.claim("w1", now, lease, 2)
    assert [i.id for i in first] == ["m1", "s1"]  # due at the same time: id order
    assert all((i.status, i.attempts, i.lease_owner, i.lease_until) == ("sending", 1, "w1", now + lease) for i in first)
    assert [i.id for i in store.claim("w2", now, lease, 10)] == ["m2", "m3"]  # not what w1 holds, not m0
    assert store.claim("w3", now, lease, 10) == []
    assert [i.id for i in store.claim("w3", T + timedelta(hours=2), lease, 10)] == ["m0"]
    stored = store.outbox_message("m1")
    assert stored is not None and (stored.status, stored.lease_owner) == ("sending", "w1")


def test_claim_takes_only_the_channels_asked_for(store: GraphStore) -> None:
    store.enqueue([mail("m1"), text("s1")])
    assert [i.id for i in store.claim("w", T, LEASE, 10, channels=["sms"])] == ["s1"]
    assert store.claim("w", T, LEASE, 10, channels=[]) == []
    assert [i.id for i in store.claim("w", T, LEASE, 10)] == ["m1"]
    with pytest.raises(InvalidInputError):
        store.claim("w", T, LEASE, 10, channels=["pigeon"])


def test_an_expired_lease_is_taken_over_and_the_old_owner_can_no_longer_mark(store: GraphStore) -> None:
    store.enqueue([mail("m1")])
    assert [i.id for i in store.claim("a", T, LEASE, 10)] == ["m1"]
    assert store.claim("b", T + LEASE - timedelta(microseconds=1), LEASE, 10) == []  # a's lease still runs
    taken = store.claim("b", T + LEASE, LEASE, 10)  # a crashed: its lease ended
    assert [(i.id, i.attempts, i.lease_owner) for i in taken] == [("m1", 2, "b")]
    with pytest.raises(ConflictError):
        store.mark_sent("m1", "a", T + LEASE, "250 ok")
    with pytest.raises(ConflictError):
        store.mark_failed("m1", "a", T + LEASE, "timeout", T + 2 * LEASE)
    store.mark_sent("m1", "b", T + LEASE, "250 queued as X1")
    store.mark_sent("m1", "b", T + LEASE, "250 queued as X1")  # a repeated mark changes nothing
    with pytest.raises(ConflictError):
        store.mark_sent("m1", "a", T + LEASE, "250 ok")
    item = store.outbox_message("m1")
    assert item is not None
    assert (item.status, item.sent_at, item.provider_id, item.lease_owner) == (
        "sent",
        T + LEASE,
        "250 queued as X1",
        "b",
    )
    assert store.claim("c", T + timedelta(days=1), LEASE, 10) == []  # sent is never claimed again
    with pytest.raises(NotFoundError):
        store.mark_sent("nope", "b", T, "x")


def test_a_message_never_claimed_cannot_be_marked(store: GraphStore) -> None:
    store.enqueue([mail("m1")])
    with pytest.raises(ConflictError):
        store.mark_sent("m1", "a", T, "250 ok")
    assert store.outbox_counts()["pending"] == 1


def test_a_failure_retries_at_its_time_and_gives_up_as_dead_with_the_reason(store: GraphStore) -> None:
    store.enqueue([mail("m1")])
    store.claim("w", T, LEASE, 1)
    retry = T + timedelta(minutes=5)
    store.mark_failed("m1", "w", T, "connection refused", retry)
    item = store.outbox_message("m1")
    assert item is not None
    assert (item.status, item.next_attempt_at, item.last_error, item.lease_owner) == (
        "pending",
        retry,
        "connection refused",
        None,
    )
    assert store.claim("w", retry - timedelta(seconds=1), LEASE, 1) == []
    assert [i.attempts for i in store.claim("w", retry, LEASE, 1)] == [2]
    store.mark_failed("m1", "w", retry, "550 no such user " + "x" * 2000, None)
    dead = store.outbox_message("m1")
    assert dead is not None and dead.status == "dead" and dead.last_error is not None
    assert dead.last_error.startswith("550 no such user") and len(dead.last_error) == 1000
    assert store.claim("w", T + timedelta(days=30), LEASE, 10) == []
    assert store.outbox_counts() == {"pending": 0, "sending": 0, "sent": 0, "dead": 1}
    with pytest.raises(ConflictError):
        store.mark_failed("m1", "w", retry, "again", None)


def test_requeue_makes_dead_messages_pending_again_with_fresh_attempts(store: GraphStore) -> None:
    store.enqueue([mail("m1"), mail("m2")])
    store.claim("w", T, timedelta(days=1), 10)  # m2 stays leased to w throughout
    store.mark_failed("m1", "w", T, "550 mailbox unavailable", None)
    at = T + timedelta(hours=1)
    assert store.requeue(["m1", "m2"], at) == ["m1"]  # m2 is not dead: left alone
    assert store.requeue(["m1"], at) == []  # repeating changes nothing
    item = store.outbox_message("m1")
    assert item is not None
    assert (item.status, item.attempts, item.next_attempt_at, item.last_error) == (
        "pending",
        0,
        at,
        "550 mailbox unavailable",
    )
    with pytest.raises(NotFoundError):
        store.requeue(["m9"], at)
    assert [i.id for i in store.claim("w2", at, LEASE, 10)] == ["m1"]


def test_counts_and_pages_by_status(store: GraphStore) -> None:
    store.enqueue([mail(f"m{i}", i) for i in range(5)])
    store.claim("w", T + timedelta(minutes=1), LEASE, 2)  # m0, m1
    store.mark_sent("m0", "w", T, "ok")
    assert store.outbox_counts() == {"pending": 3, "sending": 1, "sent": 1, "dead": 0}
    first = store.outbox_messages("pending", limit=2)
    assert [i.id for i in first] == ["m2", "m3"]
    assert [i.id for i in store.outbox_messages("pending", after=first[-1].id, limit=2)] == ["m4"]
    assert [i.id for i in store.outbox_messages("sent")] == ["m0"]
    with pytest.raises(InvalidInputError):
        store.outbox_messages("lost")


def test_two_stores_on_one_database_claim_disjoint_messages(store: GraphStore) -> None:
    ids = [f"m{i:02}" for i in range(60)]
    store.enqueue([mail(i) for i in ids])
    other = type(store)(store.config)  # type: ignore[attr-defined]
    got: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def work(name: str, s: GraphStore) -> None:
        start.wait()
        while batch := s.claim(name, T, LEASE, 3):
            got[name].extend(i.id for i in batch)

    try:
        threads = [threading.Thread(target=work, args=("a", store)), threading.Thread(target=work, args=("b", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        other.close()
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == ids
    assert store.outbox_counts()["sending"] == 60


def test_reset_empties_the_outbox(store: GraphStore) -> None:
    store.enqueue([mail("m1")])
    store.reset(confirm=True)
    assert store.outbox_message("m1") is None
    assert store.enqueue([mail("m1")]) == ["m1"]
    assert [i.id for i in store.claim("w", T, LEASE, 1)] == ["m1"]


def test_bad_arguments_are_refused(store: GraphStore) -> None:
    with pytest.raises(InvalidInputError):
        store.enqueue(mail("m1"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.claim("w", T.replace(tzinfo=None), LEASE, 1)
    with pytest.raises(InvalidInputError):
        store.claim("w", T, timedelta(0), 1)
    with pytest.raises(InvalidInputError):
        store.claim("w", T, LEASE, 0)
    with pytest.raises(InvalidInputError):
        store.mark_failed("m1", "w", T, "", None)
    assert store.outbox_counts()["pending"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"to": "not an address"},
        {"to": "ann@example.com\r\nBcc: eve@example.com"},
        {"subject": "Hi\r\nBcc: eve@example.com"},
        {"subject": None},
        {"body": ""},
        {"body": "x" * 100_001},
        {"kind": "Case Assigned"},
        {"channel": "pigeon"},
        {"created_at": T.replace(tzinfo=None)},
        {"id": ""},
    ],
)
def test_a_bad_message_cannot_be_built(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        replace(mail("m1"), **change)


def test_an_sms_has_an_e164_number_no_subject_and_a_short_body() -> None:
    good = text("s1")
    for change in ({"to": "07700900123"}, {"subject": "Hi"}, {"body": "x" * 1601}):
        with pytest.raises(InvalidInputError):
            replace(good, **change)
