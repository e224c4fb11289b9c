"""The consent port's contract (append-only ledger, receipts chained per customer, events that follow
merges and splits): every backend passes every test here."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from c360.graph.consent import ConsentEvent, Notice, consent_state, effective
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import ChangeSet, Customer, Evidence, MergeEvent
from c360.graph.ports.consent import ConsentEntry
from c360.graph.receipts import Controller, SigningKeys, receipt_claims, receipt_hash, verify_chain
from c360.graph.store import GraphStore
from c360.resolution.config import SurvivorshipConfig
from c360.resolution.undo import split
from store_contract import PHONE, T, seed, write

NOTICE = Notice.of_text("privacy", "3", "en-GB", "We e-mail you offers.")
CONTROLLER = Controller("Example Retail Ltd", "DPO", "privacy@example.com")
KEYS = SigningKeys.generate()


def event(eid: str, record: str, minutes: int, status: str = "granted", **kw: Any) -> ConsentEvent:
    fields: dict[str, Any] = {
        "purpose": "marketing",
        "channel": "email",
        "actor_kind": "customer",
        "actor_id": "self",
        "source": "shop",
        "method": "web_form",
        "notice": NOTICE,
        "jurisdiction": "GB",
        **kw,
    }
    return ConsentEvent(eid, record, status=status, captured_at=T + timedelta(minutes=minutes), **fields)


def entry(store: GraphStore, ev: ConsentEvent, chain: str, previous: str | None = None) -> ConsentEntry:
    """``ev`` with a real receipt chained to ``previous`` (by default the chain's last stored receipt)."""
    claims = receipt_claims(
        ev,
        controller=CONTROLLER,
        principal_id=chain,
        policy_url="https://example.com/privacy",
        pii_categories=["contact details"],
        receipt_id=f"rcpt-{ev.id}",
        issued_at=ev.captured_at + timedelta(seconds=1),
        previous=previous if previous is not None else store.last_receipt(chain),
    )
    return ConsentEntry(ev, KEYS.sign(claims), chain)


def append(store: GraphStore, chain: str, *events: ConsentEvent) -> list[ConsentEntry]:
    """Append ``events`` one call each, each receipt chained to the one before."""
    out = []
    for ev in events:
        e = entry(store, ev, chain)
        assert store.append_consent([e]) == [ev.id]
        out.append(e)
    return out


def assert_chain(store: GraphStore, chain: str, expected: list[ConsentEntry]) -> None:
    """The stored chain is ``expected`` in order, verifies whole, and ends at the last receipt."""
    receipts = [e.receipt for e in expected]
    assert store.consent_chain(chain) == [(e.event.id, e.receipt) for e in expected]
    assert store.last_receipt(chain) == receipts[-1]
    report = verify_chain([r for _, r in store.consent_chain(chain)], KEYS.jwks(), head=receipt_hash(receipts[-1]))
    assert report.ok, report


def test_events_and_receipts_are_read_back_in_append_order(store: GraphStore) -> None:
    seed(store)
    # Appended out of captured order: the store keeps append order, not captured order or id order.
    late = event("ev-9", "crm|1", 30, "withdrawn")
    early = event("ev-1", "crm|1", 10)
    sms = event("ev-5", "crm|1", 20, channel="sms", expires_at=T + timedelta(days=30))
    first = append(store, "C1", late, early)
    batch = [entry(store, sms, "C1")]
    batch.append(entry(store, event("ev-0", "crm|1", 40, "denied", purpose="analytics"), "C1", batch[0].receipt))
    assert store.append_consent(batch) == ["ev-5", "ev-0"]
    entries = [*first, *batch]
    assert store.consent_events("C1") == [e.event for e in entries]
    assert store.consent_events("C1", at=T + timedelta(minutes=20)) == [early, sms]
    assert_chain(store, "C1", entries)
    assert store.get_consent("ev-5") == batch[0]
    stored = store.get_consent("ev-5")
    assert stored is not None and stored.event.expires_at == T + timedelta(days=30)
    assert store.get_consent("nope") is None
    assert store.consent_chain("C9") == [] and store.last_receipt("C9") is None
    assert store.consent_events("C2") == []
    assert store.consent_chain_ids() == ["C1"]
    states = effective(store.consent_events("C1"), T + timedelta(hours=1))
    assert consent_state(states, "marketing", "email").status == "withdrawn"
    assert consent_state(states, "marketing", "sms").status == "granted"
    store.reset(confirm=True)  # reset empties the ledger too
    assert store.get_consent("ev-5") is None and store.consent_chain_ids() == [] and store.last_receipt("C1") is None
    seed(store)
    again = append(store, "C1", early)
    assert store.consent_events("C1") == [early]
    assert_chain(store, "C1", again)


def test_a_customers_events_of_one_purpose_and_channel(store: GraphStore) -> None:
    seed(store)
    email = event("ev-1", "crm|1", 1)
    sms = event("ev-2", "crm|1", 2, channel="sms")
    later = event("ev-3", "crm|1", 3, "withdrawn")
    analytics = event("ev-4", "crm|1", 4, purpose="analytics")
    append(store, "C1", email, sms, later, analytics)
    assert store.consent_events("C1", topic=("marketing", "email")) == [email, later]
    assert store.consent_events("C1", topic=("marketing", "sms")) == [sms]
    assert store.consent_events("C1", topic=("analytics", "email")) == [analytics]
    assert store.consent_events("C1", topic=("analytics", "sms")) == []
    with pytest.raises(InvalidInputError, match="topic"):
        store.consent_events("C1", topic=("marketing",))  # type: ignore[arg-type]


def test_a_replay_is_skipped_and_changed_content_is_a_conflict(store: GraphStore) -> None:
    seed(store)
    kept = append(store, "C1", event("ev-1", "crm|1", 1), event("ev-2", "crm|1", 2, "withdrawn"))
    assert store.append_consent(kept) == []  # the same entries again: nothing appended
    assert store.append_consent([kept[1], kept[1]]) == []
    assert_chain(store, "C1", kept)
    ev1 = kept[0].event
    changed = [
        ConsentEntry(event("ev-1", "crm|1", 1, "denied"), kept[0].receipt, "C1"),  # another status
        ConsentEntry(ev1, kept[1].receipt, "C1"),  # another receipt
        ConsentEntry(ev1, kept[0].receipt, "C2"),  # another chain
    ]
    for e in changed:
        with pytest.raises(ConflictError):
            store.append_consent([e])
    # A batch with one conflicting entry writes none of the others.
    new = entry(store, event("ev-3", "crm|1", 3), "C1")
    with pytest.raises(ConflictError):
        store.append_consent([new, changed[0]])
    with pytest.raises(ConflictError):  # the same id twice in one batch with different content
        store.append_consent([new, ConsentEntry(new.event, kept[0].receipt, "C1")])
    assert store.get_consent("ev-3") is None
    assert store.consent_events("C1") == [e.event for e in kept]
    assert_chain(store, "C1", kept)


def test_consent_hangs_off_a_stored_record_and_a_bad_batch_writes_nothing(store: GraphStore) -> None:
    seed(store)
    good = entry(store, event("ev-1", "crm|1", 1), "C1")
    bad = entry(store, event("ev-2", "crm|404", 2), "C1", good.receipt)
    with pytest.raises(NotFoundError, match=r"crm\|404"):
        store.append_consent([good, bad])
    assert store.get_consent("ev-1") is None and store.last_receipt("C1") is None
    assert store.consent_events("C1") == [] and store.consent_chain_ids() == []
    assert store.append_consent([good]) == ["ev-1"]
    assert_chain(store, "C1", [good])


def test_consent_follows_a_merge_and_a_split(store: GraphStore) -> None:
    seed(store)
    # C1's record grants marketing e-mail; C2's withdraws it later and grants SMS until an expiry.
    grant = event("ev-a1", "crm|1", 10)
    withdraw = event("ev-b1", "crm|2", 20, "withdrawn")
    sms = event("ev-b2", "crm|2", 25, channel="sms", expires_at=T + timedelta(hours=1))
    push = event("ev-a2", "crm|1", 30, channel="push")
    c1 = append(store, "C1", grant)
    c2 = append(store, "C2", withdraw, sms)
    c1 += append(store, "C1", push)
    now = T + timedelta(minutes=40)
    before = effective(store.consent_events("C1"), now)
    assert consent_state(before, "marketing", "email").status == "granted"
    assert consent_state(before, "marketing", "sms").status == "none"

    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)), ("crm|2",))]))
    union = [grant, withdraw, sms, push]  # append order across both records
    assert store.consent_events("C1") == union
    assert store.consent_events("C2") == union  # a merged-away id reads its survivor's
    merged = effective(store.consent_events("C1"), now)
    assert consent_state(merged, "marketing", "email").status == "withdrawn"  # the later withdrawal wins
    assert consent_state(merged, "marketing", "sms").status == "granted"
    assert consent_state(merged, "marketing", "push").status == "granted"
    later = effective(store.consent_events("C2"), T + timedelta(hours=2))
    assert consent_state(later, "marketing", "sms").status == "expired"  # an expired grant counts as none
    # Chains are per customer at capture: the merge moves no receipt, and both chains still verify.
    assert_chain(store, "C1", c1)
    assert_chain(store, "C2", c2)
    assert store.consent_chain_ids() == ["C1", "C2"]
    # After the merge a new event of crm|2 extends the chain it is given; it reads under the survivor.
    regrant = event("ev-b3", "crm|2", 35)
    c1 += append(store, "C1", regrant)
    assert store.consent_events("C1") == [*union, regrant]
    assert consent_state(effective(store.consent_events("C1"), now), "marketing", "email").status == "granted"
    assert_chain(store, "C1", c1)

    # The steward's split (c360 customers split): crm|2 leaves C1 for a new customer, with its events.
    done = split(
        store,
        "C1",
        ["crm|2"],
        by="ann",
        reason="two people",
        now=T + timedelta(hours=3),
        new_id=lambda: "C4",
        survivorship=SurvivorshipConfig(),
    )
    assert (done.source, done.new, done.records) == ("C1", "C4", ("crm|2",))
    assert store.consent_events("C1") == [grant, push]
    assert store.consent_events("C4") == [withdraw, sms, regrant]
    assert store.consent_events("C2") == [grant, push]  # C2 still redirects to C1, which kept crm|1
    kept = effective(store.consent_events("C1"), now)
    assert consent_state(kept, "marketing", "email").status == "granted"
    assert consent_state(kept, "marketing", "sms").status == "none"
    moved = effective(store.consent_events("C4"), now)
    assert consent_state(moved, "marketing", "email").status == "granted"
    assert consent_state(moved, "marketing", "sms").status == "granted"
    assert_chain(store, "C1", c1)


def test_writers_that_hold_the_write_lock_extend_their_chains_in_turn(store: GraphStore) -> None:
    seed(store)

    def writer(n: int) -> None:
        for i in range(8):
            with store.exclusive():  # from reading the chain's last receipt to appending the next
                store.append_consent([entry(store, event(f"ev-{n}-{i}", f"crm|{n}", i), f"C{n}")])

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in (1, 2, 3):
        chain = store.consent_chain(f"C{n}")
        assert [eid for eid, _ in chain] == [f"ev-{n}-{i}" for i in range(8)]
        assert verify_chain([r for _, r in chain], KEYS.jwks(), head=receipt_hash(chain[-1][1])).ok
        assert [e.id for e in store.consent_events(f"C{n}")] == [eid for eid, _ in chain]


def test_consent_arguments_are_checked_before_the_store_is_asked(store: GraphStore) -> None:
    seed(store)
    ok = entry(store, event("ev-1", "crm|1", 1), "C1")
    for bad in (
        ConsentEntry(ok.event, "not a receipt", "C1"),
        ConsentEntry(ok.event, ok.receipt, " "),
        ConsentEntry(ok.event, ok.receipt, 7),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError):
            store.append_consent([bad])
    with pytest.raises(InvalidInputError):
        store.append_consent(ok)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.append_consent([ok.event])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        store.consent_events("C1", at=T.replace(tzinfo=None))
    with pytest.raises(NotFoundError):
        store.consent_events("C404")
    assert store.append_consent([]) == []
    assert store.consent_chain_ids() == []


def test_many_customers_events_in_one_call(store: GraphStore) -> None:
    seed(store)
    grant = event("ev-1", "crm|1", 1)
    sms = event("ev-2", "crm|1", 5, channel="sms")
    withdraw = event("ev-3", "crm|2", 10, "withdrawn")
    append(store, "C1", grant, sms)
    append(store, "C2", withdraw)
    got = store.consent_events_of(["C2", "C3", "C404", "C1"])
    assert list(got) == ["C2", "C3", "C1"]  # the order of request; unknown ids absent
    assert got == {"C2": [withdraw], "C3": [], "C1": [grant, sms]}
    assert store.consent_events_of(["C1", "C2"], at=T + timedelta(minutes=4)) == {"C1": [grant], "C2": []}

    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)), ("crm|2",))]))
    merged = store.consent_events_of(["C2", "C1"])
    assert merged == {"C2": [grant, sms, withdraw], "C1": [grant, sms, withdraw]}  # both read the survivor's
    for cid in ("C1", "C2", "C3"):  # the bulk read agrees with the per-customer one
        assert store.consent_events_of([cid], at=T + timedelta(minutes=7))[cid] == store.consent_events(
            cid, at=T + timedelta(minutes=7)
        )


def test_a_bulk_read_over_more_customers_than_one_query_chunk(store: GraphStore) -> None:
    n = 950  # the embedded backend reads 900 ids per query
    ids = [f"K{i:04d}" for i in range(n)]
    store.apply(ChangeSet(new_customers=[Customer(cid, T) for cid in ids], records=[write(cid, cid) for cid in ids]))
    events = {
        cid: event(f"ev-{cid}", f"crm|{cid}", i % 50, "granted" if i % 3 else "denied") for i, cid in enumerate(ids)
    }
    for start in range(0, n, 500):
        part = ids[start : start + 500]
        store.append_consent([entry(store, events[cid], cid) for cid in part])
    got = store.consent_events_of([*ids, "nobody"])
    assert len(got) == n and all(got[cid] == [events[cid]] for cid in ids)
    with pytest.raises(InvalidInputError, match="at most 1000"):
        store.consent_events_of([f"X{i}" for i in range(1001)])
    with pytest.raises(InvalidInputError):
        store.consent_events_of("K0001")
    with pytest.raises(InvalidInputError):
        store.consent_events_of(["K0001"], at=T.replace(tzinfo=None))
    assert store.consent_events_of([]) == {}
