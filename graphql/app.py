"""The FastAPI app: health, readiness and partner events (``POST /v1/events``).

Errors answer ``application/problem+json`` (RFC 9457) and never carry a stack trace. The profile API
(GraphQL, REST reads, roles) builds on this app.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from c360.graph.errors import C360Error, ConflictError, InvalidInputError, NotFoundError, StoreUnavailableError
from c360.graph.models import DeadLetter
from c360.graph.store import GraphStore
from c360.streams.pipeline import Pipeline, letter_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .partners import Partner, PartnerKeys

log = logging.getLogger(__name__)

#: Most events in one POST, and most bytes of its body.
MAX_EVENTS = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024


class EventSink(Protocol):
    """Where accepted partner events go: the in-process pipeline, or Kafka."""

    async def submit(self, payloads: Sequence[Any], sources: Sequence[str]) -> dict[str, Any]:
        """Apply or enqueue a batch; returns the answer to the partner (accepted, rejected and why)."""
        ...


class InProcessSink:
    """Runs the pipeline in a worker thread: the event is in the graph when the answer is sent."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._lock = asyncio.Lock()  # one batch at a time: the store serialises writers anyway

    async def submit(self, payloads: Sequence[Any], sources: Sequence[str]) -> dict[str, Any]:
        """Apply the batch now."""
        async with self._lock:
            outcome = await asyncio.to_thread(self.pipeline.process, payloads, sources=sources)
        return outcome.to_json()


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


_STATUS = {NotFoundError: 404, ConflictError: 409, InvalidInputError: 400, StoreUnavailableError: 503}


def create_app(*, store: GraphStore, sink: EventSink, partners: PartnerKeys) -> FastAPI:
    """Build the app over a store, an event sink and the partner keys."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        start, stop = getattr(sink, "start", None), getattr(sink, "stop", None)
        if start is not None:
            await start()
        try:
            yield
        finally:
            if stop is not None:
                await stop()

    app = FastAPI(title="c360", summary="One trustworthy profile per customer.", version="0.1.0", lifespan=lifespan)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, "HTTP error", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "Invalid request", "; ".join(str(e.get("msg")) for e in exc.errors()[:5]))

    @app.exception_handler(C360Error)
    async def _domain(_: Request, exc: C360Error) -> JSONResponse:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)
        return problem(status, type(exc).__name__, str(exc) if status < 500 else "the service failed")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "Internal error", "the service failed; the error is logged")

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    async def readyz() -> dict[str, str] | JSONResponse:
        """The store answers."""
        try:
            await asyncio.to_thread(store.ping)
        except C360Error as exc:
            return problem(503, "Not ready", str(exc))
        return {"status": "ready", "store": store.name}

    def _partner(request: Request) -> Partner | None:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        return partners.verify(key) if key else None

    @app.post(
        "/v1/events",
        tags=["events"],
        response_model=None,
        responses={401: {"description": "No or unknown API key"}, 413: {"description": "Too many events"}},
    )
    async def post_events(request: Request) -> dict[str, Any] | JSONResponse:
        """Accept a JSON array of events (or ``{"events": [...]}``) from a partner.

        The answer lists how many were accepted, those seen before, and each rejected one with its
        index and reason; rejected events are kept in the dead-letter store.
        """
        partner = _partner(request)
        if partner is None:
            return problem(
                401,
                "Unauthenticated",
                "send a partner API key: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return problem(413, "Too large", f"a request body may hold at most {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # Not even a batch: nothing to split into events, but it is kept.
            store.add_dead_letters([_letter(body, f"body is not JSON: {exc}", partner.name)])
            return problem(400, "Invalid JSON", f"the body is not JSON: {exc}")
        events = data.get("events") if isinstance(data, dict) else data
        if not isinstance(events, list):
            return problem(400, "Invalid batch", 'send a JSON array of events, or {"events": [...]}')
        if len(events) > MAX_EVENTS:
            return problem(413, "Too many events", f"send at most {MAX_EVENTS} events per request")
        return await sink.submit(events, partner.sources)

    return app


def _letter(body: bytes, reason: str, source: str) -> DeadLetter:
    text = body.decode("utf-8", "replace")
    return DeadLetter(letter_id(text), datetime.now(UTC), reason, text, source)
