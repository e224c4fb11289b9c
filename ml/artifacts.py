"""Versioned model artifacts: a pickled model (joblib) beside its JSON metadata and metrics.

Layout: ``<models_dir>/<name>/v<n>/model.joblib`` and ``meta.json``. Versions count up from 1 per name;
a version is claimed by creating its folder, so two processes saving at once get two versions. The
metadata records the model file's SHA-256, checked before the model is unpickled: a model file that
was changed or truncated is refused rather than loaded. Only load artifacts from a folder you trust
(unpickling runs code).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^v([1-9][0-9]*)$")
MODEL_FILE = "model.joblib"
META_FILE = "meta.json"


@dataclass(frozen=True)
class ArtifactInfo:
    """One saved version of a model: where it is, what produced it and how well it did."""

    name: str
    version: int
    created_at: datetime
    path: Path
    sha256: str
    metadata: Mapping[str, Any]
    metrics: Mapping[str, Any]

    @property
    def tag(self) -> str:
        """``<name>@v<version>``, the model version written beside scores."""
        return f"{self.name}@v{self.version}"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(f"a model name is lower-case letters, digits, '-' or '_' (got {name!r})")
    return name


def _jsonable(value: Any) -> Any:
    """Plain JSON values; NaN and infinities (undefined metrics) become null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"metadata value {value!r} is not JSON") from error
    return number if math.isfinite(number) else None


def _versions(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _VERSION.match(p.name)))


def save_artifact(
    models_dir: Path,
    *,
    name: str,
    model: object,
    metadata: Mapping[str, Any],
    metrics: Mapping[str, Any],
    now: datetime | None = None,
) -> ArtifactInfo:
    """Save ``model`` as the next version of ``name`` with its metadata and metrics."""
    _check_name(name)
    created = now or datetime.now(UTC)
    if created.tzinfo is None:
        raise InvalidInputError("now must be timezone-aware")
    meta_json, metrics_json = _jsonable(metadata), _jsonable(metrics)
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    version = (_versions(folder) or [0])[-1] + 1
    for _ in range(100):
        target = folder / f"v{version}"
        try:
            target.mkdir()
            break
        except FileExistsError:
            version += 1
    else:  # pragma: no cover - a hundred concurrent writers of one name
        raise ConflictError(f"could not claim a version of {name!r}")
    joblib.dump(model, target / MODEL_FILE)
    digest = hashlib.sha256((target / MODEL_FILE).read_bytes()).hexdigest()
    document = {
        "name": name,
        "version": version,
        "created_at": created.isoformat(),
        "model_file": MODEL_FILE,
        "sha256": digest,
        "metadata": meta_json,
        "metrics": metrics_json,
    }
    partial = target / (META_FILE + ".tmp")
    partial.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
    partial.replace(target / META_FILE)  # readers see the metadata only once the model is complete
    return _info(target / META_FILE)


def _info(meta_path: Path) -> ArtifactInfo:
    try:
        document = json.loads(meta_path.read_text(encoding="utf-8"))
        return ArtifactInfo(
            name=str(document["name"]),
            version=int(document["version"]),
            created_at=datetime.fromisoformat(document["created_at"]),
            path=meta_path.parent,
            sha256=str(document["sha256"]),
            metadata=document["metadata"],
            metrics=document["metrics"],
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInputError(f"unreadable artifact metadata {meta_path}: {error}") from error


def list_artifacts(models_dir: Path, name: str) -> tuple[ArtifactInfo, ...]:
    """Every complete saved version of ``name``, oldest first."""
    folder = models_dir / _check_name(name)
    infos = []
    for version in _versions(folder):
        meta = folder / f"v{version}" / META_FILE
        if meta.is_file():  # a version being written has no metadata yet
            infos.append(_info(meta))
    return tuple(infos)


def load_artifact(models_dir: Path, name: str, version: int | None = None) -> tuple[Any, ArtifactInfo]:
    """The model and info of ``name`` at ``version`` (the latest if None); NotFoundError if absent."""
    infos = list_artifacts(models_dir, name)
    chosen = [i for i in infos if version is None or i.version == version]
    if not chosen:
        which = "any version" if version is None else f"version {version}"
        raise NotFoundError(f"no artifact {name!r} at {which} under {models_dir}")
    info = chosen[-1]
    model_path = info.path / MODEL_FILE
    try:
        data = model_path.read_bytes()
    except OSError as error:
        raise NotFoundError(f"artifact {info.tag} has no model file: {error}") from error
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise ConflictError(f"artifact {info.tag}: the model file does not match its recorded SHA-256")
    return joblib.load(model_path), info
