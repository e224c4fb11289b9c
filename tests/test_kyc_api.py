"""KYC through the API (issue 16): applicants sign in and apply, officers verify, managers approve.

The app is ``deps.build_app`` over an embedded store, with the real OFAC and UN lists, a fake PAN provider
on loopback and the local encrypted document store. Applicants sign in for real (password, then the
one-time code read from the outbox); staff use dev tokens per role. Documents are drawn by the tests and
read by Tesseract. Each test starts its own applicants, so they do not depend on each other's order.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from c360.connectors.pan_service import PanServiceConfig
from c360.graph.store import GraphStore
from c360.graphql.auth import issue_dev_token
from c360.graphql.policy import load_policy
from document_images import aadhaar_card, aadhaar_number, encoded, pan_card, passport_page, text_pdf
from fake_pan import Provider, serve_provider
from fastapi.testclient import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from c360.deps import auth_config, build_app, build_store
from c360.settings import ApiSettings, KycSettings, Settings

POLICY = load_policy()
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "watchlists"
PASSWORD = "Correct-Horse-9-Battery"
RAVI = {"full_name": "Ravi Kumar Sharma", "date_of_birth": "1985-03-14", "pan": "ABCPS1234D",
        "email": "ravi@example.com", "mobile": "+919812345678", "address": "12 MG Road, Bengaluru"}  # fmt: skip
_seq = itertools.count(1)


@dataclass
class Api:
    settings: Settings
    client: TestClient
    store: GraphStore
    provider: Provider

    def staff(self, role: str, subject: str = "officer-1") -> dict[str, str]:
        token = issue_dev_token(auth_config(self.settings), role, subject, roles=POLICY.roles)
        return {"Authorization": f"Bearer {token}"}

    def applicant(self, email: str | None = None) -> tuple[str, dict[str, str]]:
        """A new applicant signed in for real: register, password, the code from the outbox, the session."""
        email = email or f"applicant{next(_seq)}@example.com"
        made = self.client.post("/v1/applicants/register", json={"email": email, "password": PASSWORD})
        assert made.status_code == 201, made.text
        sent = self.client.post("/v1/applicants/login", json={"login": email, "password": PASSWORD})
        assert sent.status_code == 202, sent.text
        challenge = sent.json()["challenge_id"]
        item = self.store.outbox_message(f"applicant-otp|{challenge}")
        assert item is not None and item.message.to == email
        code = re.search(r"\b(\d{6})\b", item.message.body)
        assert code is not None
        session = self.client.post("/v1/applicants/login/verify", json={"challenge_id": challenge, "code": code[1]})
        assert session.status_code == 200, session.text
        return made.json()["applicant_id"], {"Authorization": f"Bearer {session.json()['token']}"}

    def audit(self) -> list[dict[str, Any]]:
        lines = (self.settings.data_dir / "audit.log").read_text(encoding="utf-8").splitlines()
        return [e for e in (json.loads(x) for x in lines if x.strip()) if isinstance(e, dict) and "action" in e]

    def start(self, who: dict[str, str], **entered: Any) -> dict[str, Any]:
        body = {"product": "auto_loan", "amount": "850000.00", "entered": {**RAVI, **entered}}
        made = self.client.post("/v1/kyc/applications", json=body, headers=who)
        assert made.status_code == 201, made.text
        doc: dict[str, Any] = made.json()
        return doc

    def upload(self, who: dict[str, str], app_id: str, doc_type: str, data: bytes, media: str, **params: Any) -> Any:
        url = f"/v1/kyc/applications/{app_id}/documents/{doc_type}"
        return self.client.put(url, content=data, headers={**who, "Content-Type": media}, params=params)

    def ready(self, who: dict[str, str], entered: dict[str, Any]) -> dict[str, Any]:
        """An application with a PAN card (drawn from ``entered``) and an address proof, submitted."""
        app = self.start(who, **entered)
        full = {**RAVI, **entered}
        card = pan_card(name=full["full_name"].upper(), father="SURESH KUMAR SHARMA",
                        dob=date.fromisoformat(full["date_of_birth"]), pan=full["pan"])  # fmt: skip
        up = self.upload(who, app["id"], "pan_card", encoded(card), "image/png", filename="pan.png")
        assert up.status_code == 201, up.text
        bill = text_pdf(["ELECTRICITY BILL", full["full_name"], full.get("address", "")])
        bill_up = self.upload(who, app["id"], "address_proof", bill, "application/pdf")
        assert bill_up.status_code == 201, bill_up.text
        done = self.client.post(f"/v1/kyc/applications/{app['id']}/submit", headers=who)
        assert done.status_code == 200, done.text
        doc: dict[str, Any] = done.json()
        return doc

    def read(self, app_id: str, role: str = "kyc_officer", subject: str = "officer-1") -> dict[str, Any]:
        got = self.client.get(f"/v1/kyc/applications/{app_id}", headers=self.staff(role, subject))
        assert got.status_code == 200, got.text
        doc: dict[str, Any] = got.json()
        return doc

    def task(self, app_id: str, kind: str) -> dict[str, Any]:
        return next(t for t in self.read(app_id)["tasks"] if t["kind"] == kind and t["status"] == "open")

    def complete(
        self, app_id: str, task_id: str, role: str, subject: str, outcome: str, reason: str = "checked"
    ) -> Any:
        url = f"/v1/kyc/applications/{app_id}/tasks/{task_id}/complete"
        return self.client.post(url, json={"outcome": outcome, "reason": reason}, headers=self.staff(role, subject))


@contextmanager
def serve_kyc(home: Path) -> Iterator[Api]:
    """The app over an embedded store in ``home``, with the real lists and a fake PAN provider on loopback."""
    token = home / "pan-token"
    token.write_text("pan-secret\n")
    token.chmod(0o600)
    with serve_provider() as (provider, url):
        kyc = KycSettings(
            ofac_dir=DATA / "ofac",
            un_file=DATA / "un" / "consolidated.xml",
            pan_service=PanServiceConfig(url=url, token_file=token, retries=0),
        )
        settings = Settings(data_dir=home / ".c360", api=ApiSettings(dev_mode=True), kyc=kyc)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = build_store(settings)
        with TestClient(build_app(settings, store)) as client:
            yield Api(settings, client, store, provider)
        store.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serve_kyc(tmp_path_factory.mktemp("kyc-api")) as served:
        yield served


def test_an_application_goes_from_draft_to_approved_with_every_step_checked_and_audited(api: Api) -> None:
    applicant, who = api.applicant()
    app = api.ready(who, {})
    assert app["status"] == "submitted"
    # The applicant sees their application without screening hits, risk, tasks or checks.
    assert not {"tasks", "risk", "screening_hits", "verifications", "customer_id"} & set(app)
    assert app["pan"] == "XXXXXX234D" and app["entered"]["full_name"] == "Ravi Kumar Sharma"
    staff = api.read(app["id"])
    checks = {v["check"]: v["result"] for v in staff["verifications"]}
    assert checks["pan_format"] == "pass" and checks["pan_surname"] == "pass" and checks["pan_service"] == "pass"
    assert checks["pan_document"] == "pass", staff["verifications"]  # the PAN read from the card by OCR
    assert checks["dob_match"] == "pass" and checks["name_match"] == "pass"
    assert staff["pan"] == "ABCPS1234D"  # kyc_officer may read_kyc_pan
    assert api.read(app["id"], "approval_manager")["pan"] == "XXXXXX234D"
    sent = api.provider.received[-1][2]
    assert sent["pan"] == "ABCPS1234D" and "Authorization" in api.provider.received[-1][1]
    verify = api.task(app["id"], "verify_documents")
    assert verify["role"] == "kyc_officer" and verify["due_at"]
    # Maker-checker: whoever verified cannot approve, even with a role that may do both.
    assert api.complete(app["id"], verify["id"], "admin", "boss-1", "verified").status_code == 200
    after = api.read(app["id"])
    assert after["status"] == "pending_approval" and after["verified_by"] == "boss-1"
    assert after["risk"]["category"] in ("low", "medium") and after["risk"]["rekyc_due"]
    approve = api.task(app["id"], "approve")
    same = api.complete(app["id"], approve["id"], "admin", "boss-1", "approved")
    assert same.status_code == 409 and "verified" in same.json()["detail"]
    assert api.read(app["id"])["status"] == "pending_approval"
    ok = api.complete(app["id"], approve["id"], "approval_manager", "manager-1", "approved", "all in order")
    assert ok.status_code == 200, ok.text
    final = api.read(app["id"])
    assert final["status"] == "approved" and final["decided_by"] == "manager-1" and final["decided_at"]
    done = next(t for t in final["tasks"] if t["id"] == approve["id"])
    assert done["completed_by"] == "manager-1" and done["outcome"] == "approved" and done["reason"] == "all in order"
    mine = api.client.get(f"/v1/kyc/applications/{app['id']}", headers=who).json()
    assert mine["status"] == "approved"
    actions = [(e["action"], e["outcome"]) for e in api.audit() if e.get("target") == app["id"]]
    assert ("approve_kyc_application", "refused") in actions and ("approve_kyc_application", "ok") in actions
    assert ("read_kyc_applications", "ok") in actions and ("apply_kyc", "ok") in actions
    assert any(e["actor"] == applicant and e["action"] == "apply_kyc" for e in api.audit())


def test_an_applicant_sees_only_their_own_and_a_staff_token_cannot_pose_as_one(api: Api) -> None:
    _, ann = api.applicant()
    _, bob = api.applicant()
    app = api.start(ann)
    assert api.client.get(f"/v1/kyc/applications/{app['id']}", headers=bob).status_code == 404
    assert (
        api.client.patch(f"/v1/kyc/applications/{app['id']}", json={"amount": "1.00"}, headers=bob).status_code == 404
    )
    listed = api.client.get("/v1/kyc/applications", headers=bob).json()["applications"]
    assert app["id"] not in [a["id"] for a in listed]
    forged = api.client.get("/v1/kyc/applications", headers=api.staff("applicant", "anyone"))
    assert forged.status_code == 401
    assert api.client.get("/v1/kyc/tasks", headers=ann).status_code == 403


def test_bad_uploads_are_refused_with_their_reason_and_kept_as_dead_letters(api: Api) -> None:
    _, who = api.applicant()
    app = api.start(who)
    pdf = text_pdf(["ELECTRICITY BILL"])
    renamed = api.upload(who, app["id"], "address_proof", pdf, "image/png", filename="bill.png")
    assert renamed.status_code == 400 and "png" in renamed.json()["detail"].lower()
    eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    meta = PngInfo()
    meta.add_text("Comment", eicar.decode())
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(out, "PNG", pnginfo=meta)
    flagged = api.upload(who, app["id"], "address_proof", out.getvalue(), "image/png")
    assert flagged.status_code == 400 and "flagged" in flagged.json()["detail"]
    big = api.upload(who, app["id"], "bank_statement", b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024), "application/pdf")
    assert big.status_code == 400 and "10485760" in big.json()["detail"]
    unknown = api.upload(who, app["id"], "selfie", pdf, "application/pdf")
    assert unknown.status_code == 400
    letters = [d for d in api.store.dead_letters(limit=None) if "document refused" in d.reason]
    assert len(letters) >= 2 and all(app["id"] in d.payload and "%PDF" not in d.payload for d in letters)
    assert api.read(app["id"])["documents"] == []
    early = api.client.post(f"/v1/kyc/applications/{app['id']}/submit", headers=who)
    assert early.status_code == 400 and "pan_card" in early.json()["detail"]


def test_a_new_version_keeps_the_old_and_the_content_comes_back_decrypted(api: Api) -> None:
    _, who = api.applicant()
    app = api.start(who)
    first = text_pdf(["ELECTRICITY BILL", "Ravi Kumar Sharma", "January"])
    one = api.upload(who, app["id"], "address_proof", first, "application/pdf").json()["document"]
    second = text_pdf(["ELECTRICITY BILL", "Ravi Kumar Sharma", "February"])
    two = api.upload(who, app["id"], "address_proof", second, "application/pdf", document_id=one["document_id"])
    assert two.status_code == 201 and two.json()["document"]["version"] == 2
    docs = api.read(app["id"])["documents"]
    assert [(d["document_id"], d["version"]) for d in docs] == [(one["document_id"], 1), (one["document_id"], 2)]
    url = f"/v1/kyc/applications/{app['id']}/documents/{one['document_id']}/content"
    assert api.client.get(url, headers=who, params={"version": 1}).content == first
    got = api.client.get(url, headers=api.staff("kyc_officer"))
    assert got.content == second and got.headers["content-type"] == "application/pdf"
    raw = list((api.settings.data_dir / "documents").rglob("v2*"))
    assert raw and all(second not in p.read_bytes() and b"February" not in p.read_bytes() for p in raw)
    assert api.client.get(url, headers=api.staff("service_agent")).status_code == 403


def test_aadhaar_lives_only_in_the_vault_and_only_its_role_sees_it_whole(api: Api) -> None:
    _, who = api.applicant()
    app = api.start(who)
    number = aadhaar_number("49182736451")
    card = aadhaar_card(name="Ravi Kumar Sharma", dob=date(1985, 3, 14), number=number)
    assert api.upload(who, app["id"], "aadhaar", encoded(card), "image/png").status_code == 201
    assert api.read(app["id"], "kyc_officer")["aadhaar"] == number
    assert api.read(app["id"], "approval_manager")["aadhaar"] == "XXXX XXXX " + number[-4:]
    assert api.read(app["id"], "compliance_officer")["aadhaar"] == "XXXX XXXX " + number[-4:]
    assert api.client.get(f"/v1/kyc/applications/{app['id']}", headers=who).json()["aadhaar"].endswith(number[-4:])
    doc = api.client.get(f"/v1/kyc/applications/{app['id']}", params={"history": True}, headers=api.staff("admin"))
    history = doc.json()["history"]
    assert doc.json()["aadhaar"] == number and any(e["kind"] == "document_checked" for e in history)
    assert number not in json.dumps(history) and number not in repr(api.store.kyc_events(app["id"]))
    assert api.store.get_secret(f"kyc:{app['id']}", "aadhaar") is not None  # sealed in the vault
    for part in api.settings.data_dir.glob("graph.db*"):  # the database and its write-ahead log
        assert number.encode() not in part.read_bytes()


def test_a_listed_name_opens_a_review_and_a_false_positive_is_remembered(api: Api) -> None:
    listed = {"full_name": "Manuel Antonio Noriega", "pan": "ABCPN1234Q", "date_of_birth": "1985-03-14"}
    _, who = api.applicant()
    app = api.ready(who, listed)
    staff = api.read(app["id"], "compliance_officer")
    assert any("NORIEGA" in h["entry_key"].upper() or h["score"] > 0.9 for h in staff["screening_hits"])
    review = api.task(app["id"], "review_screening_hit")
    assert review["role"] == "compliance_officer" and review["subject"]
    assert api.complete(app["id"], review["id"], "kyc_officer", "officer-1", "false_positive").status_code == 403
    verify = api.task(app["id"], "verify_documents")
    assert api.complete(app["id"], verify["id"], "kyc_officer", "officer-1", "verified").status_code == 200
    assert api.read(app["id"])["status"] == "documents_verified"  # the hit is not reviewed yet
    fp = api.complete(app["id"], review["id"], "compliance_officer", "co-1", "false_positive", "born 1934, not 1985")
    assert fp.status_code == 200, fp.text
    assert api.read(app["id"])["status"] in ("pending_approval", "risk_assessed")
    again = api.ready(who, listed)  # the same customer applies again: the same entry stays quiet
    hits = api.read(again["id"], "compliance_officer")["screening_hits"]
    assert hits and all(h["suppressed"] for h in hits if h["entry_key"] == review["subject"])
    assert not [t for t in api.read(again["id"])["tasks"] if t["subject"] == review["subject"]]


def test_a_verified_pan_links_two_applicants_to_one_customer(api: Api) -> None:
    entered = {"full_name": "Anita Desai", "pan": "BQRPD4321K", "date_of_birth": "1979-11-02"}
    _, one = api.applicant()
    _, two = api.applicant()
    a = api.ready(one, {**entered, "email": "anita.one@example.com", "mobile": "+919800000001"})
    b = api.ready(two, {**entered, "email": "anita.two@example.org", "mobile": "+919800000002"})
    first, second = api.read(a["id"]), api.read(b["id"])
    assert {v["check"]: v["result"] for v in second["verifications"]}["pan_service"] == "pass"
    assert api.store.resolve(first["customer_id"]) == api.store.resolve(second["customer_id"])


def test_the_report_counts_applications_by_status_and_risk(api: Api) -> None:
    _, who = api.applicant()
    api.start(who)
    report = api.client.get("/v1/kyc/report", headers=api.staff("compliance_officer"))
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    header, *rows = report.text.splitlines()
    assert header.startswith("status,risk_category,applications")
    assert any(r.startswith("draft,unassessed,") for r in rows)
    assert api.client.get("/v1/kyc/report", headers=api.staff("kyc_officer")).status_code == 403


def test_graphql_serves_applicants_and_staff(api: Api) -> None:
    _, who = api.applicant()
    query = 'mutation($e: KycEnteredInput!) { startKycApplication(amount: "500000", entered: $e) { id status pan } }'
    entered = {"fullName": RAVI["full_name"], "dateOfBirth": RAVI["date_of_birth"], "pan": RAVI["pan"]}
    made = api.client.post("/graphql", json={"query": query, "variables": {"e": entered}}, headers=who)
    body = made.json()
    assert "errors" not in body or not body["errors"], body
    app_id = body["data"]["startKycApplication"]["id"]
    read = "query($id: ID!) { kycApplication(id: $id) { id status risk tasks { kind } customerId } }"
    mine = api.client.post("/graphql", json={"query": read, "variables": {"id": app_id}}, headers=who).json()
    assert mine["data"]["kycApplication"]["tasks"] is None and mine["data"]["kycApplication"]["customerId"] is None
    staff = api.client.post("/graphql", json={"query": read, "variables": {"id": app_id}},
                            headers=api.staff("kyc_officer")).json()  # fmt: skip
    assert staff["data"]["kycApplication"]["customerId"] and staff["data"]["kycApplication"]["tasks"] == []
    denied = api.client.post("/graphql", json={"query": read, "variables": {"id": app_id}},
                             headers=api.staff("marketer")).json()  # fmt: skip
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_high_risk_opens_enhanced_due_diligence_before_approval(api: Api) -> None:
    applicant, who = api.applicant()
    app = api.ready(who, {"full_name": "Ravi Kumar Sharma", "pep": "yes", "nationality": "IN"})
    verify = api.task(app["id"], "verify_documents")
    assert api.complete(app["id"], verify["id"], "kyc_officer", "officer-2", "verified").status_code == 200
    staff = api.read(app["id"], "compliance_officer")
    assert staff["status"] == "risk_assessed" and staff["risk"]["category"] == "high"
    assert any("politically exposed" in r.lower() or "pep" in r.lower() for r in staff["risk"]["reasons"])
    edd = api.task(app["id"], "enhanced_due_diligence")
    assert edd["role"] == "compliance_officer" and not [t for t in staff["tasks"] if t["kind"] == "approve"]
    high_due = date.fromisoformat(staff["risk"]["rekyc_due"])
    assert high_due.year - date.today().year == 2  # high risk: re-KYC every two years
    cleared = api.complete(app["id"], edd["id"], "compliance_officer", "co-2", "cleared", "source of funds shown")
    assert cleared.status_code == 200, cleared.text
    assert api.read(app["id"])["status"] == "pending_approval"
    # The sign-in itself was audited, by applicant id (never the e-mail).
    steps = [e["action"] for e in api.audit() if e["actor"] == applicant]
    assert {"applicant_register", "applicant_login", "applicant_session"} <= set(steps)
    assert not any("@" in str(e.get("target")) for e in api.audit() if e["action"].startswith("applicant_"))


def test_a_passport_number_read_from_its_mrz_is_kept_only_in_the_vault(api: Api) -> None:
    _, who = api.applicant()
    app = api.start(who)
    page = passport_page(surname="SHARMA", given="RAVI KUMAR", number="Z1234567", dob=date(1985, 3, 14),
                         expiry=date(2031, 5, 1))  # fmt: skip
    up = api.upload(who, app["id"], "passport", encoded(page), "image/png", expires_on="2031-05-01")
    assert up.status_code == 201, up.text
    checks = {v["check"]: v["result"] for v in api.read(app["id"])["verifications"]}
    assert checks["document_expiry"] == "pass" and checks["dob_match"] == "pass", checks
    item = api.store.get_secret(f"kyc:{app['id']}", "passport")
    assert item is not None and "Z1234567" not in item.sealed
    for part in api.settings.data_dir.glob("graph.db*"):
        assert b"Z1234567" not in part.read_bytes()
