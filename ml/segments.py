"""Rule segments: definitions, membership changes, the real-time engine and the backfill (issue 17, point 4).

A segment is an id, a name and a rule (:mod:`c360.ml.segment_rules`). The same rule decides membership
twice: compiled to SQL over the snapshot for a backfill (:func:`backfill`, also the daily recomputation
that lets windows expire) and evaluated in memory as events arrive (:class:`SegmentEngine`). Both yield
:class:`MembershipChange` events ("entered" / "exited") with their time and reason, for the timeline.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import yaml
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.models import StoredEvent, aware

from .segment_rules import (
    Activity,
    CustomerState,
    Leaf,
    OrderFact,
    Rule,
    WebEvent,
    describe,
    evaluate,
    leaf_holds,
    leaves,
    longest_window,
    parse_rule,
)
from .segment_sql import CONSENT_TABLE, members_sql

__all__ = [
    "MembershipChange",
    "Reason",
    "Segment",
    "SegmentEngine",
    "activity_of",
    "backfill",
    "diff_members",
    "load_segments",
    "parse_segments",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True, slots=True)
class Segment:
    """A rule segment: ``id`` (lower-case token), the ``name`` marketers see, a description and the rule."""

    id: str
    name: str
    description: str
    rule: Rule


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a membership changed: the segment's rule and the condition that decided (its path and words)."""

    segment: str
    condition: str

    def __str__(self) -> str:
        return f"{self.segment}: {self.condition}"


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """A customer entered or exited a segment at a time, for a reason."""

    segment: str
    customer_id: str
    change: Literal["entered", "exited"]
    at: datetime
    reason: Reason

    def to_json(self) -> dict[str, Any]:
        """As the timeline event's JSON payload (type ``segment_entered`` or ``segment_exited``)."""
        return {
            "type": f"segment_{self.change}",
            "segment": self.segment,
            "customer_id": self.customer_id,
            "at": self.at.isoformat(),
            "reason": str(self.reason),
        }


def parse_segments(data: object, *, origin: str) -> tuple[Segment, ...]:
    """The segments a parsed YAML/JSON document ``{segments: [{id, name, description, rule}]}`` defines."""
    items = data.get("segments") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise InvalidInputError(f"{origin}: expected a mapping with a list 'segments'")
    segments: list[Segment] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"{origin}: segments[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"{where}: a segment must be a mapping with id, name, description and rule")
        extra = sorted(str(key) for key in item if key not in {"id", "name", "description", "rule"})
        if extra:
            raise InvalidInputError(f"{where}: unexpected key(s) {', '.join(extra)}")
        seg_id, name, description = item.get("id"), item.get("name"), item.get("description", "")
        if not isinstance(seg_id, str) or not seg_id or not set(seg_id) <= _ID_CHARS or len(seg_id) > 64:
            raise InvalidInputError(f"{where}: id {seg_id!r} must be a lower-case token of letters, digits and '_'")
        if seg_id in seen:
            raise InvalidInputError(f"{where}: segment id {seg_id!r} is defined twice")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"segment {seg_id!r}: name must be a non-empty string")
        if not isinstance(description, str):
            raise InvalidInputError(f"segment {seg_id!r}: description must be a string")
        if "rule" not in item:
            raise InvalidInputError(f"segment {seg_id!r}: has no rule")
        seen.add(seg_id)
        segments.append(Segment(seg_id, name.strip(), description, parse_rule(item["rule"], rule_id=seg_id)))
    return tuple(segments)


def load_segments(path: Path | None = None) -> tuple[Segment, ...]:
    """The segments of a YAML file, by default the packaged ``segments.yaml``."""
    try:
        if path is None:
            text = resources.files("c360.ml").joinpath("segments.yaml").read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInputError(f"cannot read segments from {path or 'segments.yaml'}: {error}") from error
    return parse_segments(data, origin=str(path or "segments.yaml"))


def diff_members(old: Collection[str], new: Collection[str], at: datetime, reason: Reason) -> list[MembershipChange]:
    """The exits (``old`` not in ``new``) then the entries (``new`` not in ``old``), each by customer id."""
    aware("at", at)
    before, after = set(old), set(new)
    return [
        *(MembershipChange(reason.segment, cid, "exited", at, reason) for cid in sorted(before - after)),
        *(MembershipChange(reason.segment, cid, "entered", at, reason) for cid in sorted(after - before)),
    ]


def activity_of(event: StoredEvent, categories: Mapping[str, str | None]) -> Activity | None:
    """The activity a stored journey event is (web activity, an order), or None for any other event.

    ``categories`` maps product ids to their category (the snapshot's ``products``).
    """
    if event.type not in ("web_activity", "order"):
        return None
    try:
        data = json.loads(event.data)
        if event.type == "order":
            return OrderFact(
                data["source"],
                data["order_id"],
                event.occurred_at,
                data.get("status", "placed"),
                Decimal(data["total"]),
            )
        product = data.get("product_id")
        return WebEvent(
            event.id,
            event.occurred_at,
            data["action"],
            categories.get(product) if product else None,
            data.get("channel", "web"),
            data.get("traffic_source", "direct"),
        )
    except (ValueError, KeyError, TypeError, ArithmeticError) as error:
        raise InvalidInputError(f"stored event {event.id!r} ({event.type}) is not readable: {error}") from error


def _changed_leaf(rule: Rule, old: CustomerState, old_at: datetime, new: CustomerState, at: datetime) -> Leaf | None:
    for leaf in leaves(rule):
        if leaf_holds(leaf, old, old_at) != leaf_holds(leaf, new, at):
            return leaf
    return None


class SegmentEngine:
    """Keeps every customer's state and tells, per update, which memberships it changes (the real-time path).

    Start it from the snapshot (:meth:`from_snapshot`), or seed members (:meth:`seed`) and states
    (:meth:`load`); then each event (:meth:`on_event`, :meth:`on_activity`) or change of golden fields,
    RFM row or consent (:meth:`update`)
    returns the :class:`MembershipChange` events it causes. :meth:`tick` re-evaluates everyone, as windows
    expire with time alone. Activity older than the longest window of any rule is dropped.
    """

    def __init__(self, segments: Sequence[Segment], *, categories: Mapping[str, str | None] | None = None) -> None:
        self._segments = tuple(segments)
        self._categories = dict(categories or {})
        self._keep = timedelta(days=max((longest_window(s.rule) for s in self._segments), default=0))
        self._states: dict[str, CustomerState] = {}
        self._checked: dict[str, datetime] = {}
        self._members: dict[str, set[str]] = {segment.id: set() for segment in self._segments}

    def members(self, segment: str) -> frozenset[str]:
        """The current members of a segment; NotFoundError for an unknown one."""
        if segment not in self._members:
            raise NotFoundError(f"unknown segment {segment!r}")
        return frozenset(self._members[segment])

    def seed(self, segment: str, members: Iterable[str]) -> None:
        """Set a segment's members as a backfill found them (no change events)."""
        self.members(segment)
        self._members[segment] = set(members)

    def state(self, customer_id: str) -> CustomerState | None:
        """The state kept for a customer, or None."""
        return self._states.get(customer_id)

    def load(self, state: CustomerState, *, at: datetime) -> list[MembershipChange]:
        """Set a customer's whole state; returns the changes against the memberships known so far."""
        return self._apply(state, at)

    @classmethod
    def from_snapshot(
        cls,
        con: duckdb.DuckDBPyConnection,
        segments: Sequence[Segment],
        *,
        as_of: datetime,
        consent: Mapping[str, Collection[tuple[str, str]]],
    ) -> SegmentEngine:
        """An engine holding every snapshot customer's state at ``as_of`` and the memberships it implies.

        Reads ``customers``, ``products``, ``web_events`` and ``orders`` (those inside the longest window)
        and ``rfm`` when it exists; no change events are emitted for this starting point.
        """
        aware("as_of", as_of)
        try:
            engine = cls(segments, categories=dict(con.execute("SELECT product_id, category FROM products").fetchall()))
            horizon = as_of - engine._keep
            golden = _rows(con, "SELECT * FROM customers")
            tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            rfm = {row["customer_id"]: row for row in _rows(con, "SELECT * FROM rfm")} if "rfm" in tables else {}
            window = [horizon, as_of]
            # times as epoch microseconds: DuckDB's conversion to aware datetimes costs more than the rest
            web = con.execute(
                "SELECT w.customer_id, w.event_id, epoch_us(w.occurred_at), w.action, p.category, w.channel,"
                " w.traffic_source"
                " FROM web_events w LEFT JOIN products p ON p.product_id = w.product_id"
                " WHERE w.occurred_at >= ? AND w.occurred_at <= ? ORDER BY w.occurred_at, w.event_id",
                window,
            ).fetchall()
            orders = con.execute(
                "SELECT customer_id, source, order_id, epoch_us(occurred_at), status, total FROM orders"
                " WHERE occurred_at >= ? AND occurred_at <= ? ORDER BY occurred_at, source, order_id",
                window,
            ).fetchall()
        except duckdb.CatalogException as error:
            raise InvalidInputError(f"the snapshot lacks a table the segment engine needs: {error}") from error
        events: dict[str, list[Activity]] = {}
        for cid, event_id, micros, action, category, channel, traffic in web:
            at = _EPOCH + timedelta(microseconds=micros)
            events.setdefault(cid, []).append(WebEvent(event_id, at, action, category, channel, traffic))
        for cid, source, order_id, micros, status, total in orders:
            at = _EPOCH + timedelta(microseconds=micros)
            events.setdefault(cid, []).append(OrderFact(source, order_id, at, status, total))
        for row in golden:
            cid = row.pop("customer_id")
            state = CustomerState(cid, row, rfm.get(cid), frozenset(consent.get(cid, ())), tuple(events.get(cid, ())))
            engine._states[cid], engine._checked[cid] = state, as_of
            for segment in engine._segments:
                if evaluate(segment.rule, state, as_of):
                    engine._members[segment.id].add(cid)
        return engine

    def on_event(self, customer_id: str, event: StoredEvent, *, at: datetime) -> list[MembershipChange]:
        """Apply one stored journey event (web activity, an order; others change nothing) of a customer."""
        activity = activity_of(event, self._categories)
        return [] if activity is None else self.on_activity(customer_id, activity, at=at)

    def on_activity(self, customer_id: str, activity: Activity, *, at: datetime) -> list[MembershipChange]:
        """Add one web event or order (an order replaces its earlier version); returns the changes."""
        state = self._states.get(customer_id) or CustomerState(customer_id, {})
        if isinstance(activity, OrderFact):
            kept = [
                e
                for e in state.events
                if not (isinstance(e, OrderFact) and (e.source, e.order_id) == (activity.source, activity.order_id))
            ]
        else:
            kept = [e for e in state.events if not (isinstance(e, WebEvent) and e.event_id == activity.event_id)]
        return self._apply(replace(state, events=(*kept, activity)), at)

    def update(
        self,
        customer_id: str,
        *,
        at: datetime,
        golden: Mapping[str, Any] | None = None,
        rfm: Mapping[str, Any] | None = None,
        consent: Collection[tuple[str, str]] | None = None,
    ) -> list[MembershipChange]:
        """Replace the customer's golden fields, RFM row or consent facts (those given); returns the changes."""
        state = self._states.get(customer_id) or CustomerState(customer_id, {})
        if golden is not None:
            state = replace(state, golden=dict(golden))
        if rfm is not None:
            state = replace(state, rfm=dict(rfm))
        if consent is not None:
            state = replace(state, consent=frozenset(consent))
        return self._apply(state, at)

    def forget(self, customer_id: str, *, at: datetime) -> list[MembershipChange]:
        """Drop a customer (merged away, erased): exits from every segment it was in."""
        aware("at", at)
        self._states.pop(customer_id, None)
        self._checked.pop(customer_id, None)
        changes = []
        for segment in self._segments:
            if customer_id in self._members[segment.id]:
                self._members[segment.id].discard(customer_id)
                reason = Reason(segment.id, "customer no longer active")
                changes.append(MembershipChange(segment.id, customer_id, "exited", at, reason))
        return changes

    def tick(self, at: datetime) -> list[MembershipChange]:
        """Re-evaluate every kept customer at ``at`` (windows expire); returns the changes."""
        return [change for cid in sorted(self._states) for change in self._apply(self._states[cid], at)]

    def _apply(self, state: CustomerState, at: datetime) -> list[MembershipChange]:
        aware("at", at)
        cid = state.customer_id
        if self._keep:
            horizon = at - self._keep
            state = replace(state, events=tuple(e for e in state.events if e.occurred_at >= horizon))
        old = self._states.get(cid) or CustomerState(cid, {})
        old_at = self._checked.get(cid, at)
        self._states[cid], self._checked[cid] = state, at
        changes: list[MembershipChange] = []
        for segment in self._segments:
            before = cid in self._members[segment.id]
            after = evaluate(segment.rule, state, at)
            if before == after:
                continue
            leaf = _changed_leaf(segment.rule, old, old_at, state, at)
            condition = f"{leaf.path}: {describe(leaf)}" if leaf is not None else "rule"
            (self._members[segment.id].add if after else self._members[segment.id].discard)(cid)
            kind: Literal["entered", "exited"] = "entered" if after else "exited"
            changes.append(MembershipChange(segment.id, cid, kind, at, Reason(segment.id, condition)))
        return changes


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [column[0] for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _consent_table(con: duckdb.DuckDBPyConnection, consent: Mapping[str, Collection[tuple[str, str]]]) -> None:
    rows = [(cid, purpose, channel) for cid, permits in consent.items() for purpose, channel in permits]
    table = pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.string()),
            "purpose": pa.array([r[1] for r in rows], pa.string()),
            "channel": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    con.register("_c360_consent_rows", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {CONSENT_TABLE} AS SELECT * FROM _c360_consent_rows")
    finally:
        con.unregister("_c360_consent_rows")


def backfill(
    con: duckdb.DuckDBPyConnection,
    segments: Sequence[Segment],
    *,
    as_of: datetime,
    consent: Mapping[str, Collection[tuple[str, str]]],
) -> list[MembershipChange]:
    """Recompute every segment over the snapshot at ``as_of`` into table ``segment_members``.

    ``segment_members(segment, customer_id, entered_at)`` keeps a member's ``entered_at`` while it stays;
    new members enter at ``as_of``. ``consent`` maps customer ids to the (purpose, channel) pairs the
    kernel's consent rules permit. Returns the entries and exits against the table's previous contents.
    """
    aware("as_of", as_of)
    _consent_table(con, consent)
    con.execute(
        "CREATE TABLE IF NOT EXISTS segment_members("
        "segment VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, entered_at TIMESTAMPTZ NOT NULL,"
        " PRIMARY KEY (segment, customer_id))"
    )
    changes: list[MembershipChange] = []
    for segment in segments:
        sql, params = members_sql(segment.rule, as_of)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _c360_new_members AS {sql}", params)
        except duckdb.CatalogException as error:
            raise InvalidInputError(f"segment {segment.id!r}: the snapshot lacks a table it needs: {error}") from error
        new = {row[0] for row in con.execute("SELECT customer_id FROM _c360_new_members").fetchall()}
        old_rows = con.execute("SELECT customer_id FROM segment_members WHERE segment = ?", [segment.id]).fetchall()
        # SQL tells who matches, not which condition decided: the reason names the rule by its description.
        reason = Reason(segment.id, f"backfill at {as_of.isoformat()}: {segment.description or 'the rule'}")
        changes.extend(diff_members({row[0] for row in old_rows}, new, as_of, reason))
        con.execute(
            "DELETE FROM segment_members WHERE segment = ? AND customer_id NOT IN "
            "(SELECT customer_id FROM _c360_new_members)",
            [segment.id],
        )
        con.execute(
            "INSERT INTO segment_members SELECT ?, customer_id, ? FROM _c360_new_members WHERE customer_id NOT IN "
            "(SELECT customer_id FROM segment_members WHERE segment = ?)",
            [segment.id, as_of, segment.id],
        )
    con.execute("DROP TABLE IF EXISTS _c360_new_members")
    return changes
