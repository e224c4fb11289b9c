"""Event payloads the API, pipeline and ML tests send (and the benchmarks, which put tests/ on the path)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# The privacy notice a consent_change cites unless told otherwise.
NOTICE: dict[str, str] = {"id": "privacy", "version": "3", "language": "en-GB", "text_sha256": "ab" * 32}
SELF: dict[str, str] = {"kind": "customer", "id": "self"}


def _when(at: datetime | str) -> str:
    return at.isoformat() if isinstance(at, datetime) else at


def profile_event(eid: str, source: str, key: str, minute: int, **fields: Any) -> dict[str, Any]:
    """A ``profile_update`` of record ``source|key`` at 10:``minute`` on 2026-05-01, with ``fields``."""
    return {
        "event_id": eid,
        "type": "profile_update",
        "source": source,
        "occurred_at": f"2026-05-01T10:{minute:02d}:00Z",
        "profile": {"customer_key": key, **fields},
    }


def web_event(
    eid: str,
    key: str,
    at: datetime | str,
    *,
    action: str = "add_to_cart",
    source: str = "webshop",
    session_id: str | None = None,
    product_id: str = "P1",
    **fields: Any,
) -> dict[str, Any]:
    """A ``web_activity`` of record ``source|key`` at ``at``, in session ``S-<key>`` unless told otherwise."""
    return {
        "event_id": eid,
        "type": "web_activity",
        "source": source,
        "occurred_at": _when(at),
        "customer_key": key,
        "action": action,
        "session_id": session_id if session_id is not None else f"S-{key}",
        "product_id": product_id,
        **fields,
    }


def order_event(
    eid: str,
    key: str,
    at: datetime | str,
    *,
    order_id: str,
    total: str = "20.00",
    source: str = "crm",
    status: str | None = "delivered",
    currency: str = "EUR",
    product_id: str = "P1",
    line_items: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An ``order`` of record ``source|key`` at ``at``: one line of ``product_id`` at ``total`` unless
    ``line_items`` are given; ``status=None`` leaves the status out."""
    one = {"line_id": "1", "product_id": product_id, "quantity": 1, "unit_price": total}
    lines = line_items if line_items is not None else [one]
    return {
        "event_id": eid,
        "type": "order",
        "source": source,
        "occurred_at": _when(at),
        "customer_key": key,
        "order_id": order_id,
        **({"status": status} if status is not None else {}),
        "currency": currency,
        "total": total,
        "line_items": lines,
        **fields,
    }


def consent_event(
    eid: str,
    key: str,
    at: datetime | str,
    status: str = "granted",
    *,
    source: str = "crm",
    purpose: str = "marketing",
    channel: str = "email",
    notice: dict[str, str] = NOTICE,
    jurisdiction: str = "DE",
    actor: dict[str, str] = SELF,
    method: str = "web_form",
    **fields: Any,
) -> dict[str, Any]:
    """A ``consent_change`` of record ``source|key`` at ``at``: the customer's own, by web form, citing
    ``NOTICE`` under German law unless told otherwise; ``fields`` add to or replace any of it."""
    return {
        "event_id": eid,
        "type": "consent_change",
        "source": source,
        "occurred_at": _when(at),
        "customer_key": key,
        "purpose": purpose,
        "channel": channel,
        "status": status,
        "actor": dict(actor),
        "method": method,
        "notice": dict(notice),
        "jurisdiction": jurisdiction,
        **fields,
    }
