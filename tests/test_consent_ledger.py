"""Recording consent: signed into the customer's chain, replay-safe, one question for contact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from c360.graph.consent import ConsentEvent, Notice
from c360.graph.consent_ledger import ReceiptIssuer, contact_decision, record_consent, verify_ledger
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.errors import ConflictError, NotFoundError
from c360.graph.models import SourceRecord
from c360.graph.receipts import Controller, SigningKeys, verify
from c360.resolution.linker import Linker

T = datetime(2026, 11, 1, 9, tzinfo=UTC)
NOTICE = Notice.of_text("privacy", "3", "en", "We write to you about offers.")


def _event(eid: str, record: str, status: str, at: datetime, channel: str = "email") -> ConsentEvent:
    return ConsentEvent(
        eid, record, "marketing", channel, status, at, "customer", "self", "web", "web_form", NOTICE, "DE"
    )


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(EmbeddedConfig(path=tmp_path / "g.db"))
    Linker(s).ingest(
        [
            SourceRecord("crm", "1", T, first_name="Ann", last_name="Lee", email="ann@example.com"),
            SourceRecord("web", "9", T, first_name="Ann", last_name="Lee", email="ann@example.com"),
            SourceRecord("crm", "2", T, first_name="Bo", last_name="Ng", email="bo@example.com"),
        ]
    )
    return s


def test_each_event_extends_its_customers_chain_and_a_replay_keeps_its_receipt(store: EmbeddedStore) -> None:
    issuer = ReceiptIssuer(SigningKeys.generate(), Controller("Shop", "DPO", "dpo@shop.example"), "https://x/p")
    first = record_consent(store, issuer, [_event("e1", "crm|1", "granted", T)], now=T)
    second = record_consent(
        store,
        issuer,
        [_event("e2", "web|9", "withdrawn", T + timedelta(days=1)), _event("e3", "crm|2", "granted", T)],
        now=T + timedelta(days=1),
    )
    ann = first[0].chain_id
    assert second[0].chain_id == ann != second[1].chain_id  # one chain per customer, two records of Ann
    assert verify(second[0].receipt, issuer.keys.jwks())["prev"] is not None
    reports = verify_ledger(store, issuer.keys.jwks())
    assert {c: r.ok for c, r in reports.items()} == {ann: True, second[1].chain_id: True}
    assert [e for e, _ in store.consent_chain(ann)] == ["e1", "e2"]

    assert record_consent(store, issuer, [_event("e1", "crm|1", "granted", T)], now=T) == []  # a replay
    assert store.get_consent("e1") == first[0]
    with pytest.raises(ConflictError):
        record_consent(store, issuer, [_event("e1", "crm|1", "denied", T)], now=T)
    with pytest.raises(NotFoundError):
        record_consent(store, issuer, [_event("e9", "crm|404", "granted", T)], now=T)
    assert store.get_consent("e9") is None

    # The later withdrawal on Ann's web record beats the grant on her CRM record.
    no = contact_decision(store, ann, "email", "marketing", T + timedelta(days=2))
    assert not no.allowed and no.event_id == "e2"
    yes = contact_decision(store, second[1].chain_id, "email", "marketing", T + timedelta(days=2))
    assert yes.allowed and yes.event_id == "e3"
    store.close()
