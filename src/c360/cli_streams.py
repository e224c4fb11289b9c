"""``c360 events``, ``dlq``, ``partner``, ``pull``, ``streams`` and the worker: events, dead letters, topics."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from c360.graph.errors import InvalidInputError, StoreUnavailableError
from c360.graph.store import GraphStore
from c360.streams.config import BrokerUnavailableError, StreamsConfig
from c360.streams.events import export_schemas
from c360.streams.pipeline import Pipeline

from .deps import build_pipeline, build_store, partner_keys
from .settings import Settings

events_app = typer.Typer(help="Event schemas and sending events through the pipeline.", no_args_is_help=True)
partner_app = typer.Typer(help="Partners that post events: API keys, stored hashed.", no_args_is_help=True)
pull_app = typer.Typer(help="Pull events from source databases, incrementally.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter store: events that could not be applied.", no_args_is_help=True)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@events_app.command("schema")
def events_schema(out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the JSON Schemas to.")]) -> None:
    """Write the JSON Schema of every event type (versioned file names)."""
    for path in export_schemas(out_dir):
        out.print(str(path))


def _read_events(path: Path) -> list[Any]:
    """A JSON array or JSON lines; a line that is not JSON stays text, so it becomes a dead letter."""
    if str(path) != "-" and not path.is_file():
        raise InvalidInputError(f"no such file: {path}")
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}: not a JSON array: {exc}") from exc
        return list(data)
    payloads: list[Any] = []
    for line in text.splitlines():
        if line.strip():
            try:
                payloads.append(json.loads(line))
            except json.JSONDecodeError:
                payloads.append(line)
    return payloads


@events_app.command("send")
def events_send(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="JSON array or JSON lines of events ('-' reads stdin).")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per transaction.")] = 500,
) -> None:
    """Apply events through the in-process pipeline (as partners' HTTP posts and the Faust agents do).

    Exits 1 when any event was rejected; rejected events are in the dead-letter store (c360 dlq list).
    """
    payloads = _read_events(path)
    store = build_store(ctx.obj.settings)
    accepted = duplicates = rejected = 0
    try:
        pipeline = build_pipeline(ctx.obj.settings, store)
        for i in range(0, len(payloads), batch_size):
            outcome = pipeline.process(payloads[i : i + batch_size])
            accepted += len(outcome.accepted)
            duplicates += outcome.duplicates
            rejected += len(outcome.rejected)
            for r in outcome.rejected:
                err.print(f"rejected event {i + r.index} ({r.event_id or 'no id'}): {r.reason} -> {r.dead_letter}")
    finally:
        store.close()
    out.print(f"{len(payloads):,} events: {accepted:,} applied, {duplicates:,} seen before, {rejected:,} rejected")
    if rejected:
        raise typer.Exit(1)


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Replayed ones too.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Most to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List dead letters, oldest first."""
    store = build_store(ctx.obj.settings)
    try:
        letters = store.dead_letters(None if all_ else "open", limit)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps([d.to_json() for d in letters], indent=2) + "\n")
        return
    table = Table("id", "received", "source", "status", "reason")
    for d in letters:
        table.add_row(d.id, d.received_at.isoformat(timespec="seconds"), d.source or "-", d.status, d.reason)
    out.print(table if letters else "no dead letters")


@dlq_app.command("show")
def dlq_show(ctx: typer.Context, letter_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print one dead letter with its payload (JSON)."""
    store = build_store(ctx.obj.settings)
    try:
        sys.stdout.write(json.dumps(store.get_dead_letter(letter_id).to_json(), indent=2) + "\n")
    finally:
        store.close()


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    letter_id: Annotated[str, typer.Argument(metavar="ID")],
    payload_file: Annotated[
        Path | None, typer.Option("--payload", help="A corrected payload (JSON file) to apply instead.")
    ] = None,
) -> None:
    """Apply a dead letter again (after the cause was fixed, or with a corrected payload) and mark it replayed.

    If it is still invalid nothing is written and the letter stays open.
    """
    store = build_store(ctx.obj.settings)
    try:
        letter = store.get_dead_letter(letter_id)
        if letter.status != "open":
            raise InvalidInputError(f"dead letter {letter_id} was already {letter.status}")
        text = payload_file.read_text(encoding="utf-8") if payload_file else letter.payload
        try:
            payload: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"dead letter {letter_id} is still not JSON: {exc}") from exc
        pipeline = build_pipeline(ctx.obj.settings, store)
        _, rejected, _ = pipeline.validate([payload])
        if rejected:
            raise InvalidInputError(f"dead letter {letter_id} is still invalid: {rejected[0].reason}")
        outcome = pipeline.process([payload])
        store.mark_replayed(letter_id)
    finally:
        store.close()
    done = "applied" if outcome.accepted else "already applied before (nothing changed)"
    out.print(f"dead letter {letter_id} replayed: {done}")


@partner_app.command("add")
def partner_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Partner name (lower case), also its default event source.")],
    sources: Annotated[str | None, typer.Option(help="Event sources it may send as (comma-separated).")] = None,
    rotate: Annotated[bool, typer.Option(help="Replace the key of an existing partner.")] = False,
) -> None:
    """Issue a partner's API key. The key is printed once; only its hash is kept."""
    allowed = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    key = partner_keys(ctx.obj.settings).issue(name, allowed, replace=rotate)
    err.print(f"partner {name}: keep this key, it is not stored and cannot be shown again")
    out.print(key)


@partner_app.command("list")
def partner_list(ctx: typer.Context) -> None:
    """List partners and the sources they may send as."""
    partners = partner_keys(ctx.obj.settings).list()
    table = Table("name", "sources", "created", "key sha256 (prefix)")
    for p in partners:
        table.add_row(p.name, ",".join(p.sources), p.created_at.isoformat(timespec="seconds"), p.key_sha256[:12])
    out.print(table if partners else "no partners")


@partner_app.command("revoke")
def partner_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Partner name.")]) -> None:
    """Remove a partner: its key stops working at once."""
    partner_keys(ctx.obj.settings).revoke(name)
    out.print(f"partner {name} revoked")


@pull_app.command("postgres")
def pull_postgres(
    ctx: typer.Context,
    dsn: Annotated[str, typer.Option(help="libpq DSN or URI, e.g. postgresql://user@127.0.0.1:5432/shop.")],
    source: Annotated[str, typer.Option(help="Event source name the rows' customer ids belong to.")],
    schema: Annotated[str, typer.Option(help="Schema of the retail tables.")] = "public",
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per batch.")] = 1000,
) -> None:
    """Pull new and changed orders (with line items) and transactions since the last run.

    Each batch goes through the pipeline and only then moves the watermark (kept in the data directory),
    so an interrupted pull resumes where it stopped; rows that cannot be mapped become dead letters.
    """
    from pydantic import ValidationError

    from c360.connectors.postgres import FileWatermarks, PostgresSource, PostgresSourceConfig

    try:
        config = PostgresSourceConfig(dsn=dsn, source=source, schema_name=schema, batch_size=batch_size)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(problems) from None
    settings = ctx.obj.settings
    reader = PostgresSource(config, FileWatermarks(settings.data_dir / "watermarks.json"))
    store = build_store(settings)
    totals = {"read": 0, "applied": 0, "seen": 0, "rejected": 0}
    try:
        pipeline = build_pipeline(settings, store)
        for batch in reader.read():
            outcome = pipeline.process(batch.payloads)
            batch.commit()
            totals["read"] += len(batch.payloads)
            totals["applied"] += len(outcome.accepted)
            totals["seen"] += outcome.duplicates
            totals["rejected"] += len(outcome.rejected)
            for r in outcome.rejected:
                err.print(f"rejected {batch.table} event {r.event_id or '?'}: {r.reason} -> {r.dead_letter}")
            err.print(f"{batch.table}: {totals['read']:,} rows so far, up to {batch.end[0]}")
    finally:
        store.close()
    out.print(
        f"{totals['read']:,} rows: {totals['applied']:,} applied, {totals['seen']:,} seen before, "
        f"{totals['rejected']:,} rejected (c360 dlq list)"
    )


streams_app = typer.Typer(help="Kafka: the topics of the event types and the dead letters.", no_args_is_help=True)
topics_app = typer.Typer(help="The topics on Kafka.", no_args_is_help=True)
streams_app.add_typer(topics_app, name="topics")


def _kafka_settings(settings: Settings) -> StreamsConfig:
    if not settings.streams.brokers:
        raise InvalidInputError("no Kafka configured: set C360_STREAMS__BROKERS (e.g. kafka://127.0.0.1:9092)")
    return settings.streams


def _ensure_topics(config: StreamsConfig) -> None:
    from c360.streams.topics import ensure_topics

    try:
        states = asyncio.run(ensure_topics(config))
    except BrokerUnavailableError as exc:
        raise StoreUnavailableError(str(exc)) from exc
    for state in states:
        (err if state.differs else out).print(state.describe(), style="yellow" if state.differs else None)


@topics_app.command("create")
def topics_create(ctx: typer.Context) -> None:
    """Create the event topics and the dead-letter topic with streams.partitions partitions.

    Idempotent: existing topics are left as they are (a different partition count is reported).
    """
    _ensure_topics(_kafka_settings(ctx.obj.settings))


def run_worker(settings: Settings, *, loglevel: str) -> None:
    """``c360 worker``: create the missing topics, then consume them into the graph until stopped."""
    from c360.streams.app import build_app as build_faust_app
    from c360.streams.app import run_worker as run_faust_worker

    config = _kafka_settings(settings)
    with redirect_stdout(sys.stderr):
        _ensure_topics(config)
    # The store opens with the first batch, inside the worker's retry rule: a store that is locked or
    # down at start delays the work, it does not stop the worker.
    stores: list[GraphStore] = []

    def pipeline() -> Pipeline:
        if not stores:
            stores.append(build_store(settings))
        return build_pipeline(settings, stores[0])

    err.print(f"c360 worker: {config.brokers}, group {config.app_id}, store {settings.graph.backend}")
    try:
        run_faust_worker(build_faust_app(config, pipeline), loglevel=loglevel)
    finally:
        for store in stores:
            store.close()
