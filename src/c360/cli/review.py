"""``c360 review``: the data stewards' queue of uncertain pairs."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.models import ReviewItem
from c360.resolution.explain import explain_records
from c360.resolution.review import approve, reject

from ..deps import build_store, model_registry
from ..settings import Settings
from .common import audited, out, who

review_app = typer.Typer(help="The review queue of uncertain pairs, for data stewards.", no_args_is_help=True)


@review_app.command("list")
def review_list(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(help="open, approved, rejected or all.")] = "open",
    limit: Annotated[int, typer.Option(min=1, help="Most items to show.")] = 50,
) -> None:
    """List review items, oldest first."""
    if status not in ("open", "approved", "rejected", "all"):
        raise InvalidInputError("--status is one of open, approved, rejected, all")
    store = build_store(ctx.obj.settings)
    try:
        with audited(ctx.obj.settings, "read_review_queue", None) as note:
            items = store.review_items(None if status == "all" else status, limit)
            note.detail = f"status {status}: {len(items)} items"
    finally:
        store.close()
    if not items:
        out.print(f"no {status if status != 'all' else ''} review items".replace("  ", " "), highlight=False)
    for item in items:
        out.print(
            f"{item.id}  {item.status:8}  {item.record_uid} ~ {item.candidate_uid} (customer {item.customer_id})  "
            f"probability {item.match_probability:.4f}",
            highlight=False,
        )


@review_app.command("show")
def review_show(ctx: typer.Context, review_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Show both sides of a review item and the evidence, as JSON."""
    settings: Settings = ctx.obj.settings
    registry = model_registry(settings)
    scorer = registry.load().scorer() if registry.versions() else None
    store = build_store(settings)
    try:
        with audited(settings, "read_review", review_id):
            item = store.get_review(review_id)
            if item is None:
                raise NotFoundError(f"no review item {review_id}")
            found = explain_records(store, item.record_uid, item.candidate_uid, linking=settings.linking, scorer=scorer)
    finally:
        store.close()
    doc = {
        "item": item.to_json(),
        "record": found.left.record.to_json(),
        "candidate": found.right.record.to_json(),
        "evidence": found.to_json(),
    }
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


@review_app.command("approve")
def review_approve(
    ctx: typer.Context,
    review_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option(help="Why (kept with the decision).")] = None,
    by: Annotated[str | None, typer.Option(help="Who decides (default: the OS user).")] = None,
) -> None:
    """Approve: link the record to the candidate's customer."""
    settings: Settings = ctx.obj.settings
    store = build_store(settings)
    try:
        with audited(settings, "approve_review", review_id, by=by, change=True):
            item = approve(
                store, review_id, by=who(by), reason=reason, now=datetime.now(UTC), survivorship=settings.survivorship
            )
        customer = store.resolve(item.customer_id)
    finally:
        store.close()
    out.print(f"approved {item.id}: {item.record_uid} is customer {customer}", highlight=False)


@review_app.command("reject")
def review_reject(
    ctx: typer.Context,
    review_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Why they are not the same (required).")],
    by: Annotated[str | None, typer.Option(help="Who decides (default: the OS user).")] = None,
) -> None:
    """Reject: the pair is not the same, and later automatic decisions respect that."""
    store = build_store(ctx.obj.settings)
    try:
        with audited(ctx.obj.settings, "reject_review", review_id, by=by, change=True):
            item = reject(store, review_id, by=who(by), reason=reason, now=datetime.now(UTC))
    finally:
        store.close()
    out.print(f"rejected {item.id}: {item.record_uid} and {item.candidate_uid} stay apart", highlight=False)


@review_app.command("export-labels")
def review_export(ctx: typer.Context, output: Annotated[Path, typer.Option(help="CSV file to write.")]) -> None:
    """Write decided items as labelled pairs (label 1: same, 0: not the same)."""
    with audited(ctx.obj.settings, "export_labels", str(output)) as note:
        store = build_store(ctx.obj.settings)
        try:
            items = [i for i in store.review_items(None, 1_000_000) if i.status != "open"]
        finally:
            store.close()
        note.detail = f"{len(items)} labelled pairs"
        _write_labels(output, items)
    out.print(f"wrote {len(items)} labelled pairs to {output}", highlight=False)


def _write_labels(output: Path, items: list[ReviewItem]) -> None:
    try:
        with output.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["record", "candidate", "label", "match_probability", "decided_by", "decided_at", "reason"])
            for i in items:
                writer.writerow(
                    [
                        i.record_uid,
                        i.candidate_uid,
                        1 if i.status == "approved" else 0,
                        i.match_probability,
                        i.decided_by,
                        i.decided_at.isoformat() if i.decided_at else "",
                        i.reason or "",
                    ]
                )
    except OSError as exc:
        raise InvalidInputError(f"cannot write {output}: {exc.strerror}") from exc
