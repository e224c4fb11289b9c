"""``c360 consent``: record, show (with receipts), check and verify the consent ledger from the command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from c360.graph.receipts import open_signing_keys, receipt_hash, verify
from test_cli import c360, copy_of

T = "2026-11-01T09:00:00Z"
T_NOON = "2026-11-01T12:00:00Z"
T_NEXT = "2026-11-02T09:00:00Z"
NOTICE = ["--notice-id", "privacy", "--notice-version", "3", "--notice-text-file", "notice.txt"]


def _record(cwd: Path, key: str, status: str, at: str, event_id: str, *more: str, ok: bool = True) -> str:
    args = ["consent", "record", "--source", "crm", "--key", key, "--purpose", "marketing", "--channel", "email"]
    args += ["--status", status, "--at", at, "--jurisdiction", "DE", "--event-id", event_id, *NOTICE, *more]
    return c360(*args, cwd=cwd, ok=ok).stdout


def _customer(cwd: Path, email: str) -> str:
    (found,) = json.loads(c360("customer", "find", "--email", email, cwd=cwd).stdout)
    return str(found["id"])


def _rows(cwd: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(cwd / ".c360" / "graph.db")
    try:
        return [(r[0], r[1]) for r in db.execute("SELECT event_id, receipt FROM consents ORDER BY seq")]
    except sqlite3.OperationalError:  # no consents table yet
        return []
    finally:
        db.close()


def _audit(cwd: Path, action: str) -> list[dict[str, object]]:
    lines = (cwd / ".c360" / "audit.log").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("action") == action]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two customers (Ann crm|1, Bo crm|2) in ./.c360 and a notice text; a test takes a copy."""
    cwd = tmp_path_factory.mktemp("consent")
    (cwd / "p.csv").write_text("id,email,first_name\n1,ann@example.com,Ann\n2,bo@example.com,Bo\n")
    (cwd / "notice.txt").write_text("We write to you about offers.\n")
    c360("ingest", "p.csv", "--source", "crm", cwd=cwd)
    return cwd


def test_record_show_check_and_verify(ingested: Path, tmp_path: Path) -> None:
    cwd = copy_of(ingested, tmp_path)
    ann, bo = _customer(cwd, "ann@example.com"), _customer(cwd, "bo@example.com")
    first = _record(cwd, "1", "granted", T, "e1", "--actor-id", "agent7")
    assert "recorded e1: granted marketing on email for record crm|1" in first
    assert f"chain {ann}, entry 1" in first
    second = json.loads(_record(cwd, "1", "withdrawn", T_NEXT, "e2", "--json"))
    assert second["chain"] == ann and second["event_id"] == "e2" and not second["replayed"]
    # The same event again is a replay: it keeps its first receipt and adds nothing.
    again = _record(cwd, "1", "granted", T, "e1", "--actor-id", "agent7")
    assert "recorded before" in again and [e for e, _ in _rows(cwd)] == ["e1", "e2"]
    records = _audit(cwd, "record_consent")
    assert [e["outcome"] for e in records] == ["ok", "ok", "ok"] and records[0]["actor"] == "agent7"
    assert records[0]["target"] == "crm|1" and "replay" in str(records[2]["detail"])

    # show: the later withdrawal decides now, the grant at noon of the first day.
    now = c360("consent", "show", ann, cwd=cwd).stdout
    assert "withdrawn" in now and "event e2" in now
    noon = json.loads(c360("consent", "show", ann, "--at", T_NOON, "--json", cwd=cwd).stdout)
    assert noon["customer"] == ann and noon["events"] == 2
    (state,) = noon["states"]
    assert (state["purpose"], state["channel"], state["status"]) == ("marketing", "email", "granted")
    assert state["event"]["id"] == "e1" and state["event"]["actor"] == "agent:agent7"
    assert state["event"]["method"] == "call_centre" and state["event"]["source"] == "cli"
    assert "no consent recorded" in c360("consent", "show", bo, cwd=cwd).stdout

    # show --receipt: the compact JWS to send, which verifies with the public keys alone, and its claims.
    jwks = open_signing_keys(cwd / ".c360" / "signing-keys.json", create=False).jwks()
    doc = json.loads(c360("consent", "show", ann, "--receipt", "e2", "--json", cwd=cwd).stdout)
    claims = verify(doc["receipt"], jwks)
    assert claims == doc["claims"] and claims["c360"]["event"] == "e2" and claims["piiPrincipalId"] == ann
    assert claims["prev"] == receipt_hash(dict(_rows(cwd))["e1"]) and doc["receipt_id"] == claims["jti"]
    text = c360("consent", "show", ann, "--receipt", "e1", cwd=cwd).stdout
    assert text.splitlines()[0] == dict(_rows(cwd))["e1"]
    assert json.loads(text.split("\n", 1)[1])["c360"]["status"] == "granted"

    # check: the one question, exit 0 either way, with the reason and the event.
    no = c360("consent", "check", ann, "--channel", "email", "--purpose", "marketing", cwd=cwd)
    assert no.returncode == 0 and no.stdout.startswith("NOT ALLOWED") and "withdrawn" in no.stdout
    assert "event e2" in no.stdout
    yes = c360(
        "consent", "check", ann, "--channel", "email", "--purpose", "marketing", "--at", T_NOON, "--json", cwd=cwd
    )
    answer = json.loads(yes.stdout)
    assert answer["allowed"] is True and answer["event_id"] == "e1" and answer["status"] == "granted"
    assert answer["receipt"] == dict(_rows(cwd))["e1"]
    other = json.loads(
        c360("consent", "check", bo, "--channel", "sms", "--purpose", "analytics", "--json", cwd=cwd).stdout
    )
    assert other["allowed"] is False and other["status"] == "none" and other["event_id"] is None

    # verify: every chain.
    _record(cwd, "2", "granted", T, "b1", "--actor-kind", "customer", "--method", "web_form")
    verified = c360("consent", "verify", cwd=cwd)
    assert f"chain {ann}: ok, 2 receipts" in verified.stdout and f"chain {bo}: ok, 1 receipts" in verified.stdout
    report = json.loads(c360("consent", "verify", "--json", cwd=cwd).stdout)
    assert report["ok"] is True and {c["chain"] for c in report["chains"]} == {ann, bo}
    assert [e["outcome"] for e in _audit(cwd, "verify_consent")] == ["ok", "ok"]
    assert {"read_consent", "read_consent_receipt", "check_consent"} <= {
        str(e["action"]) for e in map(json.loads, (cwd / ".c360" / "audit.log").read_text().splitlines())
    }
    assert c360("audit", "verify", cwd=cwd).returncode == 0


def _tamper(cwd: Path, event_id: str) -> None:
    """Swap one character in the middle of the payload of ``event_id``'s stored receipt."""
    db = sqlite3.connect(cwd / ".c360" / "graph.db")
    (receipt,) = db.execute("SELECT receipt FROM consents WHERE event_id = ?", (event_id,)).fetchone()
    header, payload, signature = receipt.split(".")
    i = len(payload) // 2
    payload = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1 :]
    db.execute("UPDATE consents SET receipt = ? WHERE event_id = ?", (f"{header}.{payload}.{signature}", event_id))
    db.commit()
    db.close()


def test_verify_names_the_first_altered_or_removed_entry_and_exits_1(ingested: Path, tmp_path: Path) -> None:
    cwd = copy_of(ingested, tmp_path)
    ann, bo = _customer(cwd, "ann@example.com"), _customer(cwd, "bo@example.com")
    for n, (status, at) in enumerate([("granted", T), ("withdrawn", T_NOON), ("granted", T_NEXT)], start=1):
        _record(cwd, "1", status, at, f"a{n}")
    _record(cwd, "2", "granted", T, "b1")
    assert c360("consent", "verify", cwd=cwd).returncode == 0

    _tamper(cwd, "a2")
    failed = c360("consent", "verify", cwd=cwd, ok=False)
    assert failed.returncode == 1 and "1 of 2 chains fail" in failed.stderr
    assert f"chain {ann}: FAILS at entry 1 (event a2): altered" in failed.stdout
    assert f"chain {bo}: ok" in failed.stdout
    report = json.loads(c360("consent", "verify", "--json", cwd=cwd, ok=False).stdout)
    (bad,) = [c for c in report["chains"] if not c["ok"]]
    assert (bad["chain"], bad["index"], bad["event_id"], bad["reason"]) == (ann, 1, "a2", "altered")
    assert report["ok"] is False
    # A tampered receipt is not handed out.
    shown = c360("consent", "show", ann, "--receipt", "a2", cwd=cwd, ok=False)
    assert shown.returncode == 1 and "does not verify" in shown.stderr

    # A removed entry: the one after the gap is named.
    db = sqlite3.connect(cwd / ".c360" / "graph.db")
    db.execute("DELETE FROM consents WHERE event_id = 'a2'")
    db.commit()
    db.close()
    removed = c360("consent", "verify", cwd=cwd, ok=False)
    assert removed.returncode == 1 and f"chain {ann}: FAILS at entry 1 (event a3): removed" in removed.stdout


BAD: list[tuple[list[str], str]] = [
    (["--purpose", "spam"], "unknown purpose 'spam'"),
    (["--at", "2026-11-01T09:00:00"], "has no time zone"),
    (["--at", "yesterday"], "is not an ISO 8601 time"),
    (["--at", "2999-01-01T00:00:00Z"], "in the future"),
    (["--key", "404"], "not stored: crm|404"),
    (["--channel", "fax"], "unknown channel 'fax'"),
    (["--status", "maybe"], "unknown status 'maybe'"),
    (["--status", "denied", "--expires", "2027-01-01T00:00:00Z"], "only a grant can expire"),
    (["--jurisdiction", "Germany"], "jurisdiction 'Germany'"),
    (["--actor-kind", "customer"], "--method"),
    (["--notice-text-file", "missing.txt"], "cannot read the notice text"),
    (["--source", "A|B"], "invalid source name"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_exits_non_zero_with_a_clear_message_and_writes_nothing(
    ingested: Path, tmp_path: Path, change: list[str], message: str
) -> None:
    cwd = copy_of(ingested, tmp_path)
    values = {
        "--source": "crm",
        "--key": "1",
        "--purpose": "marketing",
        "--channel": "email",
        "--status": "granted",
        "--at": T,
        "--jurisdiction": "DE",
        "--notice-id": "privacy",
        "--notice-version": "3",
        "--notice-text-file": "notice.txt",
    }
    extra: list[str] = []
    for option, value in zip(change[::2], change[1::2], strict=True):
        if option in values:
            values[option] = value
        else:
            extra += [option, value]
    args = [a for pair in values.items() for a in pair] + extra
    proc = c360("consent", "record", *args, cwd=cwd, ok=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert _rows(cwd) == []


def test_show_and_check_refuse_unknown_customers_purposes_and_naive_times(ingested: Path, tmp_path: Path) -> None:
    cwd = copy_of(ingested, tmp_path)
    ann = _customer(cwd, "ann@example.com")
    cases = [
        (["show", "C404"], "no customer C404"),
        (["show", ann, "--at", "2026-11-01T09:00"], "has no time zone"),
        (["show", ann, "--receipt", "nope"], f"customer {ann} has no consent event nope"),
        (["check", ann, "--channel", "email", "--purpose", "spam"], "unknown purpose 'spam'"),
        (["check", ann, "--channel", "fax", "--purpose", "marketing"], "unknown channel 'fax'"),
        (["check", "C404", "--channel", "email", "--purpose", "marketing"], "no customer C404"),
    ]
    for args, message in cases:
        proc = c360("consent", *args, cwd=cwd, ok=False)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)
    assert c360("consent", "verify", cwd=cwd).stdout.strip() == "no consent recorded: nothing to verify"
