"""``c360 ml segments``: rule segments' definitions and counts, the backfill, the real-time follower, members.

``backfill`` recomputes every segment over the snapshot (RFM first when a rule reads it) and writes the
memberships to the store; ``follow`` keeps them current from the store's change feeds, optionally
publishing each change to a Kafka topic ("audience entered / exited").
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import duckdb
import typer
from rich.table import Table

from c360.graph.errors import C360Error, InvalidInputError
from c360.ml.segment_follower import FollowReport, SegmentFollower, parse_shard
from c360.ml.segment_store import PublishReport, backfill_into_store
from c360.ml.segments import load_segments
from c360.ml.snapshot import database_path, snapshot_time

from ..settings import Settings
from .common import audited, err, fail, out, print_json, store_of

segments_app = typer.Typer(
    help="Rule segments: definitions, backfill, the real-time follower, members.", no_args_is_help=True
)

SegmentsOption = Annotated[Path | None, typer.Option(help="Segment definitions (default: the bundled segments.yaml).")]


def _aware(at: datetime | None) -> datetime | None:
    """A time given on the command line; one without a zone is read as UTC."""
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


@segments_app.command("list")
def segments_list(
    ctx: typer.Context,
    segments: SegmentsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The segments' definitions and how many active customers each holds in the store."""
    defined = load_segments(segments)
    with store_of(ctx) as store:
        counts = store.segment_counts()
    rows = [{"id": s.id, "name": s.name, "description": s.description, "members": counts.get(s.id, 0)} for s in defined]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "members", "description")
    for row in rows:
        table.add_row(str(row["id"]), str(row["name"]), f"{row['members']:,}", str(row["description"]))
    out.print(table)


@segments_app.command("backfill")
def segments_backfill(
    ctx: typer.Context,
    as_of: Annotated[
        datetime | None, typer.Option(help="Evaluate the rules at this time (UTC if no zone; default: the snapshot's).")
    ] = None,
    segments: SegmentsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Recompute every segment over the snapshot and write the memberships to the store (source backfill)."""
    settings = ctx.obj.settings
    folder = settings.data_dir / "ml"
    say = None if quiet or as_json else (lambda line: err.print(line))
    defined = load_segments(segments)
    path = database_path(folder)
    if not path.exists():
        fail(f"no snapshot at {path}: run c360 ml snapshot first")
    with store_of(ctx) as store, audited(settings, "ml_segments_backfill", str(folder), change=True) as note:
        try:
            with duckdb.connect(str(path)) as con:
                at = _aware(as_of) or snapshot_time(con)
                run = backfill_into_store(store, con, defined, as_of=at, progress=say)
            report, members = run.report, run.members
        except (C360Error, duckdb.Error, OSError) as exc:
            note.detail = f"{type(exc).__name__}: {exc}"
            fail(f"segment backfill failed: {exc}")
        note.detail = _summary(report, at)
    if as_json:
        print_json({"as_of": at.isoformat(), "members": members, **report.to_json()})
        return
    table = Table("segment", "members")
    for s in defined:
        table.add_row(s.id, f"{members.get(s.id, 0):,}")
    out.print(table)
    out.print(_summary(report, at))


def _summary(report: PublishReport, at: datetime) -> str:
    return (
        f"backfill as of {at.isoformat()}: {report.entered:,} entered, {report.exited:,} exited, "
        f"{report.no_op:,} already so, written in {report.seconds:.1f} s"
    )


class _KafkaPublisher:
    """An aiokafka producer on its own event loop thread; calling it sends a batch and waits for the acks."""

    def __init__(self, settings: Settings, topic: str) -> None:
        from aiokafka import AIOKafkaProducer

        from c360.streams.producer import bootstrap_servers

        brokers = settings.streams.brokers
        if not brokers:
            raise InvalidInputError("--kafka-topic needs streams.brokers (C360_STREAMS__BROKERS)")
        self._topic, self._timeout = topic, settings.streams.produce_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="segment-publisher", daemon=True)
        self._thread.start()

        async def start() -> Any:  # made on the loop that runs it
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(brokers), acks="all", linger_ms=2)
            await producer.start()
            return producer

        self._producer: Any = self._wait(start())

    def _wait(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(self._timeout)

    def __call__(self, messages: Sequence[tuple[str, bytes]]) -> None:
        async def send() -> None:
            sent = [await self._producer.send(self._topic, value, key=key.encode()) for key, value in messages]
            await asyncio.gather(*sent)

        self._wait(send())

    def close(self) -> None:
        try:
            self._wait(self._producer.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


@contextmanager
def _stopped_by_signals(follower: SegmentFollower) -> Iterator[None]:
    """SIGTERM and SIGINT stop the follower after its current poll."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        follower.stop()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@segments_app.command("follow")
def segments_follow(
    ctx: typer.Context,
    budget: Annotated[float | None, typer.Option(min=0.001, help="Stop after this many seconds.")] = None,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Stop when the feeds are read to the end.")] = False,
    shard: Annotated[str, typer.Option(help="i/n: follow the customers whose stable hash % n is i.")] = "0/1",
    kafka_topic: Annotated[
        str | None, typer.Option(help="Publish each applied change to this Kafka topic (keyed by customer id).")
    ] = None,
    poll_interval: Annotated[float, typer.Option(min=0.001, help="Seconds between polls of idle feeds.")] = 0.1,
    tick_every: Annotated[
        float, typer.Option(min=0.001, help="Seconds between checks of windows expiring by time alone.")
    ] = 5.0,
    segments: SegmentsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Keep memberships current from the store's change feeds, starting from the snapshot (Ctrl-C stops)."""
    settings = ctx.obj.settings
    folder = settings.data_dir / "ml"
    shard_of = parse_shard(shard)
    defined = load_segments(segments)
    publisher = _KafkaPublisher(settings, kafka_topic) if kafka_topic else None
    try:
        with (
            store_of(ctx) as store,
            audited(settings, "ml_segments_follow", f"{folder} shard {shard}", change=True) as note,
        ):
            try:
                follower = SegmentFollower(
                    store,
                    folder,
                    defined,
                    shard=shard_of,
                    poll_interval=poll_interval,
                    tick_every=tick_every,
                    publish=publisher,
                    progress=lambda line: err.print(line),
                )
                with _stopped_by_signals(follower):
                    report = follower.run(budget_seconds=budget, until_idle=until_idle)
            except (C360Error, duckdb.Error, OSError) as exc:
                note.detail = f"{type(exc).__name__}: {exc}"
                fail(f"segment follower failed: {exc}")
            note.detail = f"{report.applied} changes applied ({report.entered} entered, {report.exited} exited)"
    finally:
        if publisher is not None:
            publisher.close()
    _report(report, as_json)


def _report(report: FollowReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    out.print(
        f"follower stopped ({report.stopped}) after {report.seconds:.1f} s: {report.entries:,} feed entries, "
        f"{report.applied:,} changes applied ({report.entered:,} entered, {report.exited:,} exited)"
    )


@segments_app.command("members")
def segments_members(
    ctx: typer.Context,
    segment: Annotated[str, typer.Argument(help="The segment's id.")],
    first: Annotated[int, typer.Option(min=1, max=10_000, help="Members per page.")] = 100,
    after: Annotated[str | None, typer.Option(help="The cursor a previous page printed.")] = None,
    segments: SegmentsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A page of a segment's members in the store (customer id order), with since when and why."""
    settings = ctx.obj.settings
    known = [s.id for s in load_segments(segments)]
    if segment not in known:
        fail(f"unknown segment {segment!r}; the segments are {', '.join(known)}")
    with store_of(ctx) as store, audited(settings, "ml_segments_members", segment) as note:
        members, cursor = store.segment_members(segment, first=first, after=after)
        note.detail = f"{len(members)} members"
    if as_json:
        rows = [{"customer_id": m.customer_id, "since": m.since.isoformat(), "reason": m.reason} for m in members]
        print_json({"segment": segment, "members": rows, "next": cursor})
        return
    table = Table("customer", "since", "reason")
    for m in members:
        table.add_row(m.customer_id, m.since.isoformat(), m.reason)
    out.print(table)
    if cursor is not None:
        out.print(f"more: --after {cursor}")
