"""The embedded backend: one SQLite file (WAL), in-process, transactional. The default store.

One module per domain (``identity``, ``review``, ``journey``, ``dead_letters``, ``blocking``,
``consent``, ``outbox``, ``cases``, ``applicants``, ``kyc``, ``insights``),
each a mixin over the shared connection (``connection``); :class:`EmbeddedStore`
lists them, once.
"""

from __future__ import annotations

from .applicants import EmbeddedApplicants
from .blocking import EmbeddedBlocking
from .cases import EmbeddedCases
from .connection import SCHEMA_VERSION, EmbeddedConfig
from .consent import EmbeddedConsent
from .dead_letters import EmbeddedDeadLetters
from .identity import EmbeddedIdentity
from .insights import EmbeddedInsights
from .journey import EmbeddedJourney
from .kyc import EmbeddedKyc
from .outbox import EmbeddedOutbox
from .review import EmbeddedReview
from .vault import EmbeddedVault

__all__ = ["SCHEMA_VERSION", "EmbeddedConfig", "EmbeddedStore"]


# The one list of this backend's domains; identity first, since the others' rows hang off its records.
class EmbeddedStore(
    EmbeddedIdentity,
    EmbeddedReview,
    EmbeddedJourney,
    EmbeddedDeadLetters,
    EmbeddedBlocking,
    EmbeddedConsent,
    EmbeddedOutbox,
    EmbeddedCases,
    EmbeddedVault,
    EmbeddedApplicants,
    EmbeddedKyc,
    EmbeddedInsights,
):
    """The identity graph in one SQLite file. Safe to share between threads (one lock)."""
