"""Masking that cannot be walked around (issue 13, finding 6): keys, keyed hashes and search.

Each test first plays the attack as the issue reports it, then shows it fails:

* a source keyed by email showed the raw email to roles that may not see emails, in ``source_key``,
  ``records[].key`` and everywhere else a record key is served (uids, evidence, history, explanations,
  review items, timeline payloads);
* the ``hash`` rule was an unkeyed SHA-256: a birth date or a surname fell to a dictionary;
* search answered roles that may not see what they searched by (an oracle: one answer says who is a
  customer).

The app is the one ``c360 serve`` builds (``c360.deps.build_app``), over an embedded store, in-process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from c360.graph.errors import ConfigError
from c360.graph.models import ChangeSet, ReviewItem
from c360.graph.store import GraphStore
from c360.graphql.auth import issue_dev_token
from c360.graphql.hash_keys import HashKeys, load_hash_keys, open_hash_keys, rotate_hash_keys
from c360.graphql.policy import BUNDLED_POLICY, SOURCE_KEY, Policy, load_policy
from fastapi.testclient import TestClient
from payloads import profile_event

from c360.deps import auth_config, build_app, build_pipeline, build_store, hash_key_file, hash_keys, rotate_hash_key
from c360.settings import ApiSettings, Settings

EMAIL = "jane.roe@example.com"  # the key of the newsletter source
BORN = "1985-02-17"
POLICY = load_policy()  # roles and rules (it cannot hash: no key)
READERS = [r for r in POLICY.roles if POLICY.can(r, "read_profile")]


EVENTS: list[dict[str, Any]] = [
    # Jane in the CRM (no email) and in a newsletter source keyed by her email: two customers until merged.
    profile_event(
        "j1", "crm", "J1", 0, first_name="Jane", last_name="Roe", date_of_birth=BORN, phone="+1 415 555 0101"
    ),
    profile_event("n1", "newsletter", EMAIL, 1, first_name="Jane", email=EMAIL),
    profile_event("k1", "crm", "K2", 2, first_name="Kim", last_name="Roe", email="kim.roe@example.com"),
    {
        "event_id": f"order-{EMAIL}-1",
        "type": "order",
        "source": "newsletter",
        "occurred_at": "2026-05-01T11:00:00Z",
        "order_id": "ORD-9",
        "customer_key": EMAIL,
        "currency": "EUR",
        "total": "10.00",
        "line_items": [{"line_id": "1", "product_id": "P1", "quantity": 1, "unit_price": "10.00"}],
    },
]


@dataclass
class Api:
    home: Path
    settings: Settings
    client: TestClient
    store: GraphStore

    def token(self, role: str) -> str:
        return issue_dev_token(auth_config(self.settings), role, "tester", roles=POLICY.roles)

    def gql(self, query: str, role: str = "data_steward", **variables: Any) -> dict[str, Any]:
        response = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token(role)}"},
        )
        body: dict[str, Any] = response.json()
        return body

    def rest(self, path: str, role: str, **params: str) -> Any:
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.token(role)}"})

    def policy(self) -> Policy:
        """The policy as the server masks with it (the data directory's key ring)."""
        return load_policy(hash_keys=load_hash_keys(hash_key_file(self.settings)))

    def customer_of(self, uid: str) -> str:
        found = self.store.lookup([uid], []).records[uid]
        return found.customer_id

    def audit(self) -> list[dict[str, Any]]:
        lines = (self.settings.data_dir / "audit.log").read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        return [e for e in entries if isinstance(e, dict) and "action" in e]


def _start(home: Path, policy_file: Path | None = None) -> tuple[Settings, GraphStore]:
    settings = Settings(data_dir=home / ".c360", api=ApiSettings(dev_mode=True, policy_file=policy_file))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = build_store(settings)
    outcome = build_pipeline(settings, store).process(EVENTS)
    assert len(outcome.accepted) == len(EVENTS), outcome
    return settings, store


def _with_review(store: GraphStore, api_customer: str) -> None:
    """An open review item between the email-keyed record and Kim's (as the real-time scorer files them)."""
    item = ReviewItem("R1", f"newsletter|{EMAIL}", "crm|K2", api_customer, 3.5, 0.7, datetime.now(UTC))
    store.apply(ChangeSet(reviews=[item]))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("masking")
    settings, store = _start(home)
    jane, news = store.lookup(["crm|J1"], []).records["crm|J1"].customer_id, None
    news = store.lookup([f"newsletter|{EMAIL}"], []).records[f"newsletter|{EMAIL}"].customer_id
    kim = store.lookup(["crm|K2"], []).records["crm|K2"].customer_id
    assert len({jane, news, kim}) == 3
    _with_review(store, kim)
    with TestClient(build_app(settings, store)) as client:
        api = Api(home, settings, client, store)
        # A steward merges the two Janes by hand: history now names the email-keyed record.
        merged = api.gql(
            'mutation($a: ID!, $b: ID!) { merge(a: $a, b: $b, reason: "same person") { id } }', a=jane, b=news
        )
        assert merged["data"]["merge"]["id"] == min(jane, news), merged
        yield api
    store.close()


def _jane(api: Api) -> str:
    return api.customer_of("crm|J1")


def _query(role: str) -> str:
    """Everything of a customer that may carry a record key, as far as ``role`` may read it."""
    parts = ["id golden { name value source sourceKey }", "sourceRecords { uid source key link fields { name value } }"]
    if POLICY.can(role, "read_history"):
        parts.append("history { kind data }")
    if POLICY.can(role, "read_timeline"):
        parts.append("timeline(first: 10) { events { id type data } }")
    if POLICY.can(role, "read_review_queue"):
        parts.append("reviewItems { record candidate reason }")
    return "query($id: ID!) { customer(id: $id) { " + " ".join(parts) + " } }"


def _keys_served(gql: dict[str, Any], rest: dict[str, Any]) -> list[str]:
    """Every record key and uid of a GraphQL and a REST answer (what the policy's source_key rule covers)."""
    c = gql["data"]["customer"]
    keys = [g["sourceKey"] for g in c["golden"] if g["sourceKey"]]
    keys += [r["key"] for r in c["sourceRecords"]] + [r["uid"].partition("|")[2] for r in c["sourceRecords"]]
    keys += [r["link"]["record"].partition("|")[2] for r in c["sourceRecords"] if r["link"].get("record")]
    for h in c.get("history") or []:
        keys += [u.partition("|")[2] for u in h["data"]["records"]]
    for e in (c.get("timeline") or {}).get("events", []):
        keys += [e["data"]["customer_key"], e["data"]["event_id"], e["id"].partition("|")[2]]
    for i in c.get("reviewItems") or []:
        keys += [i["record"].partition("|")[2], i["candidate"].partition("|")[2]]
    keys += [g["source_key"] for g in rest["golden"].values()] + [r["key"] for r in rest["records"]]
    for h in rest.get("history") or []:
        keys += [u.partition("|")[2] for u in h["records"]]
    return keys


# -- keys through the policy -----------------------------------------------------------------------


@pytest.mark.parametrize("role", READERS)
def test_a_source_keyed_by_email_shows_the_email_only_to_roles_that_see_emails(api: Api, role: str) -> None:
    cid = _jane(api)
    gql = api.gql(_query(role), role, id=cid)
    assert "errors" not in gql, gql
    response = api.rest(f"/v1/customers/{cid}", role)
    assert response.status_code == 200, response.text
    rest = response.json()
    text = (json.dumps(gql) + json.dumps(rest)).casefold()
    keys = _keys_served(gql, rest)
    assert any(k.startswith("hmac:") or k == EMAIL for k in keys)  # the email-keyed record is in the answer
    served = api.policy()
    if POLICY.rule(role, "email") != "full":
        # The attack: the marketer and the data consumer read the email out of source_key and records[].key.
        assert EMAIL not in text, f"{role} sees the email through a record key"
        assert "jane.roe" not in text
    if served.rule(role, SOURCE_KEY) == "full":
        assert EMAIL in keys  # stewards, KYC and admins name records by their real keys
        return
    # Every key is a keyed hash, the same one wherever it is served (it joins within the deployment).
    assert all(k.startswith("hmac:k1:") for k in keys), (role, keys)
    assert served.mask_key(role, EMAIL) in keys and served.mask_key(role, "J1") in keys
    # Free text that may quote keys or personal data (evidence notes: "merged by tester: same person") goes.
    assert "same person" not in text and "merged by" not in text
    assert api.gql(_query(role), role, id=cid) == gql  # the same answer on every read


def test_keys_are_hashed_exactly_so_records_keep_their_own_handles() -> None:
    policy = load_policy(hash_keys=HashKeys.generate())
    assert policy.mask_key("marketer", "A1") != policy.mask_key("marketer", "a1")
    assert policy.mask_uid("marketer", "crm|A1") == "crm|" + policy.mask_key("marketer", "A1")
    assert policy.mask_uid("data_steward", "crm|A1") == "crm|A1"


def test_the_source_key_rule_defaults_to_hash_unless_a_role_sees_every_identifying_field(tmp_path: Path) -> None:
    data = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    for spec in data["roles"].values():
        spec["fields"].pop(SOURCE_KEY, None)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    derived = load_policy(path)
    # The bundled policy lists the rule for every role; it is what the safe default gives.
    assert {r: derived.rule(r, SOURCE_KEY) for r in derived.roles} == {
        r: POLICY.rule(r, SOURCE_KEY) for r in POLICY.roles
    }
    assert derived.rule("approval_manager", SOURCE_KEY) == "hash"  # national ID partial: a key could be one
    assert derived.rule("data_steward", SOURCE_KEY) == "full"
    data["roles"]["kyc_officer"]["fields"]["phone"] = "partial"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_policy(path).rule("kyc_officer", SOURCE_KEY) == "hash"


def test_review_items_hide_their_keys_and_reasons() -> None:
    policy = load_policy(hash_keys=HashKeys.generate())
    item = ReviewItem("R1", f"web|{EMAIL}", "crm|K2", "C1", 1.0, 0.5, datetime.now(UTC), "rejected", "s", None, EMAIL)
    masked = policy.mask_review_item("compliance_officer", item)
    assert EMAIL not in repr(masked) and masked.reason is None
    assert masked.record_uid == "web|" + policy.mask_key("compliance_officer", EMAIL)
    assert policy.mask_review_item("data_steward", item) == item


def test_the_review_queue_shows_hashed_uids_to_roles_that_see_keys_hashed(api: Api) -> None:
    query = "{ reviewQueue(first: 10) { items { id record candidate } } }"
    served = api.policy()
    for role in ("approval_manager", "compliance_officer"):
        items = api.gql(query, role)["data"]["reviewQueue"]["items"]
        assert [i["record"] for i in items] == [served.mask_uid(role, f"newsletter|{EMAIL}")], role
    steward = api.gql(query)["data"]["reviewQueue"]["items"]
    assert [i["record"] for i in steward] == [f"newsletter|{EMAIL}"]


def test_explain_takes_the_hashed_uids_a_role_is_shown_and_refuses_raw_keys(api: Api) -> None:
    cid = _jane(api)
    role = "approval_manager"  # may explain; sees keys hashed
    explain = "query($a: String!, $b: String!) { explain(a: $a, b: $b) }"
    # The attack: asking about a raw key is an oracle ("is there a newsletter record keyed jane.roe@...?").
    raw = api.gql(explain, role, a=f"newsletter|{EMAIL}", b=cid)
    assert raw["errors"][0]["extensions"]["code"] == "FORBIDDEN" and raw["data"] is None
    assert any(
        e["action"] == "explain" and e["role"] == role and e["outcome"] == "refused" and "ForbiddenError" in e["detail"]
        for e in api.audit()
    )
    # The uids it is shown work: a record against its customer, and a review item's pair.
    records = api.gql(_query(role), role, id=cid)["data"]["customer"]["sourceRecords"]
    shown = next(r["uid"] for r in records if r["source"] == "newsletter")
    answer = api.gql(explain, role, a=shown, b=cid)
    assert "errors" not in answer, answer
    doc = answer["data"]["explain"]
    assert doc["left"]["record"] == shown and doc["right"]["record"].startswith("crm|hmac:k1:")
    assert EMAIL not in doc["left"]["record"] + doc["right"]["record"]  # (its identifiers: email in full)
    item = api.gql("{ reviewQueue { items { record candidate } } }", role)["data"]["reviewQueue"]["items"][0]
    pair = api.gql(explain, role, a=item["record"], b=item["candidate"])
    assert "errors" not in pair and pair["data"]["explain"]["left"]["record"] == item["record"]
    unknown = api.gql(explain, role, a="crm|hmac:k1:" + "0" * 64, b=cid)
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    # A steward still explains by real keys.
    assert "errors" not in api.gql(explain, a=f"newsletter|{EMAIL}", b="crm|J1")


def test_a_role_that_sees_keys_hashed_splits_by_the_uids_it_is_shown(tmp_path: Path) -> None:
    data = yaml.safe_load(BUNDLED_POLICY.read_text(encoding="utf-8"))
    data["roles"]["approval_manager"]["actions"].append("split")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    settings, store = _start(tmp_path, policy_file)
    with TestClient(build_app(settings, store)) as client:
        api = Api(tmp_path, settings, client, store)
        jane, news = api.customer_of("crm|J1"), api.customer_of(f"newsletter|{EMAIL}")
        api.gql('mutation($a: ID!, $b: ID!) { merge(a: $a, b: $b, reason: "same") { id } }', a=jane, b=news)
        cid = api.customer_of("crm|J1")
        split = (
            'mutation($c: ID!, $r: [String!]!) { split(customerId: $c, records: $r, reason: "two people") '
            "{ splitOff { sourceRecords { uid } } } }"
        )
        role = "approval_manager"
        raw = api.gql(split, role, c=cid, r=[f"newsletter|{EMAIL}"])
        assert raw["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        shown = api.policy().mask_uid(role, f"newsletter|{EMAIL}")
        done = api.gql(split, role, c=cid, r=[shown])
        assert "errors" not in done, done
        assert done["data"]["split"]["splitOff"]["sourceRecords"] == [{"uid": shown}]
        assert api.customer_of(f"newsletter|{EMAIL}") != cid
    store.close()


# -- keyed hashes ----------------------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _dictionary_of_birth_dates() -> dict[str, str]:
    """Plain SHA-256 of every date from 1900 to 2010: what an attacker builds in well under a second."""
    day, out = date(1900, 1, 1), {}
    while day.year <= 2010:
        out[_sha256(day.isoformat())] = day.isoformat()
        day += timedelta(days=1)
    return out


SURNAMES = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "roe", "lee"]


def test_a_dictionary_of_plain_sha256_no_longer_finds_birth_dates_or_surnames(api: Api) -> None:
    dates = _dictionary_of_birth_dates()
    names = {_sha256(n): n for n in SURNAMES}
    # The attack, as the unkeyed hash rule served it: a data consumer's hash of a birth date is looked up.
    assert dates[_sha256(BORN)] == BORN and names[_sha256("roe")] == "roe"
    doc = api.rest(f"/v1/customers/{_jane(api)}", "data_consumer").json()
    served_dob, served_name = doc["golden"]["date_of_birth"]["value"], doc["golden"]["last_name"]["value"]
    for served in (served_dob, served_name):
        prefix, kid, digest = served.split(":")
        assert (prefix, kid) == ("hmac", "k1") and len(digest) == 64
        assert digest not in dates and served not in dates and digest not in names
    # Nor does a dictionary under a guessed key; only the deployment's key reproduces the hash.
    guessed = hmac.new(b"c360", BORN.encode(), hashlib.sha256).hexdigest()
    assert guessed != served_dob.split(":")[2]
    secret = load_hash_keys(hash_key_file(api.settings)).secrets["k1"]
    assert hmac.new(secret, BORN.encode(), hashlib.sha256).hexdigest() == served_dob.split(":")[2]


def test_hashes_join_within_one_deployment(api: Api) -> None:
    jane = api.rest(f"/v1/customers/{_jane(api)}", "data_consumer").json()
    kim = api.rest(f"/v1/customers/{api.customer_of('crm|K2')}", "data_consumer").json()
    # Two customers named Roe: the same hash, so a consumer can count and join without reading the name.
    assert jane["golden"]["last_name"]["value"] == kim["golden"]["last_name"]["value"]
    assert jane["golden"]["first_name"]["value"] != kim["golden"]["first_name"]["value"]
    # The same as another process of the deployment computes from the key ring (the command line, a worker).
    assert api.policy().mask("data_consumer", "last_name", " ROE ") == jane["golden"]["last_name"]["value"]


def test_the_key_ring_is_generated_once_with_mode_0600_and_never_built_in(tmp_path: Path) -> None:
    one = Settings(data_dir=tmp_path / "one")
    two = Settings(data_dir=tmp_path / "two")
    keys = hash_keys(one)
    path = tmp_path / "one" / "hash-keys.json"
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert hash_keys(one) == keys  # generated on first use, then read
    assert hash_keys(two).secrets != keys.secrets  # no default key: every deployment has its own
    assert "secret" not in repr(keys) and keys.secrets["k1"].hex() not in repr(keys)
    # A ring others may read is refused, naming the fix.
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        hash_keys(one)
    path.chmod(0o600)
    # A ring named by api.hash_key_file must exist: a missing mounted secret is not silently replaced.
    named = Settings(data_dir=tmp_path / "one", api=ApiSettings(hash_key_file=tmp_path / "secret" / "keys.json"))
    with pytest.raises(ConfigError, match="cannot read the hash key file"):
        hash_keys(named)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "keys.json").write_bytes(path.read_bytes())
    os.chmod(tmp_path / "secret" / "keys.json", 0o400)
    assert hash_keys(named) == keys
    with pytest.raises(ConfigError, match="no hash key"):
        POLICY.hash("1985-02-17")


def test_a_rotation_makes_new_hashes_and_keeps_the_old_keys(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    before = load_policy(hash_keys=hash_keys(settings))
    old = before.mask("data_consumer", "email", EMAIL)
    rotated = rotate_hash_key(settings)
    assert rotated.current == "k2" and rotated.ids == ("k1", "k2")
    assert rotated.secrets["k1"] == before.hash_keys.secrets["k1"]  # type: ignore[union-attr]
    path = tmp_path / "hash-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and load_hash_keys(path) == rotated
    after = load_policy(hash_keys=hash_keys(settings))
    new = after.mask("data_consumer", "email", EMAIL)
    assert old.startswith("hmac:k1:") and new.startswith("hmac:k2:") and new != old
    # The old hash is still recognised (any key of the ring), a hash of another value is not.
    assert after.hash_matches(EMAIL, old) and after.hash_matches(f" {EMAIL.upper()} ", new)
    assert not after.hash_matches("someone@example.com", old)
    assert after.hash_keys is not None and after.hash_keys.hashes(EMAIL) == {"k1": old, "k2": new}
    assert rotate_hash_keys(path).ids == ("k1", "k2", "k3")


def test_first_use_by_two_processes_makes_one_ring(tmp_path: Path) -> None:
    path = tmp_path / "hash-keys.json"
    first = open_hash_keys(path)
    assert open_hash_keys(path) == first and load_hash_keys(path) == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hash-keys.json.") and "lock" not in p.name]


# -- search limited to the roles that may see what they search by ---------------------------------


SEARCH = "query($s: String!) { customers(search: $s) { nodes { id } } }"


def test_a_search_by_name_is_refused_to_roles_that_may_not_see_names_and_audited(api: Api) -> None:
    # The attack: a marketer (names denied) searches "Jane Roe" and learns she is a customer.
    for role, search in (("marketer", "Jane Roe"), ("marketer", "Roe"), ("data_consumer", "Roe")):
        body = api.gql(SEARCH, role, s=search)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (role, body)
        assert body["data"] is None and "may not search by" in body["errors"][0]["message"]
    # A name that is nobody's answers the same: the refusal says nothing about who exists.
    nobody = api.gql(SEARCH, "marketer", s="Zed Nobody")
    assert nobody["errors"][0]["message"] == api.gql(SEARCH, "marketer", s="Jane Roe")["errors"][0]["message"]
    refused = [
        e
        for e in api.audit()
        if e["action"] == "search_customers" and e["role"] == "marketer" and e["outcome"] == "refused"
    ]
    assert len(refused) >= 3 and all("ForbiddenError" in (e["detail"] or "") for e in refused)
    # Roles that see names in full still search by them.
    for role in ("data_steward", "kyc_officer", "compliance_officer", "approval_manager"):
        found = api.gql(SEARCH, role, s="Jane Roe")
        assert [n["id"] for n in found["data"]["customers"]["nodes"]] == [_jane(api)], role


@pytest.mark.parametrize(
    ("role", "search", "allowed"),
    [
        ("marketer", EMAIL, False),  # emails hashed: an exact hash is still an oracle
        ("marketer", "+1 415 555 0101", False),
        ("data_consumer", EMAIL, False),
        ("compliance_officer", EMAIL, False),  # partial
        ("compliance_officer", "+1 415 555 0101", False),
        ("approval_manager", EMAIL, True),
        ("data_steward", "+1 415 555 0101", True),
        ("admin", EMAIL, True),
    ],
)
def test_a_search_by_email_or_phone_needs_the_field_in_full(api: Api, role: str, search: str, allowed: bool) -> None:
    body = api.gql(SEARCH, role, s=search)
    if allowed:
        assert [n["id"] for n in body["data"]["customers"]["nodes"]] == [_jane(api)]
    else:
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_rest_lookup_by_email_or_phone_is_a_403_problem_for_roles_that_see_them_masked(api: Api) -> None:
    for role, params in (("data_consumer", {"email": EMAIL}), ("marketer", {"phone": "+1 415 555 0101"})):
        response = api.rest("/v1/customers", role, **params)
        assert response.status_code == 403, (role, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert EMAIL not in response.text
        # Refused before the value is even looked at: an invalid email is refused the same way.
        assert api.rest("/v1/customers", role, **{next(iter(params)): "x"}).status_code == 403
    assert any(
        e["action"] == "search_customers" and e["role"] == "data_consumer" and e["outcome"] == "refused"
        for e in api.audit()
    )
    ok = api.rest("/v1/customers", "kyc_officer", email=EMAIL)
    assert ok.status_code == 200 and [c["id"] for c in ok.json()["customers"]] == [_jane(api)]


def test_may_search_follows_the_rule_of_each_field() -> None:
    assert POLICY.may_search("kyc_officer", "national_id")
    assert not POLICY.may_search("approval_manager", "national_id")  # partial
    assert not POLICY.may_search("partner", "email")  # may not search at all
    assert not POLICY.may_search("intruder", "email")
    assert POLICY.may_search("compliance_officer", "last_name")
    assert not POLICY.may_search("compliance_officer", "email")
