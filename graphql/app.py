"""The FastAPI app: GraphQL, REST profile reads, partner events, health, readiness and metrics.

- ``/graphql``: the strawberry schema (GraphiQL in dev mode);
- ``GET /v1/customers/{id}``, ``GET /v1/customers?email=|phone=``: the profile document, the fast path;
- ``POST /v1/events``: partner events (the in-process pipeline, or Kafka);
- ``/healthz``, ``/readyz`` (the store answers, and Kafka when configured), ``/metrics`` (Prometheus),
  ``/openapi.json``, ``/docs``.

Callers authenticate with a bearer JWT (verified against the configured keys: issuer, audience, expiry)
or a partner API key (``c360_...``, stored hashed; rate limited per partner). Errors answer
``application/problem+json`` (RFC 9457), GraphQL errors carry a code; neither ever carries a stack trace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from c360.graph.errors import C360Error, ConflictError, InvalidInputError, NotFoundError, StoreUnavailableError
from c360.graph.models import DeadLetter
from c360.graph.store import GraphStore
from c360.streams.pipeline import Pipeline, letter_id
from c360.streams.producer import BrokerUnavailableError
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException
from strawberry.fastapi import GraphQLRouter

from .audit import AuditLog
from .auth import AuthError, ForbiddenError, Principal, TokenVerifier, bearer_token
from .partners import Partner, PartnerKeys
from .policy import Policy
from .ratelimit import RateLimiter, retry_after
from .schema import ApiContext, build_schema, error_code
from .service import ProfileService

log = logging.getLogger(__name__)

#: Most events in one POST, and most bytes of its body.
MAX_EVENTS = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024
PARTNER_KEY_PREFIX = "c360_"


class EventSink(Protocol):
    """Where accepted partner events go: the in-process pipeline, or Kafka."""

    async def submit(self, payloads: Sequence[Any], sources: Sequence[str]) -> dict[str, Any]:
        """Apply or enqueue a batch; returns the answer to the partner (accepted, rejected and why)."""
        ...

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep what could not even be split into events (the dead-letter store, and topic with Kafka)."""
        ...

    async def problem(self) -> str | None:
        """Why events cannot be taken now (for ``/readyz``), or None when they can."""
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

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep them in the dead-letter store."""
        await asyncio.to_thread(self.pipeline.store.add_dead_letters, list(letters))

    async def problem(self) -> str | None:
        """None: the pipeline runs here, so events can be taken whenever the store answers."""
        return None


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


_STATUS: tuple[tuple[type[C360Error], int], ...] = (
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidInputError, 400),
    (StoreUnavailableError, 503),
    (BrokerUnavailableError, 503),
)


class RateLimited(C360Error):
    """A partner key sent more than its rate (HTTP 429 with Retry-After)."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after(wait)} s")
        self.wait = wait


@dataclass(slots=True)
class ApiOptions:
    """What the profile API needs beyond the store: keys, policy, audit, limits."""

    policy: Policy
    audit: AuditLog
    verifier: TokenVerifier | None = None
    dev_mode: bool = False
    partner_limiter: RateLimiter | None = None
    service: ProfileService | None = None


class Metrics:
    """Prometheus metrics of one app, in its own registry (recorded by :class:`_MetricsMiddleware`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "c360_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "c360_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2.5),
            registry=self.registry,
        )


def create_app(*, store: GraphStore, sink: EventSink, partners: PartnerKeys, options: ApiOptions) -> FastAPI:
    """Build the app over a store, an event sink, the partner keys and the API options."""
    opts = options
    service = opts.service or ProfileService(store, opts.policy, opts.audit)

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
            opts.audit.close()

    app = FastAPI(
        title="c360",
        summary="One trustworthy profile per customer.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if opts.dev_mode else None,
        redoc_url=None,
    )
    metrics = Metrics()

    def _graphql_error(request: Request, status: int, exc: BaseException, message: str) -> JSONResponse | None:
        if request.url.path.rstrip("/") != "/graphql":
            return None
        body = {"data": None, "errors": [{"message": message, "extensions": {"code": error_code(exc)}}]}
        return JSONResponse(body, status_code=status)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, "HTTP error", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "Invalid request", "; ".join(str(e.get("msg")) for e in exc.errors()[:5]))

    @app.exception_handler(C360Error)
    async def _domain(request: Request, exc: C360Error) -> JSONResponse:
        if isinstance(exc, RateLimited):
            return problem(429, "Too many requests", str(exc), headers={"Retry-After": retry_after(exc.wait)})
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        message = str(exc) if status < 500 or status == 503 else "the service failed; the error is logged"
        if status == 500:
            log.error("unexpected c360 error", exc_info=exc)
        headers: dict[str, str] | None = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": retry_after(getattr(exc, "retry_after", 5.0))}
        as_graphql = _graphql_error(request, status, exc, message)
        if as_graphql is not None:
            if headers:
                as_graphql.headers.update(headers)
            return as_graphql
        return problem(status, type(exc).__name__, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "Internal error", "the service failed; the error is logged")

    def _partner_key(request: Request) -> str | None:
        token = bearer_token(request.headers.get("authorization"))
        if token and token.startswith(PARTNER_KEY_PREFIX):
            return token
        return request.headers.get("x-api-key") or None

    def _limit(partner: Partner) -> None:
        if opts.partner_limiter is not None:
            wait = opts.partner_limiter.acquire(partner.name)
            if wait > 0:
                raise RateLimited(wait)

    def authenticate(request: Request) -> Principal:
        """The caller: a partner key, or a verified bearer JWT; AuthError (401) otherwise."""
        key = _partner_key(request)
        if key is not None:
            partner = partners.verify(key)
            if partner is None:
                raise AuthError("unknown or revoked API key")
            _limit(partner)
            return _as_principal(partner)
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise AuthError("send credentials: Authorization: Bearer <token>")
        if opts.verifier is None:
            raise AuthError("no token verification is configured (api.jwks_url, api.key_file or api.dev_mode)")
        return opts.verifier.verify(token)

    async def graphql_context(request: Request) -> ApiContext:
        ide_page = request.method == "GET" and "query" not in request.query_params
        if ide_page and opts.dev_mode and "authorization" not in request.headers:
            return ApiContext(Principal("anonymous", "anonymous", "user"), service)  # GraphiQL's page only
        return ApiContext(authenticate(request), service)

    graphql = _Router(
        build_schema(),
        context_getter=graphql_context,
        graphql_ide="graphiql" if opts.dev_mode else None,
        allow_queries_via_get=False,
    )
    app.include_router(graphql, prefix="/graphql", include_in_schema=False)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    async def readyz() -> dict[str, str] | JSONResponse:
        """The store answers, and so does Kafka when events go there."""
        try:
            await asyncio.to_thread(store.ping)
        except C360Error as exc:
            return problem(503, "Not ready", str(exc))
        why = await sink.problem()
        if why:
            return problem(503, "Not ready", why)
        return {"status": "ready", "store": store.name}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics_endpoint() -> Response:
        """Prometheus metrics: requests and latency by route."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _auth_responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "No or invalid credentials"},
        403: {"description": "The role may not do this"},
        404: {"description": "No such customer"},
    }

    @app.get("/v1/customers/{customer_id}", tags=["profiles"], responses=_auth_responses, response_class=JSONBytes)
    async def get_customer(customer_id: str, request: Request) -> JSONBytes:
        """The customer's unified profile as the caller's role may see it (a merged-away ID gives the survivor)."""
        return JSONBytes(await service.profile(authenticate(request), customer_id))

    @app.get("/v1/customers", tags=["profiles"], responses=_auth_responses)
    async def find_customers(
        request: Request,
        email: str | None = Query(default=None, max_length=320),
        phone: str | None = Query(default=None, max_length=40),
    ) -> dict[str, Any]:
        """Look customers up by email or phone (exactly one): their profiles as the caller's role may see them."""
        who = authenticate(request)
        ident = service.identifier_of(email=email, phone=phone)
        ids = await service.audited(
            who, "search_customers", None, lambda: service.read(lambda: store.find_by_identifier(ident))
        )
        return {"customers": [await service.profile(who, cid) for cid in ids[:20]]}

    @app.post(
        "/v1/events",
        tags=["events"],
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
        key = _partner_key(request)
        partner = partners.verify(key) if key else None
        if partner is None:
            raise AuthError("send a partner API key: Authorization: Bearer <key>")
        _limit(partner)
        if not opts.policy.can("partner", "post_events"):
            raise ForbiddenError("the policy does not let partners post events")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return problem(413, "Too large", f"a request body may hold at most {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # Not even a batch: nothing to split into events, but it is kept.
            await sink.dead_letters([_letter(body, f"body is not JSON: {exc}", partner.name)])
            return problem(400, "Invalid JSON", f"the body is not JSON: {exc}")
        events = data.get("events") if isinstance(data, dict) else data
        if not isinstance(events, list):
            return problem(400, "Invalid batch", 'send a JSON array of events, or {"events": [...]}')
        if len(events) > MAX_EVENTS:
            return problem(413, "Too many events", f"send at most {MAX_EVENTS} events per request")
        who = _as_principal(partner)
        try:
            answer = await sink.submit(events, partner.sources)
        except Exception:
            await service.record(who, "post_events", partner.name, "error", f"{len(events)} events")
            raise
        accepted, rejected = int(answer.get("accepted", 0)), len(answer.get("rejected", ()))
        detail = f"{len(events)} events: {accepted} accepted, {rejected} rejected"
        await service.record(who, "post_events", partner.name, "ok" if not rejected else "partial", detail)
        return answer

    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app


class _Router(GraphQLRouter[ApiContext, None]):
    def encode_json(self, data: object) -> bytes:
        """GraphQL answers serialised by orjson (several times faster than the json module)."""
        return orjson.dumps(data)


class JSONBytes(Response):
    """A JSON response serialised by orjson, without FastAPI's jsonable_encoder pass (the fast path)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The body."""
        return orjson.dumps(content)


class _MetricsMiddleware:
    """Pure ASGI middleware: counts each HTTP request by route and status, and times it."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            matched = scope.get("route")
            # a mounted router (GraphQL) has an empty route path: its fixed mount path is the label
            route = "unmatched" if matched is None else (getattr(matched, "path", "") or scope["path"])
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def _as_principal(partner: Partner) -> Principal:
    """A partner key's holder as a caller: role partner, its own sources."""
    return Principal(partner.name, "partner", "partner", partner.name, tuple(partner.sources))


def _letter(body: bytes, reason: str, source: str) -> DeadLetter:
    text = body.decode("utf-8", "replace")
    return DeadLetter(letter_id(text), datetime.now(UTC), reason, text, source)
