"""The consent ledger's rules: state at past times, latest wins, the tie rule, expiry, merges and splits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from c360.graph.consent import (
    NO_CONSENT,
    ConsentEvent,
    Notice,
    check_purpose,
    consent_state,
    effective,
    may_contact,
    state_at,
)
from c360.graph.errors import InvalidInputError

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
NOTICE = Notice.of_text("privacy", "3", "en-GB", "We may email you offers.")


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def ev(eid: str, status: str, at: datetime, **kw: Any) -> ConsentEvent:
    fields: dict[str, Any] = {
        "record_uid": "crm|1",
        "purpose": "marketing",
        "channel": "email",
        "actor_kind": "customer",
        "actor_id": "self",
        "source": "web",
        "method": "web_form",
        "notice": NOTICE,
        "jurisdiction": "DE",
    }
    fields.update(kw)
    return ConsentEvent(id=eid, status=status, captured_at=at, **fields)


def status(events: list[ConsentEvent], at: datetime, purpose: str = "marketing", channel: str = "email") -> str:
    return consent_state(effective(events, at), purpose, channel).status


def test_notice_hashes_its_text() -> None:
    assert len(NOTICE.text_sha256) == 64
    assert NOTICE.text_sha256 != Notice.of_text("privacy", "3", "en-GB", "We may email you offers!").text_sha256


def test_state_at_past_times_and_latest_wins() -> None:
    events = [ev("e3", "withdrawn", day(20)), ev("e1", "granted", day(0)), ev("e2", "granted", day(10))]
    assert state_at(events, day(-1)) == {}
    assert consent_state(state_at(events, day(-1)), "marketing", "email") is NO_CONSENT
    s = state_at(events, day(5))[("marketing", "email")]
    assert (s.status, s.event and s.event.id) == ("granted", "e1")
    assert state_at(events, day(15))[("marketing", "email")].event == events[2]
    assert state_at(events, day(20))[("marketing", "email")].status == "withdrawn"  # at `at` counts
    assert state_at(events, day(20) - timedelta(microseconds=1))[("marketing", "email")].status == "granted"


def test_state_is_per_purpose_and_channel() -> None:
    events = [
        ev("a", "granted", day(0)),
        ev("b", "denied", day(1), channel="sms"),
        ev("c", "withdrawn", day(2), purpose="analytics"),
    ]
    states = state_at(events, day(3))
    assert {k: v.status for k, v in states.items()} == {
        ("marketing", "email"): "granted",
        ("marketing", "sms"): "denied",
        ("analytics", "email"): "withdrawn",
    }


def test_order_of_the_list_does_not_matter() -> None:
    events = [ev(f"e{i}", ("granted", "denied", "withdrawn")[i % 3], day(i)) for i in range(30)]
    forward = state_at(events, day(100))
    assert forward == state_at(list(reversed(events)), day(100))
    assert forward[("marketing", "email")].event == events[-1]


@pytest.mark.parametrize("loser", ["granted"])
@pytest.mark.parametrize("winner", ["withdrawn", "denied"])
def test_tie_withdrawal_or_denial_beats_grant(winner: str, loser: str) -> None:
    for order in ([ev("z", loser, day(1)), ev("a", winner, day(1))], [ev("a", winner, day(1)), ev("z", loser, day(1))]):
        assert status(order, day(2)) == winner
        # across records too, and whatever the ids
        other = [ev("a", loser, day(1), record_uid="shop|9"), ev("z", winner, day(1))]
        assert status(other, day(2)) == winner


def test_tie_withdrawal_beats_denial() -> None:
    assert status([ev("b", "withdrawn", day(1)), ev("a", "denied", day(1), record_uid="shop|2")], day(2)) == "withdrawn"


def test_expired_grant_counts_as_none_and_does_not_revive_an_older_grant() -> None:
    events = [ev("old", "granted", day(0)), ev("new", "granted", day(5), expires_at=day(10))]
    assert status(events, day(9)) == "granted"
    s = effective(events, day(10))[("marketing", "email")]  # expiry at `at`: expired
    assert (s.status, s.event and s.event.id) == ("expired", "new")
    d = may_contact(events, "email", "marketing", day(11))
    assert not d.allowed and d.status == "expired" and d.event_id == "new"
    assert d.reason.startswith("expired on email for marketing at 2026-01-11T09:00:00+00:00")
    # a later grant ends it
    assert status([*events, ev("again", "granted", day(12))], day(13)) == "granted"


def test_effective_through_a_merge() -> None:
    crm = [ev("c1", "granted", day(0), record_uid="crm|1"), ev("c2", "granted", day(0), channel="sms")]
    shop = [ev("s1", "withdrawn", day(3), record_uid="shop|7"), ev("s2", "granted", day(1), record_uid="shop|7")]
    # before the merge: each customer has its own record's events
    assert status(crm, day(4)) == "granted"
    assert status(shop, day(4)) == "withdrawn"
    merged = crm + shop  # after a merge: the union of the records' events
    assert status(merged, day(4)) == "withdrawn"  # a later withdrawal anywhere beats an earlier grant
    assert status(merged, day(4), channel="sms") == "granted"  # the other channel untouched
    assert status(merged, day(2)) == "granted"  # state at a past time, before the withdrawal
    # a later grant on the other record beats the earlier withdrawal
    regranted = [*merged, ev("c3", "granted", day(5), record_uid="crm|1")]
    assert status(regranted, day(6)) == "granted"
    assert may_contact(regranted, "email", "marketing", day(6)).event_id == "c3"


def test_effective_through_a_split() -> None:
    events = [
        ev("a1", "granted", day(0), record_uid="crm|1"),
        ev("b1", "withdrawn", day(2), record_uid="shop|7"),
        ev("c1", "granted", day(1), record_uid="app|x", expires_at=day(30)),
    ]
    assert status(events, day(3)) == "withdrawn"
    # the split moves shop|7 and app|x away; each side keeps its records' events
    left = [e for e in events if e.record_uid == "crm|1"]
    right = [e for e in events if e.record_uid != "crm|1"]
    assert status(left, day(3)) == "granted"
    assert status(right, day(3)) == "withdrawn"
    # and, split once more, the app record alone holds a grant that later expires
    app = [e for e in right if e.record_uid == "app|x"]
    assert status(app, day(3)) == "granted"
    assert status(app, day(31)) == "expired"


def test_may_contact_reasons() -> None:
    assert may_contact([], "email", "marketing", day(0)) == may_contact(
        [ev("x", "granted", day(0), channel="sms")], "email", "marketing", day(0)
    )
    none = may_contact([], "email", "marketing", day(0))
    assert (none.allowed, none.reason, none.event_id) == (False, "no consent recorded on email for marketing", None)
    events = [ev("g", "granted", day(0), expires_at=day(40)), ev("w", "withdrawn", day(10)), ev("d", "denied", day(20))]
    g = may_contact(events, "email", "marketing", day(1))
    assert g.allowed and g.event_id == "g"
    assert g.reason == (
        "granted on email for marketing at 2026-01-01T09:00:00+00:00 until 2026-02-10T09:00:00+00:00 (event g)"
    )
    w = may_contact(events, "email", "marketing", day(11))
    assert (w.allowed, w.status, w.reason) == (
        False,
        "withdrawn",
        "withdrawn on email for marketing at 2026-01-11T09:00:00+00:00 (event w)",
    )
    assert may_contact(events, "email", "marketing", day(21)).reason.startswith("denied on email")
    # an event captured after `at` is not seen yet
    assert may_contact(events, "email", "marketing", day(-1)).reason == "no consent recorded on email for marketing"


def test_may_contact_agrees_with_effective() -> None:
    channels = ["email", "sms", "phone", "push"]
    purposes = ["marketing", "analytics", "personalisation"]
    events = [
        ev(
            f"e{i}",
            ("granted", "granted", "withdrawn", "denied")[i % 4],
            day(i * 0.37 % 90),
            channel=channels[i % 4],
            purpose=purposes[i % 3],
            record_uid=f"src{i % 3}|k",
            expires_at=day(i * 0.37 % 90 + 20) if i % 5 == 0 and i % 4 < 2 else None,
        )
        for i in range(400)
    ]
    at = day(60)
    states = effective(events, at)
    for c in channels:
        for p in purposes:
            d = may_contact(events, c, p, at)
            s = consent_state(states, p, c)
            assert d.status == s.status and d.event_id == (s.event.id if s.event else None)
    # its speed is benchmarks/consent.py's to measure, not a test's


def test_other_time_zones_compare_by_instant() -> None:
    later_in_tokyo = day(1).astimezone(timezone(timedelta(hours=9)))
    assert status([ev("w", "withdrawn", later_in_tokyo), ev("g", "granted", day(0.5))], day(2)) == "withdrawn"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"captured_at": datetime(2026, 1, 1)}, "has no time zone"),
        ({"channel": "fax"}, "unknown channel 'fax'"),
        ({"status": "maybe"}, "unknown status 'maybe'"),
        ({"method": "telepathy"}, "unknown method"),
        ({"actor_kind": "robot"}, "unknown actor kind"),
        ({"purpose": "Marketing"}, "invalid purpose 'Marketing'"),
        ({"record_uid": "nokey"}, "expected 'source|key'"),
        ({"jurisdiction": "Germany"}, "ISO 3166"),
        ({"source": "Web Form"}, "invalid source name"),
        ({"expires_at": day(-1)}, "is not after captured_at"),
        ({"expires_at": day(0)}, "is not after captured_at"),
        ({"expires_at": datetime(2027, 1, 1)}, "expires_at 2027-01-01T00:00:00 has no time zone"),
        ({"status": "denied", "expires_at": day(3)}, "only a grant can expire"),
        ({"id": ""}, "event id must be a non-empty string"),
    ],
)
def test_bad_events_raise_clear_errors(change: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"eid": "e1", "status": "granted", "at": day(0)}
    if "captured_at" in change:
        fields["at"] = change.pop("captured_at")
    if "id" in change:
        fields["eid"] = change.pop("id")
    if "status" in change:
        fields["status"] = change.pop("status")
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace("|", r"\|")):
        ev(fields["eid"], fields["status"], fields["at"], **change)


def test_bad_notices_and_queries() -> None:
    with pytest.raises(InvalidInputError, match="64 lower-case hex"):
        Notice("privacy", "3", "en", "abc")
    with pytest.raises(InvalidInputError, match="language tag"):
        Notice("privacy", "3", "English", "0" * 64)
    with pytest.raises(InvalidInputError, match="unknown channel 'fax'"):
        may_contact([], "fax", "marketing", day(0))
    with pytest.raises(InvalidInputError, match="has no time zone"):
        may_contact([], "email", "marketing", datetime(2026, 1, 1))
    with pytest.raises(InvalidInputError, match="has no time zone"):
        state_at([], datetime(2026, 1, 1))


def test_check_purpose_against_the_configured_set() -> None:
    assert check_purpose("marketing", ["marketing"]) == "marketing"
    assert check_purpose("loyalty_club") == "loyalty_club"  # shape only
    with pytest.raises(InvalidInputError, match="unknown purpose 'loyalty_club': expected one of analytics"):
        check_purpose("loyalty_club", ["marketing", "analytics"])
    with pytest.raises(InvalidInputError, match="invalid purpose"):
        check_purpose("third party", None)
