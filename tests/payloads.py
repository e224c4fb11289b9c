"""Event payloads the API and pipeline tests send."""

from __future__ import annotations

from typing import Any


def profile_event(eid: str, source: str, key: str, minute: int, **fields: Any) -> dict[str, Any]:
    """A ``profile_update`` of record ``source|key`` at 10:``minute`` on 2026-05-01, with ``fields``."""
    return {
        "event_id": eid,
        "type": "profile_update",
        "source": source,
        "occurred_at": f"2026-05-01T10:{minute:02d}:00Z",
        "profile": {"customer_key": key, **fields},
    }
