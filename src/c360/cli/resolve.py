"""``c360 resolve`` and ``c360 explain``: train, inspect and apply the probabilistic model; explain a pair."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from c360.graph.errors import InvalidInputError
from c360.resolution.blocking import filing
from c360.resolution.explain import explain
from c360.resolution.specification import load_spec
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
    spec: Annotated[
        Path | None,
        typer.Option(help="YAML specification (comparisons, blocking rules); default: chosen from the data."),
    ] = None,
    max_pairs: Annotated[
        float | None, typer.Option(min=1e3, help="Random pairs sampled to estimate u (default: training.u_max_pairs).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the u sampling.")] = 1,
    verbose: Annotated[bool, typer.Option(help="Show Splink's training log.")] = False,
) -> None:
    """Train the Splink model on the stored records and save it as a new model version.

    Training profiles the records, chooses comparisons, blocking rules and EM sessions from the fields
    that carry information (or checks those of --spec), costs every blocking rule against the budget,
    and uses the pairs stewards approved as labels.
    """
    settings: Settings = ctx.obj.settings
    config = settings.training
    if max_pairs is not None:
        config = config.model_copy(update={"u_max_pairs": max_pairs})
    given = load_spec(spec) if spec is not None else None
    store = build_store(settings)
    try:
        with audited(settings, "train_model", None, change=True) as note:
            records = [r for r, _ in store.iter_records()]
            if len(records) < 2:
                raise InvalidInputError("training needs stored records; run c360 ingest first")
            labels = [(i.record_uid, i.candidate_uid) for i in store.review_items("approved", limit=None)]
            rejected = [(i.record_uid, i.candidate_uid) for i in store.review_items("rejected", limit=None)]
            with err.status(f"training on {len(records):,} records"):
                model, tf_tables, summary = train(
                    records,
                    region=settings.linking.default_region,
                    config=config,
                    spec=given,
                    labels=labels,
                    rejected=rejected,
                    seed=seed,
                    log_level=logging.INFO if verbose else logging.WARNING,
                )
            artifact = model_registry(settings).save(model, tf_tables, summary)
            note.detail = f"model v{artifact.version} on {len(records)} records"
            # The real-time path finds candidates through the blocking keys of the model in use.
            region = settings.linking.default_region
            chosen = artifact.specification()
            store.replace_blocking_keys(*filing(records, region, chosen))
    finally:
        store.close()
    out.print(
        f"model v{artifact.version}: trained on {summary['records']:,} records in {summary['seconds']}s "
        f"({len(chosen.comparisons)} comparisons, {len(chosen.blocking)} blocking rules, "
        f"{summary['labels']} steward labels; specification {chosen.origin}); "
        f"probability two random records match {model['probability_two_random_records_match']:.3g}. "
        "See: c360 resolve model show",
        highlight=False,
    )


def _pairs(count: int | None) -> str:
    return "not costed" if count is None else f"{count:,} pairs"


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the specification, profile and reasons as JSON.")
    ] = False,
) -> None:
    """Print a trained model: the data profile, the chosen specification and why, and every level's weight."""
    artifact = model_registry(ctx.obj.settings).load(version)
    summary = artifact.summary
    if as_json:
        keys = ["specification", "profile", "costs", "reasons", "em_failed", "labels", "records", "seconds"]
        keys += ["link_threshold", "link_threshold_basis", "verdicts", "verdicts_basis"]
        doc = {"version": artifact.version, **{k: summary.get(k) for k in keys}}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    settings = artifact.settings
    p = float(settings["probability_two_random_records_match"])
    spec = artifact.specification()
    out.print(f"model v{artifact.version}, trained {artifact.created_at}", highlight=False)
    simple = {k: v for k, v in summary.items() if not isinstance(v, dict | list)}
    out.print(f"training: {', '.join(f'{k}={v}' for k, v in simple.items())}", highlight=False)
    profile = Table("column", "filled", "distinct", "top share", "compared", title="profile of the training records")
    compared = {c.column: c.kind for c in spec.comparisons}
    for column, prof in summary.get("profile", {}).items():
        profile.add_row(
            column,
            f"{prof['filled']:.1%}",
            f"{prof['distinct']:,}",
            f"{prof['top_share']:.1%}",
            compared.get(column, "-"),
        )
    out.print(profile)
    out.print(f"specification ({spec.origin}):", highlight=False)
    costs = summary.get("costs", {})
    for name, rules in (("blocking", spec.blocking), ("EM sessions", spec.em_sessions), ("prior", spec.deterministic)):
        shown = "; ".join(f"{','.join(r)} ({_pairs(costs.get(','.join(r)))})" for r in rules)
        out.print(f"  {name}: {shown}", highlight=False)
    for reason in summary.get("reasons", []):
        out.print(f"  - {reason}", highlight=False)
    for session, why in summary.get("em_failed", {}).items():
        out.print(f"  - EM session {session} failed and was left out: {why}", highlight=False)
    if basis := summary.get("link_threshold_basis"):
        out.print(f"steward decisions: link threshold {summary['link_threshold']:.6f} ({basis})", highlight=False)
    for line in summary.get("verdicts_basis", []):
        out.print(f"  - a pattern stewards decided alike {line}", highlight=False)
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
