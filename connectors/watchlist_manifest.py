"""The manifest of the list last screened against: entry key -> content hash, one JSON file per list.

Re-screening (:mod:`c360.resolution.rescreening`) compares the manifest kept here with the list just
loaded. The file is written atomically (a temporary file in the same folder, flushed and synced, then
renamed over the old one, and the folder synced), mode 0644, so a reader sees the old manifest or the new
one, never half of one. Its format::

    {"format": "c360.watchlist_manifest", "version": 1, "list_name": "ofac_sdn",
     "entries": {"ofac_sdn:306": "<sha256 hex>", ...}}
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from c360.graph.errors import InvalidInputError
from c360.graph.watchlist import LIST_NAMES

FORMAT: Final = "c360.watchlist_manifest"
#: The version this module writes and reads.
VERSION: Final = 1
_HASH = re.compile(r"^[0-9a-f]{64}$")


def _checked(where: str, entries: object) -> dict[str, str]:
    """``entries`` as a dict if every key is an entry of one list and every value a SHA-256 hex digest."""
    if not isinstance(entries, Mapping):
        raise InvalidInputError(f"{where}: the entries must be a mapping of entry key to content hash")
    lists: set[str] = set()
    for key, digest in entries.items():
        name, _, entry_id = key.partition(":") if isinstance(key, str) else ("", "", "")
        if name not in LIST_NAMES or not entry_id:
            raise InvalidInputError(f"{where}: {key!r} is not an entry key (list_name:entry_id)")
        if not isinstance(digest, str) or not _HASH.fullmatch(digest):
            raise InvalidInputError(f"{where}: the hash of {key} is not a SHA-256 hex digest")
        lists.add(name)
    if len(lists) > 1:
        raise InvalidInputError(f"{where}: a manifest is of one list, not of {', '.join(sorted(lists))}")
    return dict(entries)


def read_manifest(path: Path) -> dict[str, str] | None:
    """The manifest kept at ``path``; None when there is none yet. InvalidInputError if it is unreadable."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInputError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not a JSON manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInputError(f"{path}: not a watchlist manifest (no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise InvalidInputError(f"{path}: manifest version {data.get('version')!r}; this c360 reads version {VERSION}")
    entries = _checked(str(path), data.get("entries"))
    listed = data.get("list_name")
    if entries and any(not k.startswith(f"{listed}:") for k in entries):
        raise InvalidInputError(f"{path}: the entries are not of the list {listed!r} the manifest names")
    return entries


def write_manifest(path: Path, manifest: Mapping[str, str]) -> None:
    """Write ``manifest`` (entry key -> content hash, of one list) to ``path`` atomically, mode 0644."""
    entries = _checked(f"the manifest for {path}", manifest)
    list_name = next(iter(entries)).partition(":")[0] if entries else None
    doc = {"format": FORMAT, "version": VERSION, "list_name": list_name, "entries": entries}
    data = json.dumps(doc, ensure_ascii=False, indent=0, separators=(",", ":")).encode("utf-8")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InvalidInputError(f"cannot write the manifest {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InvalidInputError(f"cannot write the manifest {path}: {exc.strerror or exc}") from None
        raise
    try:  # the rename itself survives a crash once the folder is synced
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
