"""Issue 13, finding 7: the audit trail proves itself, takes every refusal and change, never lies by omission.

Each test first does what the attack did (truncate, edit and re-hash, forge, tear the last line, make
the write fail, send a refused request) and then checks it is caught, refused or recorded.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from c360.graph.errors import ConfigError
from c360.graphql.audit import (
    GENESIS,
    MAX_VALUE,
    AuditLog,
    AuditUnavailableError,
    Head,
    _digest,
    read_keys,
)


def _log(path: Path, n: int = 5, *, close: bool = True) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append(actor=f"u{i}", role="data_steward", action="read_profile", target=f"C{i}", outcome="ok")
    if close:
        log.close()
    return log


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


# -- sealing -----------------------------------------------------------------------------------------


def test_each_entry_is_sealed_under_a_key_made_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 2)
    keys = AuditLog(path).keys_path
    assert keys == tmp_path / "audit-keys.json"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = read_keys(keys)
    for e in _entries(path):
        assert e["kid"] == "k1" and e["mac"] == ring.mac("k1", e["hash"]) and e["hash"] == _digest(e)
    assert "secret" not in repr(ring) and ring.ids == ("k1",)


def test_an_edited_entry_with_the_whole_chain_rehashed_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 5)
    entries = _entries(path)
    # The attack: change entry 2, then recompute every hash and prev after it (needs no key).
    entries[1]["outcome"] = "denied"
    prev = entries[0]["hash"]
    for e in entries[1:]:
        e["prev"] = prev
        e["hash"] = prev = _digest(e)
    _write(path, entries)
    result = AuditLog(path).verify()
    assert not result.ok and result.broken_at == 2 and "not sealed" in (result.problem or "")
    # Forged the same way with the seal removed altogether: still caught.
    for e in entries:
        e.pop("mac"), e.pop("kid")
    prev = GENESIS
    for e in entries:
        e["prev"] = prev
        e["hash"] = prev = _digest(e)
    _write(path, entries)
    assert not AuditLog(path).verify().ok


def test_a_forged_append_is_caught_and_no_writer_builds_on_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 3)
    last = _entries(path)[-1]
    forged = {**last, "seq": 4, "prev": last["hash"], "actor": "mallory", "target": "C9", "mac": "0" * 64}
    forged["hash"] = _digest(forged)
    unsealed = {k: v for k, v in forged.items() if k not in ("mac", "kid")}
    unsealed["hash"] = _digest(unsealed)
    for bad in (forged, unsealed):
        _write(path, [*_entries(path)[:3], bad])
        result = AuditLog(path).verify()
        assert not result.ok and result.broken_at == 4, result
        with pytest.raises(AuditUnavailableError, match="not sealed"):
            AuditLog(path).append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    assert len(_entries(path)) == 4  # nothing was chained onto the forgery


def test_truncation_to_nothing_is_caught_by_the_anchor_and_refused_by_writers(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 4)
    anchor = json.loads((tmp_path / "audit.log.head").read_text())
    assert anchor["count"] == 4  # close() brings it up to date
    path.write_bytes(b"")  # the attack: the log emptied, the anchor left alone
    result = AuditLog(path).verify()
    assert not result.ok and "anchor says 4" in (result.problem or "")
    with pytest.raises(AuditUnavailableError, match="cut back"):
        AuditLog(path).append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    assert path.read_bytes() == b""
    # Deleting the anchor too is not silent either: verify says so, and the next writer records it.
    (tmp_path / "audit.log.head").unlink()
    _log(path, 2)
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    (tmp_path / "audit.log.head").unlink()
    assert "anchor" in (AuditLog(path).verify().problem or "")
    AuditLog(path).append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    result = AuditLog(path).verify()
    assert result.ok and any("audit_anchor missing" in n for n in result.notices)


def test_truncation_to_an_earlier_point_is_caught_against_a_head_kept_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _log(path, 6, close=False)
    shipped = log.head()  # what `c360 audit head` ships to an external log
    assert shipped.count == 6 and shipped.hash == _entries(path)[-1]["hash"]
    assert Head.parse(str(shipped)) == shipped and Head.parse(json.dumps({"count": 6, "hash": shipped.hash})) == shipped
    assert AuditLog(path).verify(shipped).ok
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]))  # the attack: the last two entries cut off
    result = AuditLog(path).verify(shipped)
    assert not result.ok and "head given says 6" in (result.problem or "")
    # A log rebuilt to the same length is not the one the head names either.
    assert not AuditLog(path).verify(Head(4, "f" * 64)).ok
    # The writer that had written them notices at its next append.
    with pytest.raises(AuditUnavailableError, match="cut back"):
        log.append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    with pytest.raises(ConfigError):
        Head.parse("six:abc")


def test_key_rotation_keeps_old_entries_verifiable_and_retires_the_old_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _log(path, 2, close=False)
    assert log.rotate_key(actor="ops") == "k2"
    log.append(actor="u", role="marketer", action="read_profile", target="C1", outcome="ok")
    other = AuditLog(path)  # another process picks up the new key from the file
    other.append(actor="v", role="marketer", action="read_profile", target="C2", outcome="ok")
    entries = _entries(path)
    assert [e["kid"] for e in entries] == ["k1", "k1", "k2", "k2", "k2"]
    assert entries[2]["action"] == "audit_key_rotated" and entries[2]["actor"] == "ops"
    assert AuditLog(path).verify().ok
    assert stat.S_IMODE(log.keys_path.stat().st_mode) == 0o600
    # Someone holding the retired key k1 appends an entry sealed with it: refused.
    ring = read_keys(log.keys_path)
    forged = {**entries[-1], "seq": 6, "prev": entries[-1]["hash"], "kid": "k1", "actor": "mallory"}
    forged["hash"] = _digest(forged)
    forged["mac"] = ring.mac("k1", forged["hash"])
    _write(path, [*entries, forged])
    result = AuditLog(path).verify()
    assert result.broken_at == 6 and "retired" in (result.problem or "")


def test_key_files_a_configured_one_must_exist_and_none_may_be_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    missing = AuditLog(path, key_file=tmp_path / "secrets" / "audit-keys.json")
    with pytest.raises(AuditUnavailableError, match="missing"):
        missing.append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    _log(path, 1)
    keys = tmp_path / "audit-keys.json"
    os.chmod(keys, 0o644)
    with pytest.raises(AuditUnavailableError, match="chmod 600"):
        AuditLog(path).append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    assert "chmod 600" in (AuditLog(path).verify().problem or "")
    os.chmod(keys, 0o600)
    # A lost key file is not silently replaced by a new key (which would orphan every seal).
    keys.rename(tmp_path / "elsewhere.json")
    with pytest.raises(AuditUnavailableError, match="missing"):
        AuditLog(path).append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    assert not keys.exists()


# -- torn tails, failed writes ------------------------------------------------------------------


def test_a_torn_last_line_is_moved_aside_and_the_repair_is_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 3)
    with path.open("ab") as fh:
        fh.write(b'{"action":"read_profile","actor":"u9","at":"2026-')  # a crash in the middle of a write
    assert "torn" in (AuditLog(path).verify().problem or "")
    log = AuditLog(path)
    assert log.problem() is None  # opening repairs it (what `c360 serve` and /readyz do)
    entry = log.append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    entries = _entries(path)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5] and entry["seq"] == 5
    assert entries[3]["action"] == "audit_repair" and entries[3]["outcome"] == "repaired"
    assert (tmp_path / "audit.log.torn").read_bytes() == b'{"action":"read_profile","actor":"u9","at":"2026-\n'
    result = AuditLog(path).verify()
    assert result.ok and result.entries == 5 and any("audit_repair" in n for n in result.notices)


def test_a_last_line_that_is_not_an_entry_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 2)
    with path.open("ab") as fh:
        fh.write(b"garbage, not an entry\n")
    log = AuditLog(path)
    why = log.problem()
    assert why is not None and "last line is not an audit entry" in why and "c360 audit verify" in why
    assert str(path) not in why  # the reason is shown to API callers (503): the file's name, not its path
    with pytest.raises(AuditUnavailableError):
        log.append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")


def test_a_failed_fsync_fails_the_entry_leaves_no_partial_line_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import c360.graphql.audit as audit

    path = tmp_path / "audit.log"
    log = _log(path, 2, close=False)
    size = path.stat().st_size

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit.os, "fsync", full)
    with pytest.raises(AuditUnavailableError, match="No space left on device"):
        log.append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    assert path.stat().st_size == size  # the entry that was not durable is not left behind
    assert log.failure is not None and "No space" in (log.problem() or "")
    monkeypatch.undo()
    assert log.problem() is None  # a probe entry finds the log writable again, and records the outage
    entries = _entries(path)
    assert entries[-1]["action"] == "audit_probe" and "No space" in entries[-1]["detail"]
    assert AuditLog(path).verify().ok


def test_async_callers_get_their_entry_only_after_its_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import c360.graphql.audit as audit

    path = tmp_path / "audit.log"
    log = AuditLog(path)
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        synced.append(fd)

    monkeypatch.setattr(audit.os, "fsync", fsync)

    async def read() -> int:
        await log.record(actor="a", role="marketer", action="read_profile", target="C1", outcome="ok")
        return len(synced)  # what the answer would be sent after

    assert all(n >= 1 for n in asyncio.run(_gather(read, 5)))

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(audit.os, "fsync", failing)
    with pytest.raises(AuditUnavailableError):
        asyncio.run(_gather(read, 3))


async def _gather(fn: Any, n: int) -> list[Any]:
    import asyncio

    return list(await asyncio.gather(*(fn() for _ in range(n))))


def test_long_values_are_cut_so_a_refused_request_cannot_write_a_megabyte(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    huge = "x" * 1_000_000
    entry = log.append(actor=huge, role="partner", action="post_events", target=huge, outcome="denied", detail=huge)
    assert path.stat().st_size < 8 * MAX_VALUE
    assert entry["target"].startswith("x" * MAX_VALUE) and entry["target"].endswith("[999744 more characters]")
    lone = log.append(actor="a", role="r", action="read_profile", target="C\udc80", outcome="ok")
    assert lone["target"] == "C?" and AuditLog(path).verify().ok
