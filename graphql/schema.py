"""The GraphQL schema (strawberry), assembled from its domains: profiles, review, consent, cases, KYC and ML.

Each domain module (:mod:`~c360.graphql.schema_profiles`, :mod:`~c360.graphql.schema_review`,
:mod:`~c360.graphql.schema_consent`, :mod:`~c360.graphql.schema_cases`, :mod:`~c360.graphql.schema_kyc`,
:mod:`~c360.graphql.schema_ml`) holds
its types and a query and a mutation part; this module joins them. Every resolver calls the domain's
service functions, which check the caller's role against the policy, mask personal data as the policy
says and audit reads and changes. Profiles are loaded through a DataLoader, so a page of customers
costs one batched store read, not one per customer. Errors carry ``extensions.code`` from the error
table (:mod:`~c360.graphql.errors`): ``NOT_FOUND``, ``FORBIDDEN``, ``UNAUTHENTICATED``,
``BAD_USER_INPUT`` (bad input, and documents over the limits), ``INTROSPECTION_DISABLED`` (outside dev
mode), ``CONFLICT``, ``TOO_MANY_REQUESTS`` (anything unexpected: ``INTERNAL_SERVER_ERROR`` with a
generic message). Before anything runs, :mod:`~c360.graphql.query_cost` measures the document in time
linear in its size (see :mod:`~c360.graphql.schema_limits`).
"""

from __future__ import annotations

from dataclasses import replace

import strawberry
from strawberry.extensions import MaxTokensLimiter, ParserCache

from .errors import error_code
from .query_cost import Analyser, Limits
from .schema_cases import CasesMutation, CasesQuery
from .schema_common import ApiContext, Info
from .schema_consent import ConsentMutation, ConsentQuery
from .schema_kyc import KycMutation, KycQuery
from .schema_limits import LIMITS, MAX_TOKENS, QueryGuard, Schema, ValidationResults
from .schema_ml import MlQuery
from .schema_profiles import ProfilesMutation, ProfilesQuery
from .schema_review import ReviewMutation, ReviewQuery

__all__ = ["ApiContext", "Info", "Limits", "Mutation", "Query", "build_schema", "error_code"]


@strawberry.type
class Query(ProfilesQuery, ReviewQuery, ConsentQuery, CasesQuery, KycQuery, MlQuery):
    """Every domain's queries."""


@strawberry.type
class Mutation(ReviewMutation, ProfilesMutation, ConsentMutation, CasesMutation, KycMutation):
    """Every domain's mutations."""


def build_schema(
    *, dev_mode: bool = False, limits: Limits = LIMITS, max_depth: int | None = None, max_cost: int | None = None
) -> strawberry.Schema:
    """The schema with its limits: cost, depth, aliases, size, repeats, strings, tokens; page sizes (first ≤ 100).

    ``dev_mode`` allows introspection and "did you mean" suggestions. ``max_depth`` and ``max_cost``
    override the limits'. graphql-core's verdict on a document is cached by its text (clients send
    the same few documents); the linear analysis runs on every request, with its variables.
    """
    limits = replace(
        limits,
        introspection=dev_mode,
        max_depth=limits.max_depth if max_depth is None else max_depth,
        max_cost=limits.max_cost if max_cost is None else max_cost,
    )
    analyser, results = Analyser(limits), ValidationResults((), dev_mode=dev_mode)
    schema = Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=128),  # a 3,000-token document parses to about 1 MB of nodes
            lambda: QueryGuard(analyser, results),
        ],
    )
    schema.dev_mode = dev_mode
    return schema
