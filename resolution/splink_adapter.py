"""Every call into Splink 5 (DuckDB backend): training, batch prediction and clustering.

Only this module imports Splink, and only inside its functions, so importing it (or anything that
imports it) stays cheap. The real-time path (:mod:`c360.resolution.linker`,
:mod:`c360.resolution.realtime`, :mod:`c360.resolution.scorer`) never imports it: it scores with
:class:`~c360.resolution.scorer.Scorer`, which reproduces Splink's weights.

Training: u by random sampling, m by expectation maximisation over the EM sessions of
:mod:`c360.resolution.specification`, the prior from its deterministic rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from c360.graph.errors import InvalidInputError
from c360.graph.models import SourceRecord

from .features import COLUMNS, features
from .scorer import term_frequencies
from .specification import COMPARISONS, DETERMINISTIC_RULES, EM_BLOCKING, PREDICTION_BLOCKING, TF_COLUMNS


def splink_settings() -> Any:
    """Splink's ``SettingsCreator`` for c360's comparisons and blocking rules."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[c.to_splink() for c in COMPARISONS],
        blocking_rules_to_generate_predictions=[block_on(*cols) for cols in PREDICTION_BLOCKING],
        retain_intermediate_calculation_columns=True,
    )


def train(
    records: Iterable[SourceRecord],
    *,
    region: str,
    max_pairs: float = 1e6,
    seed: int = 1,
    recall: float = 0.8,
    log_level: int = logging.WARNING,
) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, Any]]:
    """Train on ``records``; return Splink's model JSON, the term-frequency tables and a summary."""
    from splink import DuckDBAPI, Linker, block_on

    rows = [features(r, region) for r in records]
    if len(rows) < 2:
        raise InvalidInputError("training needs at least two stored records; ingest some first")
    started = time.perf_counter()
    sessions = list(EM_BLOCKING)
    failed: dict[str, str] = {}
    while True:
        db_api = DuckDBAPI()
        linker = Linker(db_api.register(rows), splink_settings(), log_level=log_level)
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*cols) for cols in DETERMINISTIC_RULES], recall=recall
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
        try:
            for cols in sessions:
                current = cols
                linker.training.estimate_parameters_using_expectation_maximisation(block_on(*cols))
            break
        except ValueError as exc:
            # Splink refuses an m that underflows to 0 (a level never seen among a session's matches) and
            # leaves the linker half-trained: start again without that session; the summary says so.
            failed[",".join(current)] = str(exc).split(".")[0]
            sessions.remove(current)
            if not sessions:
                raise InvalidInputError(f"no EM training session worked on these records: {failed}") from exc
    settings = linker.misc.save_model_to_json()
    summary = {
        "records": len(rows),
        "seconds": round(time.perf_counter() - started, 2),
        "u_max_pairs": max_pairs,
        "seed": seed,
        "prior_recall": recall,
        "deterministic_rules": [list(c) for c in DETERMINISTIC_RULES],
        "em_blocking_rules": [list(c) for c in sessions],
        "em_failed": failed,
        "region": region,
    }
    return settings, term_frequencies(rows, TF_COLUMNS), summary


def predict(
    records: list[SourceRecord],
    settings: Mapping[str, Any],
    region: str,
    threshold: float,
    log_level: int = logging.ERROR,
) -> Any:
    """Splink's predictions at or above ``threshold`` as a pyarrow table (uid_l, uid_r, weight, probability)."""
    import pyarrow as pa
    from splink import DuckDBAPI, Linker

    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for r in records:
        for name, value in features(r, region).items():
            columns[name].append(value)
    table = pa.table(columns, schema=pa.schema([(name, pa.string()) for name in COLUMNS]))
    lean = {**settings, "retain_intermediate_calculation_columns": False, "retain_matching_columns": False}
    linker = Linker(DuckDBAPI().register(table), lean, log_level=log_level)
    found = linker.inference.predict(threshold_match_probability=threshold)
    relation = found.as_duckdbpyrelation().project("unique_id_l, unique_id_r, match_weight, match_probability")
    return relation.to_arrow_table()


def cluster(uids: list[str], edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Splink's connected components over ``edges``: record uid -> cluster id."""
    import pyarrow as pa
    from splink import DuckDBAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    left, right = [], []
    for a, b in edges:
        left.append(a)
        right.append(b)
    nodes = pa.table({"unique_id": pa.array(uids, pa.string())})
    links = pa.table({"unique_id_l": pa.array(left, pa.string()), "unique_id_r": pa.array(right, pa.string())})
    found = cluster_pairwise_predictions_at_threshold(nodes, links, DuckDBAPI(), "unique_id")
    out = found.as_duckdbpyrelation().project("unique_id, cluster_id").to_arrow_table()
    return dict(zip(out.column("unique_id").to_pylist(), out.column("cluster_id").to_pylist(), strict=True))
