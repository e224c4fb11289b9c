"""Trained models as versioned JSON artifacts: :class:`ModelRegistry` keeps one file per version.

An artifact holds Splink's model JSON (as :func:`c360.resolution.splink_adapter.train` returns it),
the term-frequency tables of the training records and a training summary. Reading one needs no
Splink: :meth:`Artifact.scorer` gives the real-time scorer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from c360.graph.errors import ConfigError, NotFoundError

from .config import RealtimeConfig
from .scorer import Scorer, Verdicts
from .specification import Specification

FORMAT = "c360-splink-model"


@dataclass(frozen=True)
class Artifact:
    """A trained model: Splink settings, term frequencies and how it was trained."""

    version: int
    created_at: str
    settings: dict[str, Any]
    tf_tables: dict[str, dict[str, float]]
    summary: dict[str, Any]

    def specification(self) -> Specification:
        """The specification the model was trained with."""
        return specification_of(self.summary)

    def realtime(self, config: RealtimeConfig) -> RealtimeConfig:
        """``config`` with the upper threshold lowered to the one stewards' decisions support, if any."""
        derived = self.summary.get("link_threshold")
        if derived is None or derived >= config.upper:
            return config
        return config.model_copy(update={"upper": max(float(derived), config.lower)})

    def scorer(self) -> Scorer:
        """The real-time scorer of this model."""
        return trained_scorer(self.settings, self.tf_tables, self.summary)

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


def specification_of(summary: dict[str, Any]) -> Specification:
    """The specification a training summary holds; :class:`ConfigError` for a model trained before there was one."""
    if "specification" not in summary:
        raise ConfigError("this model was trained by an older c360 without a specification; run: c360 resolve train")
    return Specification.from_json(summary["specification"])


def trained_scorer(settings: dict[str, Any], tf_tables: dict[str, dict[str, float]], summary: dict[str, Any]) -> Scorer:
    """The real-time scorer of a model as :func:`c360.resolution.splink_adapter.train` returns it."""
    return Scorer(settings, tf_tables, specification_of(summary), Verdicts.from_json(summary.get("verdicts")))


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
        trained_scorer(settings, tf_tables, summary)  # refuse a model the scorer cannot use
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
