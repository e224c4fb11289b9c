"""KYC API role tests generated from the policy: every staff role against every KYC operation, REST and GraphQL.

For each role (POLICY.roles but ``applicant``, whose principal only comes from an applicant session) and each
operation, the call succeeds exactly when ``POLICY.can(role, action)`` for the action the service requires,
else 403 / FORBIDDEN, and leaves one audit entry with that action and ``ok`` / ``denied``. Masks are checked
per role against the policy itself; applicants act on their own applications only. The app and a few
applications in distinct states are built once (OCR takes seconds); a state-changing call that may succeed
gets a fresh application, one that must be refused runs against the shared ones and changes nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from c360.graphql.kyc_service import TASK_ACTION
from c360.graphql.policy import Policy, load_policy
from c360.graphql.schema_kyc import KycMutation, KycQuery
from c360.streams.kyc_desk import OUTCOMES
from document_images import aadhaar_card, aadhaar_number, encoded
from strawberry.types.base import get_object_definition
from strawberry.utils.str_converters import to_camel_case
from test_kyc_api import RAVI, Api, serve_kyc

from c360.deps import build_policy
from graphql import OperationDefinitionNode, parse

POLICY = load_policy()
#: roles a staff (SSO) token may carry: an applicant's principal comes only from an applicant session
STAFF_ROLES = [r for r in POLICY.roles if r != "applicant"]
READERS = [r for r in STAFF_ROLES if POLICY.can(r, "read_kyc_applications")]
NORIEGA = {"full_name": "Manuel Antonio Noriega", "pan": "ABCPN1234Q", "date_of_birth": "1985-03-14"}
PRIYA = {"full_name": "Priya Raman Iyer", "date_of_birth": "1990-07-21", "pan": "ABCPI5678K",
         "email": "priya.iyer@example.com", "mobile": "+919876501234", "address": "7 Residency Road, Chennai",
         "nationality": "IN"}  # fmt: skip
#: the profile field whose masking rule each entered field follows
FIELD_OF = {"full_name": "last_name", "mobile": "phone", "address": "address_line1",
            "date_of_birth": "date_of_birth", "email": "email", "nationality": "country"}  # fmt: skip
#: the GraphQL document of every KYC query field and mutation, by its name
GQL = {
    "kycApplication": """query($id: ID!) { kycApplication(id: $id) { id status pan aadhaar entered record
        customerId risk screeningHits verifications history tasks { id kind status assignee } } }""",
    "kycApplications": """query($customerId: ID) { kycApplications(customerId: $customerId, first: 100) {
        applications { id pan aadhaar entered record customerId tasks { id } risk } pageInfo { hasNextPage } } }""",
    "kycTasks": """query($assignee: String) { kycTasks(assignee: $assignee) {
        tasks { id applicationId kind assignee } pageInfo { hasNextPage } } }""",
    "startKycApplication": """mutation($amount: String!, $e: KycEnteredInput!) {
        startKycApplication(amount: $amount, entered: $e) { id status pan entered customerId tasks { id } risk } }""",
    "updateKycApplication": """mutation($id: ID!, $amount: String) {
        updateKycApplication(id: $id, amount: $amount) { id amount version } }""",
    "submitKycApplication": """mutation($id: ID!) { submitKycApplication(id: $id) {
        id status customerId tasks { id } risk screeningHits verifications } }""",
    "completeKycTask": """mutation($a: ID!, $t: ID!, $o: String!, $r: String!) {
        completeKycTask(applicationId: $a, taskId: $t, outcome: $o, reason: $r) {
        id status tasks { id status completedBy outcome } } }""",
    "assignKycTask": """mutation($a: ID!, $t: ID!, $assignee: String) {
        assignKycTask(applicationId: $a, taskId: $t, assignee: $assignee) { id tasks { id assignee } } }""",
    "requestKycInfo": """mutation($a: ID!, $r: String!) {
        requestKycInfo(applicationId: $a, reason: $r) { id status } }""",
}
_seq = itertools.count(1)
#: the outcome each task kind is completed with here (a false positive would quiet the name's later hits)
OUTCOME = {"verify_documents": "verified", "review_screening_hit": "confirmed_match",
           "enhanced_due_diligence": "cleared", "approve": "approved"}  # fmt: skip
#: sign-in is audited too; these tests look at the KYC actions
KYC_ACTIONS = {a for a in POLICY.actions if "kyc" in a or a == "read_own_application"}


@dataclass(frozen=True)
class Op:
    """One KYC operation: the policy action its service function requires, and its GraphQL field (if any)."""

    name: str
    action: str
    gql: str | None


OPERATIONS = [
    Op("read", "read_kyc_applications", "kycApplication"),
    Op("list", "read_kyc_applications", "kycApplications"),
    Op("tasks", "read_kyc_applications", "kycTasks"),
    Op("document", "read_kyc_documents", None),
    *(Op(f"complete:{kind}", action, "completeKycTask") for kind, action in TASK_ACTION.items()),
    Op("assign", "assign_kyc_task", "assignKycTask"),
    Op("request_info", "verify_kyc_documents", "requestKycInfo"),
    Op("report", "read_kyc_report", None),
]
#: what only applicants do (staff are refused)
APPLY_OPS = [
    Op("start", "apply_kyc", "startKycApplication"),
    Op("change", "apply_kyc", "updateKycApplication"),
    Op("submit", "apply_kyc", "submitKycApplication"),
    Op("upload", "apply_kyc", None),
]
#: what the applicant tests exercise over GraphQL on their own applications
APPLICANT_GQL = {"startKycApplication", "updateKycApplication", "submitKycApplication", "kycApplication"}
APPLICANT_GQL.add("kycApplications")
#: what applicants read of their own (read_own_application): the rest of OPERATIONS they are refused
OWN_READS = {"read", "list", "document"}


def _cases(ops: list[Op], roles: list[str]) -> list[Any]:
    return [
        pytest.param(role, op, proto, id=f"{role}-{op.name}-{proto}")
        for role in roles
        for op in ops
        for proto in ("rest", "graphql")
        if proto == "rest" or op.gql
    ]


@dataclass(frozen=True)
class Prepared:
    """An application made once for the module, with its applicant's session."""

    id: str
    who: dict[str, str]
    customer_id: str
    tasks: dict[str, str]  # open task id by kind
    document_id: str | None


@dataclass
class World:
    api: Api
    policy: Policy  # the app's policy, hashing with the deployment's keys
    filer: dict[str, str]  # an applicant session for fresh applications
    shared: dict[str, Prepared]  # by task kind: an application with that task open (see ENTERED_FOR)
    aadhaar: Prepared  # a draft of its own customer with an Aadhaar card uploaded

    def staff(self, role: str) -> tuple[str, dict[str, str]]:
        """A unique subject (to find its audit entries) and its dev token's headers."""
        subject = f"{role}.{next(_seq)}"
        return subject, self.api.staff(role, subject)

    def gql(self, name: str, who: dict[str, str], **variables: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.api.client.post(
            "/graphql", json={"query": GQL[name], "variables": variables}, headers=who
        ).json()
        return body

    def entries(self, actor: str) -> list[tuple[str, str]]:
        return [(e["action"], e["outcome"]) for e in self.api.audit() if e.get("actor") == actor]

    @property
    def submitted(self) -> Prepared:
        """Submitted, its verify_documents task assigned to QUEUE (the PAN card's document id kept)."""
        return self.shared["verify_documents"]

    def fresh(self, kind: str) -> tuple[str, str]:
        """A fresh application with an open task of ``kind``: (application id, task id)."""
        app_id = _with_task(self.api, self.filer, kind)
        return app_id, str(self.api.task(app_id, kind)["id"])


#: what an application is entered with to open each kind of task (a PEP is high risk: due diligence)
ENTERED_FOR: dict[str, dict[str, str]] = {"verify_documents": {}, "review_screening_hit": NORIEGA,
                                          "enhanced_due_diligence": {"pep": "yes"}, "approve": {}}  # fmt: skip


def _with_task(api: Api, who: dict[str, str], kind: str) -> str:
    """A submitted application with an open task of ``kind`` (verified by someone else first where needed)."""
    app_id = str(api.ready(who, ENTERED_FOR[kind])["id"])
    if kind in ("enhanced_due_diligence", "approve"):
        verify = api.task(app_id, "verify_documents")
        assert api.complete(app_id, verify["id"], "admin", "pre-verifier", "verified").status_code == 200
    return app_id


QUEUE = "probe-queue"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with serve_kyc(tmp_path_factory.mktemp("kyc-roles")) as api:
        yield _world(api, build_policy(api.settings))


def _prepare(api: Api, who: dict[str, str], app_id: str, document: str | None = None) -> Prepared:
    full = api.read(app_id, "admin")
    tasks = {t["kind"]: t["id"] for t in full["tasks"] if t["status"] == "open"}
    doc = next((d["document_id"] for d in full["documents"] if d["doc_type"] == document), None)
    return Prepared(app_id, who, full["customer_id"], tasks, doc)


def _world(api: Api, policy: Policy) -> World:
    made = [api.applicant()[1] for _ in range(len(TASK_ACTION) + 2)]
    owners = dict(zip(TASK_ACTION, made, strict=False))  # one applicant per task kind
    shared = {kind: _prepare(api, who, _with_task(api, who, kind), "pan_card") for kind, who in owners.items()}
    verify = shared["verify_documents"]
    assign = f"/v1/kyc/applications/{verify.id}/tasks/{verify.tasks['verify_documents']}/assign"
    assert api.client.post(assign, json={"assignee": QUEUE}, headers=api.staff("admin")).status_code == 200
    body = {"product": "auto_loan", "amount": "400000.00", "entered": PRIYA}
    draft = api.client.post("/v1/kyc/applications", json=body, headers=made[-2]).json()["id"]
    card = aadhaar_card(name=PRIYA["full_name"], dob=date(1990, 7, 21), number=aadhaar_number("59182736452"))
    assert api.upload(made[-2], draft, "aadhaar", encoded(card), "image/png").status_code == 201
    w = World(api, policy, made[-1], shared, _prepare(api, made[-2], draft, "aadhaar"))
    assert all(kind in w.shared[kind].tasks for kind in TASK_ACTION) and w.aadhaar.tasks == {}
    return w


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def _answer(response: Any) -> int | list[str]:
    """A REST status or the GraphQL error codes (an empty list: it worked)."""
    return _codes(response) if isinstance(response, dict) else int(response.status_code)


def _ok(proto: str) -> int | list[str]:
    return [] if proto == "graphql" else 200


def _refused(proto: str, code: str = "FORBIDDEN") -> int | list[str]:
    status = {"FORBIDDEN": 403, "NOT_FOUND": 404, "CONFLICT": 409, "BAD_USER_INPUT": 400}[code]
    return [code] if proto == "graphql" else status


def _complete(w: World, proto: str, who: dict[str, str], app_id: str, task_id: str, outcome: str) -> Any:
    if proto == "graphql":
        return w.gql("completeKycTask", who, a=app_id, t=task_id, o=outcome, r="checked")
    url = f"/v1/kyc/applications/{app_id}/tasks/{task_id}/complete"
    return w.api.client.post(url, json={"outcome": outcome, "reason": "checked"}, headers=who)


def _request_info(w: World, proto: str, who: dict[str, str], app_id: str, reason: str = "a newer bill") -> Any:
    if proto == "graphql":
        return w.gql("requestKycInfo", who, a=app_id, r=reason)
    return w.api.client.post(f"/v1/kyc/applications/{app_id}/request-info", json={"reason": reason}, headers=who)


def _read_only(w: World, op: Op, proto: str, who: dict[str, str], allowed: bool) -> None:
    """read / list / tasks / document / report; when allowed, the answer holds what was asked for."""
    s, client = w.submitted, w.api.client
    rest = {
        "read": (f"/v1/kyc/applications/{s.id}", {}),
        "list": ("/v1/kyc/applications", {"customer_id": w.aadhaar.customer_id}),
        "tasks": ("/v1/kyc/tasks", {"assignee": QUEUE}),
        "document": (f"/v1/kyc/applications/{s.id}/documents/{s.document_id}/content", {}),
        "report": ("/v1/kyc/report", {}),
    }
    if proto == "graphql":
        variables = {"read": {"id": s.id}, "list": {"customerId": w.aadhaar.customer_id}, "tasks": {"assignee": QUEUE}}
        assert op.gql is not None
        got: Any = w.gql(op.gql, who, **variables[op.name])
        data: Any = (got.get("data") or {}).get(op.gql)
    else:
        path, params = rest[op.name]
        got = client.get(path, params=params, headers=who)
        data = got.json() if got.status_code == 200 and op.name in ("read", "list", "tasks") else got
    assert _answer(got) == (_ok(proto) if allowed else _refused(proto)), got
    if not allowed:
        assert data is None or proto == "rest"
        return
    if op.name == "read":
        assert data["id"] == s.id
    elif op.name == "list":
        assert [a["id"] for a in data["applications"]] == [w.aadhaar.id]
    elif op.name == "tasks":
        tasks = [(t.get("application_id") or t.get("applicationId"), t["assignee"]) for t in data["tasks"]]
        assert tasks == [(s.id, QUEUE)]
    elif op.name == "document":
        assert data.headers["content-type"] == "image/png" and data.content.startswith(b"\x89PNG")
    else:
        assert data.text.splitlines()[0].startswith("status,risk_category,applications")


@pytest.mark.parametrize(("role", "op", "proto"), _cases(OPERATIONS, STAFF_ROLES))
def test_every_staff_role_against_every_kyc_operation(world: World, role: str, op: Op, proto: str) -> None:
    w, allowed = world, POLICY.can(role, op.action)
    subject, who = w.staff(role)
    expected = [(op.action, "ok" if allowed else "denied")]
    if op.name.startswith("complete:"):
        kind = op.name.partition(":")[2]
        app_id, task_id = w.fresh(kind) if allowed else (w.shared[kind].id, w.shared[kind].tasks[kind])
        got = _complete(w, proto, who, app_id, task_id, OUTCOME[kind])
        assert _answer(got) == (_ok(proto) if allowed else _refused(proto)), got
        task = next(t for t in w.api.read(app_id, "admin")["tasks"] if t["id"] == task_id)
        assert (task["status"], task["completed_by"]) == (("done", subject) if allowed else ("open", None))
        if allowed:  # again: the permission holds, the done task does not move (409, audited as refused)
            again = _complete(w, proto, who, app_id, task_id, OUTCOME[kind])
            assert _answer(again) == _refused(proto, "CONFLICT"), again
            expected.append((op.action, "refused"))
    elif op.name == "assign":
        p, mine = w.shared["approve"], f"{subject}-desk"
        if proto == "graphql":
            got = w.gql("assignKycTask", who, a=p.id, t=p.tasks["approve"], assignee=mine)
        else:
            url = f"/v1/kyc/applications/{p.id}/tasks/{p.tasks['approve']}/assign"
            got = w.api.client.post(url, json={"assignee": mine}, headers=who)
        assert _answer(got) == (_ok(proto) if allowed else _refused(proto)), got
        task = next(t for t in w.api.read(p.id, "admin")["tasks"] if t["id"] == p.tasks["approve"])
        assert (task["assignee"] == mine) == allowed
    elif op.name == "request_info":
        app_id = str(w.api.ready(w.filer, {})["id"]) if allowed else w.submitted.id
        got = _request_info(w, proto, who, app_id)
        assert _answer(got) == (_ok(proto) if allowed else _refused(proto)), got
        status = w.api.read(app_id, "admin")["status"]
        assert status == ("more_info_requested" if allowed else "submitted")
    else:
        _read_only(w, op, proto, who, allowed)
    assert w.entries(subject) == expected


@pytest.mark.parametrize(("role", "op", "proto"), _cases(APPLY_OPS, STAFF_ROLES))
def test_staff_cannot_start_change_submit_or_upload(world: World, role: str, op: Op, proto: str) -> None:
    w, client = world, world.api.client
    subject, who = w.staff(role)
    draft = w.aadhaar.id
    before = w.api.store.get_application(draft).version
    url, e = f"/v1/kyc/applications/{draft}", {"fullName": RAVI["full_name"], "dateOfBirth": RAVI["date_of_birth"]}
    calls: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "start": (lambda: w.gql("startKycApplication", who, amount="1000.00", e=e),
                  lambda: client.post("/v1/kyc/applications", json={"amount": "1.00", "entered": RAVI}, headers=who)),
        "change": (lambda: w.gql("updateKycApplication", who, id=draft, amount="1.00"),
                   lambda: client.patch(url, json={"amount": "1.00"}, headers=who)),
        "submit": (lambda: w.gql("submitKycApplication", who, id=draft),
                   lambda: client.post(f"{url}/submit", headers=who)),
        "upload": (lambda: None, lambda: w.api.upload(who, draft, "address_proof", b"%PDF-1.4\n", "application/pdf")),
    }  # fmt: skip
    got = calls[op.name][0 if proto == "graphql" else 1]()
    assert _answer(got) == _refused(proto), got
    assert w.api.store.get_application(draft).version == before
    if op.name != "start":  # the policy refuses (denied); admin may apply_kyc, the service then refuses
        assert w.entries(subject) == [(op.action, "refused" if POLICY.can(role, op.action) else "denied")]
    elif proto == "rest":  # refused before the service's audit: the HTTP layer audits the 403
        assert [o for _, o in w.entries(subject)] == ["denied"]


def test_a_staff_start_over_graphql_is_audited(world: World) -> None:
    unaudited = []
    for role in STAFF_ROLES:
        subject, who = world.staff(role)
        entered = {"fullName": "X Y", "dateOfBirth": "1980-01-01"}
        assert _codes(world.gql("startKycApplication", who, amount="1.00", e=entered)) == ["FORBIDDEN"]
        if world.entries(subject) != [("apply_kyc", "denied")]:
            unaudited.append((role, world.entries(subject)))
    assert unaudited == []


def test_completing_a_task_of_an_unknown_application_checks_the_permission_first(world: World) -> None:
    wrong = []
    for role, proto in itertools.product(STAFF_ROLES, ("rest", "graphql")):
        subject, who = world.staff(role)
        allowed = POLICY.can(role, "read_kyc_applications")
        got = _answer(_complete(world, proto, who, "app_00000000000000000000", "task_0000", "verified"))
        audited = world.entries(subject)
        if got != (_refused(proto, "NOT_FOUND") if allowed else _refused(proto)) or not audited:
            wrong.append((role, proto, got, audited))
    assert wrong == []


def test_request_info_checks_the_permission_before_the_reason(world: World) -> None:
    wrong = []
    for role, proto in itertools.product(STAFF_ROLES, ("rest", "graphql")):
        got = _answer(_request_info(world, proto, world.staff(role)[1], world.submitted.id, reason=" "))
        if not POLICY.can(role, "verify_kyc_documents") and got != _refused(proto):
            wrong.append((role, proto, got))
    assert wrong == []


def _staff_view(w: World, role: str, proto: str, app_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The application as ``role`` reads it by id and by listing its customer (same keys over both protocols)."""
    who = w.api.staff(role)
    if proto == "graphql":
        one = w.gql("kycApplication", who, id=app_id)["data"]["kycApplication"]
        listed = w.gql("kycApplications", who, customerId=w.aadhaar.customer_id)["data"]["kycApplications"]
    else:
        one = w.api.client.get(f"/v1/kyc/applications/{app_id}", params={"history": True}, headers=who).json()
        listed = w.api.client.get("/v1/kyc/applications", params={"customer_id": w.aadhaar.customer_id}, headers=who)
        listed = listed.json()
    (item,) = listed["applications"]
    return one, item


@pytest.mark.parametrize("proto", ["rest", "graphql"])
@pytest.mark.parametrize("role", READERS)
def test_each_reader_sees_pan_aadhaar_entered_and_record_as_the_policy_masks_them(
    world: World, role: str, proto: str
) -> None:
    a = world.aadhaar
    mine = world.api.client.get(f"/v1/kyc/applications/{a.id}", headers=a.who).json()  # entered as entered
    number = aadhaar_number("59182736452")
    raw = world.api.store.get_application(a.id)
    expected_entered = {}
    for name, value in mine["entered"].items():
        shown = world.policy.mask(role, FIELD_OF[name], value)
        if shown is not None:
            expected_entered[name] = shown.isoformat() if isinstance(shown, date) else shown
    one, listed = _staff_view(world, role, proto, a.id)
    for view in (one, listed):
        pan = PRIYA["pan"] if POLICY.can(role, "read_kyc_pan") else "XXXXXX" + PRIYA["pan"][-4:]
        aadhaar = number if POLICY.can(role, "read_kyc_aadhaar") else "XXXX XXXX " + number[-4:]
        assert (view["pan"], view["aadhaar"]) == (pan, aadhaar)
        assert view["entered"] == expected_entered
        assert view["record"] == world.policy.mask_uid(role, raw.record_uid)
    uids = [e["data"]["record_uid"] for e in one["history"] if "record_uid" in e["data"]]
    assert uids == [world.policy.mask_uid(role, raw.record_uid)]  # the history's too
    assert set(mine["entered"]) == set(FIELD_OF)  # every entered field was checked
    assert mine["pan"] == "XXXXXX" + PRIYA["pan"][-4:] and mine["aadhaar"] == "XXXX XXXX " + number[-4:]


#: what an applicant never sees of their application
HIDDEN = {"tasks", "risk", "screening_hits", "verifications", "customer_id"}
HIDDEN_GQL = {"tasks", "risk", "screeningHits", "verifications", "customerId"}


def test_applicants_apply_and_read_their_own_over_rest_and_graphql(world: World) -> None:
    w, client = world, world.api.client
    applicant, who = w.api.applicant()
    entered = {"fullName": RAVI["full_name"], "dateOfBirth": RAVI["date_of_birth"], "pan": RAVI["pan"]}
    made = w.gql("startKycApplication", who, amount="300000", e=entered)
    assert _codes(made) == [] and made["data"]["startKycApplication"]["status"] == "draft", made
    app_id = made["data"]["startKycApplication"]["id"]
    assert {k for k, v in made["data"]["startKycApplication"].items() if v is None} >= {"customerId", "tasks", "risk"}
    changed = w.gql("updateKycApplication", who, id=app_id, amount="350000.00")
    assert _codes(changed) == [] and changed["data"]["updateKycApplication"]["amount"] == "350000.00", changed
    rest = w.api.ready(who, {})  # REST start, uploads and submit
    assert not HIDDEN & set(rest) and rest["status"] == "submitted"
    # the GraphQL draft gets its documents over REST (uploads are REST only) and is submitted over GraphQL
    for doc in w.api.read(rest["id"], "admin")["documents"]:
        data = client.get(f"/v1/kyc/applications/{rest['id']}/documents/{doc['document_id']}/content", headers=who)
        assert data.status_code == 200
        assert w.api.upload(who, app_id, doc["doc_type"], data.content, doc["media_type"]).status_code == 201
    sent = w.gql("submitKycApplication", who, id=app_id)
    assert _codes(sent) == [] and sent["data"]["submitKycApplication"]["status"] == "submitted", sent
    assert all(sent["data"]["submitKycApplication"][k] is None for k in HIDDEN_GQL)
    assert w.api.read(app_id, "admin")["tasks"], "the staff see the tasks the submission opened"
    one = w.gql("kycApplication", who, id=app_id)["data"]["kycApplication"]
    assert one["id"] == app_id and all(one[k] is None for k in HIDDEN_GQL | {"record", "history"})
    assert one["pan"] == "XXXXXX234D" and one["entered"]["full_name"] == RAVI["full_name"]
    page = w.gql("kycApplications", who)["data"]["kycApplications"]["applications"]
    assert {a["id"] for a in page} == {app_id, rest["id"]}
    assert all(a["customerId"] is None and a["tasks"] is None and a["risk"] is None for a in page)
    listed = client.get("/v1/kyc/applications", headers=who).json()["applications"]
    assert {a["id"] for a in listed} == {app_id, rest["id"]} and not any(HIDDEN & set(a) for a in listed)
    mine = client.get(f"/v1/kyc/applications/{app_id}", headers=who).json()
    assert not HIDDEN & set(mine) and mine["status"] == "submitted"
    entries = {(e["action"], e["outcome"]) for e in w.api.audit() if e.get("actor") == applicant}
    assert {(a, o) for a, o in entries if a in KYC_ACTIONS} == {("apply_kyc", "ok"), ("read_own_application", "ok")}


@pytest.mark.parametrize("proto", ["rest", "graphql"])
def test_an_applicant_never_reaches_another_applicants_application(world: World, proto: str) -> None:
    w, client, other = world, world.api.client, world.submitted
    applicant, who = w.api.applicant()
    before = w.api.store.get_application(other.id).version
    url = f"/v1/kyc/applications/{other.id}"
    if proto == "graphql":
        got = [w.gql("kycApplication", who, id=other.id), w.gql("submitKycApplication", who, id=other.id),
               w.gql("updateKycApplication", who, id=other.id, amount="1.00")]  # fmt: skip
        listed = w.gql("kycApplications", who)["data"]["kycApplications"]["applications"]
    else:
        content = f"{url}/documents/{other.document_id}/content"
        got = [client.get(url, headers=who), client.patch(url, json={"amount": "1.00"}, headers=who),
               client.post(f"{url}/submit", headers=who), client.get(content, headers=who),
               w.api.upload(who, other.id, "address_proof", b"%PDF-1.4\n", "application/pdf")]  # fmt: skip
        listed = client.get("/v1/kyc/applications", headers=who).json()["applications"]
    assert [_answer(g) for g in got] == [_refused(proto, "NOT_FOUND")] * len(got), got
    assert listed == [] and w.api.store.get_application(other.id).version == before
    mine = [e for e in w.api.audit() if e.get("actor") == applicant and str(e.get("target")).startswith(other.id)]
    assert [e["outcome"] for e in mine] == ["not_found"] * len(got)


STAFF_ONLY = [pytest.param(*p.values[1:], id=str(p.id).removeprefix("applicant-"))
              for p in _cases([o for o in OPERATIONS if o.name not in OWN_READS], ["applicant"])]  # fmt: skip


@pytest.mark.parametrize(("op", "proto"), STAFF_ONLY)
def test_an_applicant_is_refused_every_staff_operation_on_their_own_application(
    world: World, op: Op, proto: str
) -> None:
    w, client, own = world, world.api.client, world.submitted
    since = len(w.api.audit())
    url = f"/v1/kyc/applications/{own.id}"
    task = own.tasks["verify_documents"]
    kind = op.name.partition(":")[2]
    if kind:
        shared = w.shared[kind]  # the applicant's own, with a task of that kind
        got = _complete(w, proto, shared.who, shared.id, shared.tasks[kind], OUTCOME[kind])
        assert {t["id"]: t["status"] for t in w.api.read(shared.id, "admin")["tasks"]}[shared.tasks[kind]] == "open"
    elif op.name == "tasks":
        got = w.gql("kycTasks", own.who) if proto == "graphql" else client.get("/v1/kyc/tasks", headers=own.who)
    elif op.name == "assign":
        assign = f"{url}/tasks/{task}/assign"
        got = (w.gql("assignKycTask", own.who, a=own.id, t=task, assignee="me") if proto == "graphql"
               else client.post(assign, json={"assignee": "me"}, headers=own.who))  # fmt: skip
    elif op.name == "request_info":
        got = _request_info(w, proto, own.who, own.id)
    else:
        got = client.get("/v1/kyc/report", headers=own.who)
    assert _answer(got) == _refused(proto), got
    mine = [(e["action"], e["outcome"]) for e in w.api.audit()[since:] if e["role"] == "applicant"]
    assert mine == [(op.action, "denied")]
    assert w.api.read(own.id, "admin")["status"] == "submitted"


def test_the_operations_cover_every_kyc_action_of_the_policy() -> None:
    exercised = {op.action for op in OPERATIONS + APPLY_OPS} | {"read_kyc_pan", "read_kyc_aadhaar"}
    assert exercised | {"read_own_application"} == KYC_ACTIONS
    assert set(TASK_ACTION) == set(OUTCOMES) == set(OUTCOME)  # every task kind has a completion case
    assert all(outcome in OUTCOMES[kind] for kind, outcome in OUTCOME.items())
    # the service's table against the actions' meaning in policy.yaml (screening reviews include due diligence)
    meant = {"verify_documents": "verify_kyc_documents", "review_screening_hit": "review_kyc_screening",
             "enhanced_due_diligence": "review_kyc_screening", "approve": "approve_kyc_application"}  # fmt: skip
    assert meant == TASK_ACTION


def test_every_graphql_kyc_field_and_mutation_is_exercised(world: World) -> None:
    names = {f.graphql_name or to_camel_case(f.python_name) for t in (KycQuery, KycMutation)
             for f in get_object_definition(t, strict=True).fields}  # fmt: skip
    query = '{ q: __type(name: "Query") { fields { name } } m: __type(name: "Mutation") { fields { name } } }'
    served = world.api.client.post("/graphql", json={"query": query}, headers=world.api.staff("admin")).json()["data"]
    assert names <= {f["name"] for t in served.values() for f in t["fields"]}
    assert set(GQL) == names
    for name, doc in GQL.items():  # each document asks for exactly its field
        (operation,) = parse(doc).definitions
        assert isinstance(operation, OperationDefinitionNode)
        assert [s.name.value for s in operation.selection_set.selections] == [name]  # type: ignore[attr-defined]
    assert names <= {op.gql for op in OPERATIONS + APPLY_OPS if op.gql} | APPLICANT_GQL
