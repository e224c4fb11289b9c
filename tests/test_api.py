"""The profile API as clients see it: ``c360 serve --dev`` on loopback, GraphQL and REST, every role.

The role tests are generated from the bundled policy: every role against every profile field (GraphQL
and REST alike, and no masked value leaking anywhere in the document), every query action and every
mutation. Tokens are real HS256 JWTs signed with the server's dev secret; wrong ones are refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from c360.graphql.auth import AuthConfig, dev_secret, issue_dev_token
from c360.graphql.hash_keys import load_hash_keys
from c360.graphql.policy import Policy, load_policy
from payloads import profile_event
from test_cli import c360
from test_http_events import serving
from test_pipeline import order

POLICY = load_policy()
#: roles a staff (SSO) token may carry: an applicant's principal comes only from an applicant session
STAFF_ROLES = [r for r in POLICY.roles if r != "applicant"]
ANN = {
    "first_name": "Annabel",
    "last_name": "Lee-Hartley",
    "date_of_birth": "1988-04-12",
    "gender": "F",
    "email": "annabel.lee@example.com",
    "phone": "+1 415 555 0199",
    "address_line1": "12 Kingsbridge Road",
    "address_line2": "Flat 4",
    "city": "San Francisco",
    "postcode": "94110",
    "state": "CA",
    "country": "US",
    "national_id": "532-44-8710",
    "national_id_kind": "ssn",
    "customer_number": "CRM-77",
    "attributes": {"annual_income": "62000", "loyalty_tier": "gold"},
}


@dataclass
class Server:
    url: str
    home: Path
    config: AuthConfig
    partner_key: str
    busy_key: str  # only the rate-limit test uses it
    #: one client for the module: ``httpx.get`` makes a client, and an SSL context, per request (~80 ms)
    http: httpx.Client

    def token(self, role_: str, subject: str = "tester", **claims: Any) -> str:
        role = role_
        if not claims:
            return issue_dev_token(self.config, role, subject, roles=POLICY.roles)
        base = jwt.decode(
            issue_dev_token(self.config, role, subject, roles=POLICY.roles), options={"verify_signature": False}
        )
        return jwt.encode({**base, **claims}, dev_secret(self.config.dev_key_file or Path()), algorithm="HS256")

    def rest(self, path: str, role: str | None = None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(role)}"} if role else {}
        return self.http.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)

    def gql(
        self, query: str, role: str | None = "data_steward", token: str | None = None, **variables: Any
    ) -> dict[str, Any]:
        headers = {}
        if token or role:
            headers["Authorization"] = f"Bearer {token or self.token(role or '')}"
        response = self.http.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, headers=headers, timeout=10
        )
        body: dict[str, Any] = response.json()
        body["status"] = response.status_code
        return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("api")
    events = [
        profile_event("a1", "crm", "A1", 0, **ANN),
        profile_event("a2", "webshop", "W1", 1, first_name="Annabel", last_name="Lee-Hartley", email=ANN["email"]),
        profile_event("b1", "crm", "B1", 2, first_name="Bob", last_name="Stone", email="bob.stone@example.com"),
        profile_event("c1", "crm", "C1", 3, first_name="Carl", last_name="Marsh", email="carl.marsh@example.com"),
        {**order("o1", "A1", 5), "order_id": "ORD-1"},
        {**order("o2", "W1", 6, source="webshop"), "order_id": "ORD-2"},
        {
            "event_id": "t1",
            "type": "transaction",
            "source": "crm",
            "occurred_at": "2026-05-01T11:07:00Z",
            "transaction_id": "TX-1",
            "customer_key": "A1",
            "order_id": "ORD-1",
            "amount": "19.90",
            "currency": "EUR",
        },
    ]
    (home / "events.json").write_text(json.dumps(events))
    c360("events", "send", "events.json", cwd=home)
    key = c360("partner", "add", "acme", "--sources", "acme", cwd=home).stdout.strip()
    busy = c360("partner", "add", "busy", cwd=home).stdout.strip()
    config = AuthConfig(dev_mode=True, dev_key_file=home / ".c360" / "dev-signing.key")
    dev_secret(home / ".c360" / "dev-signing.key")
    limits = {"C360_API__PARTNER_RATE": "0.2", "C360_API__PARTNER_BURST": "3"}
    with serving(home, "--dev", env=limits) as url, httpx.Client() as http:
        yield Server(url, home, config, key, busy, http)
    assert "Traceback" not in (home / "serve.log").read_text()  # nothing unexpected happened server-side


def _ann_id(server: Server) -> str:
    found = server.rest("/v1/customers", "data_steward", email=ANN["email"]).json()["customers"]
    assert len(found) == 1
    return str(found[0]["id"])


def _raw() -> dict[str, Any]:
    """Every policy field's stored value for Ann (age as her birth date, income from her CRM record)."""
    raw: dict[str, Any] = {k: v for k, v in ANN.items() if k != "attributes"}
    raw["age"] = ANN["date_of_birth"]
    raw["annual_income"] = ANN["attributes"]["annual_income"]  # type: ignore[index]
    return raw


def _served(server: Server) -> Policy:
    """The policy as the server masks with it: the bundled one, hashing with the data directory's key ring."""
    return load_policy(hash_keys=load_hash_keys(server.home / ".c360" / "hash-keys.json"))


def _expected(policy: Policy, role: str, field: str) -> Any:
    return policy.mask(role, field, _raw()[field], today=date.today())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


CUSTOMER_QUERY = """query($id: ID!) { customer(id: $id) { id redirected golden { name value source }
  identifiers { kind value } sourceRecords { uid fields { name value } } } }"""


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_every_role_sees_every_field_as_the_policy_says_in_graphql_and_rest(server: Server, role: str) -> None:
    cid = _ann_id(server)
    rest = server.rest(f"/v1/customers/{cid}", role)
    gql = server.gql(CUSTOMER_QUERY, role, id=cid)
    if not POLICY.can(role, "read_profile"):
        assert rest.status_code == 403 and rest.headers["content-type"] == "application/problem+json"
        assert gql["errors"][0]["extensions"]["code"] == "FORBIDDEN" and gql["data"] is None
        return
    assert rest.status_code == 200, rest.text
    doc = rest.json()
    golden_gql = {g["name"]: g["value"] for g in gql["data"]["customer"]["golden"]}
    text = json.dumps(doc) + json.dumps(gql)
    for field in POLICY.fields:
        expected = _expected(_served(server), role, field)
        got_rest = doc["golden"].get(field, {}).get("value")
        assert got_rest == expected, (role, field, got_rest, expected)
        assert golden_gql.get(field) == (None if expected is None else _text(expected)), (role, field)
        raw = _raw()[field]
        if POLICY.rule(role, field) != "full" and len(str(raw)) >= 5 and field != "age":
            assert str(raw) not in text, f"{role} sees {field} unmasked somewhere"
    # Identifiers are masked by their field's rule, in both front doors alike.
    kinds = {i["kind"]: i["value"] for i in doc["identifiers"]}
    assert kinds == {i["kind"]: i["value"] for i in gql["data"]["customer"]["identifiers"] if i["kind"] in kinds}
    for kind, field in (("email", "email"), ("national_id", "national_id")):
        if POLICY.rule(role, field) == "deny":
            assert kind not in kinds
    if POLICY.rule(role, "email") == "full":
        assert kinds["email"] == ANN["email"]
    if POLICY.rule(role, "attributes") == "deny":
        assert "loyalty_tier" not in text


QUERIES = {
    "read_timeline": "query($id: ID!) { customer(id: $id) { timeline(first: 5) { events { type } } } }",
    "read_orders": "query($id: ID!) { customer(id: $id) { orders { orders { orderId total } } } }",
    "read_transactions": "query($id: ID!) { customer(id: $id) { transactions { transactions { amount } } } }",
    "read_history": "query($id: ID!) { customer(id: $id) { history { kind } } }",
    "read_review_queue": "query { reviewQueue(first: 5) { items { id } } }",
    "explain": 'query { explain(a: "crm|A1", b: "webshop|W1") }',
    "search_customers": 'query { customers(search: "Lee-Hartley") { nodes { id } } }',
    "read_consent": "query($id: ID!) { consent(customerId: $id) { states { status event { id record actorId } } } }",
    "check_consent": 'query($id: ID!) { mayContact(customerId: $id, channel: "email", purpose: "marketing") '
    "{ allowed reason eventId receipt } }",
}
MUTATIONS = {
    "approve_review": 'mutation { approveReview(id: "R404", reason: "same") { id } }',
    "reject_review": 'mutation { rejectReview(id: "R404", reason: "different") { id } }',
    "merge": 'mutation { merge(a: "C404", b: "C405", reason: "same") { id } }',
    "split": 'mutation { split(customerId: "C404", records: ["crm|A1"], reason: "x") { splitOff { id } } }',
    "record_consent": 'mutation { recordConsent(input: {customerId: "C404", record: "crm|A1", purpose: "marketing", '
    'channel: "email", status: "granted", jurisdiction: "DE", noticeId: "n", noticeVersion: "1", '
    f'noticeSha256: "{"0" * 64}"}}) {{ replayed }} }}',
}


@pytest.mark.parametrize("role", STAFF_ROLES)
@pytest.mark.parametrize("action", sorted(QUERIES) + sorted(MUTATIONS))
def test_every_role_against_every_query_action_and_mutation(server: Server, role: str, action: str) -> None:
    cid = _ann_id(server)
    query = QUERIES.get(action) or MUTATIONS[action]
    body = server.gql(query, role, id=cid) if "$id" in query else server.gql(query, role)
    codes = [e["extensions"]["code"] for e in body.get("errors") or []]
    reads_profile = "$id" in query
    # Oracles are refused too: a search by a name the role does not see in full, a record named by a raw
    # key the role sees hashed.
    oracle = (action == "search_customers" and not POLICY.may_search(role, "last_name")) or (
        action == "explain" and not POLICY.shows_keys(role)
    )
    if reads_profile and not POLICY.can(role, "read_profile"):
        assert codes == ["FORBIDDEN"]
    elif POLICY.can(role, action) and not oracle:
        if action in MUTATIONS:
            assert codes == ["NOT_FOUND"], body  # allowed, and nothing by that ID
        else:
            assert codes == [], body
    else:
        assert codes == ["FORBIDDEN"], body
        assert body["data"] is None or all(v is None for v in (body["data"] or {}).values()) or reads_profile


def test_journey_fields_orders_transactions_and_pagination(server: Server) -> None:
    cid = _ann_id(server)
    query = """query($id: ID!, $after: String) { customer(id: $id) {
      timeline(first: 1, after: $after) { events { type data } pageInfo { hasNextPage endCursor } }
      orders { orders { orderId source total lineItems { productId quantity unitPrice } } }
      transactions { transactions { transactionId orderId amount kind } } } }"""
    first = server.gql(query, id=cid)["data"]["customer"]
    assert [e["type"] for e in first["timeline"]["events"]] == ["transaction"]
    assert first["timeline"]["pageInfo"]["hasNextPage"]
    second = server.gql(query, id=cid, after=first["timeline"]["pageInfo"]["endCursor"])["data"]["customer"]
    assert second["timeline"]["events"][0]["data"]["order_id"] == "ORD-2"  # both records' orders: one customer
    assert {o["orderId"] for o in first["orders"]["orders"]} == {"ORD-1", "ORD-2"}
    assert first["orders"]["orders"][0]["lineItems"] == [{"productId": "P1", "quantity": 2, "unitPrice": "9.95"}]
    assert first["transactions"]["transactions"] == [
        {"transactionId": "TX-1", "orderId": "ORD-1", "amount": "19.90", "kind": "payment"}
    ]


def test_merge_redirects_the_old_id_and_split_undoes_it(server: Server) -> None:
    bob = server.rest("/v1/customers", "data_steward", email="bob.stone@example.com").json()["customers"][0]["id"]
    carl = server.rest("/v1/customers", "data_steward", email="carl.marsh@example.com").json()["customers"][0]["id"]
    merged = server.gql(
        'mutation($a: ID!, $b: ID!) { merge(a: $a, b: $b, reason: "same household account") { id sources } }',
        a=bob,
        b=carl,
    )
    survivor, gone = min(bob, carl), max(bob, carl)
    assert merged["data"]["merge"]["id"] == survivor
    again = server.gql(CUSTOMER_QUERY, id=gone)["data"]["customer"]
    assert again["id"] == survivor and again["redirected"] is True
    assert server.rest(f"/v1/customers/{gone}", "marketer").json()["redirected"] is True
    conflict = server.gql('mutation($a: ID!, $b: ID!) { merge(a: $a, b: $b, reason: "again") { id } }', a=bob, b=carl)
    assert conflict["errors"][0]["extensions"]["code"] == "CONFLICT"
    undone = server.gql(
        'mutation($c: ID!) { split(customerId: $c, records: ["crm|C1"], reason: "two people") '
        "{ remaining { id } splitOff { id golden { name value } } } }",
        c=survivor,
    )["data"]["split"]
    assert undone["remaining"]["id"] == survivor
    assert {g["name"]: g["value"] for g in undone["splitOff"]["golden"]}["first_name"] == "Carl"
    history = server.gql("query($id: ID!) { customer(id: $id) { history { kind data } } }", id=survivor)
    assert [h["kind"] for h in history["data"]["customer"]["history"]] == ["merge", "split"]


def test_credentials_are_checked_401_and_403(server: Server) -> None:
    cid = _ann_id(server)
    assert server.rest(f"/v1/customers/{cid}").status_code == 401
    missing = server.gql(CUSTOMER_QUERY, role=None, id=cid)
    assert missing["status"] == 401 and missing["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for bad in (
        server.token("marketer", exp=int(time.time()) - 600),
        server.token("marketer", aud="someone-else"),
        server.token("marketer", iss="https://evil.example"),
        server.token("marketer", role="nobody"),
        jwt.encode({"sub": "x", "role": "admin"}, "guessed-secret-guessed-secret-32b", algorithm="HS256"),
    ):
        response = server.http.get(f"{server.url}/v1/customers/{cid}", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer" and "Traceback" not in response.text
    partner_auth = {"Authorization": f"Bearer {server.partner_key}"}
    partner = server.http.get(f"{server.url}/v1/customers/{cid}", headers=partner_auth)
    assert partner.status_code == 403


def test_partner_keys_are_rate_limited_with_retry_after(server: Server) -> None:
    auth = {"Authorization": f"Bearer {server.busy_key}"}
    statuses = []
    for _ in range(6):
        response = server.http.post(f"{server.url}/v1/events", json=[], headers=auth)
        statuses.append(response.status_code)
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    limited = server.http.post(f"{server.url}/v1/events", json=[], headers=auth)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"] == "application/problem+json"


def test_errors_carry_codes_and_limits_hold(server: Server) -> None:
    too_big = server.gql("query { customers(first: 1000) { nodes { id } } }")
    assert too_big["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    nested = "{ customers { nodes { timeline { events { id } pageInfo { hasNextPage } } } } }"
    assert "errors" not in server.gql(nested)
    aliases = "{ " + " ".join(f"a{i}: customers(first: 1) {{ nodes {{ id }} }}" for i in range(40)) + " }"
    assert server.gql(aliases)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # Cost: a page of 100 customers with 100 events each may resolve ~20,000 fields: refused before it runs.
    costly = server.gql("{ customers(first: 100) { nodes { timeline(first: 100) { events { id type } } } } }")
    assert costly["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "more than 5000" in costly["errors"][0]["message"] and costly["data"] is None
    fragment = "fragment F on Customer { timeline(first: 100) { events { id type data } } } "
    spread = server.gql(fragment + "query { customers(first: $n) { nodes { ...F } } }".replace("$n", "60"))
    assert spread["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    fine = server.gql(
        "{ customers(first: 50) { nodes { identifiers { kind value } timeline(first: 5) { events { id } } } } }"
    )
    assert "errors" not in fine, fine
    bad_cursor = server.gql('{ customers(after: "%%%") { nodes { id } } }')
    assert bad_cursor["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    bad_email = server.rest("/v1/customers", "data_steward", email="not-an-email")
    assert bad_email.status_code == 400 and bad_email.json()["title"] == "InvalidInputError"
    assert server.rest("/v1/customers/C404", "data_steward").status_code == 404


def test_search_and_lookup(server: Server) -> None:
    cid = _ann_id(server)
    by_phone = server.rest("/v1/customers", "data_steward", phone="(415) 555-0199").json()["customers"]
    assert [c["id"] for c in by_phone] == [cid]
    # A data consumer sees phones hashed: searching by one would be an oracle (tests/test_masking_hardening.py).
    assert server.rest("/v1/customers", "data_consumer", phone="(415) 555-0199").status_code == 403
    page = server.gql('{ customers(search: "annabel.lee@example.com") { nodes { id } } }')
    assert [n["id"] for n in page["data"]["customers"]["nodes"]] == [cid]
    walk, after = [], None
    while True:
        got = server.gql(
            "query($a: String) { customers(first: 2, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } }",
            a=after,
        )
        walk += [n["id"] for n in got["data"]["customers"]["nodes"]]
        if not got["data"]["customers"]["pageInfo"]["hasNextPage"]:
            break
        after = got["data"]["customers"]["pageInfo"]["endCursor"]
    assert cid in walk and len(walk) == len(set(walk)) >= 3


def test_reads_and_changes_are_audited_and_the_chain_verifies(server: Server) -> None:
    cid = _ann_id(server)
    server.rest(f"/v1/customers/{cid}", "marketer")
    server.gql(QUERIES["read_review_queue"], "marketer")
    entries = [json.loads(line) for line in (server.home / ".c360" / "audit.log").read_text().splitlines()]
    mine = [e for e in entries if e["actor"] == "tester" and e["target"] == cid and e["role"] == "marketer"]
    assert any(e["action"] == "read_profile" and e["outcome"] == "ok" for e in mine)
    assert any(e["action"] == "read_review_queue" and e["outcome"] == "denied" for e in entries)
    assert any(e["action"] == "post_events" and e["actor"] == "busy" and e["outcome"] == "ok" for e in entries)
    changes = [e for e in entries if e["action"] in ("merge", "split")]
    assert [(e["action"], e["outcome"]) for e in changes if e["outcome"] == "ok"] == [("merge", "ok"), ("split", "ok")]
    assert any(e["action"] == "merge" and e["outcome"] == "refused" and "ConflictError" in e["detail"] for e in changes)
    assert "audit trail intact" in c360("audit", "verify", cwd=server.home).stdout


def test_ops_endpoints_openapi_graphiql_and_sdl(server: Server) -> None:
    assert server.http.get(f"{server.url}/readyz").json()["status"] == "ready"
    metrics = server.http.get(f"{server.url}/metrics").text
    assert 'c360_http_requests_total{method="GET",route="/v1/customers/{customer_id}"' in metrics
    paths = server.http.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/v1/customers/{customer_id}", "/v1/customers", "/v1/events"} <= set(paths)
    ide = server.http.get(f"{server.url}/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    sdl = c360("graphql", "schema", cwd=server.home).stdout
    assert "type Customer" in sdl and "reviewQueue(" in sdl and "approveReview(" in sdl


class CountingStore:
    """The real embedded store, counting calls to its public methods (what a DataLoader saves)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if callable(attr) and not name.startswith("_"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attr(*args, **kwargs)

            return counted
        return attr


def test_a_page_of_50_customers_with_identifiers_costs_a_bounded_number_of_store_calls(tmp_path: Path) -> None:
    import asyncio

    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.graphql.app import ApiOptions, create_app
    from c360.graphql.audit import AuditLog
    from c360.graphql.auth import TokenVerifier
    from c360.graphql.partners import PartnerKeys
    from c360.graphql.schema import build_schema
    from c360.graphql.service import ProfileService
    from c360.resolution.linker import Linker
    from c360.streams.pipeline import Pipeline
    from c360.streams.runner import Runner

    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "graph.db"))
    pipeline = Pipeline(store, Linker(store))
    people = [
        profile_event(f"p{i}", "crm", f"K{i}", i % 60, first_name=f"N{i}", email=f"p{i}@example.com") for i in range(80)
    ]
    assert len(pipeline.process(people).accepted) == 80
    counting = CountingStore(store)
    policy = load_policy()
    audit = AuditLog(tmp_path / "audit.log")
    config = AuthConfig(dev_mode=True, dev_key_file=tmp_path / "dev.key")
    options = ApiOptions(
        policy=policy,
        audit=audit,
        verifier=TokenVerifier(config, policy.roles),
        dev_mode=True,
        service=ProfileService(counting, policy, audit),  # type: ignore[arg-type]
    )
    partners = PartnerKeys(tmp_path / "p.json")
    app = create_app(store=counting, sink=Runner(pipeline), partners=partners, options=options)  # type: ignore[arg-type]
    token = issue_dev_token(config, "data_steward", roles=policy.roles)
    query = "{ customers(first: 50) { nodes { id identifiers { kind value } } pageInfo { hasNextPage } } }"

    async def ask() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c360") as client:
            response = await client.post(
                "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
            )
            return dict(response.json())

    body = asyncio.run(ask())
    nodes = body["data"]["customers"]["nodes"]
    assert len(nodes) == 50 and all(n["identifiers"] for n in nodes)
    assert counting.calls == ["list_customers", "get_profiles"], counting.calls  # not one call per customer
    audit.close()
    assert AuditLog(tmp_path / "audit.log").verify().entries == 50  # one read_profile entry per customer
    # The depth limit: a schema limited to depth 2 refuses a query deeper than that, with a code.
    shallow = build_schema(max_depth=2)
    deep = asyncio.run(shallow.execute("{ customers { nodes { identifiers { kind } } } }"))
    assert deep.errors and "exceeds maximum operation depth" in deep.errors[0].message
    store.close()


def test_cli_issues_dev_tokens_only_in_dev_mode(server: Server) -> None:
    refused = c360("auth", "token", "--role", "marketer", cwd=server.home, ok=False)
    assert refused.returncode == 1 and "dev mode only" in refused.stderr
    unknown = c360("auth", "token", "--role", "pirate", "--dev", cwd=server.home, ok=False)
    assert unknown.returncode == 1 and "unknown role" in unknown.stderr
    token = c360(
        "auth", "token", "--role", "data_steward", "--subject", "cli-user", "--dev", cwd=server.home
    ).stdout.strip()
    cid = _ann_id(server)
    answer = server.http.get(f"{server.url}/v1/customers/{cid}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json()["golden"]["email"]["value"] == ANN["email"]
