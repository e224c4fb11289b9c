"""``POST /v1/events``: partner events, into the in-process pipeline or Kafka."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from . import events_service
from .http import Authenticator, problem
from .service import ProfileService

if TYPE_CHECKING:
    from .app import EventSink


def events_router(*, service: ProfileService, sink: EventSink, authenticate: Authenticator) -> APIRouter:
    """The partner events route over ``service`` and ``sink``."""
    router = APIRouter(tags=["events"])

    @router.post(
        "/v1/events",
        response_model=None,
        responses={
            401: {"description": "No or unknown API key"},
            413: {"description": "Too many events"},
            429: {"description": "Rate limited"},
        },
    )
    async def post_events(request: Request) -> dict[str, Any] | JSONResponse:
        """Accept a JSON array of events (or ``{"events": [...]}``) from a partner.

        The answer lists how many were accepted, those seen before, and each rejected one with its
        index and reason; rejected events are kept in the dead-letter store.
        """
        who = authenticate.partner(request)
        outcome = await events_service.post_events(service=service, sink=sink, who=who, body=await request.body())
        if outcome.answer is None:
            return problem(outcome.status, outcome.title, outcome.detail)
        return outcome.answer

    return router
