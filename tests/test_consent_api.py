"""The consent API (issue 15): REST and GraphQL, every role, the one question, receipts, agents' records.

The app is ``deps.build_app`` (its receipt issuer and purposes from the settings) over an embedded store;
tokens are dev JWTs per role. A receipt fetched verifies with :func:`c360.graph.receipts.verify` against
the JWKS the app serves; bad input is refused with a code and nothing written; every call is audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from c360.graph.receipts import verify
from c360.graph.store import GraphStore
from c360.graphql.auth import issue_dev_token
from c360.graphql.policy import load_policy
from fastapi.testclient import TestClient
from payloads import profile_event

from c360.deps import auth_config, build_app, build_pipeline, build_store
from c360.settings import ApiSettings, Settings

POLICY = load_policy()
#: roles a staff (SSO) token may carry: an applicant's principal comes only from an applicant session
STAFF_ROLES = [r for r in POLICY.roles if r != "applicant"]
NOTICE = hashlib.sha256(b"We will send you offers by email.").hexdigest()
RECORD = """mutation($input: RecordConsentInput!) { recordConsent(input: $input) {
  customerId replayed event { id record purpose channel status actorKind actorId method source jurisdiction
  notice { id version language textSha256 } } } }"""
MAY = """query($id: ID!, $channel: String!, $purpose: String!, $at: DateTime) {
  mayContact(customerId: $id, channel: $channel, purpose: $purpose, at: $at) {
    customerId allowed status reason eventId receipt } }"""
CONSENT = """query($id: ID!) { consent(customerId: $id) { customerId events states { purpose channel status
  event { id record status actorKind actorId capturedAt } } } }"""


@dataclass
class Api:
    settings: Settings
    client: TestClient
    store: GraphStore
    ann: str
    bob: str

    def token(self, role: str, subject: str = "tester") -> str:
        return issue_dev_token(auth_config(self.settings), role, subject, roles=POLICY.roles)

    def gql(self, query: str, role: str, subject: str = "tester", **variables: Any) -> dict[str, Any]:
        response = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token(role, subject)}"},
        )
        body: dict[str, Any] = response.json()
        return body

    def rest(self, path: str, role: str, **params: str) -> Any:
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.token(role)}"})

    def audit(self) -> list[dict[str, Any]]:
        lines = (self.settings.data_dir / "audit.log").read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        return [e for e in entries if isinstance(e, dict) and "action" in e]

    def events(self, customer: str) -> int:
        return len(self.store.consent_events(customer))

    def record_input(self, role: str, customer: str, **changes: Any) -> dict[str, Any]:
        """An agent's input for ``customer``'s CRM record, named by its uid as ``role`` is shown it."""
        doc = self.rest(f"/v1/customers/{customer}", role).json()
        uid = f"{doc['records'][0]['source']}|{doc['records'][0]['key']}"
        return {
            "customerId": customer,
            "record": uid,
            "purpose": "marketing",
            "channel": "email",
            "status": "granted",
            "jurisdiction": "DE",
            "noticeId": "newsletter",
            "noticeVersion": "3",
            "noticeSha256": NOTICE,
            **changes,
        }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("consent-api")
    settings = Settings(data_dir=home / ".c360", api=ApiSettings(dev_mode=True))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = build_store(settings)
    events = [
        profile_event("a1", "crm", "ANN-1", 0, first_name="Ann", last_name="Field", email="ann.field@example.com"),
        profile_event("b1", "crm", "BOB-1", 1, first_name="Bob", last_name="Stone", email="bob.stone@example.com"),
    ]
    assert len(build_pipeline(settings, store).process(events).accepted) == 2
    ids = store.lookup(["crm|ANN-1", "crm|BOB-1"], []).records
    with TestClient(build_app(settings, store)) as client:
        yield Api(settings, client, store, ids["crm|ANN-1"].customer_id, ids["crm|BOB-1"].customer_id)
    store.close()


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def test_the_check_follows_a_grant_then_a_withdrawal_and_the_receipt_verifies_with_the_served_jwks(api: Api) -> None:
    before = api.rest(
        f"/v1/customers/{api.ann}/consent/check", "compliance_officer", channel="email", purpose="marketing"
    )
    assert before.status_code == 200, before.text
    assert before.json()["allowed"] is False and before.json()["status"] == "none" and before.json()["receipt"] is None

    granted = api.gql(
        RECORD,
        "service_agent",
        "agent-7",
        input=api.record_input("service_agent", api.ann, capturedAt="2026-06-01T09:00:00Z"),
    )
    assert _codes(granted) == [], granted
    event = granted["data"]["recordConsent"]["event"]
    assert granted["data"]["recordConsent"]["replayed"] is False
    assert (event["status"], event["actorKind"], event["method"], event["source"]) == (
        "granted",
        "agent",
        "call_centre",
        "api",
    )
    # An agent sees record keys and actor ids hashed (the policy's source_key rule).
    assert event["record"].startswith("crm|hmac:") and event["actorId"].startswith("hmac:")

    answer = api.rest(
        f"/v1/customers/{api.ann}/consent/check", "compliance_officer", channel="email", purpose="marketing"
    )
    doc = answer.json()
    assert doc["allowed"] is True and doc["status"] == "granted" and doc["event_id"] and doc["receipt"], doc
    jwks = api.client.get("/.well-known/jwks.json").json()
    claims = verify(doc["receipt"], jwks)
    assert claims["c360"]["status"] == "granted" and claims["c360"]["actor"] == {"kind": "agent", "id": "agent-7"}
    assert claims["c360"]["record"] == "crm|ANN-1" and claims["piiPrincipalId"] == api.ann

    # The receipt route answers the same JWS; the event id as the role is shown it.
    receipt = api.rest(f"/v1/customers/{api.ann}/consent/receipts/{doc['event_id']}", "compliance_officer")
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["receipt"] == doc["receipt"]
    verify(receipt.json()["receipt"], jwks)
    raw_id = claims["c360"]["event"]
    assert api.rest(f"/v1/customers/{api.ann}/consent/receipts/{raw_id}", "admin").json()["receipt"] == doc["receipt"]
    # Not this customer's event: 404, as a problem body.
    other = api.rest(f"/v1/customers/{api.bob}/consent/receipts/{raw_id}", "admin")
    assert other.status_code == 404 and other.headers["content-type"].startswith("application/problem+json")

    withdrawn = api.gql(
        RECORD,
        "service_supervisor",
        input=api.record_input("service_supervisor", api.ann, status="withdrawn", capturedAt="2026-06-02T09:00:00Z"),
    )
    assert _codes(withdrawn) == [], withdrawn
    after = api.gql(MAY, "admin", id=api.ann, channel="email", purpose="marketing")["data"]["mayContact"]
    assert after["allowed"] is False and after["status"] == "withdrawn" and after["eventId"] != raw_id
    assert verify(after["receipt"], jwks)["c360"]["status"] == "withdrawn"
    # At a time between the two, the grant decides.
    then = api.gql(MAY, "admin", id=api.ann, channel="email", purpose="marketing", at="2026-06-01T12:00:00Z")
    assert then["data"]["mayContact"]["allowed"] is True and then["data"]["mayContact"]["eventId"] == raw_id
    # Another channel: nothing recorded.
    sms = api.rest(f"/v1/customers/{api.ann}/consent/check", "marketer", channel="sms", purpose="marketing").json()
    assert sms["allowed"] is False and sms["status"] == "none"

    states = api.gql(CONSENT, "compliance_officer", id=api.ann)["data"]["consent"]
    assert states["events"] == 2
    assert [(s["purpose"], s["channel"], s["status"]) for s in states["states"]] == [
        ("marketing", "email", "withdrawn")
    ]
    rest = api.rest(f"/v1/customers/{api.ann}/consent", "service_agent").json()
    assert rest["states"][0]["status"] == "withdrawn" and rest["states"][0]["event"]["record"].startswith("crm|hmac:")
    steward = api.rest(f"/v1/customers/{api.ann}/consent", "data_steward").json()
    assert steward["states"][0]["event"]["record"] == "crm|ANN-1"  # a role that sees keys in full
    assert steward["states"][0]["event"]["actor_id"] == "tester"


def test_marketers_ask_the_question_without_the_receipt(api: Api) -> None:
    answer = api.gql(MAY, "marketer", id=api.ann, channel="email", purpose="marketing")
    assert _codes(answer) == [], answer
    decision = answer["data"]["mayContact"]
    assert decision["receipt"] is None and decision["status"] in ("granted", "withdrawn", "none")
    assert decision["eventId"] is None or decision["eventId"].startswith("hmac:")


# -- every role against every operation, from the policy ------------------------------------------------

OPERATIONS = ("read_consent", "check_consent", "record_consent", "read_consent_receipts")


@pytest.mark.parametrize("role", STAFF_ROLES)
@pytest.mark.parametrize("action", OPERATIONS)
def test_every_role_against_every_consent_operation(api: Api, role: str, action: str) -> None:
    allowed = POLICY.can(role, action)
    if action == "read_consent":
        gql = api.gql(CONSENT, role, id=api.bob)
        rest = api.rest(f"/v1/customers/{api.bob}/consent", role)
        assert _codes(gql) == ([] if allowed else ["FORBIDDEN"]), gql
        assert rest.status_code == (200 if allowed else 403), rest.text
    elif action == "check_consent":
        gql = api.gql(MAY, role, id=api.bob, channel="post", purpose="analytics")
        rest = api.rest(f"/v1/customers/{api.bob}/consent/check", role, channel="post", purpose="analytics")
        assert _codes(gql) == ([] if allowed else ["FORBIDDEN"]), gql
        assert rest.status_code == (200 if allowed else 403), rest.text
    elif action == "record_consent":
        body = api.gql(RECORD, role, input=api.record_input("admin", api.bob, customerId="C404"))
        assert _codes(body) == (["NOT_FOUND"] if allowed else ["FORBIDDEN"]), body  # allowed; no such customer
        assert body["data"] is None
    else:
        rest = api.rest(f"/v1/customers/{api.bob}/consent/receipts/E404", role)
        assert rest.status_code == (404 if allowed else 403), rest.text
    assert api.events(api.bob) == 0
    mine = [e for e in api.audit() if e["role"] == role and e["action"] == action]
    assert mine and mine[-1]["outcome"] == (
        "not_found"
        if allowed and action in ("record_consent", "read_consent_receipts")
        else "ok"
        if allowed
        else "denied"
    )


def test_the_new_roles_are_as_the_brief_says() -> None:
    for role in ("service_agent", "service_supervisor"):
        assert {"record_consent", "read_consent", "check_consent"} <= POLICY.grants[role]
        assert "read_consent_receipts" not in POLICY.grants[role]
    officer = POLICY.grants["compliance_officer"]
    assert {"read_consent", "read_consent_receipts"} <= officer and "record_consent" not in officer
    assert "read_consent_receipts" not in POLICY.grants["marketer"] and "check_consent" in POLICY.grants["marketer"]
    assert POLICY.grants["partner"] == frozenset({"post_events"})


# -- bad input: a code, a problem body, nothing written, audited -----------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"purpose": "astrology"},
        {"purpose": "Marketing!"},
        {"channel": "pigeon"},
        {"status": "maybe"},
        {"jurisdiction": "Germany"},
        {"noticeSha256": "abc"},
        {"method": "telepathy"},
        {"capturedAt": "2999-01-01T00:00:00Z"},
        {"status": "withdrawn", "expiresAt": "2027-01-01T00:00:00Z"},
        {"record": "crm|BOB-1"},  # a raw key from a role that sees keys hashed
        {"record": "crm|hmac:k1:" + "0" * 64},  # not a record of this customer
    ],
    ids=lambda c: "-".join(f"{k}={str(v)[:12]}" for k, v in c.items()),
)
def test_bad_input_is_a_graphql_error_with_a_code_and_nothing_is_written(api: Api, changes: dict[str, Any]) -> None:
    before = api.events(api.bob)
    body = api.gql(RECORD, "service_agent", input=api.record_input("service_agent", api.bob, **changes))
    codes = _codes(body)
    assert codes in (["BAD_USER_INPUT"], ["FORBIDDEN"]), body
    assert body["data"] is None
    assert api.events(api.bob) == before
    last = [e for e in api.audit() if e["action"] == "record_consent"][-1]
    assert last["outcome"] in ("refused", "denied") and last["target"] == api.bob


def test_an_input_that_does_not_coerce_is_bad_user_input(api: Api) -> None:
    query = 'mutation { recordConsent(input: {customerId: "x", record: 1}) { replayed } }'
    before = api.events(api.bob)
    body = api.gql(query, "service_agent")
    assert body["data"] is None and set(_codes(body)) == {"BAD_USER_INPUT"}, body  # refused before it ran
    assert api.events(api.bob) == before


@pytest.mark.parametrize(
    "params",
    [
        {"channel": "pigeon", "purpose": "marketing"},
        {"channel": "email", "purpose": "astrology"},
        {"channel": "email", "purpose": "marketing", "at": "yesterday"},
        {"channel": "email", "purpose": "marketing", "at": "2026-06-01T09:00:00"},
    ],
)
def test_a_bad_check_is_a_400_problem_and_audited(api: Api, params: dict[str, str]) -> None:
    response = api.rest(f"/v1/customers/{api.ann}/consent/check", "marketer", **params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400 and "Traceback" not in response.text
    last = [e for e in api.audit() if e["action"] == "check_consent"][-1]
    assert last["outcome"] == "refused" and last["role"] == "marketer"


def test_unknown_customers_are_404_and_unauthenticated_calls_401(api: Api) -> None:
    assert api.rest("/v1/customers/C404/consent", "admin").status_code == 404
    check = api.rest("/v1/customers/C404/consent/check", "admin", channel="email", purpose="marketing")
    assert check.status_code == 404
    assert api.client.get(f"/v1/customers/{api.ann}/consent").status_code == 401
    assert _codes(api.gql(MAY, "admin", id="C404", channel="email", purpose="marketing")) == ["NOT_FOUND"]


def test_a_replay_keeps_its_receipt_and_every_change_is_audited(api: Api) -> None:
    data = api.record_input("admin", api.bob, eventId="agent-replay-1", capturedAt="2026-07-01T08:00:00Z")
    first = api.gql(RECORD, "admin", input=data)["data"]["recordConsent"]
    again = api.gql(RECORD, "admin", input=data)["data"]["recordConsent"]
    assert (first["replayed"], again["replayed"]) == (False, True) and first["event"] == again["event"]
    assert api.events(api.bob) == 1
    entry = api.store.get_consent("agent-replay-1")
    assert entry is not None and entry.event.actor_id == "tester" and entry.event.actor_kind == "agent"
    changes = [e for e in api.audit() if e["action"] == "record_consent" and e["target"] == api.bob]
    assert [e["outcome"] for e in changes[-2:]] == ["ok", "ok"]
    conflict = api.gql(RECORD, "admin", input={**data, "status": "denied"})
    assert _codes(conflict) == ["CONFLICT"] and api.events(api.bob) == 1


def test_the_openapi_document_names_the_consent_routes(api: Api, tmp_path: Path) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/customers/{customer_id}/consent",
        "/v1/customers/{customer_id}/consent/check",
        "/v1/customers/{customer_id}/consent/receipts/{event_id}",
    ):
        assert "get" in paths[path]
