"""The insights domain's kernel: ML results kept on the customer and segment memberships, with their codecs.

An :class:`Insight` is one model's latest result for one customer (keyed by customer and ``name``); a
:class:`SegmentChange` moves a customer into or out of a segment, idempotently by its id; a
:class:`Membership` is a customer's standing in a segment. The checks (:func:`check_insight`,
:func:`check_change`) run in the port; the codecs serve both backends.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from .errors import InvalidInputError
from .models import StoredEvent, aware, dumps, loads

#: What an insight's or a segment's name (and a change's source) may be: a lower-case token.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
#: The most bytes an insight's ``detail`` takes, encoded as JSON.
MAX_DETAIL_BYTES = 16 * 1024
MAX_MODEL = 200
MAX_LABEL = 1000
MAX_CHANGE_ID = 300
MAX_REASON = 1000
MAX_CUSTOMER_ID = 300

SegmentChangeKind = Literal["entered", "exited"]
CHANGE_KINDS: tuple[str, ...] = get_args(SegmentChangeKind)


@dataclass(frozen=True, slots=True)
class Insight:
    """One model's result for one customer, kept on the profile: the latest per (customer, name)."""

    customer_id: str
    #: lower-case token: ``churn``, ``clv``, ``rfm``, ``cluster``, ``next_products``, ``lookalike_<seed>`` ...
    name: str
    #: the model version it came from, e.g. ``churn@v3``; non-empty, at most 200 characters
    model: str
    #: timezone-aware
    computed_at: datetime
    #: a probability, an amount, a likeness ... (finite)
    score: float | None = None
    #: e.g. the RFM segment name, a cluster's words, a channel
    label: str | None = None
    #: JSON-able, at most 16 kB encoded: products with confidence, r/f/m scores ...
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SegmentChange:
    """A customer entering or leaving a segment; ``id`` makes it idempotent."""

    #: unique key of this change (e.g. ``f"{segment}|{customer}|{kind}|{at.isoformat()}|{source}"``), <= 300 chars
    id: str
    segment_id: str
    customer_id: str
    kind: SegmentChangeKind
    at: datetime
    #: words: the rule condition that decided, at most 1000 characters
    reason: str
    #: ``backfill``, ``realtime`` or another token
    source: str


@dataclass(frozen=True, slots=True)
class Membership:
    """A customer in a segment since ``since``, for ``reason`` (that of the change that put it there)."""

    segment_id: str
    customer_id: str
    since: datetime
    reason: str


def is_name(value: object) -> bool:
    """Whether ``value`` is a valid insight, segment or source name (:data:`NAME_PATTERN`)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(what: str, value: object) -> str:
    """``value`` if it is a valid name; :class:`InvalidInputError` naming ``what`` otherwise."""
    if not is_name(value):
        shown = repr(value)[:80]
        raise InvalidInputError(f"{what} {shown} is not a name: a lower-case letter, then up to 63 of a-z, 0-9, _")
    assert isinstance(value, str)
    return value


def _text(what: str, value: object, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise InvalidInputError(f"{what} is a non-empty string, not {repr(value)[:80]}")
    if len(value) > limit:
        raise InvalidInputError(f"{what} is longer than {limit} characters ({len(value)})")
    return value


def encode_detail(detail: object) -> str:
    """An insight's detail as JSON text; :class:`InvalidInputError` if it is not JSON-able or too large."""
    if not isinstance(detail, Mapping):
        raise InvalidInputError(f"an insight's detail is a mapping, not {type(detail).__name__}")
    try:
        text = dumps(dict(detail))
    except TypeError as exc:  # orjson's error for what JSON cannot hold (non-str keys, objects)
        raise InvalidInputError(f"an insight's detail is not JSON-able: {exc}") from None
    size = len(text.encode())
    if size > MAX_DETAIL_BYTES:
        raise InvalidInputError(f"an insight's detail is {size} bytes as JSON; at most {MAX_DETAIL_BYTES}")
    return text


def check_insight(value: object) -> Insight:
    """``value`` if it is a valid :class:`Insight`; :class:`InvalidInputError` saying what is wrong otherwise."""
    if not isinstance(value, Insight):
        raise InvalidInputError(f"put_insights takes Insight values, not {type(value).__name__}")
    _text("an insight's customer_id", value.customer_id, MAX_CUSTOMER_ID)
    check_name("insight name", value.name)
    _text(f"insight {value.name}: model", value.model, MAX_MODEL)
    aware(f"insight {value.name}: computed_at", value.computed_at)
    score = value.score
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        raise InvalidInputError(f"insight {value.name}: score is a finite number or None, not {score!r}")
    if value.label is not None:
        _text(f"insight {value.name}: label", value.label, MAX_LABEL, empty=True)
    encode_detail(value.detail)
    return value


def check_change(value: object) -> SegmentChange:
    """``value`` if it is a valid :class:`SegmentChange`; :class:`InvalidInputError` otherwise."""
    if not isinstance(value, SegmentChange):
        raise InvalidInputError(f"apply_segment_changes takes SegmentChange values, not {type(value).__name__}")
    _text("a segment change's id", value.id, MAX_CHANGE_ID)
    check_name(f"segment change {value.id}: segment_id", value.segment_id)
    _text(f"segment change {value.id}: customer_id", value.customer_id, MAX_CUSTOMER_ID)
    if value.kind not in CHANGE_KINDS:
        kinds = ", ".join(CHANGE_KINDS)
        raise InvalidInputError(f"segment change {value.id}: kind is one of {kinds}, not {value.kind!r}")
    aware(f"segment change {value.id}: at", value.at)
    _text(f"segment change {value.id}: reason", value.reason, MAX_REASON, empty=True)
    check_name(f"segment change {value.id}: source", value.source)
    return value


# -- codecs ------------------------------------------------------------------------------------------


def insight_row(insight: Insight, customer_id: str, computed_at: str) -> dict[str, Any]:
    """What a backend keeps of ``insight``, written to the active ``customer_id`` (times as event-time text)."""
    return {
        "customer_id": customer_id,
        "name": insight.name,
        "model": insight.model,
        "computed_at": computed_at,
        "score": None if insight.score is None else float(insight.score),
        "label": insight.label,
        "detail": encode_detail(insight.detail),
    }


def insight_from_row(
    customer_id: str, name: str, model: str, computed_at: datetime, score: float | None, label: str | None, detail: str
) -> Insight:
    """The insight a backend's row holds (``detail`` as JSON text)."""
    return Insight(customer_id, name, model, computed_at, score, label, loads(detail))


def timeline_event(change: SegmentChange, record_uid: str | None) -> StoredEvent:
    """The journey row a change that took effect leaves on the customer's timeline (through ``record_uid``).

    Id ``segment|<change id>``, type ``segment_entered`` or ``segment_exited``; data names the segment,
    the reason and the source.
    """
    data = dumps({"segment": change.segment_id, "reason": change.reason, "source": change.source})
    return StoredEvent(f"segment|{change.id}", f"segment_{change.kind}", change.at, data, record_uid)


def anchor_records(rows: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """Each customer's oldest record, min by (observed_at, uid), from (customer id, record uid, observed_at ISO)."""
    best: dict[str, tuple[datetime, str]] = {}
    for cid, uid, observed in rows:
        at = datetime.fromisoformat(observed)
        key = (at if at.tzinfo is not None else at.replace(tzinfo=UTC), uid)
        if cid not in best or key < best[cid]:
            best[cid] = key
    return {cid: uid for cid, (_, uid) in best.items()}
