"""The neo4j backend: Cypher through the official driver. The only package where Cypher lives.

One module per domain (``identity``, ``review``, ``journey``, ``dead_letters``, ``blocking``,
``consent``, ``outbox``, ``cases``, ``applicants``, ``kyc``, ``insights``),
each a mixin over the shared driver (``connection``); :class:`Neo4jStore`
lists them, once.

Writers are exclusive across processes: ``exclusive()`` writes the ``(:WriterLock {name: 'writer'})``
node in a transaction it keeps open until the block ends, so Neo4j holds the node's exclusive lock for
it. Another writer's write to the node waits; a crashed holder's connection drops and the server rolls
back, releasing the lock.
"""

from __future__ import annotations

from ..neo4j_config import Neo4jConfig
from .applicants import Neo4jApplicants
from .blocking import Neo4jBlocking
from .cases import Neo4jCases
from .consent import Neo4jConsent
from .dead_letters import Neo4jDeadLetters
from .identity import Neo4jIdentity
from .insights import Neo4jInsights
from .journey import Neo4jJourney
from .kyc import Neo4jKyc
from .outbox import Neo4jOutbox
from .review import Neo4jReview
from .vault import Neo4jVault

__all__ = ["SCHEMA", "Neo4jConfig", "Neo4jStore"]


# The one list of this backend's domains; identity first, since the others' nodes hang off its records.
class Neo4jStore(
    Neo4jIdentity,
    Neo4jReview,
    Neo4jJourney,
    Neo4jDeadLetters,
    Neo4jBlocking,
    Neo4jConsent,
    Neo4jOutbox,
    Neo4jCases,
    Neo4jVault,
    Neo4jApplicants,
    Neo4jKyc,
    Neo4jInsights,
):
    """The identity graph in Neo4j 5."""


#: Schema statements of every domain, in the order they run; each is idempotent.
SCHEMA: tuple[str, ...] = tuple(Neo4jStore._schema())
