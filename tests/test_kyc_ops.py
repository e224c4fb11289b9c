"""KYC operations over all applications: escalation of overdue tasks, the retention purge, re-screening after a
list update, the report; through the desk with fixed clocks, and through the CLI.

The desk is built as ``deps.kyc_desk`` builds it, but with clocks the tests set (uploads five years ago,
tasks due yesterday). The sanctions list is the real OFAC SDN list; the "old" list is the same list
without one entry, so reloading the real one adds exactly that entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from c360.connectors.documents.scan import BuiltinScanner
from c360.connectors.watchlists import load_ofac
from c360.graph.store import GraphStore
from c360.graph.watchlist import Watchlist
from c360.resolution.kyc_risk import load_rules
from c360.resolution.screening import Screener
from c360.streams.kyc_checks import KycChecks
from c360.streams.kyc_desk import KycDesk
from c360.streams.kyc_documents import DocumentIntake, Upload
from c360.streams.kyc_ops import applications_report, purge, rekyc_due
from c360.streams.kyc_rescreen import manifest_path, rescreen_lists
from document_images import text_pdf
from test_cli import c360

from c360.deps import build_pipeline, build_store, document_blobs, vault_keys
from c360.settings import KycSettings, Settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "watchlists"
T0 = datetime(2020, 3, 2, 9, 0, tzinfo=UTC)
NORIEGA = "ofac_sdn:1572"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Desk:
    settings: Settings
    store: GraphStore
    desk: KycDesk
    clock: Clock
    full: Watchlist
    old: Watchlist

    def application(self, name: str = "Ravi Kumar Sharma", pan: str = "ABCPS1234D", applicant: str = "ap_1") -> str:
        entered = {"full_name": name, "date_of_birth": "1985-03-14", "pan": pan}
        app = self.desk.start(applicant_id=applicant, product="auto_loan", amount="500000", entered=entered)
        # A PAN card as a text PDF: read without OCR (the API tests read drawn cards by OCR).
        card = text_pdf(["INCOME TAX DEPARTMENT", "Permanent Account Number", pan, "Name", name.upper(),
                         "Father's Name", "SURESH", "Date of Birth", "14/03/1985"])  # fmt: skip
        self.desk.upload(app.id, Upload("pan_card", card), actor=f"applicant:{applicant}")
        self.desk.upload(app.id, Upload("address_proof", text_pdf(["BILL", name])), actor=f"applicant:{applicant}")
        return self.desk.submit(app.id, actor=f"applicant:{applicant}").id


@pytest.fixture(scope="module")
def lists() -> tuple[Watchlist, Watchlist]:
    full = load_ofac(DATA / "ofac")
    old = replace(full, entries=tuple(e for e in full.entries if e.key != NORIEGA))
    return full, old


@pytest.fixture
def kyc(tmp_path: Path, lists: tuple[Watchlist, Watchlist]) -> Iterator[Desk]:
    full, old = lists
    settings = Settings(data_dir=tmp_path / ".c360", kyc=KycSettings(ofac_dir=DATA / "ofac"))
    settings.data_dir.mkdir(parents=True)
    store = build_store(settings)
    clock = Clock(T0)
    keys = vault_keys(settings)
    screener = Screener([old])  # what applications were screened against when they came in
    checks = KycChecks(store, vault=keys, rules=load_rules(None), screener=lambda: screener)
    intake = DocumentIntake(store, document_blobs(settings, keys), BuiltinScanner(), vault=keys, clock=clock)
    pipeline = build_pipeline(settings, store)
    desk = KycDesk(store, pipeline, vault=keys, checks=checks, documents=intake, clock=clock)
    yield Desk(settings, store, desk, clock, full, old)
    store.close()


def test_overdue_tasks_escalate_once_per_period_to_the_next_role(kyc: Desk) -> None:
    app_id = kyc.application()
    task = next(t for t in kyc.desk.get(app_id).open_tasks() if t.kind == "verify_documents")
    assert task.role == "kyc_officer" and task.due_at == T0 + timedelta(hours=24)
    assert kyc.desk.escalate(now=T0 + timedelta(hours=23)) == []
    late = T0 + timedelta(hours=25)
    assert [t.id for t in kyc.desk.escalate(now=late)] == [task.id]
    moved = kyc.desk.get(app_id).task(task.id)
    assert moved.escalation_level == 1 and moved.role == "approval_manager" and moved.escalated_at == late
    assert kyc.desk.escalate(now=late + timedelta(hours=1)) == []  # once per escalate_every_hours
    assert [t.id for t in kyc.desk.escalate(now=late + timedelta(hours=25))] == [task.id]
    assert kyc.desk.get(app_id).task(task.id).escalation_level == 2
    queue = kyc.store.list_tasks(role="approval_manager").tasks
    assert task.id in [t.id for t in queue]


def test_the_purge_removes_only_what_is_past_retention_and_keeps_the_record(kyc: Desk) -> None:
    app_id = kyc.application()
    app = kyc.desk.get(app_id)
    blobs = document_blobs(kyc.settings)
    keys = {d.doc_type: d.storage_key for d in app.documents}
    config = kyc.settings.kyc.workflow
    soon = T0 + timedelta(days=config.retention_days["pan_card"] - 1)
    assert purge(kyc.store, blobs, config, now=soon).purged == {}
    later = T0 + timedelta(days=config.retention_days["pan_card"] + 1)
    dry = purge(kyc.store, blobs, config, now=later, dry_run=True)
    assert dict(dry.purged) == {"pan_card": 1, "address_proof": 1} and all(blobs.exists(k) for k in keys.values())
    done = purge(kyc.store, blobs, config, now=later)
    assert dict(done.purged) == {"pan_card": 1, "address_proof": 1} and done.applications == 1
    assert not any(blobs.exists(k) for k in keys.values())
    after = kyc.desk.get(app_id)
    assert all(d.purged_at == later and "retention" in (d.purge_reason or "") for d in after.documents)
    assert all(d.checksum for d in after.documents)  # the metadata stays
    assert [e.kind for e in kyc.store.kyc_events(app_id)].count("document_purged") == 2
    assert purge(kyc.store, blobs, config, now=later).purged == {}  # nothing twice


def test_a_list_update_rescreens_customers_against_the_new_entries_only(kyc: Desk, tmp_path: Path) -> None:
    noriega = kyc.application("Manuel Antonio Noriega", "ABCPN1234Q", "ap_2")
    quiet = kyc.application("Ravi Kumar Sharma", "ABCPS1234D", "ap_3")
    assert not [t for t in kyc.desk.get(noriega).tasks if t.kind == "review_screening_hit"]  # not listed yet
    folder = tmp_path / "manifests"
    full_screener = Screener([kyc.full])
    config = kyc.settings.kyc.workflow
    base = rescreen_lists(kyc.store, Screener([kyc.old]), [kyc.old], folder=folder, config=config, now=T0)
    assert base.lists["ofac_sdn"]["baseline"] == 1 and manifest_path(folder, "ofac_sdn").exists()
    again = rescreen_lists(kyc.store, Screener([kyc.old]), [kyc.old], folder=folder, config=config, now=T0)
    assert again.alerts == 0 and again.lists["ofac_sdn"]["added"] == 0
    update = rescreen_lists(kyc.store, full_screener, [kyc.full], folder=folder, config=config, now=T0)
    assert update.lists["ofac_sdn"]["added"] == 1 and update.tasks == 1
    review = [t for t in kyc.desk.get(noriega).tasks if t.kind == "review_screening_hit"]
    assert [t.subject for t in review] == [NORIEGA] and review[0].role == "compliance_officer"
    assert not [t for t in kyc.desk.get(quiet).tasks if t.kind == "review_screening_hit"]
    # An officer clears it as a false positive: the same entry does not alert again on the next change.
    kyc.desk.checks._screener = full_screener
    kyc.desk.complete_task(noriega, review[0].id, actor="co-1", outcome="false_positive", reason="born 1934")
    stale = {k: "0" * 64 if k == NORIEGA else v for k, v in json.loads(manifest_path(folder, "ofac_sdn").read_text())
             ["entries"].items()}  # fmt: skip
    doc = json.loads(manifest_path(folder, "ofac_sdn").read_text())
    doc["entries"] = stale
    manifest_path(folder, "ofac_sdn").write_text(json.dumps(doc))
    repeat = rescreen_lists(kyc.store, full_screener, [kyc.full], folder=folder, config=config, now=T0)
    assert repeat.lists["ofac_sdn"]["changed"] == 1 and repeat.tasks == 0


def test_the_report_groups_by_status_and_risk(kyc: Desk) -> None:
    kyc.application()
    kyc.desk.start(applicant_id="ap_9", product="auto_loan", amount="1000",
                   entered={"full_name": "A B", "date_of_birth": "1990-01-01", "pan": "ABCPB1234D"})  # fmt: skip
    text = applications_report(kyc.store, now=T0).csv()
    rows = {tuple(r.split(",")[:3]) for r in text.splitlines()[1:]}
    assert ("submitted", "unassessed", "1") in rows and ("draft", "unassessed", "1") in rows


def test_the_cli_runs_each_operation_and_audits_it(tmp_path: Path) -> None:
    config = tmp_path / "c360.yaml"
    config.write_text(yaml.safe_dump({"kyc": {"ofac_dir": str(DATA / "ofac")}}))
    for args in (["kyc", "escalate"], ["kyc", "purge", "--dry-run", "--json"], ["kyc", "report"], ["kyc", "due"]):
        done = c360("--config", str(config), *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    first = c360("--config", str(config), "kyc", "rescreen", "--json", cwd=tmp_path)
    assert json.loads(first.stdout)["lists"]["ofac_sdn"]["baseline"] == 1
    assert c360("kyc", "rescreen", cwd=tmp_path, ok=False).returncode == 1  # no list configured: said so
    entries = [json.loads(line) for line in (tmp_path / ".c360" / "audit.log").read_text().splitlines()]
    actions = {e.get("action") for e in entries}
    assert {"escalate_kyc_tasks", "purge_kyc_documents", "read_kyc_report", "rescreen_kyc"} <= actions


def test_approved_customers_come_due_for_rekyc_by_their_risk_category(kyc: Desk) -> None:
    app_id = kyc.application()
    verify = next(t for t in kyc.desk.get(app_id).open_tasks() if t.kind == "verify_documents")
    kyc.desk.complete_task(app_id, verify.id, actor="officer-1", outcome="verified", reason="ok")
    approve = next(t for t in kyc.desk.get(app_id).open_tasks() if t.kind == "approve")
    done = kyc.desk.complete_task(app_id, approve.id, actor="manager-1", outcome="approved", reason="ok")
    assert done.status == "approved" and done.risk is not None
    due = done.risk.rekyc_due
    years = {"low": 10, "medium": 8, "high": 2}[done.risk.category]
    assert due.year - T0.year == years
    assert rekyc_due(kyc.store, before=due) == []
    rows = rekyc_due(kyc.store, before=due + timedelta(days=1))
    assert [(r["application_id"], r["rekyc_due"]) for r in rows] == [(app_id, due.isoformat())]
