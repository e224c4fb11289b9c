"""REST profile reads: ``GET /v1/customers/{id}`` and ``GET /v1/customers?email=|phone=`` (the fast path).

Answers are masked by the caller's role (``graphql/policy.yaml``), record keys included: a role that may
not see every identifying field gets ``records[].key`` and the golden fields' ``source_key`` as keyed
hashes (``hmac:<key id>:<hex>``). A lookup by email or phone is answered only to roles that see that
field in full (a lookup is an oracle); others get 403, audited as refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from . import profiles_service
from .http import Authenticator, JSONBytes, problem_doc
from .service import ProfileService


class ProfileDocument(BaseModel):
    """The unified profile as the caller's role may see it (the OpenAPI description of the answer)."""

    id: str = Field(description="The customer's ID (the survivor's, when the ID asked for was merged away).")
    requested_id: str = Field(description="The ID asked for.")
    redirected: bool = Field(description="True when the ID asked for was merged into ``id``.")
    status: str = Field(description="active, or merged.")
    created_at: str = Field(description="When the customer was created (RFC 3339).")
    golden: dict[str, dict[str, Any]] = Field(
        description="Golden fields: value (masked by role), source, source_key (masked by role), rule."
    )
    sources: list[str] = Field(description="The sources of the customer's records.")
    identifiers: list[dict[str, Any]] = Field(description="kind, value (masked by role), flagged.")
    records: list[dict[str, Any]] = Field(description="Source records with key, identifiers and link evidence, masked.")
    merged_ids: list[str] = Field(description="IDs merged into this customer.")
    history: list[dict[str, Any]] | None = Field(default=None, description="Merges and splits (roles that may).")


class CustomersFound(BaseModel):
    """The answer to a lookup by email or phone."""

    customers: list[ProfileDocument]


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Bad input: not exactly one of email or phone, or a value that is not one"),
    401: problem_doc("No or invalid credentials"),
    403: problem_doc("The role may not do this (or may not search by a field it does not see in full)"),
    404: problem_doc("No such customer"),
    422: problem_doc("A parameter out of bounds (too long)"),
    429: problem_doc("Rate limited: retry after the Retry-After header's seconds"),
    503: problem_doc("The store or the audit trail cannot answer now: retry"),
}


def customers_router(*, service: ProfileService, authenticate: Authenticator) -> APIRouter:
    """The profile routes over ``service``."""
    router = APIRouter(tags=["profiles"], responses=_RESPONSES)

    @router.get(
        "/v1/customers/{customer_id}",
        response_model=None,  # the route answers JSONBytes (orjson) itself; the document is described here
        responses={200: {"model": ProfileDocument, "description": "The profile document"}},
    )
    async def get_customer(customer_id: str, request: Request) -> JSONBytes:
        """The customer's unified profile as the caller's role may see it (a merged-away ID gives the survivor)."""
        who = authenticate(request)
        return JSONBytes(await profiles_service.get_profile_document(service=service, who=who, customer_id=customer_id))

    @router.get("/v1/customers", response_model=None, responses={200: {"model": CustomersFound}})
    async def find_customers(
        request: Request,
        email: str | None = Query(default=None, max_length=320),
        phone: str | None = Query(default=None, max_length=40),
    ) -> dict[str, Any]:
        """Look customers up by email or phone (exactly one): their profiles as the caller's role may see them.

        Only roles that see the field searched by in full may search by it; others get 403.
        """
        who = authenticate(request)
        found = await profiles_service.find_profile_documents(service=service, who=who, email=email, phone=phone)
        return {"customers": found}

    return router
