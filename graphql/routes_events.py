"""``POST /v1/events``: partner events, into the in-process pipeline or Kafka."""

from __future__ import annotations

import copy
from functools import cache
from typing import TYPE_CHECKING, Any

from c360.streams.events import json_schemas
from c360.streams.pipeline import MAX_LETTER_BYTES
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from . import events_service
from .events_service import MAX_BODY_BYTES, MAX_EVENTS
from .http import Authenticator, problem, problem_doc
from .service import ProfileService

if TYPE_CHECKING:
    from .app import EventSink

#: Most bytes of a body read past the limit (and thrown away) before the connection is left to close.
_DRAIN_BYTES = 64 * 1024 * 1024


class RejectedEvent(BaseModel):
    """An event of the batch that was not applied."""

    index: int = Field(description="Its position in the batch, from 0.")
    event_id: str | None = Field(description="Its event_id, if it had a string one.")
    reason: str = Field(description="Why it was rejected.")
    dead_letter: str = Field(description="The id of the dead letter that keeps it (c360 dlq show ID).")


class EventsAnswer(BaseModel):
    """What a batch did."""

    accepted: int = Field(description="Events applied (or, with Kafka, queued) by this request.")
    duplicates: int = Field(
        description="Events seen before, or repeating an event_id earlier in the batch: they change nothing."
    )
    rejected: list[RejectedEvent] = Field(description="Events refused, each kept as a dead letter.")
    event_ids: list[str] = Field(description="The accepted events' ids, source|event_id.")
    queued: bool | None = Field(default=None, description="True with Kafka: applied by a worker shortly.")


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` references inlined (the event schemas are not recursive).

    An OpenAPI operation cannot carry ``$defs`` of its own; the discriminator's mapping names them, so it
    goes too (each event type's ``type`` constant tells the branches apart).
    """
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items() if k not in ("$defs", "discriminator")}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: dict[str, Any] = walk(schema)
    return out


@cache
def request_body() -> dict[str, Any]:
    """The OpenAPI request body of ``POST /v1/events``: the event schemas of ``schemas/events``."""
    event = _inline(json_schemas()["event.v1.json"])
    events = {
        "type": "array",
        "maxItems": MAX_EVENTS,
        "items": event,
        "description": "Events, each one of the types of schemas/events (event.v1.json).",
    }
    return {
        "required": True,
        "description": f'A JSON array of at most {MAX_EVENTS} events, or {{"events": [...]}}; at most '
        f"{MAX_BODY_BYTES} bytes. Each event is validated on its own: an invalid one is rejected in the answer "
        "and kept as a dead letter, the others are applied.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        events,
                        {
                            "type": "object",
                            "required": ["events"],
                            "additionalProperties": False,
                            "properties": {"events": events},
                        },
                    ]
                }
            }
        },
    }


async def read_body(request: Request, most: int) -> tuple[bytes, int]:
    """The body and its size in bytes; past ``most`` bytes only its first :data:`MAX_LETTER_BYTES` are kept.

    The rest of a body over the limit is read and thrown away (up to a bound), so the client gets its answer.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= most:
            chunks.append(chunk)
        elif size - len(chunk) <= most:  # the limit is passed: keep the beginning only
            chunks = [b"".join([*chunks, chunk])[:MAX_LETTER_BYTES]]
        if size > _DRAIN_BYTES:
            break
    return b"".join(chunks), size


def events_router(*, service: ProfileService, sink: EventSink, authenticate: Authenticator) -> APIRouter:
    """The partner events route over ``service`` and ``sink``."""
    router = APIRouter(tags=["events"])

    @router.post(
        "/v1/events",
        response_model=None,
        openapi_extra={"requestBody": request_body()},
        responses={
            200: {"model": EventsAnswer, "description": "The batch was taken: what was accepted and rejected"},
            400: problem_doc("The body is not JSON (or not UTF-8, or nested too deep to read); kept as a dead letter"),
            401: problem_doc("No or unknown API key"),
            403: problem_doc("The policy does not let this caller post events"),
            413: problem_doc(
                f"More than {MAX_EVENTS} events, or a body over {MAX_BODY_BYTES} bytes; kept as a dead letter "
                f"(its first {MAX_LETTER_BYTES} bytes)"
            ),
            422: problem_doc(
                'JSON, but not a batch: not an array of events nor {"events": [...]}, or nested deeper than '
                f"{events_service.MAX_BODY_DEPTH} levels; kept as a dead letter"
            ),
            429: problem_doc("Rate limited: retry after the Retry-After header's seconds"),
            503: problem_doc("Kafka (or the store) did not take the batch: nothing was queued, send it again"),
        },
    )
    async def post_events(request: Request) -> dict[str, Any] | JSONResponse:
        """Accept a JSON array of events (or ``{"events": [...]}``) from a partner.

        The answer lists how many were accepted, those seen before, and each rejected one with its
        index and reason; rejected events are kept in the dead-letter store, with the partner as their
        sender. An event of a source the partner may not send as is rejected.
        """
        who = authenticate.partner(request)
        body, size = await read_body(request, MAX_BODY_BYTES)
        outcome = await events_service.post_events(service=service, sink=sink, who=who, body=body, size=size)
        if outcome.answer is None:
            return problem(outcome.status, outcome.title, outcome.detail)
        return outcome.answer

    return router
