"""A generated customer set read back from its files, its ground truth, and a Splink model trained on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from c360.connectors.files import FileSource
from c360.connectors.synthetic import generate
from c360.graph.models import SourceRecord
from c360.resolution.config import TrainingConfig
from c360.resolution.model_registry import trained_scorer
from c360.resolution.scorer import Scorer
from c360.resolution.splink_adapter import train


@dataclass(frozen=True)
class Corpus:
    records: list[SourceRecord]
    truth: dict[str, str]  # record uid -> person
    settings: dict[str, Any]  # the trained model (Splink's JSON)
    tf_tables: dict[str, dict[str, float]]
    summary: dict[str, Any]  # what training reports
    scorer: Scorer


def trained_corpus(folder: Path, persons: int, seed: int) -> Corpus:
    """``persons`` generated into ``folder``, read as c360 reads them, and a model trained on every record."""
    ds = generate(persons, folder / "data", seed=seed)
    records = [r for sf in ds.sources for r in FileSource(sf.path, sf.source, ds.mapping_of(sf))]
    truth = {f"{s}|{k}": e for (s, k), e in ds.truth_map().items()}
    settings, tf_tables, summary = train(records, region="US", config=TrainingConfig(u_max_pairs=1e5))
    return Corpus(records, truth, settings, tf_tables, summary, trained_scorer(settings, tf_tables, summary))
