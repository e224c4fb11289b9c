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


# -- the API: refusals audited, nothing answered unaudited, /readyz --------------------------------


class _Api:
    """The app in this process over an embedded store with two customers, a dev verifier and a partner."""

    def __init__(self, tmp_path: Path, policy: Any = None) -> None:
        from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
        from c360.graphql.app import ApiOptions, create_app
        from c360.graphql.auth import AuthConfig, TokenVerifier
        from c360.graphql.partners import PartnerKeys
        from c360.graphql.policy import load_policy
        from c360.graphql.ratelimit import RateLimiter
        from c360.graphql.service import ProfileService
        from c360.resolution.linker import Linker
        from c360.streams.pipeline import Pipeline
        from c360.streams.runner import Runner

        store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "graph.db"))
        pipeline = Pipeline(store, Linker(store))
        people = [
            {
                "event_id": f"p{i}",
                "type": "profile_update",
                "source": "crm",
                "occurred_at": "2026-05-01T10:00:00Z",
                "profile": {"customer_key": f"K{i}", "first_name": f"N{i}", "email": f"p{i}@example.com"},
            }
            for i in range(2)
        ]
        assert len(pipeline.process(people).accepted) == 2
        self.customer = store.list_customers(1, None)[0][0]
        policy = policy or load_policy()
        self.audit = AuditLog(tmp_path / "audit.log")
        self.config = AuthConfig(dev_mode=True, dev_key_file=tmp_path / "dev.key")
        self.policy = policy
        partners = PartnerKeys(tmp_path / "partners.json")
        self.partner_key = partners.issue("acme", ["acme"])
        options = ApiOptions(
            policy=policy,
            audit=self.audit,
            verifier=TokenVerifier(self.config, policy.roles),
            dev_mode=True,
            partner_limiter=RateLimiter(0.001, 2),
            service=ProfileService(store, policy, self.audit),
        )
        self.app = create_app(store=store, sink=Runner(pipeline), partners=partners, options=options)

    def token(self, role: str, subject: str = "tester") -> str:
        from c360.graphql.auth import issue_dev_token

        return issue_dev_token(self.config, role, subject, roles=self.policy.roles)

    def ask(self, *requests: tuple[str, str, dict[str, Any]]) -> list[Any]:
        import asyncio

        import httpx

        async def run() -> list[Any]:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://c360") as client:
                return [await client.request(method, url, **kw) for method, url, kw in requests]

        return asyncio.run(run())

    def entries(self) -> list[dict[str, Any]]:
        return _entries(self.audit.path)


def test_401s_are_audited_with_the_reason_never_the_credential(tmp_path: Path) -> None:
    api = _Api(tmp_path)
    forged = api.token("data_steward")[:-4] + "AAAA"
    url = f"/v1/customers/{api.customer}"
    answers = api.ask(
        ("GET", url, {}),
        ("GET", url, {"headers": {"Authorization": f"Bearer {forged}"}}),
        ("GET", url, {"headers": {"Authorization": "Bearer c360_ghost_" + "x" * 43}}),
        ("POST", "/v1/events", {"headers": {"X-API-Key": "nope"}, "json": []}),
        ("POST", "/graphql", {"json": {"query": "{ customers(first: 1) { nodes { id } } }"}}),
    )
    assert [a.status_code for a in answers] == [401] * 5
    refused = [e for e in api.entries() if e["outcome"] == "unauthenticated"]
    assert [(e["action"], e["target"]) for e in refused] == [
        ("authenticate", f"GET {url}"),
        ("authenticate", f"GET {url}"),
        ("authenticate", f"GET {url}"),
        ("authenticate", "POST /v1/events"),
        ("authenticate", "POST /graphql"),
    ]
    assert "credentials: none" in refused[0]["detail"] and "send credentials" in refused[0]["detail"]
    assert "signature" in refused[1]["detail"] and "a bearer token" in refused[1]["detail"]
    assert "partner key of 'ghost'" in refused[2]["detail"] and "unknown or revoked" in refused[2]["detail"]
    text = api.audit.path.read_text()
    assert forged not in text and "x" * 43 not in text and "nope" not in text


def test_a_forbidden_customers_query_and_rate_limited_partner_are_audited(tmp_path: Path) -> None:
    api = _Api(tmp_path)
    partner = {"Authorization": f"Bearer {api.partner_key}"}
    query = {"query": "{ customers(first: 5) { nodes { id } } }"}
    answers = api.ask(*[("POST", "/graphql", {"headers": partner, "json": query})] * 3)
    body = answers[0].json()
    assert body["data"] is None or body["data"].get("customers") is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert answers[2].status_code == 429  # a burst of two
    entries = api.entries()
    denied = [e for e in entries if e["action"] == "search_customers"]
    assert [(e["actor"], e["role"], e["outcome"]) for e in denied] == [("acme", "partner", "denied")] * 2
    limited = [e for e in entries if e["action"] == "rate_limit"]
    assert [(e["actor"], e["outcome"], e["target"]) for e in limited] == [("acme", "refused", "POST /graphql")]


def test_an_invalid_lookup_and_a_huge_id_are_audited_in_bounded_entries(tmp_path: Path) -> None:
    api = _Api(tmp_path)
    steward = {"Authorization": f"Bearer {api.token('data_steward')}"}
    huge = "C" + "9" * 60_000  # (httpx refuses longer URLs; the GraphQL body limit is the GraphQL tests')
    answers = api.ask(
        ("GET", "/v1/customers", {"headers": steward, "params": {"email": "not-an-email"}}),
        ("GET", "/v1/customers", {"headers": steward, "params": {"email": "x" * 400}}),
        ("GET", f"/v1/customers/{huge}", {"headers": steward}),
    )
    assert [a.status_code for a in answers] == [400, 422, 404]
    entries = api.entries()
    assert any(e["outcome"] == "refused" and "not a valid email" in (e["detail"] or "") for e in entries)
    assert any(e["outcome"] == "refused" and e["detail"].startswith("422") for e in entries)
    assert "not-an-email" not in api.audit.path.read_text()  # the path is kept, never the query string
    assert max(len(line) for line in api.audit.path.read_text().splitlines()) < 4 * MAX_VALUE


def test_a_read_whose_audit_write_fails_answers_503_with_no_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import c360.graphql.audit as audit

    api = _Api(tmp_path)
    steward = {"Authorization": f"Bearer {api.token('data_steward')}"}
    url = f"/v1/customers/{api.customer}"
    assert api.ask(("GET", url, {"headers": steward}))[0].status_code == 200

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit.os, "fsync", full)
    query = {"query": f'{{ customer(id: "{api.customer}") {{ id golden {{ email {{ value }} }} }} }}'}
    rest, gql, ready = api.ask(
        ("GET", url, {"headers": steward}),
        ("POST", "/graphql", {"headers": steward, "json": query}),
        ("GET", "/readyz", {}),
    )
    assert rest.status_code == 503 and "p0@example.com" not in rest.text and "p1@example.com" not in rest.text
    assert "example.com" not in gql.text and (gql.json().get("data") or {}).get("customer") is None
    assert ready.status_code == 503 and "No space left on device" in ready.json()["detail"]
    monkeypatch.undo()
    ready, rest = api.ask(("GET", "/readyz", {}), ("GET", url, {"headers": steward}))
    assert ready.status_code == 200 and rest.status_code == 200
    assert AuditLog(api.audit.path).verify().ok


def test_readyz_reports_a_log_that_is_refused_and_reads_are_refused_with_it(tmp_path: Path) -> None:
    api = _Api(tmp_path)
    steward = {"Authorization": f"Bearer {api.token('data_steward')}"}
    url = f"/v1/customers/{api.customer}"
    assert api.ask(("GET", url, {"headers": steward}))[0].status_code == 200
    api.audit.close()
    with api.audit.path.open("ab") as fh:
        fh.write(b"not an entry\n")
    ready, rest = api.ask(("GET", "/readyz", {}), ("GET", url, {"headers": steward}))
    assert ready.status_code == 503 and "not an audit entry" in ready.json()["detail"]
    assert rest.status_code == 503 and "p0@example.com" not in rest.text


# -- the command line: every change audited, nothing printed unaudited ---------------------------


def _cli_entries(home: Path) -> list[dict[str, Any]]:
    return _entries(home / ".c360" / "audit.log")


def _people(home: Path) -> Path:
    (home / "people.csv").write_text("id,first_name,email\n1,Ann,ann@example.com\n2,Bob,bob@example.com\n,Cy,c@x.com\n")
    return home / "people.csv"


def test_cli_prints_no_profile_when_its_audit_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import c360.graphql.audit as audit
    from test_cli import c360

    _people(tmp_path)
    c360("ingest", "people.csv", "--source", "crm", cwd=tmp_path)
    cid = json.loads(c360("customer", "find", "--email", "ann@example.com", cwd=tmp_path).stdout)[0]["id"]

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit.os, "fsync", full)
    for args in (("customer", "get", cid), ("customer", "find", "--email", "ann@example.com")):
        got = c360(*args, cwd=tmp_path, ok=False)
        assert got.returncode == 1 and got.stdout == "" and "audit entry could not be written" in got.stderr
    monkeypatch.undo()
    assert "ann@example.com" in c360("customer", "get", cid, cwd=tmp_path).stdout


def test_cli_changes_are_audited_with_who_what_and_counts(tmp_path: Path) -> None:
    from test_cli import c360

    _people(tmp_path)
    c360("ingest", "people.csv", "--source", "crm", cwd=tmp_path)
    key = c360("partner", "add", "acme", "--sources", "acme,shop", cwd=tmp_path).stdout.strip()
    c360("partner", "add", "acme", "--rotate", cwd=tmp_path)
    c360("partner", "list", cwd=tmp_path)
    c360("partner", "revoke", "acme", cwd=tmp_path)
    c360("partner", "revoke", "acme", cwd=tmp_path, ok=False)
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"event_id": "e1", "type": "profile_update", "source": "crm"}]))
    c360("events", "send", "events.json", cwd=tmp_path, ok=False)  # rejected: exit 1, still audited
    c360("export", "links", "--output", "links.csv", cwd=tmp_path)
    c360("auth", "token", "--role", "marketer", "--subject", "sam", "--dev", cwd=tmp_path)
    c360("review", "list", cwd=tmp_path)
    got = [(e["action"], e["target"], e["outcome"]) for e in _cli_entries(tmp_path)]
    assert got == [
        ("ingest", "crm", "ok"),
        ("partner_add", "acme", "ok"),
        ("partner_rotate_key", "acme", "ok"),
        ("read_partners", None, "ok"),
        ("partner_revoke", "acme", "ok"),
        ("partner_revoke", "acme", "not_found"),
        ("send_events", "events.json", "ok"),
        ("export_links", "links.csv", "ok"),
        ("issue_token", "sam", "ok"),
        ("read_review_queue", None, "ok"),
    ]
    entries = _cli_entries(tmp_path)
    ingest = entries[0]
    assert ingest["role"] == "cli" and ingest["actor"]
    assert ingest["detail"].startswith("3 rows, 2 records (2 new,") and "1 rejected" in ingest["detail"]
    assert ingest["detail"].endswith("file people.csv")
    assert entries[1]["detail"] == "sources acme,shop"
    assert "0 applied" in entries[6]["detail"] and "1 rejected" in entries[6]["detail"]
    assert entries[8]["detail"] == "dev token, role marketer, 3600 s"
    assert key not in (tmp_path / ".c360" / "audit.log").read_text()
    assert "intact: 10 entries" in c360("audit", "verify", cwd=tmp_path).stdout


def test_cli_refuses_to_change_anything_while_the_audit_trail_is_broken(tmp_path: Path) -> None:
    from test_cli import c360

    c360("partner", "add", "acme", cwd=tmp_path)
    log = tmp_path / ".c360" / "audit.log"
    with log.open("ab") as fh:
        fh.write(b"not an entry\n")
    got = c360("partner", "add", "other", cwd=tmp_path, ok=False)
    assert got.returncode == 1 and "not an audit entry" in got.stderr and got.stdout == ""
    assert "other" not in (tmp_path / ".c360" / "partners.json").read_text()
    _people(tmp_path)
    assert c360("ingest", "people.csv", "--source", "crm", cwd=tmp_path, ok=False).returncode == 1
    db = tmp_path / ".c360" / "graph.db"
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM records").fetchone() == (0,)


def test_cli_audit_head_verify_head_and_rotate_key(tmp_path: Path) -> None:
    from test_cli import c360

    c360("partner", "add", "acme", cwd=tmp_path)
    c360("partner", "list", cwd=tmp_path)
    line = c360("audit", "head", cwd=tmp_path).stdout.strip()
    shipped = json.loads(line)
    assert shipped["count"] == 2 and shipped["c360_audit_head"] == f"2:{shipped['hash']}"
    verified = c360("audit", "verify", "--head", shipped["c360_audit_head"], cwd=tmp_path).stdout
    assert f"intact: 2 entries; head 2:{shipped['hash']}" in verified and "matches the head given" in verified
    assert "intact: 2 entries" in c360("audit", "verify", "--head", line, cwd=tmp_path).stdout
    assert "k2 is current" in c360("audit", "rotate-key", "--by", "ops", cwd=tmp_path).stdout
    c360("partner", "list", cwd=tmp_path)
    assert "intact: 4 entries" in c360("audit", "verify", "--head", line, cwd=tmp_path).stdout
    # Cut back to one entry: the anchor and the shipped head both catch it.
    log = tmp_path / ".c360" / "audit.log"
    log.write_text(log.read_text().splitlines(keepends=True)[0])
    bad = c360("audit", "verify", cwd=tmp_path, ok=False)
    assert bad.returncode == 1 and "cut back" in bad.stderr and "head 1:" in bad.stderr
    (tmp_path / ".c360" / "audit.log.head").unlink()
    bad = c360("audit", "verify", "--head", line, cwd=tmp_path, ok=False)
    assert bad.returncode == 1 and "anchor" in bad.stderr
    assert c360("audit", "verify", "--head", "2:nothex", cwd=tmp_path, ok=False).returncode == 1


def test_an_anchor_that_cannot_be_rewritten_does_not_fail_durable_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import c360.graphql.audit as audit

    path = tmp_path / "audit.log"
    log = AuditLog(path, anchor_interval=0)
    log.append(actor="a", role="admin", action="read_profile", target="C1", outcome="ok")
    real = audit._write_file

    def failing(target: Path, text: str, *, replace: bool) -> None:
        if target.name.endswith(".head"):
            raise OSError(28, "No space left on device")
        real(target, text, replace=replace)

    monkeypatch.setattr(audit, "_write_file", failing)
    entry = log.append(actor="a", role="admin", action="read_profile", target="C2", outcome="ok")
    assert entry["seq"] == 2 and _entries(path)[-1]["hash"] == entry["hash"]
    monkeypatch.undo()
    log.close()
    assert json.loads((tmp_path / "audit.log.head").read_text())["count"] == 2 and AuditLog(path).verify().ok
    # An anchor that cannot even be read is refused, naming the file, not where it is.
    (tmp_path / "audit.log.head").unlink()
    (tmp_path / "audit.log.head").mkdir()
    why = AuditLog(path).problem()
    assert why is not None and "cannot be read" in why and str(tmp_path) not in why


@pytest.mark.slow  # generates, trains and resolves a small set
def test_cli_training_and_batch_resolution_are_audited(tmp_path: Path) -> None:
    from test_cli import c360

    c360("generate", "--customers", "80", "--output", "data", "--seed", "5", cwd=tmp_path)
    c360("ingest", "data", cwd=tmp_path)
    c360("resolve", "train", "--max-pairs", "20000", cwd=tmp_path)
    c360("resolve", "batch", "--dry-run", cwd=tmp_path)
    c360("resolve", "batch", cwd=tmp_path)
    entries = _cli_entries(tmp_path)
    ingests = [e for e in entries if e["action"] == "ingest"]
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert sorted(e["target"] for e in ingests) == sorted(s["source"] for s in manifest["sources"])
    assert all(e["outcome"] == "ok" and " rows, " in e["detail"] and "file " in e["detail"] for e in ingests)
    train, dry, batch = entries[len(ingests) :]
    assert (train["action"], train["outcome"]) == ("train_model", "ok") and train["detail"].startswith("model v1 on ")
    assert (dry["action"], dry["target"], dry["outcome"]) == ("resolve_batch", "model v1", "ok")
    assert dry["detail"].startswith("dry run: would change: ") and " merges, " in dry["detail"]
    assert batch["action"] == "resolve_batch" and not batch["detail"].startswith("dry run")
    assert AuditLog(tmp_path / ".c360" / "audit.log").verify().ok


def test_a_partner_the_policy_stops_posting_is_refused_with_exactly_one_entry(tmp_path: Path) -> None:
    from c360.graphql import policy as policy_module
    from c360.graphql.policy import load_policy

    bundled = Path(policy_module.__file__).with_name("policy.yaml").read_text()
    assert bundled.count("actions: [post_events]") == 1
    (tmp_path / "policy.yaml").write_text(bundled.replace("actions: [post_events]", "actions: []"))
    api = _Api(tmp_path, policy=load_policy(tmp_path / "policy.yaml"))
    (answer,) = api.ask(("POST", "/v1/events", {"headers": {"Authorization": f"Bearer {api.partner_key}"}, "json": []}))
    assert answer.status_code == 403
    posts = [e for e in api.entries() if e["action"] == "post_events" or e["target"] == "POST /v1/events"]
    assert [(e["actor"], e["outcome"]) for e in posts] == [("acme", "denied")]


def test_graphql_documents_refused_before_anything_runs_are_audited(tmp_path: Path) -> None:
    api = _Api(tmp_path)
    steward = {"Authorization": f"Bearer {api.token('data_steward', 'sam')}"}
    bomb = (
        "query { ...F0 } "
        + " ".join(f"fragment F{i} on Query {{ {' '.join([f'...F{i + 1}'] * 10)} }}" for i in range(7))
        + " fragment F7 on Query { __typename }"
    )
    answers = api.ask(
        ("POST", "/graphql", {"headers": steward, "json": {"query": "{ customers(first: 1) { nodes { id } }"}}),
        ("POST", "/graphql", {"headers": steward, "json": {"query": "{ nope }"}}),
        ("POST", "/graphql", {"headers": steward, "json": {"query": bomb}}),
        ("POST", "/graphql", {"headers": steward, "content": b'{"query": "' + b"x" * 70_000 + b'"}'}),
        ("POST", "/graphql", {"headers": steward, "json": {"query": "{ customers(first: 1) { nodes { id } } }"}}),
    )
    assert [a.status_code for a in answers][3] == 413
    assert answers[4].json()["data"]["customers"]["nodes"]
    refused = [e for e in api.entries() if e["target"] == "POST /graphql" and e["outcome"] != "ok"]
    assert len(refused) == 4, refused
    assert [e["actor"] for e in refused[:3]] == ["sam"] * 3 and refused[3]["actor"] == "anonymous"
    assert "BAD_USER_INPUT" in refused[2]["detail"] and "PAYLOAD_TOO_LARGE" not in refused[0]["detail"]
    assert all(len(e["detail"]) < 700 for e in refused)
