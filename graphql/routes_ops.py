"""Operations: ``/healthz``, ``/readyz``, ``/metrics``, and ``/.well-known/jwks.json``.

``/readyz`` checks the store, the audit trail, and Kafka when configured; the JWKS holds the public keys
that verify consent receipts.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
from c360.graph.errors import C360Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from .http import problem
from .service import ProfileService

if TYPE_CHECKING:
    from .app import EventSink


class Metrics:
    """Prometheus metrics of one app, in its own registry (recorded by :class:`MetricsMiddleware`)."""

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


#: how long a verifier may keep the JWKS (a receipt whose kid it does not know: fetch it again)
JWKS_MAX_AGE = 300


def ops_router(
    *,
    service: ProfileService,
    sink: EventSink,
    metrics: Metrics,
    jwks: Callable[[], Mapping[str, Any]] | None = None,
) -> APIRouter:
    """Health, readiness and metrics; with ``jwks`` (the public signing keys), ``/.well-known/jwks.json``."""
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz", response_model=None)
    async def readyz() -> dict[str, str] | JSONResponse:
        """The store answers, the audit trail takes entries, and Kafka answers when events go there.

        Every read is audited, so a broken audit trail (a write that fails, a last entry that does not
        verify, a log cut back) makes the service not ready: 503 with the reason.
        """
        try:
            name = await service.ping()
        except C360Error as exc:
            return problem(503, "Not ready", str(exc))
        broken = await asyncio.to_thread(service.audit.problem)
        if broken:
            return problem(503, "Not ready", broken)
        why = await sink.problem()
        if why:
            return problem(503, "Not ready", why)
        return {"status": "ready", "store": name}

    @router.get("/metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        """Prometheus metrics: requests and latency by route."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if jwks is not None:
        published = jwks

        @router.get("/.well-known/jwks.json", response_class=Response)
        def jwks_endpoint(request: Request) -> Response:
            """The public keys that verify consent receipts (a JWK Set, RFC 7517), old ones included; no auth.

            Cached for :data:`JWKS_MAX_AGE` seconds, revalidated by its ETag (304 when unchanged).
            """
            body = orjson.dumps(published())
            etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            headers = {"Cache-Control": f"public, max-age={JWKS_MAX_AGE}", "ETag": etag}
            wanted = {t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")}
            if etag in wanted or "*" in wanted:
                return Response(status_code=304, headers=headers)
            return Response(body, media_type="application/json", headers=headers)

    return router


class MetricsMiddleware:
    """Pure ASGI middleware: counts each HTTP request by route and status, and times it."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, then count and time it."""
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
