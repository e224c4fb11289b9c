"""Issue 13's attacks on the event paths, each reproduced first: spoofed sources and their replay, repeats of
an event id within one batch, payloads that made ``POST /v1/events`` answer 500 or left no dead letter,
inputs outside the published bounds, source names that are paths, and the OpenAPI document of the route.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from c360.connectors.files import FileSource
from c360.connectors.synthetic import Dataset
from c360.graph.errors import InvalidInputError
from c360.graph.models import SourceRecord
from c360.graph.store import GraphStore
from c360.resolution.linker import Linker
from c360.streams.events import EventBounds, json_schemas, parse_event
from c360.streams.pipeline import MAX_LETTER_BYTES, Pipeline
from fastapi.testclient import TestClient
from pydantic import ValidationError
from test_cli import c360
from test_pipeline import order, profile

# -- helpers ---------------------------------------------------------------------------------------------


@dataclass
class Api:
    """``c360 serve``'s app in this process over ``home``'s data directory, with partner ``acme``'s key."""

    home: Path
    client: TestClient
    key: str

    def post(self, body: Any = None, *, content: bytes | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        if content is not None:
            return self.client.post("/v1/events", content=content, headers=headers)
        return self.client.post("/v1/events", json=body, headers=headers)

    def letters(self) -> list[dict[str, Any]]:
        return list(json.loads(c360("dlq", "list", "--all", "--limit", "1000", "--json", cwd=self.home).stdout))


@contextlib.contextmanager
def api_of(home: Path) -> Iterator[Api]:
    from c360.deps import build_app, build_store
    from c360.settings import load_settings

    key = c360("partner", "add", "acme", cwd=home).stdout.strip()  # acme may send as acme only
    with contextlib.chdir(home):
        settings = load_settings()
        store = build_store(settings)
        try:
            with TestClient(build_app(settings, store), raise_server_exceptions=False) as client:
                yield Api(home, client, key)
        finally:
            store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with api_of(tmp_path) as a:
        yield a


def audit_entries(home: Path, action: str) -> list[dict[str, Any]]:
    lines = (home / ".c360" / "audit.log").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e for e in entries if e.get("action") == action]


def links(store: GraphStore) -> dict[str, str]:
    return {f"{s}|{k}": c for s, k, c in store.iter_links()}


def acme(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "source": "acme"}


# -- 1. partners act only as themselves: the sender on the letter, its rights on replay -------------------


def test_a_spoofed_source_is_a_dead_letter_naming_its_sender_and_replay_refuses_it(api: Api) -> None:
    spoof = profile("CRM-SPOOF-r1", "CRM-SPOOF", 0, first_name="Mallory", email="m@example.com")
    answer = api.post([spoof])
    assert answer.status_code == 200 and answer.json()["accepted"] == 0
    [rejected] = answer.json()["rejected"]
    assert "'crm' is not one this sender may send as" in rejected["reason"]
    [letter] = api.letters()
    assert (letter["source"], letter["sender"]) == ("crm", "partner:acme")
    shown = json.loads(c360("dlq", "show", letter["id"], cwd=api.home).stdout)
    assert shown["sender"] == "partner:acme"
    assert "partner:acme" in c360("dlq", "list", cwd=api.home).stdout
    # The replay checks the sender's rights again: acme may not send as crm, so nothing is applied.
    refused = c360("dlq", "replay", letter["id"], cwd=api.home, ok=False)
    assert refused.returncode == 1
    assert "partner:acme may send as acme only" in refused.stderr and "'crm'" in refused.stderr
    assert json.loads(c360("dlq", "show", letter["id"], cwd=api.home).stdout)["status"] == "open"
    found = c360("customer", "find", "--email", "m@example.com", cwd=api.home, ok=False)
    assert "CRM-SPOOF" not in found.stdout
    # A corrected payload of acme's own source replays, audited like the refusal.
    fixed = api.home / "fixed.json"
    fixed.write_text(json.dumps(acme(spoof)))
    done = c360("dlq", "replay", letter["id"], "--payload", str(fixed), cwd=api.home)
    assert "applied" in done.stdout
    assert [e["outcome"] for e in audit_entries(api.home, "dlq_replay")] == ["refused", "ok"]
    refusal = audit_entries(api.home, "dlq_replay")[0]
    assert refusal["target"] == letter["id"] and "acme only" in refusal["detail"]


def test_replay_refuses_a_revoked_partner_and_an_unknown_sender_without_the_operators_word(api: Api) -> None:
    api.post([acme({**order("o1", "1", 5), "total": "-1"})])  # acme's own source, invalid
    [letter] = api.letters()
    assert letter["sender"] == "partner:acme"
    fixed = api.home / "fixed.json"
    fixed.write_text(json.dumps(acme(order("o1", "1", 5))))
    c360("partner", "revoke", "acme", cwd=api.home)
    gone = c360("dlq", "replay", letter["id"], "--payload", str(fixed), cwd=api.home, ok=False)
    assert gone.returncode == 1 and "partner acme, which no longer exists" in gone.stderr
    # A letter kept before senders were recorded replays only when the operator vouches for it.
    from c360.graph.models import DeadLetter

    from c360.deps import build_store
    from c360.settings import load_settings

    with contextlib.chdir(api.home):
        store = build_store(load_settings())
        try:
            store.add_dead_letters([DeadLetter("Dold", datetime.now(UTC), "bad", json.dumps(order("o2", "1", 6)))])
        finally:
            store.close()
    unknown = c360("dlq", "replay", "Dold", cwd=api.home, ok=False)
    assert unknown.returncode == 1 and "--accept-unknown-sender" in unknown.stderr
    assert "applied" in c360("dlq", "replay", "Dold", "--accept-unknown-sender", cwd=api.home).stdout
    assert [e["outcome"] for e in audit_entries(api.home, "dlq_replay")] == ["refused", "refused", "ok"]


def test_local_paths_name_the_operator_as_sender(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("id,first_name,email\n,Ann,ann@example.com\n")  # a row without a key
    c360("ingest", "p.csv", "--source", "shop", cwd=tmp_path)
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({**order("o1", "1", 5), "occurred_at": 1}) + "\n")
    c360("events", "send", str(events), cwd=tmp_path, ok=False)
    letters = json.loads(c360("dlq", "list", "--json", cwd=tmp_path).stdout)
    assert len(letters) == 2 and all(d["sender"].startswith("cli:") for d in letters)


# -- 2. one event id in one batch: the first wins -------------------------------------------------------


def test_a_repeated_event_id_in_one_batch_is_a_duplicate_that_changes_nothing(store: GraphStore) -> None:
    pipeline = Pipeline(store, Linker(store))
    first = profile("e1", "1", 0, first_name="Ann", email="ann@example.com")
    second = profile("e1", "1", 1, first_name="Mallory", email="mallory@example.com")
    out = pipeline.process([first, second])
    assert (out.accepted, out.duplicates) == (["crm|e1"], 1)
    [record] = store.get_profile(links(store)["crm|1"]).records  # type: ignore[union-attr]
    assert (record.record.first_name, record.record.email) == ("Ann", "ann@example.com")
    # One id on two keys: one record, the first one's.
    out = pipeline.process([profile("e2", "2", 0, first_name="Bo"), profile("e2", "3", 0, first_name="Cy")])
    assert (out.accepted, out.duplicates) == (["crm|e2"], 1)
    assert "crm|2" in links(store) and "crm|3" not in links(store)
    # One id on an order and then a profile: the order is the event, the profile's record is not made.
    out = pipeline.process([order("e3", "1", 5), profile("e3", "4", 0, first_name="Di")])
    assert (out.accepted, out.duplicates) == (["crm|e3"], 1)
    assert "crm|4" not in links(store)


def test_the_linker_links_one_record_per_applied_event(store: GraphStore) -> None:
    from c360.graph.models import StoredEvent

    at = datetime(2026, 5, 1, tzinfo=UTC)
    a, b = SourceRecord("crm", "a", at, first_name="Ann"), SourceRecord("crm", "b", at, first_name="Bo")
    event = StoredEvent("crm|e1", "profile_update", at, "{}", None)
    result = Linker(store).ingest_batch([a, b], events=[event, event], record_events=["crm|e1", "crm|e1"])
    assert (result.events, result.duplicates, result.inserted) == (["crm|e1"], 1, 1)
    assert set(links(store)) == {"crm|a"}


# -- 3. no 500 on POST /v1/events, and every refused batch is a dead letter with its sender -------------


def test_json_nested_ten_thousand_deep_is_a_problem_answer_and_a_dead_letter(api: Api) -> None:
    body = b"[" * 10_000 + b"]" * 10_000
    answer = api.post(content=body)
    assert answer.status_code == 400 and answer.headers["content-type"] == "application/problem+json"
    assert "nested too deep" in answer.json()["detail"]
    [letter] = api.letters()
    assert letter["sender"] == "partner:acme" and letter["payload"] == body.decode()
    # Deep, but readable: the batch is refused as not a batch (422), kept too.
    deep = api.post([{"event_id": "x", "profile": {"attributes": {"a": [[[[[[[[[["x"]]]]]]]]]]}}}])
    assert deep.status_code == 422 and "nested deeper than" in deep.json()["detail"]
    assert len(api.letters()) == 2


def test_a_lone_surrogate_is_rejected_and_its_letter_stored_and_encoded(api: Api) -> None:
    body = (
        b'[{"event_id": "e\\ud800", "type": "order", "source": "acme", "occurred_at": "2026-05-01T10:00:00Z"},'
        b' {"event_id": "e2", "type": "profile_update", "source": "acme",'
        b' "occurred_at": "2026-05-01T10:00:00Z", "profile": {"customer_key": "k", "first_name": "A\\udc00"}},'
        b' {"event_id": "e3", "type": "teleport\\ud800"}]'
    )
    answer = api.post(content=body)
    assert answer.status_code == 200
    rejected = answer.json()["rejected"]
    assert [r["event_id"] for r in rejected] == ["e\ufffd", "e2", "e3"]
    assert "first_name" in rejected[1]["reason"]
    letters = api.letters()
    assert len(letters) == 3 and {d["sender"] for d in letters} == {"partner:acme"}
    for d in letters:
        json.loads(c360("dlq", "show", d["id"], cwd=api.home).stdout)  # reads and encodes


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"nope": 1}', 422, "send a JSON array"),
        (b'"events"', 422, "send a JSON array"),
        (json.dumps([{}] * 1001).encode(), 413, "at most 1000 events"),
        (b"{not json", 400, "not JSON"),
        (b"\xff\xfe[]", 400, "not JSON"),
    ],
)
def test_a_batch_refused_as_a_whole_leaves_a_dead_letter(api: Api, body: bytes, status: int, says: str) -> None:
    answer = api.post(content=body)
    assert answer.status_code == status and says in answer.json()["detail"]
    [letter] = api.letters()
    assert letter["sender"] == "partner:acme" and says in letter["reason"]
    assert letter["id"] in answer.json()["detail"]
    assert audit_entries(api.home, "post_events")[-1]["outcome"] == "refused"


def test_a_body_over_8_mib_is_refused_and_kept_truncated(api: Api) -> None:
    body = b"[" + b'"x",' * (3 * 1024 * 1024) + b'"x"]'
    answer = api.post(content=body)
    assert answer.status_code == 413 and "at most 8388608 bytes" in answer.json()["detail"]
    [letter] = api.letters()
    assert letter["sender"] == "partner:acme"
    assert len(letter["payload"].encode()) == MAX_LETTER_BYTES and body.decode().startswith(letter["payload"])
    assert f"payload truncated: the first {MAX_LETTER_BYTES} of {len(body)} bytes kept" in letter["reason"]


def test_an_oversized_event_is_kept_truncated(store: GraphStore) -> None:
    big = {**order("o1", "1", 5), "padding": "x" * 100_000}
    out = Pipeline(store, Linker(store)).process([big], sender="cli:test")
    [letter] = store.dead_letters()
    assert "larger than" in out.rejected[0].reason and "payload truncated" in letter.reason
    assert len(letter.payload.encode()) == MAX_LETTER_BYTES and letter.sender == "cli:test"


# -- 4. input bounds in the event model: every path ------------------------------------------------------


def _profile(**fields: Any) -> dict[str, Any]:
    return profile("e1", "1", 0, **{"first_name": "Ann", **fields})


@pytest.mark.parametrize(
    ("payload", "where", "says"),
    [
        ({**_profile(), "occurred_at": 1_777_000_000}, "occurred_at", "RFC 3339"),
        ({**_profile(), "occurred_at": "2026-05-01"}, "occurred_at", "RFC 3339"),
        ({**_profile(), "occurred_at": "2026-05-01T10:00:00"}, "occurred_at", "RFC 3339"),
        ({**_profile(), "occurred_at": "9999-12-31T00:00:00Z"}, "occurred_at", "ahead of the receiving clock"),
        ({**_profile(), "occurred_at": "1850-01-01T00:00:00Z"}, "occurred_at", "before 1900"),
        (_profile(date_of_birth="2999-01-01"), "date_of_birth", "in the future"),
        (_profile(date_of_birth="1850-01-01"), "date_of_birth", "before 1900-01-01"),
        (_profile(date_of_birth=19880412), "date_of_birth", "YYYY-MM-DD"),
        (_profile(last_name="Lee\x00"), "last_name", "control character, U+0000"),
        (_profile(email="ann\x00@example.com"), "email", "U+0000"),
        (profile("e1", "1\x00", 0), "customer_key", "U+0000"),
        ({**_profile(), "event_id": "e\x001"}, "event_id", "U+0000"),
        (_profile(city="Ber\tlin"), "city", "U+0009"),
        (_profile(city="Ber\x85lin"), "city", "U+0085"),
        (_profile(city="Ber\u202elin"), "city", "U+202E"),
        (_profile(attributes={"tier\x01": "gold"}), "attributes", "U+0001"),
        (_profile(attributes={f"k{i}": "v" for i in range(101)}), "attributes", "at most 100"),
        (_profile(first_name="A" * 501), "first_name", "at most 500"),
        ({**order("o1", "1", 5), "source": "../../tmp/x"}, "source", "never a path"),
        ({**order("o1", "1", 5), "source": "/etc"}, "source", "invalid source name"),
    ],
)
def test_events_outside_the_bounds_are_rejected_with_a_reason(
    store: GraphStore, payload: dict[str, Any], where: str, says: str
) -> None:
    out = Pipeline(store, Linker(store)).process([payload])
    assert out.accepted == []
    [rejected] = out.rejected
    assert where in rejected.reason and says in rejected.reason, rejected.reason
    assert [d.id for d in store.dead_letters()] == [rejected.dead_letter]


def test_leading_and_trailing_whitespace_is_stripped_and_a_time_just_ahead_is_taken(store: GraphStore) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    out = Pipeline(store, Linker(store)).process([{**_profile(last_name=" Lee\n"), "occurred_at": soon}])
    assert out.accepted == ["crm|e1"] and out.rejected == []


def test_the_window_is_exact_at_its_edges_whatever_the_offset() -> None:
    west = timezone(timedelta(hours=-11))
    over = (datetime.now(UTC) + timedelta(days=1, minutes=5)).astimezone(west)  # a local date of today
    with pytest.raises(ValidationError, match="more than 1 day ahead"):
        parse_event({**_profile(), "occurred_at": over.isoformat()})
    with pytest.raises(ValidationError, match="more than 1 day ahead"):
        parse_event({**_profile(), "occurred_at": over})  # a datetime, from Python callers
    under = (datetime.now(UTC) + timedelta(hours=23)).astimezone(timezone(timedelta(hours=14)))
    assert parse_event({**_profile(), "occurred_at": under.isoformat()}).occurred_at == under
    first = datetime(1900, 1, 1, tzinfo=UTC)
    assert parse_event({**_profile(), "occurred_at": "1900-01-01T00:00:00Z"}).occurred_at == first
    with pytest.raises(ValidationError, match="before 1900"):
        parse_event({**_profile(), "occurred_at": "1900-01-01T00:30:00+01:00"})
    with pytest.raises(ValidationError, match="occurred_at"):
        parse_event({**_profile(), "occurred_at": "2026-13-01T00:00:00Z"})


def test_the_occurred_at_window_is_configurable() -> None:
    ahead = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    event = {**_profile(), "occurred_at": ahead}
    with pytest.raises(ValidationError, match="more than 1 day ahead"):
        parse_event(event)
    assert parse_event(event, bounds=EventBounds(max_future=timedelta(days=30))).event_id == "e1"
    old = {**_profile(), "occurred_at": "1890-01-01T00:00:00Z"}
    assert parse_event(old, bounds=EventBounds(earliest_year=1800)).event_id == "e1"
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore

    from c360.deps import build_pipeline
    from c360.settings import load_settings

    settings = load_settings(streams={"occurred_at_max_future_days": 30})
    assert build_pipeline(settings, EmbeddedStore(EmbeddedConfig(path=Path(":memory:")))).bounds.max_future == (
        timedelta(days=30)
    )


def _links(cwd: Path) -> list[dict[str, str]]:
    c360("export", "links", "--output", "links.csv", cwd=cwd)
    with (cwd / "links.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_bounds_hold_on_the_file_and_events_send_paths(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("id,first_name,date_of_birth\n1,Ann\x00,1988-04-12\n2,Bo,2999-01-01\n3,Cy,\n")
    out = c360("ingest", "p.csv", "--source", "shop", cwd=tmp_path).stdout
    assert "(2 new" in out and "1 rejected" in out
    reasons = [d["reason"] for d in json.loads(c360("dlq", "list", "--json", cwd=tmp_path).stdout)]
    assert any("first_name" in r and "U+0000" in r for r in reasons)
    # A file's birth date in the future is left empty and counted, as one that does not parse; the row is used.
    links = {r["source_key"]: r["customer_id"] for r in _links(tmp_path)}
    assert (
        "2" in links
        and "date_of_birth" not in json.loads(c360("customer", "get", links["2"], cwd=tmp_path).stdout)["golden"]
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps({**order("o1", "1", 5), "occurred_at": 1_777_000_000})
        + "\n"
        + json.dumps({**order("o2", "1", 5), "occurred_at": "9999-01-01T00:00:00Z"})
        + "\n"
    )
    c360("events", "send", str(events), cwd=tmp_path, ok=False)
    reasons = [d["reason"] for d in json.loads(c360("dlq", "list", "--json", cwd=tmp_path).stdout)]
    assert any("RFC 3339" in r for r in reasons) and any("ahead of the receiving clock" in r for r in reasons)


def test_the_published_schemas_state_the_bounds() -> None:
    schema = json_schemas()["profile_update.v1.json"]
    occurred = schema["properties"]["occurred_at"]
    assert occurred["type"] == "string" and occurred["format"] == "date-time"
    assert occurred["formatMinimum"].startswith("1900")
    first = schema["$defs"]["Profile"]["properties"]["first_name"]["anyOf"][0]
    assert first["maxLength"] == 500 and "\\u0000-\\u001f" in first["pattern"]
    assert schema["$defs"]["Profile"]["properties"]["attributes"]["maxProperties"] == 100


# -- 5. source names are never paths --------------------------------------------------------------------


@pytest.mark.parametrize("source", ["../../tmp/x", "/tmp/x", "..", ".hidden", "a/b", "CRM", "a|b", "a\x00b"])
def test_a_source_name_that_is_a_path_is_refused(tmp_path: Path, source: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "p.csv").write_text("id,email\n,a@x.com\n")
    proc = c360("ingest", "p.csv", "--source", source, cwd=home, ok=False)
    assert proc.returncode == 1 and "invalid source name" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # nothing written beside the home
    assert not (home / ".c360").exists()
    with pytest.raises(InvalidInputError, match="invalid source name"):
        FileSource(home / "p.csv", source)


def _dataset(root: Path, **entry: str) -> Path:
    root.mkdir(parents=True)
    (root / "crm.csv").write_text("id,email\n1,a@x.com\n")
    (root / "crm.mapping.yaml").write_text("key: id\n")
    source = {"source": "crm", "path": "crm.csv", "mapping": "crm.mapping.yaml", **entry}
    (root / "dataset.json").write_text(json.dumps({"sources": [source]}))
    return root


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"source": "../../../../X"}, "invalid source name"),
        ({"source": "/etc/x"}, "invalid source name"),
        ({"path": "../../outside.csv"}, "outside the data set folder"),
        ({"path": "/etc/passwd"}, "outside the data set folder"),
        ({"mapping": "../m.yaml"}, "outside the data set folder"),
    ],
)
def test_a_data_set_manifest_cannot_name_a_path_outside_its_folder(
    tmp_path: Path, entry: dict[str, str], says: str
) -> None:
    root = _dataset(tmp_path / "set", **entry)
    with pytest.raises(InvalidInputError, match=says):
        Dataset.load(root)
    proc = c360("ingest", "set", cwd=tmp_path, ok=False)
    assert proc.returncode == 1 and says in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_a_well_formed_data_set_still_loads(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "set")
    [source] = Dataset.load(root).sources
    assert source.source == "crm" and source.path == root / "crm.csv"


# -- 6. the OpenAPI document describes the route --------------------------------------------------------


def test_openapi_describes_the_events_body_and_answers(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    post = doc["paths"]["/v1/events"]["post"]
    body = post["requestBody"]
    assert body["required"] is True
    array, wrapped = body["content"]["application/json"]["schema"]["oneOf"]
    assert array["type"] == "array" and array["maxItems"] == 1000
    assert wrapped["properties"]["events"] == array
    types = {b["properties"]["type"]["const"] for b in array["items"]["oneOf"]}
    assert types == {"profile_update", "order", "transaction", "web_activity", "product", "brand", "consent_change"}
    assert "$ref" not in json.dumps(body)  # self-contained: the schemas of schemas/events, inlined
    for status in ("400", "401", "403", "413", "422", "429", "503"):
        assert "application/problem+json" in post["responses"][status]["content"], status
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/EventsAnswer"}
    assert {"accepted", "duplicates", "rejected", "event_ids"} <= set(
        doc["components"]["schemas"]["EventsAnswer"]["properties"]
    )
