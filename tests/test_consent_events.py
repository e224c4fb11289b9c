"""``consent_change`` events (issue 15, point 4): through the pipeline into the consent ledger and the timeline.

Every path that takes events (partner HTTP, the Faust worker, the in-process runner) calls
:meth:`Pipeline.process`, so the pipeline is tested here, and the partner route once end to end.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
from c360.graph import consent as rules
from c360.graph.consent_ledger import ReceiptIssuer, contact_decision, verify_ledger
from c360.graph.errors import StoreUnavailableError
from c360.graph.receipts import Controller, SigningKeys, verify
from c360.graph.store import GraphStore
from c360.resolution.linker import Linker
from c360.streams import pipeline as pipeline_module
from c360.streams.config import EVENT_TYPES, StreamsConfig
from c360.streams.events import JOURNEY_TYPES, ConsentActor, ConsentChange, json_schemas
from c360.streams.pipeline import Pipeline
from fastapi.testclient import TestClient
from payloads import NOTICE, consent_event
from test_cli import c360
from test_pipeline import profile

LATER = datetime(2026, 6, 1, tzinfo=UTC)  # after every capture below


def consent(eid: str, key: str, status: str, day: int, *, source: str = "crm", **fields: Any) -> dict[str, Any]:
    return consent_event(eid, key, f"2026-05-{day:02d}T09:30:00+02:00", status, source=source, **fields)


@pytest.fixture(scope="module")
def issuer() -> ReceiptIssuer:
    return ReceiptIssuer(SigningKeys.generate(), Controller("Shop", "DPO", "dpo@shop.example"), "https://x/p")


def pipeline_of(store: GraphStore, issuer: ReceiptIssuer, **kwargs: Any) -> Pipeline:
    return Pipeline(store, Linker(store), issuer=issuer, **kwargs)


def customer_of(store: GraphStore, uid: str) -> str:
    return {f"{s}|{k}": c for s, k, c in store.iter_links()}[uid]


def test_a_grant_then_a_withdrawal_follow_in_the_ledger_the_decision_and_the_timeline(
    store: GraphStore, issuer: ReceiptIssuer
) -> None:
    pipeline = pipeline_of(store, issuer)
    # The record and its consent in one batch: the record is stored by the time consent is recorded.
    out = pipeline.process([profile("p1", "1", 0, first_name="Ann"), consent("c1", "1", "granted", 2)])
    assert out.accepted == ["crm|p1", "crm|c1"] and not out.rejected
    cid = customer_of(store, "crm|1")
    yes = contact_decision(store, cid, "email", "marketing", LATER)
    assert yes.allowed and yes.event_id == "crm|c1"

    out = pipeline.process([consent("c2", "1", "withdrawn", 3, actor={"kind": "agent", "id": "agent-7"})])
    assert out.accepted == ["crm|c2"]
    events = store.consent_events(cid)
    assert [(e.id, e.status, e.actor_kind, e.actor_id) for e in events] == [
        ("crm|c1", "granted", "customer", "self"),
        ("crm|c2", "withdrawn", "agent", "agent-7"),
    ]
    first = events[0]
    assert first.record_uid == "crm|1" and first.source == "crm" and first.method == "web_form"
    assert first.captured_at == datetime(2026, 5, 2, 7, 30, tzinfo=UTC)
    assert first.notice == rules.Notice("privacy", "3", "en-GB", "ab" * 32) and first.jurisdiction == "DE"
    no = contact_decision(store, cid, "email", "marketing", LATER)
    assert not no.allowed and no.status == "withdrawn" and no.event_id == "crm|c2"
    # Between the two, the grant held.
    assert contact_decision(store, cid, "email", "marketing", datetime(2026, 5, 2, 12, tzinfo=UTC)).allowed

    reports = verify_ledger(store, issuer.keys.jwks())
    assert {c: r.ok for c, r in reports.items()} == {cid: True}
    entry = store.get_consent("crm|c2")
    assert entry is not None and verify(entry.receipt, issuer.keys.jwks())["prev"] is not None

    # On the timeline like the other journey events, newest first, with what was sent.
    page = store.timeline(cid, types=["consent_change"])
    assert [e.id for e in page.events] == ["crm|c2", "crm|c1"]
    assert page.events[0].type == "consent_change"
    assert json.loads(page.events[0].data)["status"] == "withdrawn"
    assert "crm|c1" in [e.id for e in store.timeline(cid).events]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"purpose": "surveys"}, "unknown purpose 'surveys'"),
        ({"purpose": "Not A Token"}, "purpose"),
        ({"channel": "fax"}, "channel"),
        ({"status": "maybe"}, "status"),
        ({"occurred_at": "2026-05-02T09:30:00"}, "time zone"),
        ({"expires_at": "2027-05-02T09:30:00"}, "expires_at: Value error, must be an RFC 3339"),
        ({"expires_at": "2026-05-01T09:30:00Z"}, "is not after occurred_at"),
        ({"status": "withdrawn", "expires_at": "2027-05-01T09:30:00Z"}, "only a grant can expire"),
        ({"customer_key": "404"}, "no stored record crm|404"),
        ({"notice": {**NOTICE, "text_sha256": "not a hash"}}, "text_sha256"),
        ({"actor": {"kind": "robot", "id": "r2"}}, "actor.kind"),
        ({"method": "telepathy"}, "method"),
        ({"jurisdiction": "Germany"}, "jurisdiction"),
        ({"event_id": "x" * 136}, "event_id"),
    ],
)
def test_a_bad_consent_event_is_a_dead_letter_with_its_reason_and_nothing_is_recorded(
    store: GraphStore, issuer: ReceiptIssuer, change: dict[str, Any], says: str
) -> None:
    pipeline = pipeline_of(store, issuer)
    pipeline.process([profile("p1", "1", 0, first_name="Ann")])
    bad = consent("c1", "1", "granted", 2) | change
    out = pipeline.process([consent("ok", "1", "granted", 1), bad])
    assert out.accepted == ["crm|ok"]
    assert [r.index for r in out.rejected] == [1]
    assert says in out.rejected[0].reason, out.rejected[0].reason
    letters = store.dead_letters()
    assert [d.id for d in letters] == [out.rejected[0].dead_letter] and says in letters[0].reason
    assert json.loads(letters[0].payload) == bad
    bad_id = f"crm|{bad['event_id']}"
    assert store.get_consent(bad_id) is None and store.seen_events([bad_id]) == set()
    cid = customer_of(store, "crm|1")
    assert [e.id for e in store.consent_events(cid)] == ["crm|ok"]
    assert [e.id for e in store.timeline(cid, types=["consent_change"]).events] == ["crm|ok"]


def test_configured_purposes_decide_and_a_pipeline_without_an_issuer_records_no_consent(
    store: GraphStore, issuer: ReceiptIssuer
) -> None:
    pipeline_of(store, issuer).process([profile("p1", "1", 0, first_name="Ann")])
    surveys = consent("c1", "1", "granted", 2, purpose="surveys")
    out = pipeline_of(store, issuer, purposes=["marketing", "surveys"]).process([surveys])
    assert out.accepted == ["crm|c1"]
    assert store.consent_events(customer_of(store, "crm|1"))[0].purpose == "surveys"
    out = pipeline_of(store, issuer, purposes=["surveys"]).process([consent("c2", "1", "granted", 2)])
    assert not out.accepted and "unknown purpose 'marketing': expected one of surveys" in out.rejected[0].reason
    out = Pipeline(store, Linker(store)).process([consent("c3", "1", "granted", 2)])
    assert not out.accepted and "no receipt issuer" in out.rejected[0].reason
    assert store.get_consent("crm|c3") is None


def test_a_replayed_consent_event_changes_nothing(store: GraphStore, issuer: ReceiptIssuer) -> None:
    pipeline = pipeline_of(store, issuer)
    batch = [profile("p1", "1", 0, first_name="Ann"), consent("c1", "1", "granted", 2)]
    pipeline.process(batch)
    cid = customer_of(store, "crm|1")
    entry = store.get_consent("crm|c1")
    again = pipeline.process(batch)
    assert again.accepted == [] and again.duplicates == 2 and not again.rejected
    # The same id with other content: the first occurrence wins, as for every event.
    other = pipeline.process([consent("c1", "1", "withdrawn", 4)])
    assert other.accepted == [] and other.duplicates == 1 and not other.rejected
    # A repeat within one batch is a duplicate too.
    twice = pipeline.process([consent("c2", "1", "denied", 3), consent("c2", "1", "denied", 3)])
    assert twice.accepted == ["crm|c2"] and twice.duplicates == 1
    assert store.get_consent("crm|c1") == entry
    assert [e.id for e in store.consent_events(cid)] == ["crm|c1", "crm|c2"]
    assert [e for e, _ in store.consent_chain(cid)] == ["crm|c1", "crm|c2"]
    assert [e.id for e in store.timeline(cid, types=["consent_change"]).events] == ["crm|c2", "crm|c1"]
    assert all(r.ok for r in verify_ledger(store, issuer.keys.jwks()).values())


def test_a_redelivery_after_a_failure_between_the_batch_and_the_ledger_records_the_consent(
    store: GraphStore, issuer: ReceiptIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = pipeline_of(store, issuer)
    batch = [profile("p1", "1", 0, first_name="Ann"), consent("c1", "1", "granted", 2)]
    real = pipeline_module.record_consent

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("the store went away")

    monkeypatch.setattr(pipeline_module, "record_consent", down)
    with pytest.raises(StoreUnavailableError):
        pipeline.process(batch)  # the batch's events are applied, its consent is not: not acknowledged
    assert store.seen_events(["crm|c1"]) == {"crm|c1"} and store.get_consent("crm|c1") is None
    monkeypatch.setattr(pipeline_module, "record_consent", real)
    again = pipeline.process(batch)  # the redelivery
    assert again.duplicates == 2 and not again.rejected
    cid = customer_of(store, "crm|1")
    assert [e.id for e in store.consent_events(cid)] == ["crm|c1"]
    assert contact_decision(store, cid, "email", "marketing", LATER).allowed
    pipeline.process(batch)
    assert len(store.consent_chain(cid)) == 1


def test_the_schema_names_the_ledgers_values_and_every_path_knows_the_type() -> None:
    fields = ConsentChange.model_fields
    assert set(get_args(fields["channel"].annotation)) == set(rules.CHANNELS)
    assert set(get_args(fields["status"].annotation)) == set(rules.STATUSES)
    assert set(get_args(fields["method"].annotation)) == set(rules.METHODS)
    assert set(get_args(ConsentActor.model_fields["kind"].annotation)) == set(rules.ACTORS)
    assert "consent_change" in EVENT_TYPES and "consent_change" in JOURNEY_TYPES
    assert "consent_change.v1.json" in json_schemas()
    config = StreamsConfig(brokers="kafka://127.0.0.1:9")
    assert config.topic("consent_change") == "c360.events.consent_change"


def test_the_faust_app_has_a_consent_change_agent(store: GraphStore, issuer: ReceiptIssuer) -> None:
    from c360.streams.app import build_app

    app = build_app(StreamsConfig(brokers="kafka://127.0.0.1:9"), lambda: pipeline_of(store, issuer))
    assert "c360.agent.consent_change" in app.agents


@contextlib.contextmanager
def served(home: Path) -> Iterator[tuple[TestClient, GraphStore, str]]:
    from c360.deps import build_app, build_store
    from c360.settings import load_settings

    key = c360("partner", "add", "acme", cwd=home).stdout.strip()  # acme may send as acme only
    with contextlib.chdir(home):
        settings = load_settings()
        store = build_store(settings)
        try:
            with TestClient(build_app(settings, store), raise_server_exceptions=False) as client:
                yield client, store, key
        finally:
            store.close()


def test_a_partner_posts_consent_and_the_served_jwks_verifies_its_receipts(tmp_path: Path) -> None:
    with served(tmp_path) as (client, store, key):
        auth = {"Authorization": f"Bearer {key}"}
        batch = [
            {**profile("p1", "1", 0, first_name="Ann"), "source": "acme"},
            consent("c1", "1", "granted", 2, source="acme"),
            consent("c2", "2", "granted", 2, source="acme"),  # no such record
            consent("c3", "1", "granted", 2, source="acme", purpose="surveys"),  # not configured
        ]
        answer = client.post("/v1/events", json=batch, headers=auth)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["event_ids"] == ["acme|p1", "acme|c1"]
        assert [(r["index"], r["event_id"]) for r in body["rejected"]] == [(2, "c2"), (3, "c3")]
        assert "no stored record acme|2" in body["rejected"][0]["reason"]
        assert "unknown purpose 'surveys'" in body["rejected"][1]["reason"]
        assert {d.id for d in store.dead_letters()} == {r["dead_letter"] for r in body["rejected"]}
        cid = customer_of(store, "acme|1")
        assert contact_decision(store, cid, "email", "marketing", LATER).event_id == "acme|c1"
        jwks = client.get("/.well-known/jwks.json").json()
        assert {c: r.ok for c, r in verify_ledger(store, jwks).items()} == {cid: True}
        again = client.post("/v1/events", json=batch[:2], headers=auth).json()
        assert again["accepted"] == 0 and again["duplicates"] == 2
        assert len(store.consent_chain(cid)) == 1


def test_the_timeline_keeps_consent_in_order_with_the_other_journey_events(
    store: GraphStore, issuer: ReceiptIssuer
) -> None:
    from test_pipeline import order

    pipeline = pipeline_of(store, issuer)
    pipeline.process([profile("p1", "1", 0, first_name="Ann"), order("o1", "1", 5), consent("c1", "1", "granted", 2)])
    cid = customer_of(store, "crm|1")
    assert [e.id for e in store.timeline(cid).events] == ["crm|c1", "crm|o1"]


@pytest.mark.slow
def test_consent_through_kafka_and_the_worker(kafka_broker: str, tmp_path: Path) -> None:
    import asyncio
    import time

    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.graph.receipts import open_signing_keys
    from test_streams_kafka import _logs, _partitions, _produce, _stop, _wait, _worker

    group = f"c360-test-consent-{time.monotonic_ns()}"
    topic = f"{group}.consent_change"
    db = tmp_path / ".c360" / "graph.db"

    def ledger() -> tuple[int, int, int]:
        if not db.exists():
            return (0, 0, 0)
        s = EmbeddedStore(EmbeddedConfig(path=db))
        try:
            chains = s.consent_chain_ids()
            return s.stats().records, sum(len(s.consent_chain(c)) for c in chains), len(s.dead_letters(limit=None))
        finally:
            s.close()

    worker = _worker(tmp_path, kafka_broker, group)
    try:
        _wait(lambda: topic in asyncio.run(_partitions(kafka_broker, [topic])), 60, "the consent_change topic")
        p = json.dumps(profile("p1", "1", 0, first_name="Ann")).encode()
        asyncio.run(_produce(kafka_broker, [(f"{group}.profile_update", "crm|1", p)]))
        _wait(lambda: ledger()[0] == 1, 60, "the profile")  # its own topic: consent must not overtake it
        messages = [
            consent("c1", "1", "granted", 2),
            consent("c2", "1", "granted", 2, purpose="surveys"),  # not configured: a dead letter
            consent("c1", "1", "granted", 2),  # redelivered
        ]
        asyncio.run(_produce(kafka_broker, [(topic, "crm|1", json.dumps(m).encode()) for m in messages]))
        _wait(lambda: ledger()[1:] == (1, 1), 60, f"the consent and the dead letter\n{_logs(tmp_path)}")
    finally:
        _stop(worker)
    store = EmbeddedStore(EmbeddedConfig(path=db))
    try:
        keys = open_signing_keys(tmp_path / ".c360" / "signing-keys.json", create=False)
        assert all(r.ok for r in verify_ledger(store, keys.jwks()).values())
        [letter] = store.dead_letters()
        assert "unknown purpose 'surveys'" in letter.reason and letter.sender == "kafka"
        cid = customer_of(store, "crm|1")
        assert contact_decision(store, cid, "email", "marketing", LATER).event_id == "crm|c1"
        assert [e.id for e in store.timeline(cid, types=["consent_change"]).events] == ["crm|c1"]
    finally:
        store.close()
