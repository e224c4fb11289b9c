"""``c360 generate`` and ``c360 demo``: synthetic customers, and the demo that runs them end to end.

The demo's logic is :mod:`c360.demo`; this module prints its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from c360.connectors.synthetic import generate

from ..settings import Settings
from .common import audited, err, out, store_of


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


def demo(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(min=10, max=200_000, help="Number of synthetic persons.")] = 1000,
    show: Annotated[int, typer.Option(min=0, help="Profiles to print.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
) -> None:
    """Generate a retail company's customers and journeys, stream them in, train, resolve, and show profiles."""
    from ..demo import describe_event, run_demo, showcase

    settings: Settings = ctx.obj.settings
    # The report shows profiles: it is captured and printed once the demo's audit entry is on disk.
    with store_of(ctx) as store, audited(settings, "demo", None, change=True) as note, out.capture() as shown:
        with err.status("demo") as status:
            report = run_demo(settings, store, customers=customers, seed=seed, progress=status.update)
        note.detail = (
            f"{report.dataset.records} records generated into {report.dataset.root}; {report.records} records, "
            f"{report.customers} customers; showed {show} profiles"
        )
        ds, p, r, b = report.dataset, report.profiles, report.retail, report.batch
        out.print(
            f"generated {ds.records:,} customer records of {ds.persons:,} persons in {len(ds.sources)} sources "
            f"({', '.join(s.source for s in ds.sources)}) into {ds.root}",
            highlight=False,
        )
        out.print(
            f"profiles: {p.events:,} events, {p.accepted:,} applied, {p.duplicates:,} seen before, {len(p.rejected):,} "
            f"rejected ({p.rate:,.0f} events/s with real-time resolution)",
            highlight=False,
        )
        counts = ", ".join(f"{n:,} {t}" for t, n in report.retail_counts.items())
        out.print(
            f"journey: {r.events:,} events ({counts}): {r.accepted:,} applied, {r.duplicates:,} seen before, "
            f"{len(r.rejected):,} rejected ({r.rate:,.0f} events/s)",
            highlight=False,
        )
        c = report.consent
        out.print(
            f"consent: {c.events:,} events (signed receipts in the ledger): {c.accepted:,} applied, "
            f"{c.duplicates:,} seen before, {len(c.rejected):,} rejected",
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
    out.file.write(shown.get())
    out.print(
        "Look one up: c360 customer get ID | c360 customer timeline ID | c360 review list | c360 serve",
        highlight=False,
    )
