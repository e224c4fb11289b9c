"""Blocking keys: the store files every record under a few keys.

The real-time path scores only records that share a key with the new record; the keys follow the same
rules as Splink's batch prediction: those of the model's specification.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from c360.graph.models import SourceRecord

from .features import features, pack_view
from .specification import Specification


def blocking_keys(view: Mapping[str, Any], spec: Specification) -> tuple[str, ...]:
    """Return the keys of a record's comparison view: one per blocking rule of ``spec`` whose columns are all set."""
    keys = []
    for columns in spec.blocking:
        values = [view.get(c) for c in columns]
        if all(v is not None for v in values):
            keys.append(f"{','.join(columns)}={'|'.join(str(v) for v in values)}")
    return tuple(keys)


def filing(
    records: Iterable[SourceRecord], region: str, spec: Specification
) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Blocking keys and packed comparison views of ``records``, as ``GraphStore.replace_blocking_keys`` takes them."""
    keys: dict[str, tuple[str, ...]] = {}
    views: dict[str, str] = {}
    for record in records:
        view = features(record, region)
        keys[record.uid] = blocking_keys(view, spec)
        views[record.uid] = pack_view(view)
    return keys, views
