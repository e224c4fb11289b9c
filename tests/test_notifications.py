"""What people are told, end to end (issue 15): through the outbox and a real SMTP server on loopback.

- A consent an agent records through the API reaches the customer as a mail carrying the receipt, which
  verifies with nothing but the JWKS the API serves; a replay sends nothing more.
- A case assigned to an agent with an address reaches them; an SLA clock at risk warns them once per due
  time, however often the warning runs.
- ``c360 outbox run --once`` sends what is due with the configured SMTP server.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from c360.connectors.notify import NotifyConfig, SmtpConfig
from c360.graph.case_desk import CaseDesk
from c360.graph.receipts import verify
from c360.graphql.auth import issue_dev_token
from c360.graphql.policy import load_policy
from fastapi.testclient import TestClient
from payloads import profile_event
from smtp_server import SmtpServer
from store_contract import seed
from typer.testing import CliRunner

from c360.cli import app as cli
from c360.deps import auth_config, build_app, build_pipeline, build_store, outbox_worker
from c360.settings import ApiSettings, CaseSettings, Settings

JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$", re.M)
RECORD = """mutation($input: RecordConsentInput!) { recordConsent(input: $input) { replayed } }"""


def settings_for(home: Path, smtp: SmtpServer, **extra: object) -> Settings:
    email = SmtpConfig(host="127.0.0.1", port=smtp.port, from_address="privacy@shop.example", timeout=5)
    return Settings(data_dir=home / ".c360", api=ApiSettings(dev_mode=True), notify=NotifyConfig(email=email), **extra)


def test_a_recorded_consent_reaches_the_customer_with_a_receipt_that_verifies(tmp_path: Path, smtp: SmtpServer) -> None:
    settings = settings_for(tmp_path, smtp)
    store = build_store(settings)
    event = profile_event("a1", "crm", "ANN-1", 0, first_name="Ann", last_name="Field", email="ann.field@example.com")
    assert build_pipeline(settings, store).process([event]).accepted
    ann = store.lookup(["crm|ANN-1"], []).records["crm|ANN-1"].customer_id
    token = issue_dev_token(auth_config(settings), "admin", "agent-4", roles=load_policy().roles)
    consent = {
        "customerId": ann, "record": "crm|ANN-1", "purpose": "marketing", "channel": "email",
        "status": "granted", "jurisdiction": "DE", "noticeId": "newsletter", "noticeVersion": "3",
        "noticeSha256": hashlib.sha256(b"We send offers.").hexdigest(), "eventId": "agent-consent-1",
        "capturedAt": "2026-06-01T09:00:00Z",
    }  # fmt: skip
    with TestClient(build_app(settings, store)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for replayed in (False, True):
            body = client.post("/graphql", json={"query": RECORD, "variables": {"input": consent}}, headers=headers)
            assert body.json()["data"]["recordConsent"]["replayed"] is replayed, body.text
        jwks = client.get("/.well-known/jwks.json").json()
    assert store.outbox_counts()["pending"] == 1
    counts = outbox_worker(settings, store).run_once()
    assert counts["sent"] == 1 and store.outbox_counts()["sent"] == 1
    [mail] = smtp.inbox.mails
    assert mail["To"] == "ann.field@example.com" and mail["From"] == "privacy@shop.example"
    assert "consent receipt" in mail["Subject"].lower()
    text = mail.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert settings.consent.jwks_url in text
    [receipt] = JWS.findall(text)
    claims = verify(receipt, jwks)
    assert claims["piiPrincipalId"] == ann
    assert outbox_worker(settings, store).run_once()["claimed"] == 0  # sent once, never again
    store.close()


def test_an_assignment_and_an_sla_at_risk_reach_the_agent_once(tmp_path: Path, smtp: SmtpServer) -> None:
    settings = settings_for(tmp_path, smtp, cases=CaseSettings(addresses={"agent-7": "agent7@shop.example"}))
    store = build_store(settings)
    seed(store)
    now = [datetime(2026, 12, 7, 9, 0, tzinfo=UTC)]  # a Monday, 09:00 (the default calendar: mon-fri 9-17 UTC)
    desk = CaseDesk(store, addresses=settings.cases.addresses, clock=lambda: now[0])
    case = desk.open(customer_id="C1", actor="agent-1", type="complaint", priority="urgent", channel="phone",
                     subject="Card charged twice", assignee="agent-7").case  # fmt: skip
    worker = outbox_worker(settings, store)
    assert worker.run_once(now[0])["sent"] == 1
    assert smtp.inbox.mails[0]["Subject"].startswith(f"Case {case.id} assigned")

    now[0] = datetime(2026, 12, 7, 9, 40, tzinfo=UTC)  # 40 of 60 minutes: not at risk yet (from 48)
    assert desk.warn() == 0
    now[0] = datetime(2026, 12, 7, 9, 50, tzinfo=UTC)
    assert desk.warn() == 1 and desk.warn() == 0  # once per clock and due time
    assert worker.run_once(now[0])["sent"] == 1
    warning = smtp.inbox.mails[1]
    assert warning["To"] == "agent7@shop.example" and "first response" in warning["Subject"]
    assert "10:00" in warning["Subject"]  # due at 10:00, the first response target of an urgent case

    # a pause (waiting on the customer) and a resume move the due time: a new warning for the new due time
    desk.change(case.id, actor="agent-7", kind="status_changed", data={"to": "in_progress"})
    desk.change(case.id, actor="agent-7", kind="status_changed", data={"to": "waiting_on_customer"})
    now[0] += timedelta(hours=2)
    desk.change(case.id, actor="customer", kind="status_changed", data={"to": "in_progress"})
    assert desk.warn() == 1
    store.close()


def test_the_outbox_command_sends_with_the_configured_server(tmp_path: Path, smtp: SmtpServer) -> None:
    home = tmp_path / ".c360"
    settings = settings_for(tmp_path, smtp, cases=CaseSettings(addresses={"team:billing": "billing@shop.example"}))
    store = build_store(settings)
    seed(store)
    desk = CaseDesk(store, addresses=settings.cases.addresses)
    desk.open(customer_id="C2", actor="a1", type="dispute", priority="high", channel="web", subject="R", team="billing")
    store.close()
    config = tmp_path / "c360.yaml"
    config.write_text(yaml.safe_dump({"notify": {"email": {"host": "127.0.0.1", "port": smtp.port,
                                                           "from_address": "desk@shop.example"}}}))  # fmt: skip
    runner = CliRunner()
    status = runner.invoke(cli, ["--data-dir", str(home), "--config", str(config), "outbox", "status"])
    assert "pending 1" in status.output, status.output
    result = runner.invoke(cli, ["--data-dir", str(home), "--config", str(config), "outbox", "run", "--once"])
    assert result.exit_code == 0 and "sent 1" in result.output, result.output
    assert [m["To"] for m in smtp.inbox.mails] == ["billing@shop.example"]
    bare = runner.invoke(cli, ["--data-dir", str(home), "outbox", "run", "--once"])
    assert bare.exit_code == 1 and "no transport" in bare.output
