"""REST profile reads: ``GET /v1/customers/{id}`` and ``GET /v1/customers?email=|phone=`` (the fast path)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from . import profiles_service
from .http import Authenticator, JSONBytes
from .service import ProfileService

_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or invalid credentials"},
    403: {"description": "The role may not do this"},
    404: {"description": "No such customer"},
}


def customers_router(*, service: ProfileService, authenticate: Authenticator) -> APIRouter:
    """The profile routes over ``service``."""
    router = APIRouter(tags=["profiles"], responses=_RESPONSES)

    @router.get("/v1/customers/{customer_id}", response_class=JSONBytes)
    async def get_customer(customer_id: str, request: Request) -> JSONBytes:
        """The customer's unified profile as the caller's role may see it (a merged-away ID gives the survivor)."""
        who = authenticate(request)
        return JSONBytes(await profiles_service.get_profile_document(service=service, who=who, customer_id=customer_id))

    @router.get("/v1/customers")
    async def find_customers(
        request: Request,
        email: str | None = Query(default=None, max_length=320),
        phone: str | None = Query(default=None, max_length=40),
    ) -> dict[str, Any]:
        """Look customers up by email or phone (exactly one): their profiles as the caller's role may see them."""
        who = authenticate(request)
        found = await profiles_service.find_profile_documents(service=service, who=who, email=email, phone=phone)
        return {"customers": found}

    return router
