"""``c360 ml lookalike SEED`` and ``c360 ml clusters``: lookalike audiences and the k-means segments.

``lookalike`` takes a seed segment's current members in the store, scores every other snapshot customer
by likeness (:func:`c360.ml.lookalike.find_lookalikes`), prints the holdout lift report and the top N,
and writes the top N to the store as a segment (source ``lookalike``): they enter, previous members
not in the new top N exit, so a re-run replaces the audience. Each member gets the insight
``lookalike_<seed>`` (the likeness as its score); one who left gets it again without a score, labelled
"left the audience". ``c360 ml export <segment>`` then exports it with consent applied.

``clusters`` lists the latest clusters artifact (k, the silhouette of every k tried, each cluster's size
and words) and how many customers of the store carry each cluster insight.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from c360.graph.errors import InvalidInputError
from c360.graph.insights import Insight, check_name, is_name
from c360.graph.store import GraphStore
from c360.ml.artifacts import list_artifacts
from c360.ml.features import compute_features
from c360.ml.lookalike import METHODS, LookalikeAudience, find_lookalikes
from c360.ml.scoring import Progress, write_insights
from c360.ml.segment_store import to_segment_change, write_changes
from c360.ml.segments import Reason, diff_members, load_segments

from .common import audited, fail, out, print_json, store_of
from .ml_export import known_segment
from .ml_models import AsJson, AsOf, Quiet, as_of_time, ml_folder, open_snapshot_db, progress_lines

#: the source of a lookalike audience's segment changes
SOURCE = "lookalike"
#: members read per ``segment_members`` page
PAGE = 10_000
#: the insight a customer in an audience carries is ``lookalike_<seed>``
PREFIX = "lookalike_"


def members_of(store: GraphStore, segment_id: str) -> list[str]:
    """Every active member of ``segment_id`` in the store (all pages), in customer id order."""
    ids: list[str] = []
    after: str | None = None
    while True:
        page, after = store.segment_members(segment_id, first=PAGE, after=after)
        ids += [m.customer_id for m in page]
        if after is None:
            return ids


@dataclass(frozen=True)
class AudienceWrite:
    """What writing an audience did: memberships made and removed, insights written."""

    entered: int
    exited: int
    insights: int

    def to_json(self) -> dict[str, int]:
        """A JSON-safe dict."""
        return {"entered": self.entered, "exited": self.exited, "insights": self.insights}


def write_audience(
    store: GraphStore,
    segment_id: str,
    seed: str,
    audience: LookalikeAudience,
    *,
    as_of: datetime,
    now: datetime,
    progress: Progress | None = None,
) -> AudienceWrite:
    """Make ``segment_id``'s members exactly ``audience``'s, with insight ``lookalike_<seed>`` on each.

    Previous members not in the audience exit and get the insight without a score ("left the audience").
    All of it happens under the store's write lock (``store.exclusive()``), so two runs never interleave.
    The changes happen at ``now`` (ids carry it, so a later run's entries are never taken for a replay);
    the insights are computed as of ``as_of``, the features' date.
    """
    name = check_name("lookalike insight", PREFIX + seed)
    chosen = [m.customer_id for m in audience.members]
    kept = set(chosen)
    rule = f"among the {len(chosen)} customers most like {seed} ({audience.method}, as of {as_of.date()})"
    left = Reason(segment_id, "no longer " + rule)
    lift = None if audience.lift is None else round(audience.lift.lift, 4)
    detail: dict[str, Any] = {"seed": seed, "seed_size": audience.seed_size, "lift": lift, "segment": segment_id}
    model = f"lookalike@{audience.method}"
    with store.exclusive():  # the members read and replaced as one unit (one transaction on the embedded store)
        previous = members_of(store, segment_id)
        changes = [
            to_segment_change(c if c.change == "entered" else replace(c, reason=left), source=SOURCE)
            for c in diff_members(previous, chosen, now, Reason(segment_id, rule))
        ]
        applied = write_changes(store, changes, progress=progress)
        insights = [
            Insight(m.customer_id, name, model, as_of, m.score, "in the audience", {**detail, "rank": rank})
            for rank, m in enumerate(audience.members, start=1)
        ] + [Insight(cid, name, model, as_of, None, "left the audience", detail) for cid in previous if cid not in kept]
        written = write_insights(store, insights, progress=progress or (lambda _line: None))
    entered = sum(1 for c in applied if c.kind == "entered")
    return AudienceWrite(entered, len(applied) - entered, written)


def _lift_json(audience: LookalikeAudience) -> dict[str, Any] | None:
    lift = audience.lift
    if lift is None:
        return None
    return {
        "hidden": lift.hidden,
        "candidates": lift.candidates,
        "top_n": lift.top_n,
        "found": lift.found,
        "expected_at_random": round(lift.expected_at_random, 4),
        "lift": round(lift.lift, 4),
    }


def ml_lookalike(
    ctx: typer.Context,
    seed: Annotated[str, typer.Argument(help="The seed segment: its current members in the store.")],
    top: Annotated[int, typer.Option("--top", min=1, max=1_000_000, help="How many lookalikes to keep.")],
    method: Annotated[str, typer.Option("--method", help=f"{' or '.join(METHODS)}.")] = "logistic",
    holdout: Annotated[
        float,
        typer.Option("--holdout", min=0.0, max=0.9, help="Share of the seed hidden for the lift report (0: none)."),
    ] = 0.2,
    as_segment: Annotated[
        str | None,
        typer.Option("--as-segment", help="The segment the audience is written to (default lookalike_SEED)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Score and report, but write nothing to the store.")
    ] = False,
    show: Annotated[int, typer.Option("--show", min=0, help="Lookalikes listed in the table (--json lists all).")] = 50,
    as_of: AsOf = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Score every customer outside SEED by likeness; report the holdout lift; write the top N as a segment."""
    if method not in METHODS:
        fail(f"--method {method!r}: expected one of {', '.join(METHODS)}", 2)
    target = as_segment or PREFIX + seed
    for what, value in (("seed segment", seed), ("--as-segment", target), ("lookalike insight", PREFIX + seed)):
        if not is_name(value):
            fail(f"{what} {value!r} is not a segment name: a lower-case letter, then up to 63 of a-z, 0-9, _", 2)
    if target == seed:
        fail(f"--as-segment {target!r} is the seed itself: pick another segment", 2)
    if any(s.id == target for s in load_segments()):
        fail(f"--as-segment {target!r} is a rule segment of segments.yaml: its rule decides its members", 2)
    settings = ctx.obj.settings
    say = progress_lines(quiet or as_json)
    with store_of(ctx) as store, audited(settings, "ml_lookalike", target, change=not dry_run) as note:
        note.detail = f"seed {seed}, top {top} by {method}"
        if not known_segment(store, seed):
            fail(f"unknown segment {seed!r}: neither a rule segment of segments.yaml nor a segment in the store", 2)
        members = members_of(store, seed)
        if not members:
            fail(f"the seed segment {seed!r} has no members in the store (run c360 ml segments backfill?)", 2)
        with open_snapshot_db(settings, write=False) as con:
            when = as_of_time(as_of, con)
            features = compute_features(con, as_of=when)
        known = set(features.customer_ids)
        seeded = [cid for cid in members if cid in known]
        left_out = len(members) - len(seeded)
        say(f"seed {seed}: {len(members):,} members, {len(seeded):,} in the snapshot as of {when.isoformat()}")
        started = time.monotonic()
        try:
            audience = find_lookalikes(features, seeded, top_n=top, method=method, holdout_fraction=holdout)  # type: ignore[arg-type]  # checked against METHODS above
        except InvalidInputError as exc:
            note.detail = f"{exc}; {note.detail}"
            fail(str(exc).replace("pass holdout_fraction=0", "use --holdout 0"), 2)
        say(f"{len(features.customer_ids) - len(seeded):,} customers scored in {time.monotonic() - started:.1f} s")
        written = None
        if not dry_run:
            written = write_audience(store, target, seed, audience, as_of=when, now=datetime.now(UTC), progress=say)
        note.detail = _summary(seed, target, audience, written)
    if as_json:
        print_json(
            {
                "seed": seed,
                "segment": target,
                "method": method,
                "as_of": when.isoformat(),
                "seed_size": audience.seed_size,
                "seed_not_in_snapshot": left_out,
                "lift": _lift_json(audience),
                "members": [{"customer_id": m.customer_id, "score": m.score} for m in audience.members],
                "written": None if written is None else written.to_json(),
            }
        )
        return
    _print_lookalikes(audience, show)
    if left_out:
        out.print(f"{left_out:,} seed members are not in the snapshot (run c360 ml snapshot): left out")
    out.print(_summary(seed, target, audience, written), highlight=False)


def _print_lookalikes(audience: LookalikeAudience, show: int) -> None:
    lift = audience.lift
    if lift is None:
        out.print("lift report: none (--holdout 0)")
    else:
        report = Table("hidden seed members", "candidates", "top", "found", "expected at random", "lift")
        report.add_row(
            f"{lift.hidden:,}",
            f"{lift.candidates:,}",
            f"{lift.top_n:,}",
            f"{lift.found:,}",
            f"{lift.expected_at_random:.2f}",
            f"{lift.lift:.2f}",
        )
        out.print(report)
    table = Table("rank", "customer", "likeness")
    for rank, member in enumerate(audience.members[:show], start=1):
        table.add_row(str(rank), member.customer_id, f"{member.score:.4f}")
    out.print(table)
    if len(audience.members) > show:
        out.print(f"... and {len(audience.members) - show:,} more (--show or --json lists them)")


def _summary(seed: str, target: str, audience: LookalikeAudience, written: AudienceWrite | None) -> str:
    lift = "" if audience.lift is None else f", holdout lift {audience.lift.lift:.2f}"
    head = (
        f"{len(audience.members):,} lookalikes of {seed} ({audience.seed_size:,} seed members, {audience.method}{lift})"
    )
    if written is None:
        return head + "; nothing written (--dry-run)"
    return (
        f"{head} written to segment {target}: {written.entered:,} entered, {written.exited:,} exited, "
        f"{written.insights:,} insights"
    )


def cluster_counts(
    store: GraphStore, *, budget_seconds: float, progress: Progress
) -> tuple[Counter[tuple[str, int, str]], bool]:
    """Customers per (model, cluster, words) of the store's ``cluster`` insights; and whether all were read.

    Reads the active customers a page at a time until ``budget_seconds`` are spent.
    """
    counts: Counter[tuple[str, int, str]] = Counter()
    started, after, read = time.monotonic(), None, 0
    while True:
        ids, after = store.list_customers(first=1000, after=after)
        for insights in store.insights_of(ids).values():
            for i in insights:
                if i.name == "cluster":
                    counts[(i.model, int(i.detail.get("cluster", -1)), i.label or "")] += 1
        read += len(ids)
        if after is None:
            return counts, True
        if time.monotonic() - started > budget_seconds:
            progress(f"cluster insights: budget spent after {read:,} customers")
            return counts, False
        if read % 10_000 == 0:
            progress(f"cluster insights: {read:,} customers read")


def ml_clusters(
    ctx: typer.Context,
    budget: Annotated[
        float, typer.Option("--budget", min=0.001, help="Seconds to spend counting the store's cluster insights.")
    ] = 120.0,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """The latest k-means clusters: k, the silhouette of each k tried, every cluster's size and words."""
    settings = ctx.obj.settings
    infos = list_artifacts(ml_folder(settings) / "models", "clusters")
    if not infos:
        fail("no clusters artifact: run c360 ml train --model clusters")
    info = infos[-1]
    meta, metrics = info.metadata, info.metrics
    clusters = [c for c in meta.get("clusters", []) if isinstance(c, dict)]
    silhouettes = metrics.get("silhouettes", {}) if isinstance(metrics.get("silhouettes"), dict) else {}
    with store_of(ctx) as store, audited(settings, "ml_clusters", info.tag) as note:
        counts, complete = cluster_counts(store, budget_seconds=budget, progress=progress_lines(quiet or as_json))
        note.detail = f"{sum(counts.values()):,} cluster insights counted" + ("" if complete else " (budget spent)")
    of_this = {label: n for (model, label, _), n in counts.items() if model == info.tag}
    if as_json:
        print_json(
            {
                "version": info.tag,
                "created_at": info.created_at.isoformat(),
                "as_of": meta.get("as_of"),
                "k": meta.get("k"),
                "silhouette": metrics.get("silhouette"),
                "silhouettes": silhouettes,
                "clusters": [{**c, "insights": of_this.get(int(c.get("label", -1)), 0)} for c in clusters],
                "insights": [
                    {"model": model, "cluster": label, "words": words, "customers": n}
                    for (model, label, words), n in sorted(counts.items())
                ],
                "insights_complete": complete,
            }
        )
        return
    out.print(
        f"{info.tag} (as of {meta.get('as_of')}): k = {meta.get('k')}, silhouette {_number(metrics.get('silhouette'))}",
        highlight=False,
    )
    tried = ", ".join(f"k={k}: {_number(v)}" for k, v in silhouettes.items())
    out.print(f"silhouette per k tried: {tried or 'none recorded'}", highlight=False)
    for c in clusters:  # a line each, not a table: the words stay whole on a narrow terminal
        label = int(c.get("label", -1))
        out.print(
            f"cluster {label}: {c.get('size', 0):,} customers, {c.get('description', '')} "
            f"({of_this.get(label, 0):,} carry its insight)",
            highlight=False,
        )
    if not counts:
        out.print("the store holds no cluster insights (run c360 ml score)")
    else:
        other = sum(n for (model, _, _), n in counts.items() if model != info.tag)
        if other:
            out.print(f"{other:,} customers carry a cluster insight of an older clusters version")
    if not complete:
        out.print("counts are partial: the --budget was spent before every customer was read")


def _number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"
