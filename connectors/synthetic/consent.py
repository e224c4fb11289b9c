"""Deterministic synthetic consent: ``consent_change`` payloads for shoppers, as a web shop captures them.

Per shopper (its own random stream from the seed, source and key, like the retail journeys): marketing by
e-mail is granted by about 55% (double opt-in, a few days after the shopper's ``since``) and denied by
10%; about one grant in six is withdrawn later. Marketing by SMS is granted by about 25%, by push by
about 30% (app users), personalisation on the web by half. Every payload names the notice shown and the
customer as actor, in the shape of :class:`c360.streams.events.ConsentChange`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from c360.graph.errors import InvalidInputError

from .retail import Shopper

NOTICE_TEXT = "We use your e-mail, phone and activity to send offers you asked for. Withdraw any time."
NOTICE = {
    "id": "shop-privacy",
    "version": "2026-01",
    "language": "en",
    "text_sha256": hashlib.sha256(NOTICE_TEXT.encode()).hexdigest(),
}
#: (purpose, channel, share granting, share denying, share of grants withdrawn later)
PLAN: tuple[tuple[str, str, float, float, float], ...] = (
    ("marketing", "email", 0.55, 0.10, 1 / 6),
    ("marketing", "sms", 0.25, 0.05, 0.1),
    ("marketing", "push", 0.30, 0.05, 0.1),
    ("personalisation", "web", 0.50, 0.05, 0.05),
)


def generate_consent(
    shoppers: Sequence[Shopper], *, seed: int = 42, until: datetime, jurisdiction: str = "US"
) -> list[dict[str, Any]]:
    """The shoppers' consent events captured before ``until`` (aware), ordered by time and id."""
    if until.tzinfo is None:
        raise InvalidInputError("until must be timezone-aware")
    events: list[dict[str, Any]] = []
    for s in shoppers:
        rng = random.Random(f"{seed}|consent|{s.source}|{s.customer_key}")
        span = max(1, int((until - s.since).total_seconds()))
        for n, (purpose, channel, grant, deny, withdraw) in enumerate(PLAN):
            draw = rng.random()
            at = s.since + timedelta(seconds=rng.randint(0, min(span, 7 * 24 * 3600)))
            if draw < grant:
                events.append(_event(s, n, purpose, channel, "granted", at, jurisdiction))
                if rng.random() < withdraw and at < until:
                    later = at + timedelta(seconds=rng.randint(1, max(1, int((until - at).total_seconds()))))
                    events.append(_event(s, n, purpose, channel, "withdrawn", later, jurisdiction, suffix="w"))
            elif draw < grant + deny:
                events.append(_event(s, n, purpose, channel, "denied", at, jurisdiction))
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return events


def _event(
    s: Shopper, n: int, purpose: str, channel: str, status: str, at: datetime, jurisdiction: str, suffix: str = ""
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": f"consent-{s.customer_key}-{n}{suffix}"[:135],
        "type": "consent_change",
        "source": s.source,
        "occurred_at": at.replace(microsecond=0).isoformat(),
        "customer_key": s.customer_key,
        "purpose": purpose,
        "channel": channel,
        "status": status,
        "actor": {"kind": "customer", "id": "self"},
        "method": "double_opt_in" if status == "granted" and channel == "email" else "web_form",
        "notice": NOTICE,
        "jurisdiction": jurisdiction,
    }
