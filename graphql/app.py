"""The FastAPI app factory: GraphQL, REST profile reads, partner events, health, readiness and metrics.

- ``/graphql``: the strawberry schema (GraphiQL, introspection and "did you mean" suggestions in dev
  mode only); bodies over ``ApiOptions.graphql_max_body`` bytes get a 413
  (:mod:`~c360.graphql.body_limit`), and documents are refused before they run when they may cost
  too much (:mod:`~c360.graphql.query_cost`);
- ``GET /v1/customers/{id}``, ``GET /v1/customers?email=|phone=``: the profile document, the fast path
  (:mod:`~c360.graphql.routes_customers`);
- ``GET /v1/customers/{id}/consent``, ``.../consent/check?channel=&purpose=``, ``.../consent/receipts/{event}``:
  effective consent, the one question with its reason and receipt, one receipt
  (:mod:`~c360.graphql.routes_consent`);
- ``/v1/cases`` (open, views), ``/v1/cases/{id}`` (read, change), ``.../assignment|comments|status|links``:
  service cases with their SLA clocks (:mod:`~c360.graphql.routes_cases`);
- ``POST /v1/lens/query``, ``GET /v1/segments``, ``GET /v1/customers/{id}/insights``: lens queries over the ML
  snapshot, segment counts, a customer's insights and segments (:mod:`~c360.graphql.routes_ml`);
- ``POST /v1/events``: partner events, the in-process pipeline or Kafka (:mod:`~c360.graphql.routes_events`);
- ``/healthz``, ``/readyz`` (the store answers, and Kafka when configured), ``/metrics`` (Prometheus),
  ``/.well-known/jwks.json`` (the public keys of consent receipts, no auth)
  (:mod:`~c360.graphql.routes_ops`), ``/openapi.json``, ``/docs``.

Callers authenticate with a bearer JWT (verified against the configured keys: issuer, audience, expiry)
or a partner API key (``c360_...``, stored hashed; rate limited per partner). Errors answer
``application/problem+json`` (RFC 9457), GraphQL errors carry a code (both from the table in
:mod:`~c360.graphql.errors`); neither ever carries a stack trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from c360.graph.models import DeadLetter
from c360.graph.store import GraphStore
from cross_web import HTTPException
from fastapi import FastAPI, Request
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from .applicant_auth import ApplicantAuth
from .audit import AuditLog
from .auth import TokenVerifier
from .body_limit import MAX_GRAPHQL_BODY, GraphQLBodyLimit
from .errors import RateLimited
from .events_service import MAX_BODY_BYTES, MAX_EVENTS
from .http import PARTNER_KEY_PREFIX, Authenticator, JSONBytes, audit_refusal, install_error_handlers, problem
from .partners import PartnerKeys
from .policy import Policy
from .principal import Principal
from .ratelimit import RateLimiter
from .routes_applicants import applicant_router
from .routes_cases import cases_router
from .routes_consent import consent_router
from .routes_customers import customers_router
from .routes_events import events_router
from .routes_kyc import kyc_router
from .routes_ml import ml_router
from .routes_ops import Metrics, MetricsMiddleware, ops_router
from .schema import ApiContext, build_schema
from .service import ProfileService

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_EVENTS",
    "MAX_GRAPHQL_BODY",
    "PARTNER_KEY_PREFIX",
    "ApiOptions",
    "EventSink",
    "JSONBytes",
    "Metrics",
    "RateLimited",
    "create_app",
    "problem",
]


class EventSink(Protocol):
    """Where accepted partner events go: the in-process runner (:class:`c360.streams.runner.Runner`), or Kafka."""

    async def submit(self, payloads: Sequence[Any], sources: Sequence[str], *, sender: str) -> dict[str, Any]:
        """Apply or enqueue a batch; returns the answer to the partner (accepted, rejected and why).

        Events of a source not in ``sources`` are rejected; every dead letter names ``sender``.
        """
        ...

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep what could not even be split into events (the dead-letter store, and topic with Kafka)."""
        ...

    async def problem(self) -> str | None:
        """Why events cannot be taken now (for ``/readyz``), or None when they can."""
        ...


@dataclass(slots=True)
class ApiOptions:
    """What the profile API needs beyond the store: keys, policy, audit, limits.

    ``graphql_max_body``: the largest ``/graphql`` request body, in bytes (over it: 413). ``jwks``: the
    public keys of the consent receipts' signing key ring, served at ``/.well-known/jwks.json`` (None: not
    served).
    """

    policy: Policy
    audit: AuditLog
    verifier: TokenVerifier | None = None
    dev_mode: bool = False
    partner_limiter: RateLimiter | None = None
    service: ProfileService | None = None
    graphql_max_body: int = MAX_GRAPHQL_BODY
    jwks: Callable[[], Mapping[str, Any]] | None = None
    #: applicant accounts and sessions of the KYC portal (None: no applicant routes, no applicant sessions)
    applicants: ApplicantAuth | None = None


def create_app(*, store: GraphStore, sink: EventSink, partners: PartnerKeys, options: ApiOptions) -> FastAPI:
    """Build the app over a store, an event sink, the partner keys and the API options."""
    opts = options
    service = opts.service or ProfileService(store, opts.policy, opts.audit)
    authenticate = Authenticator(partners, opts.verifier, opts.partner_limiter, opts.applicants)

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
    install_error_handlers(app, audit=opts.audit)
    metrics = Metrics()

    async def graphql_context(request: Request) -> ApiContext:
        ide_page = request.method == "GET" and "query" not in request.query_params
        if ide_page and opts.dev_mode and "authorization" not in request.headers:
            return ApiContext(Principal("anonymous", "anonymous", "user"), service)  # GraphiQL's page only
        return ApiContext(authenticate(request), service)

    graphql = _Router(
        build_schema(dev_mode=opts.dev_mode),
        audit=opts.audit,
        context_getter=graphql_context,
        graphql_ide="graphiql" if opts.dev_mode else None,
        allow_queries_via_get=False,
    )
    app.include_router(graphql, prefix="/graphql", include_in_schema=False)
    app.include_router(ops_router(service=service, sink=sink, metrics=metrics, jwks=opts.jwks))
    app.include_router(customers_router(service=service, authenticate=authenticate))
    app.include_router(consent_router(service=service, authenticate=authenticate))
    app.include_router(cases_router(service=service, authenticate=authenticate))
    app.include_router(kyc_router(service=service, authenticate=authenticate))
    app.include_router(ml_router(service=service, authenticate=authenticate))
    if opts.applicants is not None:
        app.include_router(applicant_router(opts.applicants, opts.audit))
    app.include_router(events_router(service=service, sink=sink, authenticate=authenticate))
    app.add_middleware(GraphQLBodyLimit, max_bytes=opts.graphql_max_body, audit=opts.audit)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outside the body limit: its 413s are counted
    return app


#: codes of errors a service raised and audited itself (anything else refused before a resolver ran is not)
_AUDITED_BY_SERVICES = frozenset({"FORBIDDEN", "NOT_FOUND", "UNAUTHENTICATED", "CONFLICT", "TOO_MANY_REQUESTS"})


class _Router(GraphQLRouter[ApiContext, None]):
    def __init__(self, *args: Any, audit: AuditLog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._audit = audit

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        """The answer; a document refused before anything ran (analysis, validation, input) is audited."""
        if result.data is None and result.errors:
            codes = {(e.extensions or {}).get("code") for e in result.errors}
            if not codes & _AUDITED_BY_SERVICES:
                reason = "; ".join(sorted(str(c) for c in codes)) + f": {result.errors[0].message}"
                await audit_refusal(self._audit, request, 400, reason)
        return await super().process_result(request, result)

    def encode_json(self, data: object) -> bytes:
        """GraphQL answers serialised by orjson (several times faster than the json module)."""
        return orjson.dumps(data)

    async def parse_http_body(self, request: Any) -> Any:
        """The request's GraphQL data; a body that is JSON but not an object is a 400, not a crash."""
        try:
            return await super().parse_http_body(request)
        except (AttributeError, TypeError) as exc:
            raise HTTPException(400, "the body must be a JSON object with a query") from exc
