"""The audit trail's hash chain: intact, altered, removed, reordered; and ``c360 audit verify``."""

from __future__ import annotations

import json
from pathlib import Path

from c360.graphql.audit import GENESIS, AuditLog
from test_cli import c360


def _log(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append(actor=f"u{i}", role="data_steward", action="read_profile", target=f"C{i}", outcome="ok")
    return log


def test_an_intact_chain_verifies_and_continues_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    assert AuditLog(path).verify().entries == 0 and AuditLog(path).last_hash() == GENESIS
    _log(path, 3)
    again = AuditLog(path)  # a new process continues the chain
    entry = again.append(actor="x", role="admin", action="split", target="C1", outcome="denied", detail="403")
    assert entry["seq"] == 4
    result = again.verify()
    assert result.ok and result.entries == 4
    assert again.last_hash() == entry["hash"]


def test_verify_names_the_first_altered_or_removed_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 5)
    lines = path.read_text().splitlines()
    # Altered: entry 3's outcome rewritten.
    tampered = json.loads(lines[2])
    tampered["outcome"] = "denied"
    path.write_text("\n".join([*lines[:2], json.dumps(tampered), *lines[3:]]) + "\n")
    result = AuditLog(path).verify()
    assert (result.broken_at, result.entries) == (3, 2) and "altered" in (result.problem or "")
    # Removed: entry 2 deleted.
    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    result = AuditLog(path).verify()
    assert result.broken_at == 2 and "missing" in (result.problem or "")
    # Re-hashed after a change (no key needed for that): its seal no longer fits.
    forged = json.loads(lines[1])
    forged["actor"] = "someone else"
    from c360.graphql.audit import _digest, read_keys

    forged["hash"] = _digest(forged)
    path.write_text("\n".join([lines[0], json.dumps(forged), *lines[2:]]) + "\n")
    result = AuditLog(path).verify()
    assert result.broken_at == 2 and "not sealed" in (result.problem or "")
    # Re-hashed and re-sealed with the key: the next entry no longer follows it.
    keys = read_keys(AuditLog(path).keys_path)
    forged["mac"] = keys.mac(forged["kid"], forged["hash"])
    path.write_text("\n".join([lines[0], json.dumps(forged), *lines[2:]]) + "\n")
    assert AuditLog(path).verify().broken_at == 3


def test_cli_audit_verify(tmp_path: Path) -> None:
    path = tmp_path / ".c360" / "audit.log"
    _log(path, 3)
    assert "intact: 3 entries" in c360("audit", "verify", cwd=tmp_path).stdout
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    bad = c360("audit", "verify", cwd=tmp_path, ok=False)
    assert bad.returncode == 1 and "entry 2" in bad.stderr


def test_concurrent_appends_share_fsyncs_and_keep_one_chain(tmp_path: Path) -> None:
    import asyncio
    import threading

    path = tmp_path / "audit.log"
    log = AuditLog(path)

    def work(n: int) -> None:
        for i in range(50):
            log.append(actor=f"t{n}", role="marketer", action="read_profile", target=f"C{i}", outcome="ok")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def more() -> list[dict[str, object]]:
        return await asyncio.gather(
            *(log.record(actor="a", role="admin", action="merge", target=None, outcome="ok") for _ in range(20))
        )

    entries = asyncio.run(more())
    assert sorted(int(str(e["seq"])) for e in entries) == list(range(401, 421))
    log.close()
    result = AuditLog(path).verify()
    assert result.ok and result.entries == 420
    assert len(path.read_text().splitlines()) == 420


def test_a_failed_write_fails_its_entries_and_the_chain_goes_on(tmp_path: Path) -> None:
    import pytest

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = AuditLog(blocker / "audit.log")  # its folder cannot be created
    with pytest.raises(OSError):
        log.append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    log.path = tmp_path / "audit.log"
    entry = log.append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    assert entry["seq"] == 1 and AuditLog(log.path).verify().ok


def test_cli_reads_and_changes_are_audited_too(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    people = [
        {
            "event_id": f"p{i}",
            "type": "profile_update",
            "source": "crm",
            "occurred_at": "2026-05-01T10:00:00Z",
            "profile": {"customer_key": str(i), "first_name": "Ann", "email": "ann@example.com"},
        }
        for i in (1, 2)
    ]
    events.write_text("\n".join(json.dumps(p) for p in people))
    c360("events", "send", str(events), cwd=tmp_path)
    cid = json.loads(c360("customer", "find", "--email", "ann@example.com", cwd=tmp_path).stdout)[0]["id"]
    c360("customer", "get", cid, cwd=tmp_path)
    c360("customer", "get", "C404", cwd=tmp_path, ok=False)
    c360("customer", "split", cid, "--records", "crm|2", "--reason", "twins", "--by", "steward-sue", cwd=tmp_path)
    c360("customer", "split", cid, "--records", "crm|9", "--reason", "x", cwd=tmp_path, ok=False)
    entries = [json.loads(line) for line in (tmp_path / ".c360" / "audit.log").read_text().splitlines()]
    got = [(e["action"], e["target"], e["outcome"]) for e in entries]
    assert got[:5] == [
        ("send_events", str(events), "ok"),  # a change: audited since issue 13
        ("search_customers", None, "ok"),
        ("read_profile", cid, "ok"),
        ("read_profile", "C404", "not_found"),
        ("split", cid, "ok"),
    ]
    assert got[5][0] == "split" and got[5][2] in ("refused", "not_found")
    assert entries[4]["actor"] == "steward-sue" and all(e["role"] == "cli" for e in entries)
    assert "intact: 6 entries" in c360("audit", "verify", cwd=tmp_path).stdout


def test_two_writers_share_one_chain(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "audit.log"
    server, cli = AuditLog(path), AuditLog(path)  # e.g. c360 serve, and a command run beside it
    server.append(actor="a", role="marketer", action="read_profile", target="C1", outcome="ok")
    cli.append(actor="b", role="cli", action="split", target="C1", outcome="ok")
    assert server.append(actor="a", role="marketer", action="read_profile", target="C2", outcome="ok")["seq"] == 3
    # Two processes appending at once: the file lock makes them take turns.
    script = (
        "import sys; from pathlib import Path; from c360.graphql.audit import AuditLog\n"
        "log = AuditLog(Path(sys.argv[1]))\n"
        "for i in range(200):\n"
        "    log.append(actor=sys.argv[2], role='cli', action='read_profile', target=str(i), outcome='ok')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), name]) for name in ("p1", "p2")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    result = AuditLog(path).verify()
    assert result.ok and result.entries == 403
