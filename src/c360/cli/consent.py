"""``c360 consent``: record consent, show a customer's effective consent and receipts, ask the one question, verify.

Consent is recorded only through :func:`~c360.graph.consent_ledger.record_consent` (each event signed
into its customer's receipt chain); the question "may we contact them?" is
:func:`~c360.graph.consent_ledger.contact_decision`. Every command is audited: ``record`` as a change,
the others as reads of the ledger. The receipt code (``cryptography``) loads only in the commands.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from c360.graph.consent import (
    ConsentEvent,
    ConsentState,
    Notice,
    check_channel,
    check_purpose,
    effective,
    parse_instant,
)
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.models import record_uid, source_name_problem

from ..deps import receipt_issuer, signing_keys
from ..settings import Settings
from .common import audited, err, fail, out, print_json, store_of, who

if TYPE_CHECKING:
    from c360.graph.ports.consent import ConsentEntry
    from c360.graph.receipts import ChainReport

consent_app = typer.Typer(
    help="The consent ledger: record consent, show it with its receipts, check it, verify the chains.",
    no_args_is_help=True,
)

_AT_HELP = "An ISO 8601 time with its zone, e.g. 2026-11-01T09:00:00Z (default: now)."


def _instant(option: str, text: str | None) -> datetime | None:
    """The aware time ``text`` gives, or None; a clear error for a bad or naive one."""
    try:
        return parse_instant(option, text)
    except InvalidInputError as exc:
        fail(str(exc))


def _purpose(settings: Settings, purpose: str) -> str:
    try:
        return check_purpose(purpose, settings.consent.purposes)
    except InvalidInputError as exc:
        fail(str(exc))


def _channel(channel: str) -> str:
    try:
        return check_channel(channel)
    except InvalidInputError as exc:
        fail(str(exc))


def _notice(
    notice_id: str | None, version: str | None, language: str, text_file: Path | None, sha256: str | None
) -> Notice:
    if notice_id is None or version is None or (text_file is None) == (sha256 is None):
        fail(
            "a consent answers a notice: give --notice-id, --notice-version and either --notice-text-file "
            "(its text) or --notice-sha256 (the SHA-256 of its text)"
        )
    if text_file is not None:
        try:
            data = text_file.read_bytes()
        except OSError as exc:
            fail(f"cannot read the notice text {text_file}: {exc.strerror}")
        sha256 = hashlib.sha256(data).hexdigest()
    assert sha256 is not None
    try:
        return Notice(notice_id, version, language, sha256)
    except InvalidInputError as exc:
        fail(str(exc))


def _claims(receipt: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The verified claims of ``receipt`` (a clear error if it does not verify)."""
    from c360.graph.receipts import ReceiptError, verify

    try:
        return verify(receipt, jwks)
    except ReceiptError as exc:
        fail(f"the receipt does not verify ({exc}); run c360 consent verify")


def _kid(receipt: str) -> str:
    import base64
    import json

    header = receipt.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))).get("kid"))


def _entry_json(entry: ConsentEntry, claims: dict[str, Any], position: int | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": entry.event.id,
        "record": entry.event.record_uid,
        "chain": entry.chain_id,
        "receipt_id": claims.get("jti"),
        "kid": _kid(entry.receipt),
        "receipt": entry.receipt,
    }
    if position is not None:
        doc["entry"] = position
    return doc


@consent_app.command("record")
def consent_record(
    ctx: typer.Context,
    source: Annotated[str, typer.Option(help="The source of the record the consent comes with.")],
    key: Annotated[str, typer.Option(help="The record's key in that source.")],
    purpose: Annotated[str, typer.Option(help="The purpose (one of consent.purposes).")],
    channel: Annotated[str, typer.Option(help="email, sms, phone, push, post, web or in_person.")],
    status: Annotated[str, typer.Option(help="granted, denied or withdrawn.")],
    jurisdiction: Annotated[str, typer.Option(help="Where it was given: an ISO 3166 code such as DE or US-CA.")],
    at: Annotated[str | None, typer.Option(help="When it was captured. " + _AT_HELP)] = None,
    expires: Annotated[str | None, typer.Option(help="When a grant expires (ISO 8601 with zone).")] = None,
    method: Annotated[
        str | None,
        typer.Option(help="web_form, call_centre, branch, paper, double_opt_in or partner (agent: call_centre)."),
    ] = None,
    actor_kind: Annotated[str, typer.Option(help="Who captured it: agent or customer.")] = "agent",
    actor_id: Annotated[str | None, typer.Option(help="The agent's id (default: the OS user; customer: self).")] = None,
    notice_id: Annotated[
        str | None, typer.Option(help="The id of the notice the consent answered (needed, with its version and text).")
    ] = None,
    notice_version: Annotated[str | None, typer.Option(help="Its version.")] = None,
    notice_language: Annotated[str, typer.Option(help="Its language (BCP 47).")] = "en",
    notice_text_file: Annotated[
        Path | None, typer.Option(help="A file with its text (the receipt names its SHA-256).")
    ] = None,
    notice_sha256: Annotated[str | None, typer.Option(help="Or the SHA-256 of its text.")] = None,
    event_source: Annotated[str, typer.Option(help="The system that sent the event.")] = "cli",
    event_id: Annotated[
        str | None, typer.Option(help="The event id (default: a new one; the same id replays).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Record one consent event: signed into the customer's receipt chain and appended to the ledger."""
    from c360.graph.consent_ledger import record_consent

    settings: Settings = ctx.obj.settings
    now = datetime.now(UTC)
    captured = _instant("--at", at) or now
    if captured > now:
        fail(f"--at {at} is in the future: consent is recorded once it was given")
    if (problem := source_name_problem(source)) is not None:
        fail(f"--source: {problem}")
    if not key.strip():
        fail("--key is empty")
    if actor_kind not in ("agent", "customer"):
        fail(f"--actor-kind is agent or customer, not {actor_kind!r}")
    if method is None:
        if actor_kind != "agent":
            fail("name the --method the customer used (web_form, branch, paper, double_opt_in, partner, ...)")
        method = "call_centre"
    actor = who(actor_id) if actor_kind == "agent" else (actor_id or "self")
    try:
        event = ConsentEvent(
            id=event_id or f"cli-{uuid.uuid4()}",
            record_uid=record_uid(source, key),
            purpose=_purpose(settings, purpose),
            channel=channel,
            status=status,
            captured_at=captured,
            actor_kind=actor_kind,
            actor_id=actor,
            source=event_source,
            method=method,
            notice=_notice(notice_id, notice_version, notice_language, notice_text_file, notice_sha256),
            jurisdiction=jurisdiction,
            expires_at=_instant("--expires", expires),
        )
    except InvalidInputError as exc:
        fail(str(exc))
    issuer = receipt_issuer(settings)
    by = actor if actor_kind == "agent" else None
    with store_of(ctx) as store, audited(settings, "record_consent", event.record_uid, by=by, change=True) as note:
        entries = record_consent(store, issuer, [event], now=now)
        entry = entries[0] if entries else store.get_consent(event.id)
        assert entry is not None  # a replay: record_consent found it stored with this content
        position = len(store.consent_chain(entry.chain_id))
        note.detail = f"event {event.id} {event.status} {event.purpose}/{event.channel}" + (
            "" if entries else " (a replay: kept)"
        )
    claims = _claims(entry.receipt, issuer.keys.jwks())
    if as_json:
        print_json({**_entry_json(entry, claims), "replayed": not entries})
        return
    what = f"{event.status} {event.purpose} on {event.channel}"
    if entries:
        out.print(f"recorded {event.id}: {what} for record {event.record_uid}", highlight=False)
    else:
        out.print(f"{event.id} was recorded before with this content: its receipt is kept", highlight=False)
    out.print(
        f"receipt {claims.get('jti')} (key {_kid(entry.receipt)}), chain {entry.chain_id}"
        + (f", entry {position}" if entries else ""),
        highlight=False,
    )
    err.print(f"the receipt to send: c360 consent show {entry.chain_id} --receipt {event.id}", highlight=False)


def _state_json(purpose: str, channel: str, state: ConsentState) -> dict[str, Any]:
    e = state.event
    return {
        "purpose": purpose,
        "channel": channel,
        "status": state.status,
        "event": None
        if e is None
        else {
            "id": e.id,
            "record": e.record_uid,
            "status": e.status,
            "captured_at": e.captured_at.isoformat(),
            "expires_at": e.expires_at.isoformat() if e.expires_at else None,
            "actor": f"{e.actor_kind}:{e.actor_id}",
            "method": e.method,
            "source": e.source,
            "notice": f"{e.notice.id} v{e.notice.version} ({e.notice.language})",
            "jurisdiction": e.jurisdiction,
        },
    }


@consent_app.command("show")
def consent_show(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(metavar="CUSTOMER_ID")],
    at: Annotated[str | None, typer.Option(help="The state at this time. " + _AT_HELP)] = None,
    receipt: Annotated[
        str | None, typer.Option("--receipt", metavar="EVENT_ID", help="Print this event's receipt and its claims.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A customer's effective consent per purpose and channel, with the deciding events; or one receipt."""
    settings: Settings = ctx.obj.settings
    when = _instant("--at", at) or datetime.now(UTC)
    if receipt is not None:
        _show_receipt(ctx, customer_id, receipt, as_json=as_json)
        return
    with store_of(ctx) as store, audited(settings, "read_consent", customer_id) as note:
        events = store.consent_events(customer_id)
        active = store.resolve(customer_id)
        states = effective(events, when)
        note.detail = f"{len(events)} events"
    rows = [_state_json(p, c, s) for (p, c), s in sorted(states.items())]
    if as_json:
        print_json({"customer": active, "at": when.isoformat(), "events": len(events), "states": rows})
        return
    if not rows:
        out.print(f"customer {active}: no consent recorded (at {when.isoformat()})", highlight=False)
        return
    out.print(f"customer {active} at {when.isoformat()} ({len(events)} events; other pairs: none)", highlight=False)
    for r in rows:
        e = r["event"]
        until = f" until {e['expires_at']}" if e["expires_at"] else ""
        out.print(
            f"{r['purpose']:<20} {r['channel']:<9} {r['status']:<9} since {e['captured_at']}{until}  "
            f"event {e['id']} (record {e['record']}, {e['actor']}, {e['method']})",
            highlight=False,
        )


def _show_receipt(ctx: typer.Context, customer_id: str, event_id: str, *, as_json: bool) -> None:
    settings: Settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "read_consent_receipt", customer_id) as note:
        note.detail = f"event {event_id}"
        ids = {e.id for e in store.consent_events(customer_id)}
        entry = store.get_consent(event_id) if event_id in ids else None
        if entry is None:
            raise NotFoundError(f"customer {customer_id} has no consent event {event_id}")
    claims = _claims(entry.receipt, signing_keys(settings).jwks())
    if as_json:
        print_json({**_entry_json(entry, claims), "claims": claims})
        return
    out.print(entry.receipt, highlight=False, soft_wrap=True)
    print_json(claims)


@consent_app.command("check")
def consent_check(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(metavar="CUSTOMER_ID")],
    channel: Annotated[str, typer.Option(help="email, sms, phone, push, post, web or in_person.")],
    purpose: Annotated[str, typer.Option(help="The purpose (one of consent.purposes).")],
    at: Annotated[str | None, typer.Option(help="Ask for this time. " + _AT_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """May we contact the customer on this channel for this purpose (now)? Exits 0 either way."""
    from c360.graph.consent_ledger import contact_decision

    settings: Settings = ctx.obj.settings
    purpose = _purpose(settings, purpose)
    channel = _channel(channel)
    when = _instant("--at", at) or datetime.now(UTC)
    with store_of(ctx) as store, audited(settings, "check_consent", customer_id) as note:
        decision = contact_decision(store, customer_id, channel, purpose, when)
        active = store.resolve(customer_id)
        entry = store.get_consent(decision.event_id) if decision.event_id is not None else None
        note.detail = f"{purpose}/{channel}: {'allowed' if decision.allowed else 'not allowed'}"
    if as_json:
        print_json(
            {
                "customer": active,
                "channel": channel,
                "purpose": purpose,
                "at": when.isoformat(),
                "allowed": decision.allowed,
                "status": decision.status,
                "reason": decision.reason,
                "event_id": decision.event_id,
                "receipt": entry.receipt if entry is not None else None,
            }
        )
        return
    verdict = "ALLOWED" if decision.allowed else "NOT ALLOWED"
    out.print(f"{verdict}: customer {active} {decision.reason}", highlight=False)
    if decision.event_id is not None:
        out.print(f"receipt: c360 consent show {active} --receipt {decision.event_id}", highlight=False)


def _report_json(chain: str, report: ChainReport, event_id: str | None) -> dict[str, Any]:
    return {
        "chain": chain,
        "ok": report.ok,
        "receipts": report.count,
        "index": report.index,
        "event_id": event_id,
        "reason": report.reason,
        "detail": report.detail,
    }


@consent_app.command("verify")
def consent_verify(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Check every receipt's signature and every chain; name the first bad entry. Exits 1 if a chain fails."""
    from c360.graph.consent_ledger import verify_ledger

    settings: Settings = ctx.obj.settings
    jwks = signing_keys(settings).jwks()
    with store_of(ctx) as store, audited(settings, "verify_consent", None) as note:
        reports = verify_ledger(store, jwks)
        bad: dict[str, str | None] = {}
        for chain, report in reports.items():
            if not report.ok:
                links = store.consent_chain(chain)
                index = report.index if report.index is not None else -1
                bad[chain] = links[index][0] if 0 <= index < len(links) else None
        note.detail = f"{len(reports)} chains, {len(bad)} failing" + (f": {', '.join(sorted(bad))}" if bad else "")
    rows = [_report_json(c, r, bad.get(c)) for c, r in reports.items()]
    if as_json:
        print_json({"ok": not bad, "chains": rows})
    else:
        for row in rows:
            if row["ok"]:
                out.print(f"chain {row['chain']}: ok, {row['receipts']} receipts", highlight=False)
            else:
                where = f"entry {row['index']}" + (f" (event {row['event_id']})" if row["event_id"] else "")
                out.print(f"chain {row['chain']}: FAILS at {where}: {row['reason']}: {row['detail']}", highlight=False)
        if not rows:
            out.print("no consent recorded: nothing to verify", highlight=False)
    if bad:
        err.print(f"{len(bad)} of {len(reports)} chains fail verification", highlight=False)
        raise typer.Exit(1)
    if not as_json and rows:
        out.print(f"all {len(rows)} chains verify", highlight=False)
