"""The real-time path of rule segments: follow the store's change feeds and keep memberships current.

A :class:`SegmentFollower` starts from the ML snapshot: a :class:`~c360.ml.segments.SegmentEngine` holding
every customer's state at the snapshot's time, and the snapshot's own feed cursors (``snapshot_meta``),
so nothing written between the snapshot and the follower's start is missed. Each poll then reads

* the customer feed: an active customer's golden fields (and consent facts, which follow its records)
  -> ``engine.update``; a customer merged away -> ``engine.forget``, writing nothing (its memberships no
  longer count, and its id now names the survivor, whose events the event feed brings again);
* the event feed: web activity and orders -> ``engine.on_event``; a ``consent_change`` -> that
  customer's consent facts read again -> ``engine.update``; products -> the categories rules match on;

and writes the resulting changes with ``store.apply_segment_changes`` (source ``realtime``). A change's id
holds the feed position that caused it, so reading the feed again (a restart replays it from the
snapshot's cursors to rebuild the engine) is a no-op in the store. Windows expire by time alone: every
``tick_every`` seconds (and on the first poll) the customers whose evaluation the clock alone may have
changed since (an event entered or left a window: :class:`_Expiries`) are evaluated again, not every
customer as ``engine.tick`` would. After the first catch-up the store's
memberships are reconciled with the engine's (what a gap between runs may have left behind).

The follower's own cursor is a small JSON file (``DATA_DIR/ml/segment_follower[-i-of-n].json``), written
after each poll's changes are applied (at-least-once): where it got to, on which snapshot.

Several followers share the work by shard: ``shard=(i, n)`` handles the customers whose stable hash
(the first 8 bytes of BLAKE2b of the customer id, big-endian, modulo ``n``) is ``i``; every follower
reads both feeds whole and skips the others' customers. A merge may move a customer's events to a
survivor of another shard; that shard's follower gets them from the feed, as above.

RFM rows are the snapshot's (recomputed on the snapshot's schedule, then a follower restart); consent
facts change with consent events and customer changes, and (with the kernel's facts, the default) when a
grant they rest on expires.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.insights import SegmentChange
from c360.graph.ports.identity import ChangedCustomer
from c360.graph.ports.journey import ChangedEvent
from c360.graph.store import GraphStore

from .consent_facts import consent_facts, permitted_pairs
from .segment_rules import CountCondition, CustomerState, SumCondition, leaves
from .segment_store import to_segment_change, write_changes
from .segments import MembershipChange, Reason, Segment, SegmentEngine, activity_of
from .snapshot import customers_table, database_path, read_cursors, snapshot_time

__all__ = [
    "ConsentOf",
    "FollowReport",
    "Publish",
    "SegmentFollower",
    "change_message",
    "cursor_path",
    "parse_shard",
    "shard_of",
    "snapshot_time",
]

#: maps customer ids to the (purpose, channel) pairs the kernel's consent rules permit at a time
ConsentOf = Callable[[Collection[str], datetime], Mapping[str, Collection[tuple[str, str]]]]
#: takes the applied changes of one poll as (key: customer id, value: JSON) messages
Publish = Callable[[Sequence[tuple[str, bytes]]], None]
Progress = Callable[[str], None]
Clock = Callable[[], datetime]

#: the event types the follower reads from the journey feed
FOLLOWED_TYPES = ("consent_change", "order", "product", "web_activity")
_PAGE = 1000
#: feed entries read per poll at most (the rest on the next poll, without sleeping)
_POLL_ENTRIES = 10_000


def shard_of(customer_id: str, count: int) -> int:
    """The shard (0..count-1) of a customer: BLAKE2b of its id, first 8 bytes big-endian, modulo ``count``."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` as ``(i, n)`` with ``0 <= i < n``; InvalidInputError otherwise."""
    index, _, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        raise InvalidInputError(f"shard {text!r}: write it i/n, e.g. 0/2") from None
    _check_shard(shard)
    return shard


def _check_shard(shard: object) -> tuple[int, int]:
    if (
        not isinstance(shard, tuple)
        or len(shard) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        or not 0 <= shard[0] < shard[1]
    ):
        raise InvalidInputError(f"shard must be (i, n) with 0 <= i < n, not {shard!r}")
    return shard


def cursor_path(folder: Path, shard: tuple[int, int] = (0, 1)) -> Path:
    """The follower's cursor file in ``folder`` (``DATA_DIR/ml``)."""
    suffix = "" if shard[1] == 1 else f"-{shard[0]}-of-{shard[1]}"
    return folder / f"segment_follower{suffix}.json"


def change_message(change: SegmentChange) -> tuple[str, bytes]:
    """A change as an "audience entered / exited" message: (customer id, JSON)."""
    body = {
        "type": f"segment_{change.kind}",
        "id": change.id,
        "segment": change.segment_id,
        "customer_id": change.customer_id,
        "at": change.at.isoformat(),
        "reason": change.reason,
        "source": change.source,
    }
    return change.customer_id, json.dumps(body, ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class FollowReport:
    """What one :meth:`SegmentFollower.run` did."""

    polls: int
    entries: int  #: feed entries read (both feeds)
    applied: int  #: changes that took effect in the store
    entered: int
    exited: int
    ticks: int
    seconds: float
    stopped: str  #: "idle", "budget" or "stopped"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "polls": self.polls,
            "entries": self.entries,
            "applied": self.applied,
            "entered": self.entered,
            "exited": self.exited,
            "ticks": self.ticks,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
        }


@dataclass(slots=True)
class _Tally:
    polls: int = 0
    entries: int = 0
    applied: int = 0
    entered: int = 0
    exited: int = 0
    ticks: int = 0


@dataclass(slots=True)
class _Pending:
    """One poll's changes, each with the key of what caused it (for its id)."""

    changes: list[SegmentChange] = field(default_factory=list)

    def add(self, found: list[MembershipChange], key: str) -> None:
        self.changes += [to_segment_change(c, source="realtime", key=key) for c in found]


class SegmentFollower:
    """Follows the store's feeds from the snapshot in ``folder`` and applies the segment changes they cause.

    ``consent_of`` gives consent facts in bulk (default: the kernel's, :func:`~c360.ml.consent_facts.consent_facts`);
    ``clock`` is the time evaluations use (default: now, UTC);
    ``as_of`` the engine's starting time (default: the snapshot's, :func:`snapshot_time`); ``publish``
    receives each poll's applied changes (:func:`change_message`) before the cursor is saved.
    """

    def __init__(
        self,
        store: GraphStore,
        folder: Path,
        segments: Sequence[Segment],
        *,
        consent_of: ConsentOf | None = None,
        shard: tuple[int, int] = (0, 1),
        poll_interval: float = 0.1,
        tick_every: float = 5.0,
        publish: Publish | None = None,
        progress: Progress | None = None,
        clock: Clock | None = None,
        as_of: datetime | None = None,
        reconcile: bool = True,
    ) -> None:
        if not poll_interval > 0 or not tick_every > 0:
            raise InvalidInputError("poll_interval and tick_every must be positive")
        self._store, self._folder, self._segments = store, folder, tuple(segments)
        self._consent_of = consent_of or self._kernel_consent
        #: (expires_at, customer id) of the grants the kernel's facts rest on (default consent_of only)
        self._grants: list[tuple[datetime, str]] = []
        self._granted: set[tuple[datetime, str]] = set()  # what the heap holds, each once
        self._shard = _check_shard(shard)
        self._poll_interval, self._tick_every = poll_interval, tick_every
        self._publish, self._say = publish, progress or (lambda _line: None)
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._reconcile_pending = reconcile
        self._stop = threading.Event()
        self._tally = _Tally()
        self._engine, self._categories, cursors, self._started_at, mine = self._start(as_of)
        self._expiries = _Expiries(self._segments)
        for cid in mine:
            self._expiries.note(cid, self._engine.state(cid), self._started_at)
        self._customer_cursor = cursors.get("customer_cursor")
        self._event_cursor = cursors.get("event_cursor")
        self._snapshot_cursors = dict(cursors)
        self._last_tick = float("-inf")  # the first poll ticks: the snapshot's time may be long past
        self._say(
            f"segment follower (shard {shard[0]}/{shard[1]}) from the snapshot of {self._started_at.isoformat()}: "
            + ", ".join(f"{s.id} {len(self._engine.members(s.id)):,}" for s in self._segments)
        )

    # -- start -------------------------------------------------------------------------------------------

    def _owns(self, customer_id: str) -> bool:
        return self._shard[1] == 1 or shard_of(customer_id, self._shard[1]) == self._shard[0]

    def _start(
        self, as_of: datetime | None
    ) -> tuple[SegmentEngine, dict[str, str | None], dict[str, tuple[int, str]], datetime, list[str]]:
        path = database_path(self._folder)
        if not path.exists():
            raise NotFoundError(f"no snapshot at {path}: run c360 ml snapshot first")
        con = duckdb.connect(":memory:")
        try:
            quoted = str(path).replace("'", "''")  # our own path, quotes doubled all the same
            con.execute(f"ATTACH '{quoted}' AS snap (READ_ONLY)")
            cursors = _cursors_of(con)
            at = as_of or snapshot_time_of(con)
            ids = [row[0] for row in con.execute("SELECT customer_id FROM snap.customers").fetchall()]
            mine = [cid for cid in ids if self._owns(cid)]
            _shard_views(con, mine)
            consent = self._consent_of(mine, at) if mine else {}
            engine = SegmentEngine.from_snapshot(con, self._segments, as_of=at, consent=consent)
            categories = dict(con.execute("SELECT product_id, category FROM products").fetchall())
        finally:
            con.close()
        return engine, categories, cursors, at, mine

    def _kernel_consent(self, ids: Collection[str], at: datetime) -> Mapping[str, Collection[tuple[str, str]]]:
        """The kernel's consent facts; the grants that expire later are scheduled for a re-read then."""
        facts = consent_facts(self._store, ids, at)
        for cid, fact in facts.items():
            for basis in fact.decided.values():
                if basis.status != "granted" or basis.expires_at is None or basis.expires_at <= at:
                    continue
                entry = (basis.expires_at, cid)
                if entry not in self._granted:
                    self._granted.add(entry)
                    heapq.heappush(self._grants, entry)
        return permitted_pairs(facts)

    # -- polling -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to stop after the current poll (from another thread or a signal handler)."""
        self._stop.set()

    def poll(self) -> int:
        """Read what both feeds hold since the cursors, apply the changes; returns the feed entries read."""
        now = self._clock()
        pending = _Pending()
        read = 0
        while read < _POLL_ENTRIES:
            page = self._store.customer_changes(after=self._customer_cursor, first=_PAGE)
            read += len(page)
            if page:
                self._on_customers(page, now, pending)
                self._customer_cursor = (page[-1].seq, page[-1].customer.id)
            if len(page) < _PAGE:
                break
        while read < _POLL_ENTRIES:
            events = self._store.event_changes(after=self._event_cursor, first=_PAGE, types=FOLLOWED_TYPES)
            read += len(events)
            if events:
                self._on_events(events, now, pending)
                self._event_cursor = (events[-1].seq, events[-1].event.id)
            if len(events) < _PAGE:
                break
        if time.monotonic() - self._last_tick >= self._tick_every:
            self._last_tick = time.monotonic()
            self._tally.ticks += 1
            key = "t" + now.isoformat()
            for cid in self._expiries.due(now):
                state = self._engine.state(cid)
                if state is not None:
                    pending.add(self._engine.update(cid, at=now), key)
                    self._expiries.note(cid, self._engine.state(cid), now)
            lapsed: set[str] = set()
            while self._grants and self._grants[0][0] <= now:
                entry = heapq.heappop(self._grants)
                self._granted.discard(entry)
                lapsed.add(entry[1])
            mine = sorted(cid for cid in lapsed if self._engine.state(cid) is not None)
            consent = self._consent_of(mine, now) if mine else {}
            for cid in mine:  # a grant lapsed: the consent facts again
                pending.add(self._engine.update(cid, at=now, consent=consent.get(cid, ())), key)
        if read < _POLL_ENTRIES and self._reconcile_pending:  # both feeds read to their end
            self._reconcile_pending = False
            self._reconcile(now, pending)
        self._apply(pending)
        self._tally.polls += 1
        self._tally.entries += read
        return read

    def _on_customers(self, page: list[ChangedCustomer], now: datetime, pending: _Pending) -> None:
        active = [c for c in page if c.customer.status == "active" and self._owns(c.customer.id)]
        consent = self._consent_of([c.customer.id for c in active], now) if active else {}
        for change in page:
            if change.customer.status != "active":
                self._engine.forget(change.customer.id, at=now)  # nothing written: the id names the survivor now
        # the golden fields as the snapshot writes them (the engine's states came from there)
        rows = customers_table(active).to_pylist() if active else []
        for change, golden in zip(active, rows, strict=True):
            cid = str(golden.pop("customer_id"))
            found = self._engine.update(cid, at=now, golden=golden, consent=consent.get(cid, ()))
            pending.add(found, f"c{change.seq}:{cid}")
            self._expiries.note(cid, self._engine.state(cid), now)

    def _on_events(self, page: list[ChangedEvent], now: datetime, pending: _Pending) -> None:
        consenting = {c.customer_id for c in page if c.event.type == "consent_change" and c.customer_id}
        mine = [cid for cid in consenting if self._owns(cid)]
        consent = self._consent_of(mine, now) if mine else {}
        for change in page:
            event, cid = change.event, change.customer_id
            if event.type == "product":
                self._on_product(event.data)
                continue
            if cid is None or not self._owns(cid):
                continue
            key = f"e{change.seq}:{event.id}"
            if event.type == "consent_change":
                pending.add(self._engine.update(cid, at=now, consent=consent.get(cid, ())), key)
                continue
            activity = activity_of(event, self._categories)
            if activity is not None:
                pending.add(self._engine.on_activity(cid, activity, at=now), key)
                self._expiries.note(cid, self._engine.state(cid), now)

    def _on_product(self, data: str) -> None:
        try:
            product = json.loads(data)
            self._categories[str(product["product_id"])] = product.get("category")
        except (ValueError, KeyError, TypeError):
            return  # the pipeline validated it; an unreadable product changes no category

    def _reconcile(self, now: datetime, pending: _Pending) -> None:
        """Make the store's memberships the engine's (once, after the first catch-up)."""
        key = "r" + now.isoformat()
        for segment in self._segments:
            stored: set[str] = set()
            after: str | None = None
            while True:
                members, after = self._store.segment_members(segment.id, first=10_000, after=after)
                stored.update(m.customer_id for m in members if self._owns(m.customer_id))
                if after is None:
                    break
            engine = self._engine.members(segment.id)
            found = [
                *(_change(segment.id, cid, "exited", now) for cid in sorted(stored - engine)),
                *(_change(segment.id, cid, "entered", now) for cid in sorted(engine - stored)),
            ]
            if found:
                self._say(f"{segment.id}: {len(found):,} memberships differ from the engine's: reconciling")
            pending.add(found, key)

    def _apply(self, pending: _Pending) -> None:
        applied = write_changes(self._store, pending.changes) if pending.changes else []
        if applied and self._publish is not None:
            self._publish([change_message(c) for c in applied])
        entered = sum(1 for c in applied if c.kind == "entered")
        self._tally.applied += len(applied)
        self._tally.entered += entered
        self._tally.exited += len(applied) - entered
        if pending.changes or self._tally.polls == 0:
            self._save()

    def _save(self) -> None:
        def listed(cursor: tuple[int, str] | None) -> list[Any] | None:
            return None if cursor is None else [cursor[0], cursor[1]]

        state = {
            "shard": list(self._shard),
            "snapshot_at": self._started_at.isoformat(),
            "snapshot_cursors": {k: listed(v) for k, v in sorted(self._snapshot_cursors.items())},
            "customer_cursor": listed(self._customer_cursor),
            "event_cursor": listed(self._event_cursor),
            "applied": self._tally.applied,
            "saved_at": datetime.now(UTC).isoformat(),
        }
        path = cursor_path(self._folder, self._shard)
        partial = path.with_name(f".{path.name}.tmp")
        partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)  # readers never see half a file

    # -- running -----------------------------------------------------------------------------------------

    def members(self, segment: str) -> frozenset[str]:
        """The engine's current members of a segment (this shard's customers)."""
        return self._engine.members(segment)

    def run(self, *, budget_seconds: float | None = None, until_idle: bool = False) -> FollowReport:
        """Poll until idle (``until_idle``: a poll read nothing), the budget ends, or :meth:`stop`.

        Sleeps ``poll_interval`` after a poll that read nothing; a progress line at most every 5 seconds, when
        the feeds brought something. An error (the store's, or ``publish``'s) stops it: what was applied is
        in the store, the cursor file is the last poll's before, and a restart replays from the snapshot.
        """
        if budget_seconds is not None and not budget_seconds > 0:
            raise InvalidInputError(f"budget_seconds must be positive, not {budget_seconds}")
        started = time.monotonic()
        deadline = None if budget_seconds is None else started + budget_seconds
        before = _Tally(**{name: getattr(self._tally, name) for name in _Tally.__slots__})
        said, last = started, self._tally.entries
        stopped = "stopped"
        while not self._stop.is_set():
            read = self.poll()
            now = time.monotonic()
            if now - said >= 5 and self._tally.entries != last:
                said, last = now, self._tally.entries
                self._say(self._line(before))
            if until_idle and read == 0 and not self._reconcile_pending:
                stopped = "idle"
                break
            if deadline is not None and now >= deadline:
                stopped = "budget"
                break
            if read == 0:
                self._stop.wait(self._poll_interval if deadline is None else min(self._poll_interval, deadline - now))
        t = self._tally
        report = FollowReport(
            t.polls - before.polls,
            t.entries - before.entries,
            t.applied - before.applied,
            t.entered - before.entered,
            t.exited - before.exited,
            t.ticks - before.ticks,
            time.monotonic() - started,
            stopped,
        )
        self._say(self._line(before) + f"; stopped ({stopped})")
        return report

    def _line(self, before: _Tally) -> str:
        t = self._tally
        return (
            f"follower: {t.entries - before.entries:,} feed entries, {t.applied - before.applied:,} changes applied "
            f"(entered {t.entered - before.entered:,}, exited {t.exited - before.exited:,}), "
            f"event cursor {self._event_cursor}"
        )


class _Expiries:
    """When each customer's evaluation may next change by the clock alone, in a heap.

    Windows are closed (``at - days <= occurred_at <= at``): an event enters them at its ``occurred_at``
    (one in the future) and leaves a window of ``days`` one microsecond after ``occurred_at + days``.
    Golden fields, RFM rows and consent facts change only with the feeds, so nothing else moves with time.
    Each customer has one live entry, its earliest such instant after the last evaluation; older entries
    are skipped when they come up.
    """

    def __init__(self, segments: Sequence[Segment]) -> None:
        days = {
            leaf.within_days
            for s in segments
            for leaf in leaves(s.rule)
            if isinstance(leaf, CountCondition | SumCondition)
        }
        self._windows = sorted(timedelta(days=d) + _INSTANT for d in days)
        self._heap: list[tuple[datetime, str]] = []
        self._next: dict[str, datetime] = {}

    def note(self, customer_id: str, state: CustomerState | None, at: datetime) -> None:
        """Schedule the customer's next instant after ``at`` (its state as evaluated at ``at``)."""
        if state is None or not self._windows:
            return
        times = [e.occurred_at for e in state.events if e.occurred_at > at]
        for event in state.events:  # the earliest window the event leaves after `at`
            times += [event.occurred_at + w for w in self._windows if event.occurred_at + w > at][:1]
        if not times:
            return
        first = min(times)
        known = self._next.get(customer_id)
        if known is None or first < known or known <= at:
            self._next[customer_id] = first
            heapq.heappush(self._heap, (first, customer_id))

    def due(self, now: datetime) -> list[str]:
        """The customers whose instant has come (at or before ``now``), each once; they need evaluating."""
        out: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, cid = heapq.heappop(self._heap)
            if self._next.get(cid) == at:
                del self._next[cid]
                out.append(cid)
        return out


_INSTANT = timedelta(microseconds=1)


def _change(segment: str, customer_id: str, kind: Literal["entered", "exited"], at: datetime) -> MembershipChange:
    return MembershipChange(segment, customer_id, kind, at, Reason(segment, "reconciled with the real-time engine"))


def _cursors_of(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    con.execute("USE snap")
    try:
        return read_cursors(con)
    finally:
        con.execute("USE memory")


def snapshot_time_of(con: duckdb.DuckDBPyConnection) -> datetime:
    """:func:`snapshot_time` of the snapshot attached as ``snap``."""
    con.execute("USE snap")
    try:
        return snapshot_time(con)
    finally:
        con.execute("USE memory")


def _shard_views(con: duckdb.DuckDBPyConnection, mine: list[str]) -> None:
    """Views named as the snapshot's tables over the attached snapshot, holding this shard's customers only."""
    con.register("_c360_shard_rows", pa.table({"customer_id": pa.array(mine, pa.string())}))
    con.execute("CREATE TEMP TABLE shard_ids AS SELECT * FROM _c360_shard_rows")
    con.unregister("_c360_shard_rows")
    sql = "SELECT table_name FROM duckdb_tables() WHERE database_name = 'snap'"
    tables = {row[0] for row in con.execute(sql).fetchall()}
    con.execute("CREATE TEMP VIEW products AS SELECT * FROM snap.products")
    for table in ("customers", "web_events", "orders", "rfm"):
        if table in tables:
            con.execute(
                f"CREATE TEMP VIEW {table} AS SELECT * FROM snap.{table}"
                " WHERE customer_id IN (SELECT customer_id FROM shard_ids)"
            )
