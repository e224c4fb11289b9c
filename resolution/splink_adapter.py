"""Every call into Splink 5 (DuckDB backend): costing, training, batch prediction and clustering.

Only this module imports Splink, and only inside its functions, so importing it (or anything that
imports it) stays cheap. The real-time path (:mod:`c360.resolution.linker`,
:mod:`c360.resolution.realtime`, :mod:`c360.resolution.scorer`) never imports it: it scores with
:class:`~c360.resolution.scorer.Scorer`, which reproduces Splink's weights.

Training profiles the records, chooses (or checks) the specification with every blocking rule costed
by Splink's count of its pairs, then estimates: the prior from the deterministic rules, u by random
sampling, m by expectation maximisation over the EM sessions, and m again from the pairs stewards
approved (Splink's estimation from pairwise labels), when there are any.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from c360.graph.errors import InvalidInputError
from c360.graph.models import SourceRecord

from .calibrate import learn_verdicts, link_threshold
from .choose import Choice, Rule, choose, complete
from .config import TrainingConfig
from .features import COLUMNS, feature_table, features
from .profile import profile
from .scorer import Scorer, Verdicts, pattern_of, term_frequencies
from .specification import Specification

#: Records in the sample each side of Splink's costing join (the count is scaled up from it).
_COST_SAMPLE = 3000


def splink_settings(spec: Specification) -> Any:
    """Splink's ``SettingsCreator`` for a specification."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[c.to_splink() for c in spec.built()],
        blocking_rules_to_generate_predictions=[block_on(*cols) for cols in spec.blocking],
        retain_intermediate_calculation_columns=True,
    )


def _counter(table: Any, records: int) -> Any:
    """Splink's count of the pairs a blocking rule compares (estimated from a sample on large data)."""
    from splink import block_on
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    proportion = min(1.0, _COST_SAMPLE / max(records, 1))

    def count(rule: Rule) -> int:
        with warnings.catch_warnings():  # a small sample's estimate is rough, and only decides a budget
            warnings.simplefilter("ignore")
            found = count_comparisons_from_blocking_rules(
                table, blocking_rules=[block_on(*rule)], link_type="dedupe_only", record_sample_proportion=proportion
            )
        return int(found[0]["marginal_comparison_count"])

    return count


def train(
    records: Iterable[SourceRecord],
    *,
    region: str,
    config: TrainingConfig | None = None,
    spec: Specification | None = None,
    labels: Sequence[tuple[str, str]] = (),
    rejected: Sequence[tuple[str, str]] = (),
    seed: int = 1,
    log_level: int = logging.WARNING,
) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, Any]]:
    """Train on ``records``; return Splink's model JSON, the term-frequency tables and a summary.

    ``spec`` is the user's specification (else one is chosen from the data); ``labels`` are record uid
    pairs stewards approved as one person, ``rejected`` those they said are not. Approvals feed Splink's
    estimation of m from pairwise labels; both calibrate the link threshold
    (:func:`c360.resolution.calibrate.link_threshold`). The summary holds the profile, the specification,
    the cost of every rule and the reasons of each choice.
    """
    from splink import DuckDBAPI, Linker, block_on
    from splink.internals.exceptions import SplinkException

    config = config or TrainingConfig()
    rows = [features(r, region) for r in records]
    if len(rows) < 2:
        raise InvalidInputError("training needs at least two stored records; ingest some first")
    started = time.perf_counter()
    profiles = profile(rows)
    db_api = DuckDBAPI()
    count = _counter(db_api.register(rows), len(rows))
    choice: Choice = choose(profiles, count, config) if spec is None else complete(spec, profiles, count, config)
    chosen = choice.spec
    costed = time.perf_counter() - started
    sessions = list(chosen.em_sessions)
    failed: dict[str, str] = {}
    while True:
        linker = Linker(db_api.register(rows), splink_settings(chosen), log_level=log_level)
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*cols) for cols in chosen.deterministic], recall=config.prior_recall
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=config.u_max_pairs, seed=seed)
        current: Rule = ()
        try:
            for current in sessions:
                linker.training.estimate_parameters_using_expectation_maximisation(block_on(*current))
            break
        except (ValueError, SplinkException) as exc:
            # Splink refuses a session without pairs, or an m that underflows to 0, and leaves the linker
            # half-trained: start again without that session; the summary says so.
            failed[",".join(current)] = str(exc).split(".")[0]
            sessions.remove(current)
            if not sessions:  # then the prior and u only: m stays at Splink's defaults
                choice.reasons.append("every EM session failed; m stays at Splink's defaults")
    by_uid = {row["unique_id"]: row for row in rows}
    used_labels = _train_on_labels(linker, db_api, labels, by_uid)
    settings = without_matches_in_u(linker.misc.save_model_to_json(), floor=1 / config.u_max_pairs)
    tf_tables = term_frequencies(rows, chosen.tf_columns)
    decided = [(a, b, True) for a, b in labels] + [(a, b, False) for a, b in rejected]
    decided = [(a, b, same) for a, b, same in decided if a in by_uid and b in by_uid]
    threshold = None
    verdicts, verdict_basis = Verdicts(), list[str]()
    if decided:
        scorer = Scorer(settings, tf_tables, chosen)
        scores = [(scorer.score(by_uid[a], by_uid[b]), s) for a, b, s in decided]
        threshold = link_threshold([(score.match_probability, s) for score, s in scores])
        verdicts, verdict_basis = learn_verdicts([(pattern_of(score), s) for score, s in scores])
    summary = {
        "records": len(rows),
        "seconds": round(time.perf_counter() - started, 2),
        "costing_seconds": round(costed, 2),
        "u_max_pairs": config.u_max_pairs,
        "seed": seed,
        "prior_recall": config.prior_recall,
        "budget": config.max_comparisons_per_rule,
        "em_failed": failed,
        "em_sessions_run": [list(c) for c in sessions],
        "labels": used_labels,
        "region": region,
        "profile": {c: p.to_json() for c, p in profiles.items()},
        "costs": choice.costs,
        "reasons": choice.reasons,
        "specification": chosen.to_json(),
        **({"link_threshold": threshold[0], "link_threshold_basis": threshold[1]} if threshold else {}),
        "verdicts": verdicts.to_json(),
        "verdicts_basis": verdict_basis,
    }
    return settings, tf_tables, summary


def without_matches_in_u(settings: dict[str, Any], *, floor: float) -> dict[str, Any]:
    """Take the matches out of the u probabilities that random sampling estimated.

    Random pairs include the true matches, so a sampled u is P(agree) = m p + u (1 - p), with p the
    prior: for an identifier one person keeps, the m p part dwarfs u and its agreement would weigh no
    more than the prior takes away. The u kept is (sampled u - m p) / (1 - p), at least ``floor`` (the
    smallest share the sample resolves). Splink's prediction and the real-time scorer both read it.
    """
    p = float(settings["probability_two_random_records_match"])
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            m, u = level.get("m_probability"), level.get("u_probability")
            if level.get("is_null_level") or not isinstance(m, float | int) or not isinstance(u, float | int):
                continue
            level["u_probability"] = max((u - m * p) / (1 - p), min(floor, u))
    return settings


def _train_on_labels(
    linker: Any, db_api: Any, labels: Sequence[tuple[str, str]], rows: Mapping[str, Mapping[str, Any]]
) -> int:
    """Estimate m from the approved pairs whose records are both among the training ``rows``; return how many."""
    import pyarrow as pa

    pairs = sorted({tuple(sorted(p)) for p in labels if p[0] != p[1] and p[0] in rows and p[1] in rows})
    if not pairs:
        return 0
    table = pa.table(
        {
            "source_dataset_l": [rows[a]["source_dataset"] for a, _ in pairs],
            "unique_id_l": [a for a, _ in pairs],
            "source_dataset_r": [rows[b]["source_dataset"] for _, b in pairs],
            "unique_id_r": [b for _, b in pairs],
        }
    )
    linker.training.estimate_m_from_pairwise_labels(db_api.register(table))
    return len(pairs)


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

    columns = feature_table(records, region)
    table = pa.table(columns, schema=pa.schema([(name, pa.string()) for name in COLUMNS]))
    lean = {**settings, "retain_intermediate_calculation_columns": False, "retain_matching_columns": False}
    linker = Linker(DuckDBAPI().register(table), lean, log_level=log_level)
    found = linker.inference.predict(threshold_match_probability=threshold)
    relation = found.as_duckdbpyrelation().project("unique_id_l, unique_id_r, match_weight, match_probability")
    return relation.to_arrow_table()
