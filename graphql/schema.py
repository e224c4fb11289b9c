"""The GraphQL schema (strawberry), assembled from its domains: profiles and review (consent, cases, KYC next).

Each domain module (:mod:`~c360.graphql.schema_profiles`, :mod:`~c360.graphql.schema_review`) holds
its types and a query and a mutation part; this module joins them. Every resolver calls the domain's
service functions, which check the caller's role against the policy, mask personal data as the policy
says and audit reads and changes. Profiles are loaded through a DataLoader, so a page of customers
costs one batched store read, not one per customer. Errors carry ``extensions.code`` from the error
table (:mod:`~c360.graphql.errors`): ``NOT_FOUND``, ``FORBIDDEN``, ``UNAUTHENTICATED``,
``BAD_USER_INPUT``, ``CONFLICT`` (anything unexpected: ``INTERNAL_SERVER_ERROR`` with a generic message).
"""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from .errors import error_code
from .schema_common import ApiContext, Info
from .schema_limits import MAX_ALIASES, MAX_COST, MAX_DEPTH, MAX_TOKENS, ErrorCodes, Schema, cost_rule
from .schema_profiles import ProfilesMutation, ProfilesQuery
from .schema_review import ReviewMutation, ReviewQuery

__all__ = ["ApiContext", "Info", "Mutation", "Query", "build_schema", "error_code"]


@strawberry.type
class Query(ProfilesQuery, ReviewQuery):
    """Every domain's queries."""


@strawberry.type
class Mutation(ReviewMutation, ProfilesMutation):
    """Every domain's mutations."""


def build_schema(*, max_depth: int = MAX_DEPTH, max_cost: int = MAX_COST) -> strawberry.Schema:
    """The schema with its limits: query depth, cost, aliases, tokens, and page sizes (first ≤ 100).

    The depth and alias rules are built once per schema, so the validation cache (keyed by document
    and rules) holds: clients send the same few documents, and each is parsed and validated once.
    """
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
        cost_rule(max_cost),
    ]
    return Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: AddValidationRules(rules),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=1000),
            lambda: ValidationCache(maxsize=1000),
            ErrorCodes,  # a class: one instance per operation
        ],
    )
