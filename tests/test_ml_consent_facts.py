"""ml.consent_facts: many customers' consent at one instant, from the real ledger (consent_change events
sent through the pipeline), decided by the kernel's consent model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from c360.graph.consent_ledger import ReceiptIssuer, contact_decision
from c360.graph.errors import InvalidInputError
from c360.graph.models import ChangeSet, Evidence, MergeEvent
from c360.graph.receipts import Controller, SigningKeys
from c360.graph.store import GraphStore
from c360.ml import consent_facts as facts_module
from c360.ml.consent_facts import consent_facts, permitted_pairs
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from test_consent_events import consent, customer_of
from test_pipeline import profile

LATER = datetime(2026, 6, 1, tzinfo=UTC)  # after every capture below
ISSUER = ReceiptIssuer(SigningKeys.generate(), Controller("Shop", "DPO", "dpo@shop.example"), "https://x/p")


def people(store: GraphStore, **extra: Any) -> dict[str, str]:
    """Six customers through the real pipeline (profile_update, then consent_change events); key -> customer id.

    1 granted marketing e-mail; 2 granted, then withdrew; 3 never asked; 4 granted until 2026-05-20
    (expired by LATER); 5 denied; 6 granted marketing SMS only. ``extra`` adds fields to every profile.
    """
    pipeline = Pipeline(store, Linker(store), issuer=ISSUER)
    keys = ["1", "2", "3", "4", "5", "6"]
    phones = {k: f"+4915112345{int(k):02d}" for k in keys}
    profiles = [
        profile(f"p{k}", k, int(k), first_name=f"P{k}", email=f"p{k}@x.example", phone=phones[k], **extra) for k in keys
    ]
    out = pipeline.process(
        [
            *profiles,
            consent("c1", "1", "granted", 2),
            consent("c2a", "2", "granted", 2),
            consent("c2b", "2", "withdrawn", 10),
            consent("c4", "4", "granted", 3, expires_at="2026-05-20T00:00:00Z"),
            consent("c5", "5", "denied", 4),
            consent("c6", "6", "granted", 5, channel="sms"),
        ]
    )
    assert not out.rejected, out.rejected
    return {k: customer_of(store, f"crm|{k}") for k in keys}


def test_facts_follow_the_kernels_decisions(store: GraphStore) -> None:
    ids = people(store)
    facts = consent_facts(store, [*ids.values(), "nobody"], LATER)
    assert set(facts) == set(ids.values())  # unknown ids absent
    email = ("marketing", "email")
    assert {k: facts[c].status(*email) for k, c in ids.items()} == {
        "1": "granted",
        "2": "withdrawn",
        "3": "none",
        "4": "expired",
        "5": "denied",
        "6": "none",
    }
    for cid in ids.values():  # the same answer the kernel's per-customer decision gives
        decision = contact_decision(store, cid, "email", "marketing", LATER)
        basis = facts[cid].basis(*email)
        assert decision.allowed == (email in facts[cid].permitted)
        assert decision.event_id == (basis.event_id if basis else None)
    one = facts[ids["1"]].basis(*email)
    assert one is not None and one.event_id == "crm|c1" and one.captured_at == datetime(2026, 5, 2, 7, 30, tzinfo=UTC)
    withdrawn = facts[ids["2"]].basis(*email)
    assert withdrawn is not None and withdrawn.event_id == "crm|c2b"
    expired = facts[ids["4"]].basis(*email)
    assert expired is not None and expired.expires_at == datetime(2026, 5, 20, tzinfo=UTC)
    assert permitted_pairs(facts) == {
        ids["1"]: frozenset({email}),
        ids["2"]: frozenset(),
        ids["3"]: frozenset(),
        ids["4"]: frozenset(),
        ids["5"]: frozenset(),
        ids["6"]: frozenset({("marketing", "sms")}),
    }
    # Earlier: the withdrawal had not happened yet, the expiring grant still held.
    before = consent_facts(store, list(ids.values()), datetime(2026, 5, 5, tzinfo=UTC))
    assert email in before[ids["2"]].permitted and email in before[ids["4"]].permitted
    assert before[ids["2"]].basis(*email) is not None


def test_a_merged_id_reads_its_survivors_facts_and_chunks_cover_every_id(
    store: GraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = people(store)
    survivor, merged = ids["1"], ids["2"]
    store.apply(ChangeSet(merges=[MergeEvent(survivor, merged, LATER, Evidence("deterministic"), ("crm|2",))]))
    monkeypatch.setattr(facts_module, "CHUNK", 2)  # several bulk reads, each of two ids
    seen: list[tuple[int, int]] = []
    facts = consent_facts(store, [merged, *ids.values()], LATER, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 6), (4, 6), (6, 6)]  # the merged id was asked twice, counted once
    # The union of both records' events: the withdrawal (2026-05-10) is later than the grant (05-02).
    assert facts[merged].status("marketing", "email") == facts[survivor].status("marketing", "email") == "withdrawn"
    assert len(facts) == 6


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError):
        consent_facts(None, ["a"], datetime(2026, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        consent_facts(None, "C1", LATER)  # type: ignore[arg-type]
