"""The ``GraphStore`` port and the registry of its backends.

The port is the union of the domain ports in :mod:`c360.graph.ports` (identity, review, journey, dead
letters, blocking keys, consent, outbox, cases,
applicants, kyc, insights). Their public methods are ``@final``: they check arguments, call one
small abstract hook of the backend and re-raise the backend's own errors as :class:`StoreError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from .errors import ConfigError
from .ports.applicants import ApplicantsPort
from .ports.base import MAX_BATCH
from .ports.blocking import BlockingPort
from .ports.cases import CasesPort
from .ports.consent import ConsentPort
from .ports.dead_letters import DeadLetterPort
from .ports.insights import InsightsPort
from .ports.journey import JourneyPort
from .ports.kyc import KycPort
from .ports.outbox import OutboxPort
from .ports.review import ReviewPort
from .ports.vault import VaultPort

__all__ = ["MAX_BATCH", "GraphStore", "StoreConfig", "open_store", "register_store", "store_names"]


class StoreConfig(BaseModel):
    """Base of every backend's configuration; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# The one list of domains: a new domain's port joins it (journey brings identity, on which it hangs).
class GraphStore(
    JourneyPort,
    ReviewPort,
    DeadLetterPort,
    BlockingPort,
    ConsentPort,
    OutboxPort,
    CasesPort,
    VaultPort,
    ApplicantsPort,
    KycPort,
    InsightsPort,
):
    """The identity graph. Backends implement the ``_hooks`` of every port; callers use the public methods."""


StoreFactory = Callable[[Any], GraphStore]

_REGISTRY: dict[str, tuple[type[StoreConfig], StoreFactory]] = {}


def register_store(name: str, config_cls: type[StoreConfig], factory: StoreFactory) -> None:
    """Register a backend under a name with its config class (a plugin module registers ``module:name``)."""
    _REGISTRY[name] = (config_cls, factory)


#: Built-in backends, imported on first use so that the neo4j driver loads only when it is chosen.
_BUILTIN: dict[str, tuple[str, str, str]] = {
    "embedded": ("embedded", "EmbeddedConfig", "EmbeddedStore"),
    "neo4j": ("neo4j_store", "Neo4jConfig", "Neo4jStore"),
}


def _load(name: str) -> None:
    """Import the module of a backend not registered yet: a built-in one, or ``module:name``'s module."""
    if name in _REGISTRY:
        return
    if name in _BUILTIN:
        module_name, config_name, store_name = _BUILTIN[name]
        module = importlib.import_module(f"{__package__}.{module_name}")
        register_store(name, getattr(module, config_name), getattr(module, store_name))
    elif ":" in name:
        module_name = name.partition(":")[0]
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"graph backend {name!r}: cannot import {module_name}: {exc}") from exc
        if name not in _REGISTRY:
            raise ConfigError(f"graph backend {name!r}: importing {module_name} did not register it (register_store)")


def store_names() -> list[str]:
    """Return the registered backend names."""
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def open_store(name: str, config: dict[str, Any] | StoreConfig) -> GraphStore:
    """Open the backend ``name`` with ``config`` (a dict is validated by the backend's config class).

    ``name`` is a built-in backend (``embedded``, ``neo4j``), one registered with :func:`register_store`,
    or ``package.module:name``: the module is imported (only now) and must register ``name`` as that.
    """
    _load(name)
    try:
        config_cls, factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown graph backend {name!r}; choose one of {', '.join(store_names())}") from None
    if not isinstance(config, config_cls):
        try:
            config = config_cls.model_validate(config if isinstance(config, dict) else config.model_dump())
        except Exception as exc:
            raise ConfigError(f"invalid {name} store config: {exc}") from exc
    return factory(config)
