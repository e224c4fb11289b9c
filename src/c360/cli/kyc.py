"""``c360 kyc``: screening, re-screening after a list update, task escalation, retention purge, the report."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ..deps import document_blobs, kyc_desk, screener, watchlists
from .common import audited, fail, out, print_json, store_of

kyc_app = typer.Typer(
    help="KYC: sanctions screening and re-screening, task escalation, retention purge, the regulatory report.",
    no_args_is_help=True,
)


@kyc_app.command("screen")
def kyc_screen(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The person's name, in any script and order.")],
    dob: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD: further evidence.")] = None,
    nationality: Annotated[str | None, typer.Option(help="Nationality (a country name): further evidence.")] = None,
    entities: Annotated[bool, typer.Option("--entities", help="Screen against entities too.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Screen one name against the OFAC and UN lists (kyc.ofac_dir, kyc.un_file); exit 3 when anything hits."""
    born = None
    if dob is not None:
        try:
            born = date.fromisoformat(dob)
        except ValueError:
            fail(f"--dob {dob!r} is not a date YYYY-MM-DD")
    kinds = ("individual", "entity") if entities else ("individual",)
    with audited(ctx.obj.settings, "screen_name", None) as note:
        hits = screener(ctx.obj.settings).screen(name, date_of_birth=born, nationality=nationality, kinds=kinds)
        note.detail = f"{len(hits)} hits"
    if json_:
        rows: list[dict[str, Any]] = [
            {
                "entry": h.entry_key,
                "listed_name": h.entry.name,
                "matched_name": h.matched_name,
                "alias": h.alias is not None,
                "score": round(h.score, 4),
                "explanation": h.explanation.text(),
            }
            for h in hits
        ]
        print_json({"query": name, "hits": rows})
    else:
        if not hits:
            out.print(f"no hit for {name!r}")
        for h in hits:
            out.print(f"{h.entry_key}  {h.entry.name}  score {h.score:.3f}")
            out.print(h.explanation.text(), highlight=False)
    if hits:
        raise typer.Exit(3)


@kyc_app.command("rescreen")
def kyc_rescreen(
    ctx: typer.Context, json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Reload the sanctions lists; screen every KYC customer against what changed; open review tasks."""
    from c360.streams.kyc_rescreen import rescreen_lists

    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "rescreen_kyc", None, change=True) as note:
        lists = watchlists(settings)
        report = rescreen_lists(
            store,
            screener(settings, lists),
            lists,
            folder=settings.data_dir / "watchlists",
            config=settings.kyc.workflow,
            now=datetime.now(UTC),
            progress=lambda line: out.print(line, highlight=False) if not json_ else None,
        )
        note.detail = f"{report.alerts} alerts, {report.tasks} tasks"
    if json_:
        print_json(report.to_json())
    else:
        out.print(f"{report.customers} customers, {report.alerts} alerts, {report.tasks} review tasks opened")


@kyc_app.command("escalate")
def kyc_escalate(ctx: typer.Context) -> None:
    """Escalate every open KYC task past its due time to the role its rule names (run it on a schedule)."""
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "escalate_kyc_tasks", None, change=True) as note:
        done = kyc_desk(settings, store).escalate()
        note.detail = f"{len(done)} escalated"
    for task in done:
        out.print(f"{task.application_id}  {task.id}  {task.kind}  due {task.due_at.isoformat()}", highlight=False)
    out.print(f"{len(done)} tasks escalated")


@kyc_app.command("purge")
def kyc_purge(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be removed; remove nothing.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Remove documents past their type's retention period (kyc.workflow.retention_days); keep the record of it."""
    from c360.streams.kyc_ops import purge

    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "purge_kyc_documents", None, change=not dry_run) as note:
        report = purge(store, document_blobs(settings), settings.kyc.workflow, now=datetime.now(UTC), dry_run=dry_run)
        note.detail = ("dry run: " if dry_run else "") + ", ".join(f"{k} {v}" for k, v in sorted(report.purged.items()))
    if json_:
        print_json({"dry_run": dry_run, **report.to_json()})
        return
    verb = "would remove" if dry_run else "removed"
    removed = sum(report.purged.values())
    out.print(f"{report.checked} document versions checked; {verb} {removed} ({report.bytes} bytes) from "
              f"{report.applications} applications")  # fmt: skip
    for kind, count in sorted(report.purged.items()):
        out.print(f"  {kind}: {count}")


@kyc_app.command("report")
def kyc_report(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--out", help="Write the CSV here (default: print it).")] = None,
) -> None:
    """The regulatory report: applications by status and risk category with their turnaround (CSV)."""
    from c360.streams.kyc_ops import applications_report

    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "read_kyc_report", None) as note:
        report = applications_report(store, now=datetime.now(UTC))
        note.detail = f"{report.total} applications"
    text = report.csv()
    if output is None:
        out.print(text, end="", highlight=False, markup=False)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"{report.total} applications -> {output}")


@kyc_app.command("due")
def kyc_due(
    ctx: typer.Context,
    before: Annotated[
        str | None, typer.Option(help="List re-KYC dates before this day, YYYY-MM-DD (default today).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Approved customers whose periodic re-KYC is due (the date their risk category set), earliest first."""
    from c360.streams.kyc_ops import rekyc_due

    try:
        day = date.fromisoformat(before) if before is not None else datetime.now(UTC).date()
    except ValueError:
        fail(f"--before {before!r} is not a date YYYY-MM-DD")
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "read_kyc_applications", None) as note:
        rows = rekyc_due(store, before=day)
        note.detail = f"{len(rows)} due before {day.isoformat()}"
    if json_:
        print_json({"before": day.isoformat(), "due": rows})
        return
    for row in rows:
        out.print(f"{row['rekyc_due']}  {row['customer_id']}  {row['application_id']}  {row['risk_category']}")
    out.print(f"{len(rows)} customers due for re-KYC before {day.isoformat()}")
