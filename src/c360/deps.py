"""Service factories: the one place where settings become stores and services."""

from __future__ import annotations

from c360.graph.store import GraphStore, open_store
from c360.resolution.deterministic import DeterministicLinker

from .settings import Settings


def build_store(settings: Settings) -> GraphStore:
    """Open the configured graph store."""
    return open_store(settings.graph.backend, settings.graph.store_config(settings.data_dir))


def build_linker(settings: Settings, store: GraphStore) -> DeterministicLinker:
    """Build the deterministic linker over ``store``."""
    return DeterministicLinker(store, settings.linking, settings.survivorship)
