"""Deterministic linking, merge protection and survivorship, against every store backend."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.models import Identifier, SourceRecord
from c360.graph.store import GraphStore
from c360.resolution.config import LinkingConfig, SurvivorshipConfig
from c360.resolution.linker import Linker
from c360.resolution.survivorship import golden_record

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def rec(source: str, key: str, minutes: int = 0, **fields: object) -> SourceRecord:
    return SourceRecord(source, key, T0 + timedelta(minutes=minutes), **fields)  # type: ignore[arg-type]


def links(store: GraphStore) -> dict[str, str]:
    return {f"{s}|{k}": c for s, k, c in store.iter_links()}


def _groups(store: GraphStore) -> list[list[str]]:
    grouped: dict[str, set[str]] = {}
    for uid, cid in links(store).items():
        grouped.setdefault(cid, set()).add(uid)
    return sorted(map(sorted, grouped.values()))


def test_shared_email_links_and_new_identity_gets_new_customer(store: GraphStore) -> None:
    linker = Linker(store)
    result = linker.ingest(
        [
            rec("crm", "1", first_name="Ann", email="Ann@Example.com"),
            rec("web", "a", first_name="Ann", email=" ann@example.com "),
            rec("web", "b", first_name="Bob", email="bob@example.com"),
        ]
    )
    assert (result.inserted, result.new_customers, result.merges) == (3, 2, 0)
    got = links(store)
    assert got["crm|1"] == got["web|a"] != got["web|b"]
    profile = store.get_profile(got["web|a"])
    assert profile is not None
    ev = {r.record.uid: r.evidence for r in profile.records}
    assert ev["crm|1"].rule == "new"
    assert ev["web|a"].rule == "deterministic"
    assert ev["web|a"].identifiers == ("email|ann@example.com",)


def test_bridge_record_merges_transitively_and_older_id_survives(store: GraphStore) -> None:
    linker = Linker(store)
    linker.ingest([rec("crm", "1", email="ann@example.com")])
    linker.ingest([rec("shop", "9", phone="(415) 555-0101")])
    older, younger = links(store)["crm|1"], links(store)["shop|9"]
    assert older < younger and older != younger
    result = linker.ingest([rec("web", "x", email="ann@example.com", phone="+1 415 555 0101")])
    assert result.merges == 1
    assert set(links(store).values()) == {older}
    assert store.resolve(younger) == older
    profile = store.get_profile(younger)
    assert profile is not None and profile.redirected and profile.customer.id == older
    assert profile.merged_ids == (younger,)
    (event,) = profile.history
    assert (event.survivor, event.merged) == (older, younger)
    assert event.evidence.record == "web|x"
    assert event.evidence.identifiers == ("phone|+14155550101",)
    merged = store.get_customer(younger)
    assert merged is not None and merged.status == "merged" and merged.merged_into == older


def test_merge_chain_redirects_to_final_survivor(store: GraphStore) -> None:
    linker = Linker(store)
    linker.ingest([rec("a", "1", email="a@x.com")])
    linker.ingest([rec("a", "2", email="b@x.com")])
    linker.ingest([rec("a", "3", email="c@x.com")])
    first, second, third = (links(store)[f"a|{i}"] for i in "123")
    linker.ingest([rec("b", "1", email="b@x.com", national_id="532-44-8710", national_id_kind="ssn")])
    linker.ingest([rec("b", "2", email="c@x.com", national_id="532448710", national_id_kind="SSN")])
    assert store.resolve(third) == second
    linker.ingest(
        [
            rec("b", "3", email="a@x.com", phone="4155550199"),
            rec("b", "4", email="b@x.com", phone="415-555-0199"),
        ]
    )
    assert set(links(store).values()) == {first}
    assert store.resolve(second) == first and store.resolve(third) == first
    assert store.stats().customers == 1


def test_blocklisted_and_degenerate_values_never_link(store: GraphStore) -> None:
    linker = Linker(store)
    linker.ingest(
        [
            rec("crm", "1", email="test@test.com", phone="000-000-0000"),
            rec("crm", "2", email="TEST@test.com", phone="0000000000"),
            rec("crm", "3", national_id="111-11-1111", national_id_kind="ssn"),
            rec("crm", "4", national_id="111111111", national_id_kind="ssn"),
        ]
    )
    assert len(set(links(store).values())) == 4


def test_identifier_over_cap_is_flagged_and_stops_linking(store: GraphStore) -> None:
    config = LinkingConfig(caps={"email": 2, "phone": 5, "national_id": 2, "customer_number": 2})
    linker = Linker(store, config)
    shared = "office@corp.com"
    # Three people, known by their own phones, then each seen with a shared company email.
    linker.ingest([rec("crm", str(n), phone=f"212555010{n}") for n in (1, 2, 3)])
    linker.ingest([rec("web", "1", email=shared, phone="2125550101")])
    result = linker.ingest([rec("web", "2", email=shared, phone="2125550102")])
    assert result.merges == 1 and not result.flagged  # joined 2 customers: at the cap
    result = linker.ingest([rec("web", "3", email=shared, phone="2125550103")])
    assert result.merges == 0 and result.flagged and result.flagged[0][0] == f"email|{shared}"
    got = links(store)
    assert got["crm|1"] == got["crm|2"] == got["web|2"] != got["crm|3"] == got["web|3"]
    # Flagged for good: a fourth record with it alone becomes a customer of its own; the reason is kept.
    linker.ingest([rec("web", "4", email=shared)])
    assert links(store)["web|4"] not in {got["crm|1"], got["crm|3"]}
    ((ident, reason),) = store.flagged_identifiers()
    assert ident == Identifier("email", shared) and "more than 2 customers" in reason


def test_one_person_in_many_sources_is_not_flagged(store: GraphStore) -> None:
    linker = Linker(store)
    for source in ("crm", "web", "shop", "partner", "kyc"):
        linker.ingest([rec(source, "1", national_id="532-44-8710", national_id_kind="ssn", customer_number="7")])
    assert len(set(links(store).values())) == 1
    assert store.flagged_identifiers() == []


def test_blocklisted_ids_and_customer_numbers_never_link(store: GraphStore) -> None:
    config = LinkingConfig(blocklist=["1234567890", "0000000000", "NA-NA-NA"])
    linker = Linker(store, config)
    linker.ingest(
        [
            rec("crm", "1", national_id="12-3456-7890", national_id_kind="pan"),
            rec("crm", "2", national_id="1234567890", national_id_kind="pan"),
            rec("crm", "3", customer_number="0000000000"),
            rec("crm", "4", customer_number="00000-00000"),
            rec("crm", "5", national_id="na na na", national_id_kind="passport"),
            rec("crm", "6", national_id="NANANA", national_id_kind="passport"),
        ]
    )
    assert len(set(links(store).values())) == 6


def test_same_key_twice_in_one_batch_equals_one_by_one(store: GraphStore, tmp_path: Path) -> None:
    records = [rec("web", "1", email="ann@x.com"), rec("web", "1", minutes=1, email="ann.new@x.com")]
    seed = [rec("crm", "9", email="ann@x.com")]
    Linker(store).ingest(seed)
    Linker(store).ingest(records)
    single = EmbeddedStore(EmbeddedConfig(path=tmp_path / "single.db"))
    for r in seed + records:
        Linker(single).ingest([r])
    assert _groups(store) == _groups(single) == [["crm|9", "web|1"]]
    single.close()


def test_update_that_drops_an_identifier_stops_it_linking(store: GraphStore, tmp_path: Path) -> None:
    first = [rec("crm", "1", email="shared@x.com")]
    later = [rec("crm", "1", minutes=1, email="mine@x.com"), rec("web", "2", email="shared@x.com")]
    linker = Linker(store)
    linker.ingest(first)
    linker.ingest(later)
    single = EmbeddedStore(EmbeddedConfig(path=tmp_path / "single.db"))
    for r in first + later:
        Linker(single).ingest([r])
    assert _groups(store) == _groups(single) == [["crm|1"], ["web|2"]]
    single.close()


def test_merge_evidence_names_an_identifier_when_an_update_bridges(store: GraphStore) -> None:
    linker = Linker(store)
    linker.ingest([rec("crm", "1", email="ann@x.com"), rec("web", "1", first_name="Ann")])
    result = linker.ingest([rec("web", "1", minutes=1, first_name="Ann", email="ann@x.com")])
    assert result.merges == 1
    (event,) = store.history(links(store)["crm|1"])
    assert event.evidence.identifiers == ("email|ann@x.com",) and event.evidence.record == "web|1"


def test_reingest_is_idempotent_and_update_rewrites_identifiers(store: GraphStore) -> None:
    linker = Linker(store)
    batch = [
        rec("crm", "1", email="ann@example.com", first_name="Ann"),
        rec("web", "2", email="ann@example.com"),
    ]
    linker.ingest(batch)
    before = (links(store), store.stats())
    again = linker.ingest(batch)
    assert (again.unchanged, again.inserted, again.updated) == (2, 0, 0)
    assert (links(store), store.stats()) == before
    cid = links(store)["crm|1"]
    linker.ingest([rec("crm", "1", minutes=5, email="ann.new@example.com", first_name="Anne")])
    profile = store.get_profile(cid)
    assert profile is not None
    assert {s.identifier.value for s in profile.identifiers} == {"ann@example.com", "ann.new@example.com"}
    crm = next(r for r in profile.records if r.record.uid == "crm|1")
    assert [i.value for i in crm.identifiers] == ["ann.new@example.com"]
    assert profile.customer.golden["first_name"].value == "Anne"


def test_one_batch_equals_one_by_one(store: GraphStore, tmp_path: Path) -> None:
    records = [
        rec("a", "1", email="x@x.com"),
        rec("a", "2", phone="2125550111"),
        rec("a", "3", email="x@x.com", phone="2125550111"),
        rec("a", "4", email="y@x.com"),
        rec("a", "1", minutes=1, email="x@x.com", phone="2125550122"),
        rec("a", "5", phone="2125550122", email="y@x.com"),
    ]
    Linker(store).ingest(records, batch_size=100)
    single = EmbeddedStore(EmbeddedConfig(path=tmp_path / "single.db"))
    for r in records:
        Linker(single).ingest([r])
    assert _groups(store) == _groups(single) == [["a|1", "a|2", "a|3", "a|4", "a|5"]]
    assert store.stats().merged_customers == single.stats().merged_customers == 2
    single.close()


def test_golden_record_rules_and_lineage(store: GraphStore) -> None:
    surv = SurvivorshipConfig(
        fields={"last_name": "source_priority", "date_of_birth": "most_frequent"},
        source_priority=["crm", "web"],
    )
    linker = Linker(store, survivorship=surv)
    linker.ingest(
        [
            rec(
                "web",
                "1",
                minutes=30,
                email="z@x.com",
                first_name="Zoe",
                last_name="Smyth",
                date_of_birth=date(1990, 2, 1),
            ),
            rec(
                "crm",
                "1",
                minutes=0,
                email="z@x.com",
                first_name="Zoey",
                last_name="Smith",
                date_of_birth=date(1990, 1, 2),
            ),
            rec("shop", "1", minutes=10, email="z@x.com", date_of_birth=date(1990, 1, 2)),
        ]
    )
    profile = store.get_profile(links(store)["crm|1"])
    assert profile is not None
    g = profile.customer.golden
    assert (g["first_name"].value, g["first_name"].source, g["first_name"].rule) == (
        "Zoe",
        "web",
        "most_recent",
    )
    assert (g["last_name"].value, g["last_name"].source) == ("Smith", "crm")
    assert g["date_of_birth"].value == date(1990, 1, 2) and g["date_of_birth"].rule == "most_frequent"
    assert g["email"].source_key in {"1"}


def _random_records(rng: random.Random, n: int, start: int) -> list[SourceRecord]:
    emails = [f"e{i}@x.com" for i in range(5)]
    phones = [f"212555{i:04d}" for i in range(100, 105)]
    out = []
    for j in range(n):
        key = str(rng.randrange(start, start + n)) if rng.random() < 0.3 else str(start + j)
        out.append(
            rec(
                rng.choice(["crm", "web"]),
                key,
                minutes=start + j,
                email=rng.choice([*emails, None]),
                phone=rng.choice([*phones, None, None]),
            )
        )
    return out


@pytest.mark.parametrize("caps", [{"email": 99, "phone": 99}, {"email": 2, "phone": 2}])
def test_batches_equal_one_by_one_on_random_streams(tmp_path: Path, caps: dict[str, int]) -> None:
    config = LinkingConfig(caps=caps)
    for seed in range(60):
        rng = random.Random(seed)
        stream = _random_records(rng, 8, 0) + _random_records(rng, 12, 4)
        # 240 scratch stores: no fsyncs (durability is not what this compares; each costs one on close).
        batched = EmbeddedStore(EmbeddedConfig(path=tmp_path / f"b{seed}.db", synchronous="OFF"))
        single = EmbeddedStore(EmbeddedConfig(path=tmp_path / f"s{seed}.db", synchronous="OFF"))
        Linker(batched, config).ingest(stream, batch_size=rng.choice([3, 7, 100]))
        for r in stream:
            Linker(single, config).ingest([r])
        assert _groups(batched) == _groups(single), seed
        assert batched.stats() == single.stats(), seed
        assert batched.flagged_identifiers() == single.flagged_identifiers(), seed
        # Golden records stay what the customer's records say.
        for cid, records in batched.records_of({c for _, _, c in batched.iter_links()}).items():
            customer = batched.get_customer(cid)
            assert customer is not None and dict(customer.golden) == golden_record(records, SurvivorshipConfig())
        batched.close()
        single.close()


def _stream(source: str) -> list[list[SourceRecord]]:
    # Both writers see each email for the first time at about the same moment.
    return [[rec(source, str(n), email=f"e{n}@x.com")] for n in range(300)]


def _writer(path: Path, source: str) -> None:
    store = EmbeddedStore(EmbeddedConfig(path=path))
    linker = Linker(store)
    for batch in _stream(source):
        linker.ingest(batch)
    store.close()


def test_concurrent_ingests_into_one_file_serialise(tmp_path: Path) -> None:
    """Two processes ingesting into one file never plan on a stale graph."""
    import multiprocessing

    path = tmp_path / "shared.db"
    EmbeddedStore(EmbeddedConfig(path=path)).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, s)) for s in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    shared = EmbeddedStore(EmbeddedConfig(path=path))
    # Whatever the interleaving, every record sits on an active customer and records sharing an
    # identifier share a customer.
    by_ident: dict[str, set[str]] = {}
    for source, key, cid in shared.iter_links():
        customer = shared.get_customer(cid)
        assert customer is not None and customer.status == "active", (source, key)
    for cid in {c for _, _, c in shared.iter_links()}:
        profile = shared.get_profile(cid)
        assert profile is not None
        for state in profile.identifiers:
            by_ident.setdefault(state.identifier.uid, set()).add(cid)
    assert all(len(cids) == 1 for cids in by_ident.values())
    assert shared.stats().records == 600
    shared.close()
