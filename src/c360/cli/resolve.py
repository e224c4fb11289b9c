"""``c360 resolve`` and ``c360 explain``: train, inspect and apply the probabilistic model; explain a pair."""

from __future__ import annotations

import json
import logging
import math
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from c360.graph.errors import InvalidInputError
from c360.graph.models import SourceRecord
from c360.resolution.blocking import filing
from c360.resolution.explain import explain
from c360.resolution.splink_adapter import train

from ..deps import build_batch_resolver, build_store, model_registry
from ..settings import Settings
from .common import audited, err, out

resolve_app = typer.Typer(help="Probabilistic resolution: train, inspect, resolve in batch.", no_args_is_help=True)
model_app = typer.Typer(help="The trained model.", no_args_is_help=True)
resolve_app.add_typer(model_app, name="model")


@resolve_app.command("train")
def train_cmd(
    ctx: typer.Context,
    max_pairs: Annotated[float, typer.Option(min=1e3, help="Random pairs sampled to estimate u.")] = 1e6,
    seed: Annotated[int, typer.Option(help="Seed of the u sampling.")] = 1,
    verbose: Annotated[bool, typer.Option(help="Show Splink's training log.")] = False,
) -> None:
    """Train the Splink model on the stored records and save it as a new model version."""
    settings: Settings = ctx.obj.settings
    store = build_store(settings)
    try:
        with audited(settings, "train_model", None, change=True) as note:
            records = [r for r, _ in store.iter_records()]
            if len(records) < 2:
                raise InvalidInputError("training needs stored records; run c360 ingest first")
            with err.status(f"training on {len(records):,} records"):
                model, tf_tables, summary = _train(records, settings, max_pairs, seed, verbose)
            artifact = model_registry(settings).save(model, tf_tables, summary)
            note.detail = f"model v{artifact.version} on {len(records)} records"
            # The real-time path finds candidates through the blocking keys of the model in use.
            region = settings.linking.default_region
            store.replace_blocking_keys(*filing(records, region))
    finally:
        store.close()
    out.print(
        f"model v{artifact.version}: trained on {summary['records']:,} records in {summary['seconds']}s; "
        f"probability two random records match {model['probability_two_random_records_match']:.3g}. "
        "See: c360 resolve model show",
        highlight=False,
    )


def _train(
    records: list[SourceRecord], settings: Settings, max_pairs: float, seed: int, verbose: bool
) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, Any]]:
    return train(
        records,
        region=settings.linking.default_region,
        max_pairs=max_pairs,
        seed=seed,
        log_level=logging.INFO if verbose else logging.WARNING,
    )


def _fmt(value: Any) -> str:
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


@resolve_app.command("batch")
def batch_cmd(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and print the summary; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    verbose: Annotated[bool, typer.Option(help="Show Splink's log.")] = False,
) -> None:
    """Resolve every stored record at once (Splink predict + clustering) and apply it as one change."""
    settings: Settings = ctx.obj.settings
    artifact = model_registry(settings).load()
    store = build_store(settings)
    try:
        resolver = build_batch_resolver(
            settings, store, artifact=artifact, log_level=logging.INFO if verbose else logging.ERROR
        )
        with (
            audited(settings, "resolve_batch", f"model v{artifact.version}", change=not dry_run) as note,
            err.status("batch resolution") as status,
        ):
            note.detail = "dry run" if dry_run else None
            summary = resolver.run(dry_run=dry_run, progress=lambda what: status.update(f"batch resolution: {what}"))
            note.detail = (
                f"{'dry run: would change' if dry_run else 'applied' if summary.applied else 'nothing to change'}: "
                f"{summary.records} records, customers {summary.customers_before} -> {summary.customers_after}, "
                f"{summary.merges} merges, {summary.splits} splits, {summary.moved_records} records moved, "
                f"{summary.review_items} review items"
            )
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps({"model_version": artifact.version, **summary.to_json()}, indent=2) + "\n")
        return
    s = summary
    verb = "would change" if dry_run else ("applied" if s.applied else "nothing to change")
    out.print(
        f"batch resolution (model v{artifact.version}) {verb}: {s.records:,} records, customers "
        f"{s.customers_before:,} -> {s.customers_after:,}; {s.merges:,} merges, {s.splits:,} splits, "
        f"{s.moved_records:,} records moved, {s.review_items:,} new review items; {s.pairs_scored:,} pairs scored, "
        f"{s.reclustered:,} clusters re-clustered under constraints; "
        f"{sum(s.seconds.values()):.1f}s ({', '.join(f'{k} {v}s' for k, v in s.seconds.items())})",
        highlight=False,
    )


@model_app.command("show")
def model_show(
    ctx: typer.Context,
    version: Annotated[int | None, typer.Option(help="Model version (default: the latest).")] = None,
) -> None:
    """Print the match weight of every comparison level of a trained model."""
    artifact = model_registry(ctx.obj.settings).load(version)
    settings = artifact.settings
    p = float(settings["probability_two_random_records_match"])
    out.print(f"model v{artifact.version}, trained {artifact.created_at}", highlight=False)
    summary = ", ".join(f"{k}={v}" for k, v in artifact.summary.items())
    out.print(f"training: {summary}", highlight=False)
    out.print(f"prior: P(two random records match) = {p:.4g}, weight {math.log2(p / (1 - p)):+.2f}", highlight=False)
    scorer = artifact.scorer()
    table = Table("comparison", "level", "m", "u", "weight", "tf adjusted")
    for comparison in settings["comparisons"]:
        name = comparison["output_column_name"]
        for level, weights in zip(comparison["comparison_levels"], scorer.level_weights(name), strict=True):
            null = bool(level.get("is_null_level"))
            table.add_row(
                name,
                level["label_for_charts"],
                "" if null else _fmt(level.get("m_probability")),
                "" if null else _fmt(level.get("u_probability")),
                "0 (null)" if null else f"{weights:+.2f}",
                level.get("tf_adjustment_column") or "",
            )
    out.print(table)


def explain_cmd(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="A record key (source|key) or a customer ID.")],
    b: Annotated[str, typer.Argument(metavar="B", help="A record key (source|key) or a customer ID.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the evidence as JSON.")] = False,
) -> None:
    """Explain why two records (or a record and a customer) are, or are not, the same customer."""
    settings: Settings = ctx.obj.settings
    models = model_registry(settings)
    artifact = models.load() if models.versions() else None
    store = build_store(settings)
    try:
        with audited(settings, "explain", f"{a} ~ {b}"):
            found = explain(store, a, b, linking=settings.linking, scorer=artifact.scorer() if artifact else None)
    finally:
        store.close()
    if as_json:
        doc = found.to_json()
        doc["model_version"] = artifact.version if artifact else None
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    for side in (found.left, found.right):
        ids = ", ".join(side.link.identifiers)
        out.print(
            f"record {side.record.uid}: customer {side.customer_id}, linked by {side.link.rule} {ids}", highlight=False
        )
    out.print(f"same customer now: {'yes' if found.same_customer else 'no'}", highlight=False)
    if found.shared_identifiers:
        out.print(f"deterministic: shared strong identifiers {', '.join(found.shared_identifiers)}", highlight=False)
    else:
        out.print("deterministic: no shared strong identifier", highlight=False)
    if found.score is None or artifact is None:
        out.print("probabilistic: no trained model (run: c360 resolve train)", highlight=False)
        return
    s = found.score
    out.print(f"probabilistic (model v{artifact.version}):", highlight=False)
    out.print(f"  {'prior':44} {s.prior_weight:+8.2f}", highlight=False)
    for c in s.contributions:
        tf = f"  (term frequency {c.tf_adjustment:+.2f})" if c.tf_adjustment else ""
        out.print(f"  {c.comparison:12} {c.level:31} {c.weight:+8.2f}{tf}", highlight=False)
    out.print(f"  {'match weight':44} {s.match_weight:+8.2f}  probability {s.match_probability:.6f}", highlight=False)
