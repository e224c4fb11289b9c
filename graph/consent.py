"""The consent ledger's domain model and its pure rules (issue 15).

A consent event says that, for one purpose and one channel, the customer granted, denied or withdrew
consent at a time, through a method, answering a notice. Events hang off the source record they came
with (``record_uid``, ``source|key``), so they follow the records through merges and splits: a customer's
events are the union of its records' events. The ledger is append-only; every state is derived from it:

* :func:`state_at` - the state per (purpose, channel) at a time;
* :func:`effective` - the customer's effective consent over all its records' events (its rule is there);
* :func:`may_contact` - the one question enforcement asks, with the reason and the deciding event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .errors import InvalidInputError
from .models import aware, source_name_problem

#: The default purposes; a deployment may configure others (see :func:`check_purpose`).
PURPOSES: tuple[str, ...] = ("marketing", "personalisation", "analytics", "third_party_sharing")
CHANNELS: tuple[str, ...] = ("email", "sms", "phone", "push", "post", "web", "in_person")
STATUSES: tuple[str, ...] = ("granted", "denied", "withdrawn")
METHODS: tuple[str, ...] = ("web_form", "call_centre", "branch", "paper", "double_opt_in", "partner")
#: Who captured the event: the customer themselves or an agent on their behalf.
ACTORS: tuple[str, ...] = ("customer", "agent")

StateStatus = Literal["granted", "denied", "withdrawn", "expired", "none"]

_PURPOSE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # a BCP 47 tag such as "en", "en-GB", "pt-BR"
_JURISDICTION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")  # ISO 3166-1 alpha-2, or a 3166-2 subdivision
_MAX_TEXT = 200
#: At the same captured_at, the higher rank decides: a withdrawal, then a denial, beat a grant.
_RANK = {"granted": 0, "denied": 1, "withdrawn": 2}
_STATUS: dict[str, StateStatus] = {"granted": "granted", "denied": "denied", "withdrawn": "withdrawn"}


def _text(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        raise InvalidInputError(f"{what} must be a non-empty string of at most {_MAX_TEXT} characters, not {value!r}")
    return value


def _one_of(what: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInputError(f"unknown {what} {value!r}: expected one of {', '.join(allowed)}")
    return str(value)


def parse_instant(what: str, text: str | None) -> datetime | None:
    """The aware time ISO 8601 ``text`` gives, or None; :class:`InvalidInputError` for a bad or naive one.

    What people type (the CLI's options, the API's query parameters) comes through here.
    """
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(f"{what} {text[:40]!r} is not an ISO 8601 time such as 2026-11-01T09:00:00Z") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} {text[:40]} has no time zone: add Z or an offset such as +01:00")
    return value


def check_channel(channel: object) -> str:
    """Return ``channel`` if it is one of :data:`CHANNELS`; InvalidInputError otherwise."""
    return _one_of("channel", channel, CHANNELS)


def check_purpose(purpose: object, allowed: Collection[str] | None = None) -> str:
    """Return ``purpose`` if it is a lower-case token (``[a-z][a-z0-9_]*``, at most 64) in ``allowed``.

    ``allowed`` is the deployment's configured set; None checks the shape only. InvalidInputError otherwise.
    """
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise InvalidInputError(
            f"invalid purpose {purpose!r}: a lower-case token of letters, digits and '_', starting with a letter"
        )
    if allowed is not None and purpose not in allowed:
        raise InvalidInputError(f"unknown purpose {purpose!r}: expected one of {', '.join(sorted(allowed))}")
    return purpose


@dataclass(frozen=True, slots=True)
class Notice:
    """The notice a consent answered: its id, version, language (BCP 47) and the SHA-256 of its text."""

    id: str
    version: str
    language: str
    text_sha256: str

    def __post_init__(self) -> None:
        _text("notice id", self.id)
        _text("notice version", self.version)
        if not isinstance(self.language, str) or not _LANGUAGE.fullmatch(self.language):
            raise InvalidInputError(
                f"notice language {self.language!r}: expected a language tag such as 'en' or 'en-GB'"
            )
        if not isinstance(self.text_sha256, str) or not _SHA256.fullmatch(self.text_sha256):
            raise InvalidInputError(
                f"notice text_sha256 {self.text_sha256!r}: expected the SHA-256 of the text, 64 lower-case hex digits"
            )

    @classmethod
    def of_text(cls, id: str, version: str, language: str, text: str) -> Notice:
        """The notice whose text is ``text`` (hashed as UTF-8)."""
        return cls(id, version, language, hashlib.sha256(text.encode("utf-8")).hexdigest())


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One entry of the append-only consent ledger.

    ``record_uid`` is the source record (``source|key``) the consent came with; ``source`` the system that
    sent the event; ``jurisdiction`` an ISO 3166 code ("DE", "US-CA"). Only a grant may have an expiry,
    which must come after ``captured_at``.
    """

    id: str
    record_uid: str
    purpose: str
    channel: str
    status: str
    captured_at: datetime
    actor_kind: str
    actor_id: str
    source: str
    method: str
    notice: Notice
    jurisdiction: str
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        _text("event id", self.id)
        src, sep, key = self.record_uid.partition("|") if isinstance(self.record_uid, str) else ("", "", "")
        if not sep or not key or source_name_problem(src) is not None:
            raise InvalidInputError(f"record_uid {self.record_uid!r}: expected 'source|key' with a valid source name")
        check_purpose(self.purpose)
        check_channel(self.channel)
        _one_of("status", self.status, STATUSES)
        aware("captured_at", self.captured_at)
        _one_of("actor kind", self.actor_kind, ACTORS)
        _text("actor id", self.actor_id)
        if (problem := source_name_problem(self.source)) is not None:
            raise InvalidInputError(f"event source: {problem}")
        _one_of("method", self.method, METHODS)
        if not isinstance(self.notice, Notice):
            raise InvalidInputError(f"notice must be a Notice, not {type(self.notice).__name__}")
        if not isinstance(self.jurisdiction, str) or not _JURISDICTION.fullmatch(self.jurisdiction):
            raise InvalidInputError(
                f"jurisdiction {self.jurisdiction!r}: expected an ISO 3166 code such as 'DE', 'IN' or 'US-CA'"
            )
        if self.expires_at is not None:
            aware("expires_at", self.expires_at)
            if self.status != "granted":
                raise InvalidInputError(f"event {self.id}: only a grant can expire, this one is {self.status}")
            if self.expires_at <= self.captured_at:
                raise InvalidInputError(
                    f"event {self.id}: expires_at {self.expires_at.isoformat()} is not after "
                    f"captured_at {self.captured_at.isoformat()}"
                )


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The state of one (purpose, channel): the status and the event that decided it (None: no event)."""

    status: StateStatus
    event: ConsentEvent | None = None


NO_CONSENT = ConsentState("none")


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may we contact them on this channel for this purpose now?".

    ``status`` is the state it rests on, ``event_id`` the deciding event (None when nothing is recorded).
    """

    allowed: bool
    reason: str
    status: StateStatus
    event_id: str | None


def _later(a: ConsentEvent, b: ConsentEvent) -> bool:
    """Whether ``a`` decides over ``b``: captured later; at the same time the higher rank, then the larger id."""
    if a.captured_at != b.captured_at:
        return a.captured_at > b.captured_at
    return (_RANK[a.status], a.id) > (_RANK[b.status], b.id)


def _state(event: ConsentEvent, at: datetime) -> ConsentState:
    if event.status == "granted" and event.expires_at is not None and event.expires_at <= at:
        return ConsentState("expired", event)
    return ConsentState(_STATUS[event.status], event)


def state_at(events: Iterable[ConsentEvent], at: datetime) -> dict[tuple[str, str], ConsentState]:
    """The state per (purpose, channel) at ``at``, from ledger events in any order.

    Only events captured at or before ``at`` count; the latest decides (at the same instant a withdrawal,
    then a denial, beat a grant; then the larger event id, so that the answer never depends on the order);
    a deciding grant whose expiry is at or before ``at`` gives ``expired``. A pair with no counted event is
    absent from the result (its state is ``none``: :data:`NO_CONSENT`).
    """
    aware("at", at)
    latest: dict[tuple[str, str], ConsentEvent] = {}
    for event in events:
        if event.captured_at > at:
            continue
        pair = (event.purpose, event.channel)
        best = latest.get(pair)
        if best is None or _later(event, best):
            latest[pair] = event
    return {pair: _state(event, at) for pair, event in latest.items()}


def effective(events: Iterable[ConsentEvent], at: datetime) -> dict[tuple[str, str], ConsentState]:
    """A customer's effective consent at ``at`` over the events of all its source records.

    The rule: for each (purpose, channel), the event captured last (at or before ``at``) across all the
    customer's records decides, whichever record it came with. So a later withdrawal or denial on any
    record beats an earlier grant on any other, and a later grant beats an earlier withdrawal. At the
    same instant a withdrawal beats a denial, which beats a grant. A deciding grant that has expired by
    ``at`` counts as no consent (``expired``); an earlier grant does not revive.

    Events hang off records, so after a merge pass the union of the records' events, after a split each
    side's records' events. It is :func:`state_at` over those events: one rule for one record or many.
    """
    return state_at(events, at)


def may_contact(events: Iterable[ConsentEvent], channel: str, purpose: str, at: datetime) -> Decision:
    """Whether the customer whose ledger is ``events`` may be contacted on ``channel`` for ``purpose`` at ``at``.

    Allowed only if :func:`effective` gives ``granted`` for the pair; one pass over the events.
    """
    check_channel(channel)
    check_purpose(purpose)
    aware("at", at)
    best: ConsentEvent | None = None
    for event in events:
        if (
            event.channel == channel
            and event.purpose == purpose
            and event.captured_at <= at
            and (best is None or _later(event, best))
        ):
            best = event
    what = f"on {channel} for {purpose}"
    if best is None:
        return Decision(False, f"no consent recorded {what}", "none", None)
    state = _state(best, at)
    when = best.captured_at.isoformat()
    if state.status == "expired":
        assert best.expires_at is not None
        reason = f"expired {what} at {best.expires_at.isoformat()} (granted at {when}, event {best.id})"
    elif state.status == "granted":
        until = f" until {best.expires_at.isoformat()}" if best.expires_at is not None else ""
        reason = f"granted {what} at {when}{until} (event {best.id})"
    else:
        reason = f"{state.status} {what} at {when} (event {best.id})"
    return Decision(state.status == "granted", reason, state.status, best.id)


def consent_state(states: Mapping[tuple[str, str], ConsentState], purpose: str, channel: str) -> ConsentState:
    """The state of (``purpose``, ``channel``) in a result of :func:`state_at` or :func:`effective`."""
    return states.get((purpose, channel), NO_CONSENT)
