"""A graph backend from outside c360, as a plugin registers one: chosen in settings as ``plugin_store:copy``."""

from __future__ import annotations

from pathlib import Path

from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.store import StoreConfig, register_store


class CopyConfig(StoreConfig):
    """Where the plugin keeps its file."""

    file: Path


class CopyStore(EmbeddedStore):
    """The embedded store under another name (what matters here is how it is chosen)."""

    def __init__(self, config: CopyConfig) -> None:
        super().__init__(EmbeddedConfig(path=config.file))


register_store("plugin_store:copy", CopyConfig, CopyStore)
