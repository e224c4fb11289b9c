"""Rule segments end to end (issue 17, point 4): journeys ingested, snapshot, backfill into the store,
then the real-time follower on the store's change feeds; and ``c360 ml segments``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from c360.graph.consent_ledger import ReceiptIssuer
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.receipts import Controller, SigningKeys
from c360.graph.store import GraphStore
from c360.ml.segment_follower import (
    SegmentFollower,
    change_message,
    cursor_path,
    parse_shard,
    shard_of,
)
from c360.ml.segment_rules import parse_rule
from c360.ml.segment_store import change_id, publish_backfill, to_segment_change
from c360.ml.segments import MembershipChange, Reason, Segment, backfill, load_segments
from c360.ml.snapshot import database_path, snapshot
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from payloads import consent_event, order_event, profile_event, web_event

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
ABANDONER = "frequent_cart_abandoner"
EMAIL_OK = Segment(
    "email_ok",
    "Reachable by email",
    "",
    parse_rule({"consent": {"purpose": "marketing", "channel": "email"}}, rule_id="email_ok"),
)
SEGMENTS = (*(s for s in load_segments() if s.id == ABANDONER), EMAIL_OK)


def cart(key: str, n: int, at: datetime, action: str = "add_to_cart") -> dict[str, Any]:
    return web_event(f"{key}-{action}-{n}", key, at, action=action)


def order(key: str, n: int, at: datetime) -> dict[str, Any]:
    return order_event(f"{key}-order-{n}", key, at, order_id=f"O-{key}-{n}", source="webshop", status=None)


def consent(key: str, n: int, status: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return consent_event(f"{key}-consent-{n}", key, at, status, source="webshop", **fields)


@dataclass
class World:
    """A store with six shoppers K0..K5, the pipeline that feeds it, the snapshot folder and a settable clock."""

    store: GraphStore
    pipeline: Pipeline
    folder: Path
    now: list[datetime] = field(default_factory=lambda: [NOW])

    def send(self, *events: dict[str, Any]) -> None:
        out = self.pipeline.process(list(events))
        assert not out.rejected, out.rejected

    def cid(self, key: str) -> str:
        return {k: c for s, k, c in self.store.iter_links() if s == "webshop"}[key]

    def follower(self, **kwargs: Any) -> SegmentFollower:
        return SegmentFollower(self.store, self.folder, SEGMENTS, clock=lambda: self.now[0], as_of=NOW, **kwargs)

    def backfill(self, at: datetime) -> list[MembershipChange]:
        from c360.ml.consent_facts import consent_facts, permitted_pairs

        with duckdb.connect(str(database_path(self.folder))) as con:
            ids = [r[0] for r in con.execute("SELECT customer_id FROM customers").fetchall()]
            facts = permitted_pairs(consent_facts(self.store, ids, at))
            return backfill(con, SEGMENTS, as_of=at, consent=facts)

    def members(self, segment: str) -> set[str]:
        members, _ = self.store.segment_members(segment, first=1000)
        return {m.customer_id for m in members}

    def timeline(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        page = self.store.timeline(self.cid(key), first=100, types=["segment_entered", "segment_exited"])
        return [(e.type, json.loads(e.data)) for e in page.events]


@pytest.fixture
def world(store: GraphStore, tmp_path: Path) -> World:
    issuer = ReceiptIssuer(SigningKeys.generate(), Controller("Shop", "DPO", "dpo@shop.example"), "https://x/p")
    w = World(store, Pipeline(store, Linker(store), issuer=issuer), tmp_path / "ml")
    w.send(
        *(
            profile_event(f"p{i}", "webshop", f"K{i}", i, first_name=f"Fn{i}", email=f"k{i}@example.com")
            for i in range(6)
        )
    )
    day = timedelta(days=1)
    w.send(*(cart("K0", n, NOW - (n + 1) * day) for n in range(3)), *(cart("K1", n, NOW - 2 * day) for n in range(2)))
    w.send(consent("K2", 0, "granted", NOW - 5 * day))
    return w


def start(w: World, **kwargs: Any) -> SegmentFollower:
    """Snapshot, backfill into the store, and a follower caught up with the feeds."""
    snapshot(w.store, w.folder)
    report = publish_backfill(w.store, w.backfill(NOW))
    assert (report.entered, report.exited, report.no_op) == (2, 0, 0)
    follower = w.follower(**kwargs)
    caught_up = follower.run(until_idle=True)
    assert caught_up.applied == 0  # the engine from the snapshot and the backfill agree
    return follower


def test_backfill_then_the_follower_keeps_members_current_with_reasons_on_the_timeline(world: World) -> None:
    w = world
    follower = start(w)
    assert w.members(ABANDONER) == {w.cid("K0")} == follower.members(ABANDONER)
    assert w.members("email_ok") == {w.cid("K2")}
    assert [t for t, _ in w.timeline("K0")] == ["segment_entered"]
    # K1's third cart: K1 enters; K0 places an order: K0 exits
    w.send(cart("K1", 2, NOW - timedelta(hours=1)), order("K0", 0, NOW - timedelta(hours=2)))
    report = follower.run(until_idle=True)
    assert (report.applied, report.entered, report.exited, report.stopped) == (2, 1, 1, "idle")
    assert w.members(ABANDONER) == {w.cid("K1")}
    (kind, data), *_ = w.timeline("K1")
    assert kind == "segment_entered" and data["source"] == "realtime" and data["segment"] == ABANDONER
    assert data["reason"] == "rule.all[0]: count(action=add_to_cart) in 30 days gte 3"
    exited = w.timeline("K0")[0]
    assert exited[0] == "segment_exited" and exited[1]["reason"].startswith("rule.all[")
    assert w.store.segments_of([w.cid("K1")])[w.cid("K1")][0].reason == data["reason"]
    # the cursor file says where the follower got to
    saved = json.loads(cursor_path(w.folder).read_text())
    assert saved["event_cursor"][0] > saved["snapshot_cursors"]["event_cursor"][0]
    # a backfill over a fresh snapshot at the same time finds the follower's members: SQL = in memory
    snapshot(w.store, w.folder)
    changes = w.backfill(NOW)
    with duckdb.connect(str(database_path(w.folder)), read_only=True) as con:
        rows = con.execute("SELECT segment, customer_id FROM segment_members").fetchall()
    for segment in SEGMENTS:
        assert {c for s, c in rows if s == segment.id} == set(follower.members(segment.id)) == w.members(segment.id)
    again = publish_backfill(w.store, changes)
    assert (again.entered, again.exited, again.no_op) == (0, 0, 2)


def test_replaying_the_same_feed_is_a_no_op(world: World) -> None:
    w = world
    start(w)
    w.send(cart("K1", 2, NOW - timedelta(hours=1)), order("K0", 0, NOW - timedelta(hours=2)))
    first = w.follower().run(until_idle=True)
    assert first.applied == 2
    before = {k: w.timeline(k) for k in ("K0", "K1")}
    # a second follower from the same snapshot reads the same feed entries: the same change ids
    replay = w.follower().run(until_idle=True)
    assert replay.applied == 0 and replay.entries == first.entries
    assert {k: w.timeline(k) for k in ("K0", "K1")} == before


def test_a_window_expiring_exits_the_member_on_the_tick(world: World) -> None:
    w = world
    snapshot(w.store, w.folder)
    publish_backfill(w.store, w.backfill(NOW))
    follower = w.follower(tick_every=1e-6)
    follower.run(until_idle=True)
    assert w.members(ABANDONER) == {w.cid("K0")}
    # a cart dated an hour ahead counts once the clock reaches it: the tick enters K1 then
    w.send(cart("K1", 2, NOW + timedelta(hours=1)))
    assert follower.run(until_idle=True).applied == 0
    w.now[0] = NOW + timedelta(hours=2)
    assert follower.run(until_idle=True).entered == 1
    assert w.members(ABANDONER) == {w.cid("K0"), w.cid("K1")}
    w.now[0] = NOW + timedelta(days=29)  # K0's first cart (NOW - 3 days) leaves the 30-day window
    report = follower.run(until_idle=True)
    assert report.ticks >= 1 and report.exited == 2
    assert w.members(ABANDONER) == set()
    kind, data = w.timeline("K0")[0]
    assert kind == "segment_exited" and data["reason"] == "rule.all[0]: count(action=add_to_cart) in 30 days gte 3"


def test_a_consent_withdrawal_or_a_lapsed_grant_exits_the_consent_segment(world: World) -> None:
    w = world
    follower = start(w, tick_every=1e-6)
    hour = NOW - timedelta(hours=1)
    lapses = (NOW + timedelta(hours=1)).isoformat()
    w.send(consent("K2", 1, "withdrawn", hour), consent("K3", 0, "granted", hour, expires_at=lapses))
    report = follower.run(until_idle=True)
    assert (report.entered, report.exited) == (1, 1)
    assert w.members("email_ok") == {w.cid("K3")}
    kind, data = w.timeline("K2")[0]
    assert kind == "segment_exited" and data["reason"] == "rule: consent to marketing by email"
    # K3's grant expires by time alone: the tick reads the consent facts again
    w.now[0] = NOW + timedelta(hours=2)
    assert follower.run(until_idle=True).exited == 1
    assert w.members("email_ok") == set()
    assert w.timeline("K3")[0][0] == "segment_exited"


def test_a_merge_moves_the_membership_to_the_survivor(world: World) -> None:
    w = world
    follower = start(w)
    k1, k4 = w.cid("K1"), w.cid("K4")
    # K1 (two carts) and K4 (one cart) become one customer: three carts
    w.send(cart("K4", 0, NOW - timedelta(hours=3)))
    follower.run(until_idle=True)
    same = {"first_name": "Fn1", "last_name": "Ln1", "email": "k1@x.example", "phone": "+14155550199"}
    w.send(profile_event("m1", "webshop", "K1", 50, **same), profile_event("m2", "webshop", "K4", 51, **same))
    survivor = w.cid("K1")
    assert survivor == w.cid("K4")
    merged = k4 if survivor == k1 else k1
    report = follower.run(until_idle=True)
    assert report.entered == 1
    assert w.members(ABANDONER) == {w.cid("K0"), survivor}
    memberships = w.store.segments_of([merged, survivor])
    assert [m.segment_id for m in memberships[merged]] == [ABANDONER] == [m.segment_id for m in memberships[survivor]]
    assert w.store.segment_counts()[ABANDONER] == 2
    assert merged not in follower.members(ABANDONER)


def test_shards_split_the_customers_and_publish_gets_the_applied_changes(world: World) -> None:
    w = world
    snapshot(w.store, w.folder)
    sent: list[tuple[str, bytes]] = []
    shards = [w.follower(shard=(i, 2), publish=sent.extend) for i in range(2)]
    for f in shards:
        f.run(until_idle=True)  # nothing backfilled: each shard's reconcile enters its own members
    k0 = w.cid("K0")
    owner = shard_of(k0, 2)
    assert k0 in shards[owner].members(ABANDONER) and k0 not in shards[1 - owner].members(ABANDONER)
    assert w.members(ABANDONER) == {k0} and w.members("email_ok") == {w.cid("K2")}
    bodies = sorted((key, json.loads(value)["segment"]) for key, value in sent)
    assert bodies == sorted([(k0, ABANDONER), (w.cid("K2"), "email_ok")])
    message = json.loads(dict(sent)[k0])
    assert message["type"] == "segment_entered" and message["source"] == "realtime"


def test_ids_messages_and_bad_input() -> None:
    change = MembershipChange(ABANDONER, "c1", "entered", NOW, Reason(ABANDONER, "rule.all[0]: count"))
    assert change_id(change, source="backfill") == f"{ABANDONER}|c1|entered|{NOW.isoformat()}|backfill"
    long = change_id(change, source="realtime", key="e1:" + "x" * 400)
    assert len(long) <= 300 and long == change_id(change, source="realtime", key="e1:" + "x" * 400)
    converted = to_segment_change(change, source="realtime", key="e5:web|e1")
    assert converted.reason == "rule.all[0]: count" and converted.id.endswith("|e5:web|e1|realtime")
    key, value = change_message(converted)
    assert key == "c1" and json.loads(value)["at"] == NOW.isoformat()
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/2", "x", "1/0", "-1/2"):
        with pytest.raises(InvalidInputError, match="shard"):
            parse_shard(bad)
    assert {shard_of(f"c{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def test_the_follower_needs_a_snapshot(store: GraphStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="run c360 ml snapshot"):
        SegmentFollower(store, tmp_path, SEGMENTS)
    with pytest.raises(InvalidInputError, match="positive"):
        SegmentFollower(store, tmp_path, SEGMENTS, poll_interval=0)


def test_the_command_line(tmp_path: Path) -> None:
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from test_cli import c360

    now = datetime.now(UTC)

    def ingest(*events: dict[str, Any]) -> dict[str, str]:
        store = EmbeddedStore(EmbeddedConfig(path=tmp_path / ".c360" / "graph.db"))
        try:
            assert not Pipeline(store, Linker(store)).process(list(events)).rejected
            return {k: c for s, k, c in store.iter_links() if s == "webshop"}
        finally:
            store.close()

    profiles = (profile_event(f"p{i}", "webshop", f"K{i}", i, email=f"k{i}@x.example") for i in range(3))
    ingest(*profiles, *(cart("K0", n, now - timedelta(hours=n + 1)) for n in range(3)))
    refused = c360("ml", "segments", "backfill", cwd=tmp_path, ok=False)
    assert refused.returncode == 1 and "run c360 ml snapshot first" in refused.stderr
    c360("ml", "snapshot", "--quiet", cwd=tmp_path)
    done = c360("ml", "segments", "backfill", cwd=tmp_path)
    assert "RFM computed for 3 customers" in done.stderr and "1 entered" in done.stdout
    again = json.loads(c360("ml", "segments", "backfill", "--json", cwd=tmp_path).stdout)
    assert again["members"][ABANDONER] == 1 and (again["entered"], again["no_op"]) == (0, 0)
    assert "ml_segments_backfill" in (tmp_path / ".c360" / "audit.log").read_text()
    listed = {row["id"]: row for row in json.loads(c360("ml", "segments", "list", "--json", cwd=tmp_path).stdout)}
    assert listed[ABANDONER]["members"] == 1 and listed[ABANDONER]["name"] == "Frequent Cart Abandoner"
    links = ingest(*(cart("K1", n, now - timedelta(minutes=n + 1)) for n in range(3)))
    followed = json.loads(c360("ml", "segments", "follow", "--until-idle", "--json", cwd=tmp_path).stdout)
    assert (followed["applied"], followed["entered"], followed["stopped"]) == (1, 1, "idle")
    page = json.loads(c360("ml", "segments", "members", ABANDONER, "--first", "1", "--json", cwd=tmp_path).stdout)
    assert len(page["members"]) == 1 and page["next"] == page["members"][0]["customer_id"]
    rest = c360("ml", "segments", "members", ABANDONER, "--after", page["next"], "--json", cwd=tmp_path).stdout
    seen = {page["members"][0]["customer_id"], *(m["customer_id"] for m in json.loads(rest)["members"])}
    assert seen == {links["K0"], links["K1"]}
    unknown = c360("ml", "segments", "members", "nope", cwd=tmp_path, ok=False)
    assert unknown.returncode == 1 and "unknown segment 'nope'" in unknown.stderr
    bad = c360("ml", "segments", "follow", "--shard", "2/2", cwd=tmp_path, ok=False)
    assert bad.returncode == 1 and "shard" in bad.stderr


def test_follow_publishes_each_change_to_a_kafka_topic(kafka_broker: str, tmp_path: Path) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from test_cli import c360

    topic = f"segments-{tmp_path.name}"[:200]

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()

    async def read(expected: int) -> list[tuple[str, dict[str, Any]]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker, auto_offset_reset="earliest")
        await consumer.start()
        got: list[tuple[str, dict[str, Any]]] = []
        try:
            for _ in range(30):
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    got += [(m.key.decode(), json.loads(m.value)) for m in messages]
                if len(got) >= expected:
                    break
        finally:
            await consumer.stop()
        return got

    asyncio.run(create())
    now = datetime.now(UTC)
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / ".c360" / "graph.db"))
    try:
        pipeline = Pipeline(store, Linker(store))
        assert not pipeline.process([profile_event("p0", "webshop", "K0", 0, email="k0@x.example")]).rejected
        c360("ml", "snapshot", "--quiet", cwd=tmp_path)
        assert not pipeline.process([cart("K0", n, now - timedelta(minutes=n + 1)) for n in range(3)]).rejected
        cid = {k: c for s, k, c in store.iter_links()}["K0"]
    finally:
        store.close()
    env = {"C360_STREAMS__BROKERS": f"kafka://{kafka_broker}"}
    args = ("ml", "segments", "follow", "--until-idle", "--json", "--kafka-topic", topic)
    report = json.loads(c360(*args, cwd=tmp_path, env=env).stdout)
    assert report["entered"] == 1
    [(key, body)] = asyncio.run(read(1))
    assert key == cid and body["type"] == "segment_entered" and body["segment"] == ABANDONER
    assert body["customer_id"] == cid and body["source"] == "realtime" and body["reason"].startswith("rule.all[0]")
    refused = c360(*args, cwd=tmp_path, ok=False)  # no brokers configured
    assert refused.returncode == 1 and "streams.brokers" in refused.stderr


def test_a_backfill_after_a_merge_keeps_the_survivors_membership(world: World) -> None:
    w = world
    w.send(*(cart("K5", n, NOW - timedelta(hours=n + 1)) for n in range(3)))
    snapshot(w.store, w.folder)
    publish_backfill(w.store, w.backfill(NOW))
    assert w.members(ABANDONER) == {w.cid("K0"), w.cid("K5")}
    k0, k5 = w.cid("K0"), w.cid("K5")
    same = {"first_name": "Fn0", "last_name": "Ln0", "email": "k0@x.example", "phone": "+14155550198"}
    w.send(profile_event("m1", "webshop", "K0", 50, **same), profile_event("m2", "webshop", "K5", 51, **same))
    survivor = w.cid("K0")
    assert survivor == w.cid("K5") and survivor in (k0, k5)
    snapshot(w.store, w.folder)
    changes = w.backfill(NOW)
    merged = k5 if survivor == k0 else k0
    assert [(c.change, c.customer_id) for c in changes if c.segment == ABANDONER] == [("exited", merged)]
    report = publish_backfill(w.store, changes)  # the merged id's exit would read as the survivor's
    assert (report.entered, report.exited) == (0, 0)
    assert w.members(ABANDONER) == {survivor}
