"""What the REST routes share: problem responses, the fast JSON response, who calls, the error handlers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from c360.graph.errors import C360Error
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from .auth import TokenVerifier, bearer_token
from .errors import RateLimited, answer_of
from .partners import Partner, PartnerKeys
from .principal import AuthError, Principal
from .ratelimit import RateLimiter, retry_after

log = logging.getLogger(__name__)

PARTNER_KEY_PREFIX = "c360_"


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


class JSONBytes(Response):
    """A JSON response serialised by orjson, without FastAPI's jsonable_encoder pass (the fast path)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The body."""
        return orjson.dumps(content)


def as_principal(partner: Partner) -> Principal:
    """A partner key's holder as a caller: role partner, its own sources."""
    return Principal(partner.name, "partner", "partner", partner.name, tuple(partner.sources))


@dataclass(slots=True)
class Authenticator:
    """Turns a request's credentials into a principal: a partner API key, or a verified bearer JWT."""

    partners: PartnerKeys
    verifier: TokenVerifier | None = None
    partner_limiter: RateLimiter | None = None

    def partner_key(self, request: Request) -> str | None:
        """The partner API key the request carries (bearer ``c360_...`` or ``X-API-Key``), if any."""
        token = bearer_token(request.headers.get("authorization"))
        if token and token.startswith(PARTNER_KEY_PREFIX):
            return token
        return request.headers.get("x-api-key") or None

    def _limit(self, partner: Partner) -> None:
        if self.partner_limiter is not None:
            wait = self.partner_limiter.acquire(partner.name)
            if wait > 0:
                raise RateLimited(wait)

    def partner(self, request: Request) -> Principal:
        """The partner calling (rate limited); AuthError (401) without a known partner key."""
        key = self.partner_key(request)
        partner = self.partners.verify(key) if key else None
        if partner is None:
            raise AuthError("send a partner API key: Authorization: Bearer <key>")
        self._limit(partner)
        return as_principal(partner)

    def __call__(self, request: Request) -> Principal:
        """The caller: a partner key, or a verified bearer JWT; AuthError (401) otherwise."""
        key = self.partner_key(request)
        if key is not None:
            partner = self.partners.verify(key)
            if partner is None:
                raise AuthError("unknown or revoked API key")
            self._limit(partner)
            return as_principal(partner)
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise AuthError("send credentials: Authorization: Bearer <token>")
        if self.verifier is None:
            raise AuthError("no token verification is configured (api.jwks_url, api.key_file or api.dev_mode)")
        return self.verifier.verify(token)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as problem+json (on ``/graphql``: a GraphQL error with its code), by the error table."""

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
        answer = answer_of(exc)
        status = answer.status
        message = str(exc) if answer.public else "the service failed; the error is logged"
        if status == 500:
            log.error("unexpected c360 error", exc_info=exc)
        headers: dict[str, str] | None = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": retry_after(getattr(exc, "retry_after", 5.0))}
        if request.url.path.rstrip("/") == "/graphql":
            body = {"data": None, "errors": [{"message": message, "extensions": {"code": answer.code}}]}
            return JSONResponse(body, status_code=status, headers=headers)
        return problem(status, type(exc).__name__, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "Internal error", "the service failed; the error is logged")
