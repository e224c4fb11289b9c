"""``c360 ml refresh``: the batch side of the marketers' ML, on demand or on a schedule.

One run brings the snapshot up to date (incremental), recomputes RFM and every rule segment over it,
writes the membership changes to the store (entered / exited on the timelines), optionally retrains the
models, and scores every customer onto their profile. Real-time conditions are kept current between runs
by ``c360 ml segments follow``; the daily run is what lets RFM and past-event windows move with time
alone (as Apache Unomi's daily timer does). ``--every 24h`` repeats the run until stopped; a run that
fails is reported and the next one still comes (``--times`` bounds the number of runs).
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer

from c360.graph.errors import C360Error, InvalidInputError
from c360.graph.store import GraphStore
from c360.ml.scoring import train_models
from c360.ml.segment_store import backfill_into_store
from c360.ml.segments import load_segments
from c360.ml.snapshot import snapshot
from c360.settings import Settings

from .common import audited, err, out, store_of
from .ml_models import as_of_time, ml_folder, open_snapshot_db, progress_lines, run_scoring

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``24h`` or ``7d`` in seconds; InvalidInputError otherwise."""
    found = _DURATION.match(text)
    if not found or float(found.group(1)) <= 0:
        raise InvalidInputError(f"--every {text!r}: give a positive number and a unit s, m, h or d (e.g. 24h)")
    return float(found.group(1)) * _UNIT[found.group(2)]


@dataclass
class RefreshRun:
    """What one refresh did, stage by stage (seconds per stage), or the error that stopped it."""

    started_at: datetime
    stages: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """For ``--json`` and the audit trail."""
        return {
            "started_at": self.started_at.isoformat(),
            "ok": self.error is None,
            "error": self.error,
            "seconds": {k: round(v, 3) for k, v in self.stages.items()},
            **self.summary,
        }


def refresh_once(
    settings: Settings,
    store: GraphStore,
    *,
    as_of: datetime | None,
    segments_file: Path | None,
    train: bool,
    budget: float | None,
    quiet: bool,
) -> RefreshRun:
    """Snapshot, RFM and segments, (training,) scoring: one run; errors end the run and are kept in it."""
    say = progress_lines(quiet)
    run = RefreshRun(datetime.now(UTC))

    def stage(name: str, started: float) -> None:
        run.stages[name] = time.monotonic() - started

    try:
        defined = load_segments(segments_file)
        t = time.monotonic()
        snap = snapshot(store, ml_folder(settings), budget_seconds=budget, progress=say)
        stage("snapshot", t)
        run.summary["snapshot"] = {"complete": snap.complete, "events_read": snap.events_read}
        t = time.monotonic()
        with open_snapshot_db(settings, write=True) as con:
            when = as_of_time(as_of, con)
            backfill = backfill_into_store(store, con, defined, as_of=when, rfm=True, progress=say)
        stage("rfm_and_segments", t)
        run.summary["as_of"] = when.isoformat()
        run.summary["segments"] = {"members": backfill.members, **backfill.report.to_json()}
        if train:
            t = time.monotonic()
            with open_snapshot_db(settings, write=False) as con:
                trained = train_models(con, ml_folder(settings) / "models", as_of=when, progress=say)
            stage("train", t)
            run.summary["trained"] = {n: i.tag for n, i in trained.artifacts.items()}
            run.summary["not_trained"] = dict(trained.skipped)
        t = time.monotonic()
        scored = run_scoring(settings, store, when, write=True, consent=backfill.consent, progress=say)
        stage("score", t)
        run.summary["insights"] = {"written": scored.written, "models": dict(scored.models)}
    except (C360Error, duckdb.Error, OSError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    return run


def ml_refresh(
    ctx: typer.Context,
    every: Annotated[
        str | None, typer.Option(help="Run again at this interval until stopped (24h, 30m, 7d; default: once).")
    ] = None,
    times: Annotated[int | None, typer.Option(min=1, help="With --every: stop after this many runs.")] = None,
    train: Annotated[bool, typer.Option("--train", help="Retrain the models before scoring (new versions).")] = False,
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Evaluate at this time, UTC (default: the snapshot's).")
    ] = None,
    segments: Annotated[Path | None, typer.Option(help="Segment definitions (default: the bundled file).")] = None,
    budget: Annotated[
        float | None, typer.Option(min=0.001, help="The snapshot's time budget per run, seconds (it goes on next run).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each run's report as one JSON line.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Bring the snapshot, RFM, segments and scores up to date, once or every interval."""
    settings = ctx.obj.settings
    interval = parse_duration(every) if every is not None else None
    failed = 0
    n = 0
    while True:
        n += 1
        with store_of(ctx) as store, audited(settings, "ml_refresh", str(ml_folder(settings)), change=True) as note:
            run = refresh_once(
                settings,
                store,
                as_of=as_of,
                segments_file=segments,
                train=train,
                budget=budget,
                quiet=quiet or as_json,
            )
            note.detail = _line(run)
            if as_json:  # one line per run, so that a scheduled refresh's output reads as JSON Lines
                sys.stdout.write(json.dumps(run.to_json(), ensure_ascii=False) + "\n")
                sys.stdout.flush()
            else:
                (err if run.error else out).print(_line(run), highlight=False)
            if run.error is not None and interval is None:
                raise typer.Exit(1)  # audited as refused, with the error in the detail
        failed += run.error is not None
        if interval is None or (times is not None and n >= times):
            break
        next_at = run.started_at.timestamp() + interval
        wait = max(0.0, next_at - time.time())
        if not (quiet or as_json):
            err.print(f"next run at {datetime.fromtimestamp(next_at, UTC).isoformat(timespec='seconds')}")
        time.sleep(wait)
    if failed:
        raise typer.Exit(1)


def _line(run: RefreshRun) -> str:
    if run.error is not None:
        done = ", ".join(run.stages) or "nothing"
        return f"refresh failed after {done}: {run.error}"
    seg = run.summary.get("segments", {})
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in run.stages.items())
    return (
        f"refresh as of {run.summary.get('as_of')}: {seg.get('entered', 0):,} entered, {seg.get('exited', 0):,} "
        f"exited; {run.summary.get('insights', {}).get('written', 0):,} insights written ({stages})"
    )
