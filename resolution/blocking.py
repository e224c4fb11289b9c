"""Blocking keys: the store files every record under a few keys.

The real-time path scores only records that share a key with the new record; the keys follow the same
rules as Splink's batch prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .training import PREDICTION_BLOCKING


def blocking_keys(view: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the keys of a record's comparison view: one per blocking rule whose columns are all set."""
    keys = []
    for columns in PREDICTION_BLOCKING:
        values = [view.get(c) for c in columns]
        if all(v is not None for v in values):
            keys.append(f"{','.join(columns)}={'|'.join(str(v) for v in values)}")
    return tuple(keys)
