"""Activation (issue 17, point 7): a segment exported to CSV, Parquet or a signed webhook, leaving out every
member without the consent the export's purpose and channel need; the manifest; the CLI and its audit.

Consent goes through the real pipeline (consent_change events signed into the ledger); members are put in
the segment through the store's insights domain; the webhook is a real HTTP server on loopback."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.errors import ConflictError, InvalidInputError
from c360.graph.insights import SegmentChange
from c360.graph.store import GraphStore
from c360.ml.activation import ExportIncompleteError, ExportManifest, export_segment, manifest_path
from c360.ml.webhook import DeliveryError, WebhookSender, retry_after, signature
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from smtp_server import free_port
from test_cli import c360
from test_consent_events import consent, customer_of
from test_ml_consent_facts import ISSUER, LATER, people
from test_pipeline import profile
from webhook_server import WebhookServer

SECRET = b"s3cret-s3cret-s3cret"
SEGMENT = "spring_sale"


def audience(store: GraphStore) -> dict[str, str]:
    """Nine members of ``spring_sale``; key -> customer id.

    1, 8 and 9 granted marketing e-mail; 2 withdrew; 3 never asked; 4's grant expired; 5 denied; 6 granted
    SMS only; 7 granted e-mail but has no e-mail address.
    """
    ids = people(store)
    pipeline = Pipeline(store, Linker(store), issuer=ISSUER)
    out = pipeline.process(
        [
            profile("p7", "7", 7, first_name="P7"),
            profile("p8", "8", 8, first_name="P8", email="p8@x.example"),
            profile("p9", "9", 9, first_name="P9", email="p9@x.example"),
            consent("c7", "7", "granted", 6),
            consent("c8", "8", "granted", 6),
            consent("c9", "9", "granted", 7),
        ]
    )
    assert not out.rejected, out.rejected
    ids.update({k: customer_of(store, f"crm|{k}") for k in ("7", "8", "9")})
    changes = [
        SegmentChange(f"{SEGMENT}|{cid}", SEGMENT, cid, "entered", LATER, "test audience", "backfill")
        for cid in ids.values()
    ]
    assert len(store.apply_segment_changes(changes)) == len(ids)
    return ids


def email_export(
    store: GraphStore, fmt: str, destination: Any, *, at: datetime = LATER, **options: Any
) -> ExportManifest:
    """``export_segment`` of ``SEGMENT`` for marketing by e-mail as at ``at``, with ``options``."""
    return export_segment(
        store, SEGMENT, purpose="marketing", channel="email", fmt=fmt, destination=destination, at=at, **options
    )


def granted(ids: dict[str, str]) -> list[str]:
    return sorted(ids[k] for k in ("1", "8", "9"))


EXCLUDED = {"none": 2, "withdrawn": 1, "denied": 1, "expired": 1, "no address": 1}


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[GraphStore]:
    """An embedded store: the webhook's behaviour does not depend on the backend the members come from."""
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "graph.db"))
    try:
        yield store
    finally:
        store.close()


def exports(tmp_path: Path) -> Path:
    """A folder for the exported files (the store's files are in tmp_path)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


@pytest.fixture
def receiver() -> Iterator[WebhookServer]:
    server = WebhookServer(SECRET).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_csv_export_holds_exactly_the_consented_members_and_its_manifest_says_why(
    store: GraphStore, tmp_path: Path
) -> None:
    ids = audience(store)
    folder = exports(tmp_path)
    path = folder / "audience.csv"
    lines: list[str] = []
    manifest = email_export(
        store,
        "csv",
        path,
        fields=["first_name"],
        page_size=4,  # three pages of members
        progress=lines.append,
    )
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_key = {v: k for k, v in ids.items()}
    assert rows == [
        {"customer_id": cid, "email": f"p{by_key[cid]}@x.example", "first_name": f"P{by_key[cid]}"}
        for cid in granted(ids)
    ]
    assert len(lines) == 3 and lines[-1].startswith("9 members read")
    doc = json.loads(manifest_path(path).read_text())
    assert doc == manifest.to_json()
    assert doc["counts"] == {"members": 9, "exported": 3, "excluded": EXCLUDED}
    assert doc["receipts"] == {ids["1"]: "crm|c1", ids["8"]: "crm|c8", ids["9"]: "crm|c9"}
    for event_id in doc["receipts"].values():  # each rests on a signed receipt in the ledger
        entry = store.get_consent(event_id)
        assert entry is not None and entry.event.status == "granted"
    assert doc["file"] == {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}
    assert doc["columns"] == ["customer_id", "email", "first_name"] and doc["complete"] is True
    assert doc["segment"] == SEGMENT and doc["at"] == LATER.isoformat() and doc["format"] == "csv"
    assert "marketing by email" in doc["consent_rule"] and "withdrawal beats" in doc["consent_rule"]
    assert sorted(os.listdir(folder)) == ["audience.csv", "audience.csv.manifest.json"]
    # At an earlier instant, customer 2 had not withdrawn yet and 4's grant still held.
    early = email_export(store, "csv", tmp_path / "early.csv", at=datetime(2026, 5, 5, tzinfo=UTC))
    assert set(early.receipts) == {ids["1"], ids["2"], ids["4"]}  # 8 and 9 granted on the 6th and 7th


def test_a_parquet_export_on_the_sms_channel_exports_phones(store: GraphStore, tmp_path: Path) -> None:
    ids = audience(store)
    path = tmp_path / "sms.parquet"
    manifest = export_segment(
        store, SEGMENT, purpose="marketing", channel="sms", fmt="parquet", destination=path, at=LATER
    )
    table = pq.read_table(path)
    assert table.column_names == ["customer_id", "phone"]
    assert table.to_pylist() == [{"customer_id": ids["6"], "phone": "+491511234506"}]
    assert manifest.counts.excluded == {"none": 8, "withdrawn": 0, "denied": 0, "expired": 0, "no address": 0}
    assert manifest.receipts == {ids["6"]: "crm|c6"}
    assert manifest.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failed_export_leaves_no_file_and_keeps_the_old_one(store: GraphStore, tmp_path: Path) -> None:
    audience(store)
    folder = exports(tmp_path)
    path = folder / "audience.csv"
    path.write_text("the previous export\n")

    def break_on_second_page(line: str) -> None:
        if line.startswith("8 members"):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        email_export(
            store,
            "csv",
            path,
            page_size=4,
            overwrite=True,
            progress=break_on_second_page,
        )
    assert os.listdir(folder) == ["audience.csv"]  # no temporary file, no manifest
    assert path.read_text() == "the previous export\n"
    with pytest.raises(ExportIncompleteError, match=r"time budget was spent after [01] members") as caught:
        email_export(
            store,
            "parquet",
            folder / "slow.parquet",
            page_size=1,
            budget_seconds=1e-6,  # spent by the time the first or second page is asked for
        )
    assert not caught.value.manifest.complete and os.listdir(folder) == ["audience.csv"]
    with pytest.raises(ConflictError, match="exists already"):  # without overwrite: refused, untouched
        export_segment(store, SEGMENT, purpose="marketing", channel="email", fmt="parquet", destination=path)
    assert path.read_text() == "the previous export\n"


def test_bad_exports_are_refused_before_anything_is_read(tmp_path: Path) -> None:
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "graph.db"))
    base: dict[str, Any] = {"purpose": "marketing", "channel": "email", "fmt": "csv", "destination": tmp_path / "a"}
    try:
        for change, says in [
            ({"purpose": "surveys", "purposes": ["marketing"]}, "unknown purpose 'surveys'"),
            ({"purpose": "Bad Token"}, "invalid purpose"),
            ({"channel": "fax"}, "unknown channel"),
            ({"channel": "push"}, "no address to export"),
            ({"fmt": "xml"}, "unknown export format"),
            ({"fields": ["shoe_size"]}, "unknown profile field"),
            ({"at": datetime(2026, 1, 1)}, "no time zone"),
            ({"destination": tmp_path / "nowhere" / "a.csv"}, "no folder"),
            ({"destination": tmp_path}, "is a folder"),
            ({"fmt": "webhook", "destination": "ftp://127.0.0.1/x", "secret": SECRET}, "not an http"),
            ({"fmt": "webhook", "destination": "http://example.com/x", "secret": SECRET}, "must be https"),
            ({"fmt": "webhook", "destination": "http://127.0.0.1:1/x"}, "needs the shared secret"),
            ({"fmt": "webhook", "destination": "http://127.0.0.1:1/x", "secret": b"short"}, "at least 16"),
        ]:
            with pytest.raises(InvalidInputError, match=says):
                export_segment(store, SEGMENT, **{**base, **change})
        with pytest.raises(InvalidInputError, match="not a name"):
            export_segment(store, "Spring Sale", **base)
    finally:
        store.close()


def test_a_webhook_export_is_signed_batched_and_verified_by_the_receiver(
    embedded: GraphStore, receiver: WebhookServer
) -> None:
    ids = audience(embedded)
    manifest = email_export(
        embedded,
        "webhook",
        receiver.url + "?token=abc",
        secret=SECRET,
        batch_size=2,
    )
    assert [r.verified for r in receiver.requests] == [True, True]
    assert [r.status for r in receiver.requests] == [200, 200]
    assert sorted(r["customer_id"] for r in receiver.rows()) == granted(ids)
    first = receiver.requests[0]
    body = first.json()
    assert body["segment"] == SEGMENT and body["purpose"] == "marketing" and body["batch"] == 0
    assert body["columns"] == ["customer_id", "email"] and len(body["rows"]) == 2
    stamp = first.headers["X-C360-Timestamp"]
    assert first.headers["X-C360-Signature"] == signature(SECRET, stamp, first.body)
    assert first.headers["X-C360-Export-Id"] == manifest.export_id
    assert manifest.batches == [r.headers["Idempotency-Key"] for r in receiver.requests]
    assert manifest.complete and manifest.sha256 is None and manifest.counts.exported == 3
    assert manifest.destination == receiver.url  # the query (a token, perhaps) is not in the manifest
    assert manifest.to_json()["batches_delivered"] == 2 and set(manifest.receipts) == set(granted(ids))


def test_a_receiver_with_another_secret_refuses_and_nothing_is_retried(
    embedded: GraphStore, receiver: WebhookServer
) -> None:
    audience(embedded)
    with pytest.raises(ExportIncompleteError, match="answered 401") as caught:
        email_export(
            embedded,
            "webhook",
            receiver.url,
            secret=b"another-secret-of-16",
        )
    assert [r.verified for r in receiver.requests] == [False]  # a 4xx is not retried
    assert caught.value.manifest.batches == [] and caught.value.manifest.counts.exported == 0
    assert caught.value.manifest.receipts == {}


def recorded_sender(url: str, waits: list[float], **kwargs: Any) -> WebhookSender:
    """A sender whose waits are recorded (and not slept: the receiver is ready at once)."""
    return WebhookSender(url, SECRET, sleep=waits.append, base_delay=0.01, **kwargs)


def test_503_and_429_with_retry_after_are_retried_with_one_idempotency_key(
    embedded: GraphStore, receiver: WebhookServer
) -> None:
    ids = audience(embedded)
    receiver.script.fail = [(503, None), (429, "2")]
    receiver.script.lose_answers = 1  # the batch arrives, its answer is lost: sent again, counted once
    waits: list[float] = []
    manifest = email_export(
        embedded,
        "webhook",
        receiver.url,
        sender=recorded_sender(receiver.url, waits),
        batch_size=10,
    )
    assert [r.status for r in receiver.requests] == [503, 429, 503, 200]
    assert waits == [0.01, 2.0, 0.04]  # exponential backoff, and the receiver's Retry-After honoured
    assert {r.headers["Idempotency-Key"] for r in receiver.requests} == set(manifest.batches)
    assert len(receiver.batches) == 1 and sorted(r["customer_id"] for r in receiver.rows()) == granted(ids)
    assert all(r.verified for r in receiver.requests)
    assert manifest.counts.exported == 3 and manifest.complete


def test_an_export_gives_up_after_its_budget_and_says_what_was_delivered(
    embedded: GraphStore, receiver: WebhookServer
) -> None:
    ids = audience(embedded)
    receiver.script.fail_after = 1  # one batch accepted, then 503 for ever
    with pytest.raises(ExportIncompleteError, match="not accepted within the time budget") as caught:
        email_export(
            embedded,
            "webhook",
            receiver.url,
            sender=WebhookSender(receiver.url, SECRET, budget_seconds=0.5, base_delay=0.02),
            batch_size=1,
        )
    manifest = caught.value.manifest
    assert len(receiver.batches) == 1 and manifest.batches == list(receiver.batches)
    delivered = receiver.rows()[0]["customer_id"]
    assert manifest.counts.exported == 1 and manifest.receipts == {delivered: manifest.receipts[delivered]}
    assert delivered in granted(ids) and not manifest.complete
    assert "time budget" in str(manifest.error) and manifest.to_json()["batches_delivered"] == 1


def test_an_unreachable_receiver_is_retried_until_the_budget() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    waits: list[float] = []
    sender = recorded_sender(url, waits, budget_seconds=0.3)
    with pytest.raises(DeliveryError, match=r"within the time budget .* unreachable: ConnectionRefusedError"):
        sender.send("k-0", {"rows": []})  # the recorded waits take no time: the budget runs out on attempts
    assert waits and waits == [0.01 * 2**i for i in range(len(waits))]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert retry_after("7", now) == 7.0
    assert retry_after("Tue, 01 Dec 2026 12:00:30 GMT", now) == 30.0
    assert retry_after("Tue, 01 Dec 2026 11:00:00 GMT", now) == 0.0
    assert retry_after("soon", now) is None and retry_after(None, now) is None


# -- the command line ---------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A working folder whose ./.c360 store holds the audience."""
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / ".c360" / "graph.db"))
    try:
        audience(store)
    finally:
        store.close()
    return tmp_path


def _audit(home: Path) -> list[dict[str, Any]]:
    lines = (home / ".c360" / "audit.log").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("action") == "ml_export"]


def test_the_cli_exports_audits_and_exits_non_zero_on_errors(home: Path, receiver: WebhookServer) -> None:
    args = ["ml", "export", SEGMENT, "--purpose", "marketing", "--channel", "email", "--at", LATER.isoformat()]
    done = c360(*args, "--format", "csv", "--to", "out.csv", cwd=home)
    assert "9 members, 3 exported" in done.stdout and "withdrawn 1" in done.stdout
    assert "9 members read" in done.stderr  # progress on stderr
    assert len((home / "out.csv").read_text().splitlines()) == 4
    again = c360(*args, "--format", "csv", "--to", "out.csv", cwd=home, ok=False)
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = c360(*args, "--format", "xml", "--to", "out.xml", cwd=home, ok=False)
    assert bad.returncode == 2
    purpose = c360(
        *args[:3], "--purpose", "surveys", "--channel", "email", "--format", "csv", "--to", "x.csv", cwd=home, ok=False
    )
    assert purpose.returncode == 2 and "unknown purpose" in purpose.stderr
    nosecret = c360(*args, "--format", "webhook", "--to", receiver.url, cwd=home, ok=False)
    assert nosecret.returncode == 2 and "C360_WEBHOOK_SECRET" in nosecret.stderr
    env = {"HOOK_SECRET": SECRET.decode()}
    sent = c360(
        *args, "--format", "webhook", "--to", receiver.url, "--secret-env", "HOOK_SECRET", "--json", cwd=home, env=env
    )
    doc = json.loads(sent.stdout)
    assert (
        doc["counts"]["exported"] == 3 and doc["batches_delivered"] == 1 and all(r.verified for r in receiver.requests)
    )
    receiver.script.fail = [(400, None)]
    refused = c360(
        *args,
        "--format",
        "webhook",
        "--to",
        receiver.url,
        "--secret-env",
        "HOOK_SECRET",
        "--json",
        cwd=home,
        env=env,
        ok=False,
    )
    assert refused.returncode == 1 and json.loads(refused.stdout)["batches_delivered"] == 0

    entries = _audit(home)
    assert [(e["target"], e["outcome"]) for e in entries] == [
        (SEGMENT, "ok"),
        (SEGMENT, "refused"),
        (SEGMENT, "refused"),  # the unknown purpose (the bad format and the missing secret stop before)
        (SEGMENT, "ok"),
        (SEGMENT, "refused"),
    ]
    assert "9 members, 3 exported" in entries[0]["detail"] and "no address 1" in entries[0]["detail"]
    assert "1 batch(es) delivered" in entries[3]["detail"] and "answered 400" in entries[4]["detail"]
    assert all(e["role"] == "cli" and e["actor"] for e in entries)
    assert c360("audit", "verify", cwd=home).returncode == 0
