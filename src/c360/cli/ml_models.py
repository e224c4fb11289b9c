"""``c360 ml rfm | train | score | models``: RFM, the models and their scores written back to the profiles.

All of them read the snapshot (``c360 ml snapshot``) at ``DATA_DIR/ml/snapshot.duckdb``; artifacts live
under ``DATA_DIR/ml/models/<name>/v<n>/``. ``--as-of`` defaults to the time the snapshot last read the
store: the date the scores are "as of", and the end of the models' label windows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.table import Table

from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.store import GraphStore
from c360.ml.artifacts import ArtifactInfo, list_artifacts
from c360.ml.consent_facts import ConsentFacts, consent_facts
from c360.ml.scoring import MODELS, Progress, ScoreReport, TrainReport, score_customers, train_models, write_insights
from c360.ml.snapshot import database_path, snapshot_time
from c360.settings import Settings

from .common import audited, err, out, print_json, store_of

AsOf = Annotated[
    datetime | None, typer.Option("--as-of", help="The time of the scores, UTC (default: the snapshot's last read).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress lines.")]


def as_of_time(value: datetime | None, con: duckdb.DuckDBPyConnection) -> datetime:
    """``--as-of`` (UTC when it names no zone), else when the snapshot last read the store."""
    if value is None:
        return snapshot_time(con)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ml_folder(settings: Settings) -> Path:
    """``DATA_DIR/ml``: the snapshot, its Parquet files, the models and the followers' cursors."""
    return Path(settings.data_dir) / "ml"


@contextmanager
def open_snapshot_db(settings: Settings, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """The snapshot's DuckDB connection; a clear error when there is none or another process holds it."""
    path = database_path(ml_folder(settings))
    if not path.is_file():
        raise NotFoundError(f"no snapshot at {path}: run `c360 ml snapshot` first")
    try:
        con = duckdb.connect(str(path), read_only=not write)
    except duckdb.Error as exc:
        raise InvalidInputError(f"cannot open the snapshot {path} (is `c360 ml snapshot` running?): {exc}") from exc
    try:
        yield con
    finally:
        con.close()


def progress_lines(quiet: bool) -> Progress:
    """Progress lines on stderr, or none."""
    if quiet:
        return lambda _line: None
    return lambda line: err.print(line, highlight=False)


def ml_rfm(ctx: typer.Context, as_of: AsOf = None, as_json: AsJson = False) -> None:
    """Recompute the RFM scores and segments of every snapshot customer (table ``rfm``)."""
    from c360.ml.rfm import compute_rfm

    settings = ctx.obj.settings
    with audited(settings, "ml_rfm", str(database_path(ml_folder(settings))), change=True) as note:
        with open_snapshot_db(settings, write=True) as con:
            when = as_of_time(as_of, con)
            rows = compute_rfm(con, as_of=when)
            counts = dict(con.execute("SELECT rfm_segment, count(*) FROM rfm GROUP BY 1 ORDER BY 2 DESC").fetchall())
        note.detail = f"{rows} customers scored as of {when.isoformat()}"
    if as_json:
        print_json({"as_of": when.isoformat(), "customers": rows, "segments": counts})
        return
    table = Table("RFM segment", "customers")
    for segment, n in counts.items():
        table.add_row(str(segment), f"{n:,}")
    out.print(table)
    out.print(f"{rows:,} customers scored as of {when.isoformat()}", highlight=False)


def ml_train(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None, typer.Option("--model", help=f"Train only these ({', '.join(MODELS)}; repeat).")
    ] = None,
    as_of: AsOf = None,
    window_days: Annotated[int, typer.Option(min=7, max=730, help="Churn window and CLV period, days.")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed (folds, k-means, boosting).")] = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Train churn, lifetime value, clusters and basket rules on the snapshot; each a new artifact version."""
    settings = ctx.obj.settings
    models_dir = ml_folder(settings) / "models"
    with audited(settings, "ml_train", str(models_dir), change=True) as note:
        with open_snapshot_db(settings, write=False) as con:
            when = as_of_time(as_of, con)
            report = train_models(
                con,
                models_dir,
                as_of=when,
                window_days=window_days,
                seed=seed,
                only=model,
                progress=progress_lines(quiet or as_json),
            )
        note.detail = _train_summary(report)
    if as_json:
        print_json(report.to_json())
    else:
        out.print(_train_summary(report), highlight=False)
    if not report.artifacts:
        raise typer.Exit(1)  # nothing could be trained: say so with the exit code too


def _train_summary(report: TrainReport) -> str:
    saved = ", ".join(info.tag for info in report.artifacts.values()) or "nothing"
    skipped = "; ".join(f"{name} skipped: {why}" for name, why in report.skipped.items())
    return f"saved {saved} in {report.seconds:.1f} s" + (f"; {skipped}" if skipped else "")


def marketing_channels(facts: Mapping[str, ConsentFacts]) -> dict[str, frozenset[str]]:
    """Per customer, the channels its consent facts permit for marketing."""
    return {cid: frozenset(ch for purpose, ch in f.permitted if purpose == "marketing") for cid, f in facts.items()}


def run_scoring(
    settings: Settings,
    store: GraphStore,
    as_of: datetime | None,
    *,
    write: bool,
    consent: Mapping[str, ConsentFacts] | None = None,
    progress: Progress | None = None,
) -> ScoreReport:
    """Score every snapshot customer as of ``as_of`` (default: the snapshot's time) and write the insights.

    ``consent``: the customers' consent facts at that time when the caller has read them already (a
    refresh's backfill); otherwise they are read from the ledger here.
    """
    say = progress or (lambda _line: None)
    with open_snapshot_db(settings, write=False) as con:
        when = as_of_time(as_of, con)
        if consent is None:
            ids = [row[0] for row in con.execute("SELECT customer_id FROM customers ORDER BY 1").fetchall()]
            say(f"reading the consent of {len(ids):,} customers ...")
            consent = consent_facts(store, ids, when)
        channels = marketing_channels(consent)
        insights, report = score_customers(
            con, ml_folder(settings) / "models", as_of=when, consented_channels=channels, progress=say
        )
    if write:
        report = ScoreReport(**{**vars(report), "written": write_insights(store, insights, progress=say)})
    return report


def ml_score(
    ctx: typer.Context,
    as_of: AsOf = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Score, but write nothing to the profiles.")] = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Score every customer with the latest models and write the insights onto their profiles."""
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "ml_score", "insights", change=not dry_run) as note:
        report = run_scoring(settings, store, as_of, write=not dry_run, progress=progress_lines(quiet or as_json))
        note.detail = _score_summary(report)
    if as_json:
        print_json(report.to_json())
        return
    table = Table("insight", "customers", "model")
    for name, count in report.counts.items():
        table.add_row(name, f"{count:,}", report.models[name])
    for name, why in report.missing.items():
        table.add_row(name, "-", why)
    out.print(table)
    out.print(_score_summary(report), highlight=False)


def _score_summary(report: ScoreReport) -> str:
    total = sum(report.counts.values())
    return (
        f"{total:,} insights for {report.customers:,} customers in {report.seconds:.1f} s; "
        f"{report.written:,} written to the profiles"
    )


def ml_models(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help=f"One model ({', '.join(MODELS)}); default: all.")] = None,
    as_json: AsJson = False,
) -> None:
    """List the saved model versions with their validation metrics."""
    models_dir = ml_folder(ctx.obj.settings) / "models"
    names = [name] if name else list(MODELS)
    listed = {n: list_artifacts(models_dir, n) for n in names}
    if as_json:
        versions = {n: [_version_json(i) for i in infos] for n, infos in listed.items()}
        print_json(versions)
        return
    table = Table("model", "created", "metrics")
    for infos in listed.values():
        for info in infos:
            table.add_row(info.tag, info.created_at.isoformat(timespec="seconds"), _headline(info.metrics))
    out.print(table)


def _version_json(info: ArtifactInfo) -> dict[str, object]:
    return {"version": info.tag, "created_at": info.created_at.isoformat(), "metrics": dict(info.metrics)}


def _headline(metrics: object) -> str:
    if not isinstance(metrics, dict):
        return ""
    holdout = metrics.get("holdout")
    if isinstance(holdout, dict):
        keys = ("auc", "f1", "precision", "recall", "mae", "spearman")
        return ", ".join(f"{k} {holdout[k]:.3f}" for k in keys if isinstance(holdout.get(k), int | float))
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, int | float))
