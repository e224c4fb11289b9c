"""REST routes of the ML: ``POST /v1/lens/query``, ``GET /v1/segments``, ``GET /v1/customers/{id}/insights``.

The lens route takes the query ``c360 lens query`` builds, as JSON: ``measures``, ``dimensions``,
``filters`` (``member``, ``op``, ``values``), ``order``, ``limit``, ``as_of``; it answers the columns and a
mapping per row. What may be asked, by whom, and where it reads: :mod:`~c360.graphql.ml_service`.
"""

from __future__ import annotations

from typing import Any

import orjson
from c360.graph.errors import InvalidInputError
from fastapi import APIRouter, Path, Request

from . import ml_service
from .errors import PayloadTooLarge
from .http import Authenticator, JSONBytes, problem_doc
from .routes_events import read_body
from .service import ProfileService

#: the largest lens query body, in bytes
MAX_LENS_BODY = 64 * 1024

_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("A bad query: not JSON, an unknown or ambiguous member, a bad filter, a limit over the model's"),
    401: problem_doc("No or invalid credentials"),
    403: problem_doc("The role may not do this, or may not see a personal field the query shows or filters on"),
    404: problem_doc("No such customer, or no ML snapshot yet (run `c360 ml snapshot` first)"),
    413: problem_doc(f"A query body over {MAX_LENS_BODY} bytes"),
    503: problem_doc("The query ran over its time budget, or the store or the audit trail cannot answer now: retry"),
}
_ID = Path(min_length=1, max_length=200)


def ml_router(*, service: ProfileService, authenticate: Authenticator) -> APIRouter:
    """The ML routes over ``service``."""
    router = APIRouter(tags=["ml"], responses=_RESPONSES)

    @router.post("/v1/lens/query", response_model=None)
    async def lens_query(request: Request) -> JSONBytes:
        """Answer a lens query over the ML snapshot, e.g. customers by segment name in California."""
        who = authenticate(request)
        body, size = await read_body(request, MAX_LENS_BODY)
        if size > MAX_LENS_BODY:
            raise PayloadTooLarge(f"a lens query may hold at most {MAX_LENS_BODY} bytes")
        try:
            query = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(f"the body is not JSON: {exc}") from exc
        if not isinstance(query, dict):
            raise InvalidInputError("the body must be a JSON object: measures, dimensions, filters, order, limit")
        result = await ml_service.query_lens(service=service, who=who, query=query)
        return JSONBytes(ml_service.lens_document(result))

    @router.get("/v1/segments", response_model=None)
    async def segments(request: Request) -> JSONBytes:
        """Every segment in the store with its name and its members (active customers)."""
        who = authenticate(request)
        return JSONBytes({"segments": await ml_service.segment_counts(service=service, who=who)})

    @router.get("/v1/customers/{customer_id}/insights", response_model=None)
    async def insights(request: Request, customer_id: str = _ID) -> JSONBytes:
        """The customer's ML insights (score, label, detail, model version, time) and segment memberships."""
        who = authenticate(request)
        return JSONBytes(await ml_service.insights_document(service=service, who=who, customer_id=customer_id))

    return router
