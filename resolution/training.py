"""Training the probabilistic model with Splink 5 (DuckDB) and keeping it as a versioned JSON artifact.

u is estimated by random sampling, m by expectation maximisation over blocking rules, the prior from
deterministic rules. The artifact holds Splink's model JSON, the term-frequency tables of the training
records and a training summary; :class:`ModelRegistry` keeps one file per version.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from c360.graph.errors import ConfigError, InvalidInputError, NotFoundError
from c360.graph.models import SourceRecord

from .comparisons import COMPARISONS, TF_COLUMNS
from .features import features
from .scorer import Scorer, term_frequencies

FORMAT = "c360-splink-model"

#: Pairs that are certainly the same person, for the prior.
DETERMINISTIC_RULES: tuple[tuple[str, ...], ...] = (("email",), ("national_id",), ("first_name", "last_name", "dob"))
#: EM sessions: each fixes some columns, so that together they estimate every comparison.
EM_BLOCKING: tuple[tuple[str, ...], ...] = (("first_name", "last_name"), ("dob",), ("postcode",))
#: Candidate pairs for batch prediction.
PREDICTION_BLOCKING: tuple[tuple[str, ...], ...] = (
    ("first_name", "last_name"),
    ("dob",),
    ("email",),
    ("phone",),
    ("national_id",),
    ("postcode", "last_name"),
)


@dataclass(frozen=True)
class Artifact:
    """A trained model: Splink settings, term frequencies and how it was trained."""

    version: int
    created_at: str
    settings: dict[str, Any]
    tf_tables: dict[str, dict[str, float]]
    summary: dict[str, Any]

    def scorer(self) -> Scorer:
        """The real-time scorer of this model."""
        return Scorer(self.settings, self.tf_tables)

    def to_json(self) -> dict[str, Any]:
        """The artifact as stored."""
        return {
            "format": FORMAT,
            "version": self.version,
            "created_at": self.created_at,
            "summary": self.summary,
            "settings": self.settings,
            "tf_tables": self.tf_tables,
        }


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


class ModelRegistry:
    """Versioned model artifacts in a folder: ``model-v1.json``, ``model-v2.json``, ..."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def versions(self) -> list[int]:
        """Stored versions, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(int(p.stem.removeprefix("model-v")) for p in self.folder.glob("model-v*.json"))

    def save(
        self, settings: dict[str, Any], tf_tables: dict[str, dict[str, float]], summary: dict[str, Any]
    ) -> Artifact:
        """Store a new version; return it."""
        Scorer(settings, tf_tables)  # refuse a model the scorer cannot use
        version = (self.versions() or [0])[-1] + 1
        artifact = Artifact(version, datetime.now(UTC).isoformat(), settings, tf_tables, summary)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"model-v{version}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(artifact.to_json()), encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a model
        return artifact

    def load(self, version: int | None = None) -> Artifact:
        """Load ``version`` (default: the latest)."""
        versions = self.versions()
        if not versions:
            raise NotFoundError(f"no trained model in {self.folder}; run: c360 resolve train")
        chosen = versions[-1] if version is None else version
        path = self.folder / f"model-v{chosen}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(f"no model version {chosen}; versions: {versions}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read model {path}: {exc}") from exc
        if data.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a c360 model")
        return Artifact(data["version"], data["created_at"], data["settings"], data["tf_tables"], data["summary"])
