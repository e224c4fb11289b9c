"""The ``c360`` command line."""

from __future__ import annotations

import csv
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from c360.connectors.files import FileSource, ReadReport
from c360.connectors.mapping import load_mapping
from c360.connectors.synthetic import MANIFEST, Dataset, generate
from c360.graph.errors import C360Error, InvalidInputError, NotFoundError
from c360.graph.models import Identifier
from c360.graph.store import GraphStore
from c360.resolution.linker import CustomerIdFactory, IngestResult
from c360.resolution.normalize import normalize_email, normalize_national_id, normalize_phone
from c360.resolution.undo import split

from .cli_resolve import explain_cmd, resolve_app
from .cli_review import audited, review_app, who
from .cli_streams import dlq_app, events_app, partner_app, pull_app, streams_app
from .deps import build_linker, build_store
from .settings import Settings, load_settings

app = typer.Typer(
    help="c360: one trustworthy profile per customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
customer_app = typer.Typer(help="Read, find, split customers and their history.", no_args_is_help=True)
export_app = typer.Typer(help="Export what the graph holds.", no_args_is_help=True)
app.add_typer(customer_app, name="customer")
app.add_typer(export_app, name="export")
app.add_typer(resolve_app, name="resolve")
app.command("explain")(explain_cmd)
app.add_typer(review_app, name="review")
app.add_typer(events_app, name="events")
app.add_typer(dlq_app, name="dlq")
app.add_typer(partner_app, name="partner")
app.add_typer(pull_app, name="pull")
app.add_typer(streams_app, name="streams")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class State:
    """Options shared by every command."""

    config: Path | None = None
    data_dir: Path | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Settings, built once."""
        if self._settings is None:
            self._settings = load_settings(self.config, data_dir=self.data_dir)
        return self._settings


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    err.print(Text.assemble(("error: ", "red"), _one_line(message)))
    raise typer.Exit(code)


@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data folder (embedded store, rejects). Env: C360_DATA_DIR; default ./.c360"),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file. Env: C360_CONFIG.")] = None,
) -> None:
    ctx.obj = State(config=config, data_dir=data_dir)


@contextmanager
def _store(ctx: typer.Context) -> Iterator[GraphStore]:
    store = build_store(ctx.obj.settings)
    try:
        yield store
    finally:
        store.close()


def _progress() -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def _ingest_file(
    settings: Settings, store: GraphStore, source: FileSource, label: str, total: int | None
) -> tuple[IngestResult, float]:
    linker = build_linker(settings, store)
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(label, total=total)
        advance: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
        result = linker.ingest(source, batch_size=settings.ingest.batch_size, progress=advance)
    return result, time.perf_counter() - started


def _report(name: str, result: IngestResult, report: ReadReport, seconds: float, rejects_path: Path | None) -> None:
    rate = result.received / seconds if seconds > 0 else 0.0
    out.print(
        f"{name}: {report.rows} rows, {result.received} records ({result.inserted} new, {result.updated} updated, "
        f"{result.unchanged} unchanged), {result.new_customers} new customers, {result.merges} merges, "
        f"{len(report.rejects)} rejected, {seconds:.1f}s ({rate:,.0f} records/s)",
        highlight=False,
    )
    if report.unseen_columns:
        out.print(f"  warning: mapped columns that no row has: {', '.join(report.unseen_columns)}", highlight=False)
    if report.warnings:
        summary = ", ".join(f"{f}: {n}" for f, n in sorted(report.warnings.items()))
        out.print(f"  fields left empty because they did not parse: {summary}", highlight=False)
    for ident, reason in result.flagged:
        out.print(f"  flagged {ident}: {reason}", highlight=False)
    if report.rejects and rejects_path is not None:
        report.write_rejects(rejects_path)
        for r in report.rejects[:5]:
            out.print(f"  rejected row {r.row}: {r.reason}", highlight=False)
        more = f" ({len(report.rejects) - 5} more)" if len(report.rejects) > 5 else ""
        out.print(f"  rejects written to {rejects_path}{more}", highlight=False)


def _count_rows(path: Path) -> int | None:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return lines - 1 if path.suffix.lower() == ".csv" else lines


def ingest_dataset(settings: Settings, store: GraphStore, dataset: Dataset) -> IngestResult:
    """Ingest every source of a data set folder, printing a line per source."""
    total = IngestResult()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for sf in dataset.sources:
        fs = FileSource(sf.path, sf.source, dataset.mapping_of(sf))
        result, seconds = _ingest_file(settings, store, fs, sf.source, _count_rows(sf.path))
        _report(
            sf.source,
            result,
            fs.report,
            seconds,
            settings.data_dir / "rejects" / f"{sf.source}-{stamp}.jsonl",
        )
        total.add(result)
    return total


@app.command()
def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A CSV, JSON Lines or Parquet file, or a data set folder.")],
    source: Annotated[str | None, typer.Option(help="Source system name (required for a file).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML column mapping.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where to write rejected rows (JSON Lines).")] = None,
) -> None:
    """Ingest source records and link them to customers."""
    settings: Settings = ctx.obj.settings
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            fail(f"{path} is a folder without {MANIFEST}; give a file and --source")
        dataset = Dataset.load(path)
        with _store(ctx) as store:
            ingest_dataset(settings, store, dataset)
            _print_stats(store)
        return
    if not source:
        fail("--source is required when ingesting a file")
    fs = FileSource(path, source, load_mapping(mapping) if mapping else None)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    rejects_path = rejects or settings.data_dir / "rejects" / f"{source}-{stamp}.jsonl"
    _check_writable(rejects_path)
    with _store(ctx) as store:
        result, seconds = _ingest_file(settings, store, fs, source, _count_rows(path))
        _report(source, result, fs.report, seconds, rejects_path)
        _print_stats(store)


def _check_writable(path: Path) -> None:
    """Fail before any data is written if the rejects file could not be written afterwards."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with path.open("a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise InvalidInputError(f"cannot write rejects to {path}: {exc.strerror or exc}") from exc


def _print_stats(store: GraphStore) -> None:
    s = store.stats()
    out.print(
        f"graph: {s.records} records, {s.customers} customers ({s.merged_customers} merged away), "
        f"{s.identifiers} identifiers ({s.flagged_identifiers} flagged)",
        highlight=False,
    )


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@customer_app.command("get")
def customer_get(ctx: typer.Context, customer_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print a customer's unified profile as JSON (a merged-away ID resolves to its survivor)."""
    with _store(ctx) as store, audited(ctx.obj.settings, "read_profile", customer_id):
        profile = store.get_profile(customer_id)
        if profile is None:
            raise NotFoundError(f"no customer {customer_id}")
        _print_json(profile.to_json())


@customer_app.command("history")
def customer_history(ctx: typer.Context, customer_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print every merge and split of a customer, oldest first: before, after, records and evidence (JSON)."""
    with _store(ctx) as store, audited(ctx.obj.settings, "read_history", customer_id):
        if store.get_customer(customer_id) is None:
            raise NotFoundError(f"no customer {customer_id}")
        events = store.history(customer_id)
    _print_json([event.to_json() for event in events])


@customer_app.command("timeline")
def customer_timeline(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    first: Annotated[int, typer.Option(min=1, max=1000, help="Events per page.")] = 20,
    after: Annotated[str | None, typer.Option(help="Cursor of the page to read (printed by the last page).")] = None,
    types: Annotated[str | None, typer.Option(help="Only these types, e.g. order,transaction,web_activity.")] = None,
) -> None:
    """Print a customer's orders, transactions and web activity, newest first, one page (JSON)."""
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
    with _store(ctx) as store, audited(ctx.obj.settings, "read_timeline", customer_id):
        page = store.timeline(customer_id, first=first, after=after, types=wanted)
        active = store.resolve(customer_id)
    _print_json(
        {
            "customer": active,
            "events": [
                {"id": e.id, "type": e.type, "occurred_at": e.occurred_at.isoformat(), **json.loads(e.data)}
                for e in page.events
            ],
            "next_cursor": page.next_cursor,
        }
    )


@customer_app.command("split")
def customer_split(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    records: Annotated[str, typer.Option(help="Records to move out: source|key (or key), comma-separated.")],
    reason: Annotated[str, typer.Option(help="Why they are not the same person (kept in history).")],
    by: Annotated[str | None, typer.Option(help="Who decides (default: the OS user).")] = None,
) -> None:
    """Split records out of a customer into a new one; they will not be merged back automatically."""
    wanted = [r.strip() for r in records.split(",") if r.strip()]
    settings: Settings = ctx.obj.settings
    with _store(ctx) as store, audited(settings, "split", customer_id, by=by):
        event = split(
            store,
            customer_id,
            wanted,
            by=who(by),
            reason=reason,
            now=datetime.now(UTC),
            new_id=CustomerIdFactory(),
            survivorship=settings.survivorship,
        )
    out.print(
        f"split {len(event.records)} record(s) from {event.source} into new customer {event.new}; "
        f"they stay apart from the {event.source} records from now on. See: c360 customer history {event.source}",
        highlight=False,
    )


@customer_app.command("find")
def customer_find(
    ctx: typer.Context,
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number (national numbers in the default region).")] = None,
    name: Annotated[str | None, typer.Option(help="'First Last', or a last name alone.")] = None,
    national_id: Annotated[str | None, typer.Option(help="National id value.")] = None,
    kind: Annotated[str, typer.Option(help="Kind of --national-id.")] = "ssn",
) -> None:
    """Find customers by email, phone, name or national id; prints JSON summaries."""
    given = [v for v in (email, phone, name, national_id) if v]
    if len(given) != 1:
        fail("give exactly one of --email, --phone, --name, --national-id")
    settings: Settings = ctx.obj.settings
    with _store(ctx) as store, audited(settings, "search_customers", None):
        if name:
            parts = name.split()
            ids = store.find_by_name(parts[0] if len(parts) > 1 else None, parts[-1])
        else:
            if email:
                ident = ("email", normalize_email(email))
            elif phone:
                ident = ("phone", normalize_phone(phone, settings.linking.default_region))
            else:
                ident = ("national_id", normalize_national_id(national_id, kind))
            if ident[1] is None:
                fail(f"not a valid {ident[0].replace('_', ' ')}: {email or phone or national_id}")
            ids = store.find_by_identifier(Identifier(ident[0], ident[1]))
        results = []
        for cid in ids:
            c = store.get_customer(cid)
            if c is not None:
                results.append(
                    {
                        "id": c.id,
                        **{
                            k: v.to_json()["value"]
                            for k, v in c.golden.items()
                            if k in ("first_name", "last_name", "email", "phone", "city")
                        },
                    }
                )
        _print_json(results)


@export_app.command("links")
def export_links(ctx: typer.Context, output: Annotated[Path, typer.Option(help="CSV file to write.")]) -> None:
    """Write source,source_key,customer_id for every source record."""
    with _store(ctx) as store:
        try:
            fh = output.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot write {output}: {exc.strerror}") from exc
        with fh:
            writer = csv.writer(fh)
            writer.writerow(["source", "source_key", "customer_id"])
            n = 0
            for row in store.iter_links():
                writer.writerow(row)
                n += 1
    out.print(f"wrote {n} links to {output}", highlight=False)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8360,
    dev: Annotated[bool, typer.Option("--dev", help="Dev mode: local tokens (c360 auth token), GraphiQL.")] = False,
) -> None:
    """Serve the API with uvicorn until stopped: /graphql, /v1 (REST, partner events), /healthz, /readyz, /metrics."""
    import uvicorn

    from .deps import build_app

    settings: Settings = ctx.obj.settings
    if dev:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"dev_mode": True})})
    with _store(ctx) as store:
        mode = "dev mode: GraphiQL on /graphql, tokens from c360 auth token" if settings.api.dev_mode else "production"
        err.print(f"c360 serving on http://{host}:{port} (store: {store.name}; {mode})")
        app_ = build_app(settings, store)
        # Start-up objects (schema, settings, caches) never die: keep them out of every GC pass, and
        # collect less often, since a request allocates many short-lived objects (fewer, shorter pauses).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        uvicorn.run(app_, host=host, port=port, log_level="warning")


auth_app = typer.Typer(help="Local tokens for dev mode.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")
graphql_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
app.add_typer(graphql_app, name="graphql")


@auth_app.command("token")
def auth_token(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="Role of the token (see the policy): data_steward, marketer, ...")],
    subject: Annotated[str, typer.Option(help="Who the token speaks for (the audit trail's actor).")] = "dev",
    ttl: Annotated[int, typer.Option(min=60, max=86_400 * 30, help="Lifetime in seconds.")] = 3600,
    dev: Annotated[bool, typer.Option("--dev", help="Dev mode for this command (as c360 serve --dev).")] = False,
) -> None:
    """Issue a local HS256 token (dev mode only: set api.dev_mode, or pass --dev to both commands)."""
    from c360.graphql.auth import issue_dev_token
    from c360.graphql.policy import load_policy

    from .deps import auth_config

    settings: Settings = ctx.obj.settings
    if dev:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"dev_mode": True})})
    if not settings.api.dev_mode:
        fail("local tokens exist in dev mode only: pass --dev (and run c360 serve --dev) or set C360_API__DEV_MODE=1")
    policy = load_policy(settings.api.policy_file)
    out.print(issue_dev_token(auth_config(settings), role, subject, ttl, roles=policy.roles), highlight=False)


@graphql_app.command("schema")
def graphql_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from c360.graphql.schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")


@app.command()
def worker(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option(help="Faust log level (warning, info, debug).")] = "warning",
) -> None:
    """Run a Faust worker: create the missing topics, consume them from Kafka (streams.brokers) into the graph."""
    from .cli_streams import run_worker

    run_worker(ctx.obj.settings, loglevel=loglevel)


audit_app = typer.Typer(help="The audit trail of profile reads and changes.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the audit trail's hash chain; name the first entry altered or removed (exit 1 if any)."""
    from c360.graphql.audit import AuditLog

    log = AuditLog(ctx.obj.settings.data_dir / "audit.log")
    result = log.verify()
    if not result.ok:
        fail(f"audit trail broken at entry {result.broken_at}: {result.problem} ({result.entries} entries intact)")
    last = log.last_hash()
    out.print(f"audit trail intact: {result.entries:,} entries; last hash {last}", highlight=False)


@app.command("generate")
def generate_cmd(
    customers: Annotated[int, typer.Option(min=1, help="Number of distinct persons.")],
    output: Annotated[Path, typer.Option(help="Folder to write the data set to.")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    corruption: Annotated[float, typer.Option(min=0, max=1, help="How messy duplicates are.")] = 0.3,
) -> None:
    """Generate a synthetic multi-source customer set with duplicates and a ground-truth file."""
    ds = generate(customers, output, seed=seed, corruption=corruption)
    out.print(
        f"wrote {ds.records} records of {ds.persons} persons in {len(ds.sources)} sources to {output} "
        f"(ground truth: {ds.truth})",
        highlight=False,
    )


@app.command()
def demo(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(min=10, max=200_000, help="Number of synthetic persons.")] = 1000,
    show: Annotated[int, typer.Option(min=0, help="Profiles to print.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
) -> None:
    """Generate a retail company's customers and journeys, stream them in, train, resolve, and show profiles."""
    from .demo import describe_event, run_demo, showcase

    settings: Settings = ctx.obj.settings
    with _store(ctx) as store:
        with err.status("demo") as status:
            report = run_demo(settings, store, customers=customers, seed=seed, progress=status.update)
        ds, p, r, b = report.dataset, report.profiles, report.retail, report.batch
        out.print(
            f"generated {ds.records:,} customer records of {ds.persons:,} persons in {len(ds.sources)} sources "
            f"({', '.join(s.source for s in ds.sources)}) into {ds.root}",
            highlight=False,
        )
        out.print(
            f"profiles: {p.events:,} events, {p.accepted:,} applied, {p.duplicates:,} seen before, {p.rejected:,} "
            f"rejected ({p.rate:,.0f} events/s with real-time resolution)",
            highlight=False,
        )
        counts = ", ".join(f"{n:,} {t}" for t, n in report.retail_counts.items())
        out.print(
            f"journey: {r.events:,} events ({counts}): {r.accepted:,} applied, {r.duplicates:,} seen before, "
            f"{r.rejected:,} rejected ({r.rate:,.0f} events/s)",
            highlight=False,
        )
        out.print(
            f"model v{report.model_version} trained; batch resolution: {b.merges:,} merges, {b.splits:,} splits, "
            f"{b.review_items:,} new review items",
            highlight=False,
        )
        out.rule("report")
        out.print(
            f"records {report.records:,} | customers {report.customers:,} | merged away {report.merged_away:,} | "
            f"open review items {report.review_open:,}",
            highlight=False,
        )
        for label, acc in (("real-time rules", report.accuracy_realtime), ("after Splink", report.accuracy)):
            if acc is not None:
                out.print(
                    f"accuracy against the ground truth, {label}: pairwise precision {acc.precision:.3f}, "
                    f"recall {acc.recall:.3f}, F1 {acc.f1:.3f}",
                    highlight=False,
                )
        for cid in showcase(store, show):
            profile = store.get_profile(cid)
            if profile is None:
                continue
            g = profile.customer.golden
            name = " ".join(str(g[f].value) for f in ("first_name", "last_name") if f in g)
            out.rule(f"{cid}  {name}")
            for name_, gv in g.items():
                out.print(
                    f"  {name_:16} {gv.to_json()['value']!s:32} from {gv.source}/{gv.source_key}", highlight=False
                )
            for rec in profile.records:
                out.print(
                    f"  record {rec.record.uid:22} linked by {rec.evidence.rule} {', '.join(rec.evidence.identifiers)}",
                    highlight=False,
                )
            page = store.timeline(cid, first=5)
            for event in page.events:
                out.print(
                    f"  {event.occurred_at.isoformat(timespec='minutes')}  {describe_event(event.data)}",
                    highlight=False,
                )
    out.print(
        "Look one up: c360 customer get ID | c360 customer timeline ID | c360 review list | c360 serve",
        highlight=False,
    )


def main() -> None:
    """Entry point: run the CLI, turning c360's errors into one-line messages."""
    try:
        app()
    except C360Error as exc:
        err.print(Text.assemble(("error: ", "red"), _one_line(exc)))
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("C360_DEBUG"):
            raise
        detail = f"unexpected {type(exc).__name__}: {_one_line(exc)} (set C360_DEBUG=1 for a traceback)"
        err.print(Text.assemble(("error: ", "red"), detail))
        sys.exit(1)
