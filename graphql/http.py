"""What the REST routes share: problem responses, the fast JSON response, who calls, the error handlers.

Every refusal the HTTP layer answers is audited: a 401 (no or invalid token or partner key: the reason
and the kind of credential, never the credential), a 429, a 403 or 4xx that no service function has
audited already (:func:`~c360.graphql.audit.is_audited`), a request that does not validate (422). The
entry names the caller when it is known (``request.state.principal``), the method and path (never the
query string, which may carry an email), and the client's address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from c360.graph.errors import C360Error
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from .audit import AuditLog, is_audited
from .auth import TokenVerifier, bearer_token
from .errors import RateLimited, answer_of
from .partners import Partner, PartnerKeys
from .principal import AuthError, Principal
from .ratelimit import RateLimiter, retry_after

log = logging.getLogger(__name__)

PARTNER_KEY_PREFIX = "c360_"
#: applicant sessions (graphql/applicant_auth.py) are opaque tokens with this prefix
APPLICANT_TOKEN_PREFIX = "c360a_"
#: the role only an applicant session carries; an SSO token naming it is refused
APPLICANT_ROLE = "applicant"


class ApplicantSessions(Protocol):
    """What verifies an applicant's session token (:class:`~c360.graphql.applicant_auth.ApplicantAuth`)."""

    def authenticate(self, token: str) -> Principal:
        """The applicant the session belongs to; AuthError when it is unknown, expired or revoked."""
        ...


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
    applicants: ApplicantSessions | None = None

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
        request.state.principal = who = as_principal(partner)
        self._limit(partner)
        return who

    def __call__(self, request: Request) -> Principal:
        """The caller: a partner key, or a verified bearer JWT; AuthError (401) otherwise."""
        key = self.partner_key(request)
        if key is not None:
            partner = self.partners.verify(key)
            if partner is None:
                raise AuthError("unknown or revoked API key")
            request.state.principal = who = as_principal(partner)
            self._limit(partner)
            return who
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise AuthError("send credentials: Authorization: Bearer <token>")
        if token.startswith(APPLICANT_TOKEN_PREFIX):
            if self.applicants is None:
                raise AuthError("this API takes no applicant sessions")
            request.state.principal = who = self.applicants.authenticate(token)
            return who
        if self.verifier is None:
            raise AuthError("no token verification is configured (api.jwks_url, api.key_file or api.dev_mode)")
        who = self.verifier.verify(token)
        if who.role == APPLICANT_ROLE:
            raise AuthError("applicants sign in with the applicant login, not a staff token")
        request.state.principal = who
        return who


def credentials_of(request: Request) -> str:
    """What credential a request carried, for the audit trail (never the credential itself)."""
    authorization = request.headers.get("authorization")
    token = bearer_token(authorization)
    key = token if token and token.startswith(PARTNER_KEY_PREFIX) else request.headers.get("x-api-key")
    if key:
        claimed = key[len(PARTNER_KEY_PREFIX) :].rpartition("_")[0] if key.startswith(PARTNER_KEY_PREFIX) else ""
        return f"a partner key of {claimed[:64]!r}" if claimed else "a partner key"
    if token:
        return "a bearer token"
    return "a malformed Authorization header" if authorization else "none"


_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response: a problem+json answer, with its description."""
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}}}


async def audit_refusal(audit: AuditLog, request: Request, status: int, reason: str) -> None:
    """Audit a refusal the HTTP layer answers (see the module's notes); a failed write is logged, not raised.

    The refusal is answered either way: it gives nothing away, and a caller who cannot be answered
    would only retry.
    """
    who: Principal | None = getattr(request.state, "principal", None)
    action, outcome = {401: ("authenticate", "unauthenticated"), 403: ("request", "denied")}.get(
        status, ("rate_limit" if status == 429 else "request", "refused")
    )
    client = request.client.host if request.client else "unknown"
    try:
        await audit.record(
            actor=who.subject if who else "anonymous",
            role=who.role if who else "anonymous",
            action=action,
            target=f"{request.method} {request.url.path}",
            outcome=outcome,
            detail=f"{status}: {reason}; credentials: {credentials_of(request)}; from {client}",
        )
    except OSError as exc:
        log.error("a refusal (%s %s, %d) could not be audited: %s", request.method, request.url.path, status, exc)


def install_error_handlers(app: FastAPI, *, audit: AuditLog | None = None) -> None:
    """Answer every error as problem+json (on ``/graphql``: a GraphQL error with its code), by the error table.

    With ``audit``, every refusal not audited yet is (see the module's notes); a route that is not
    there (404, 405) is not a refusal of anything.
    """

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if audit is not None and 400 <= exc.status_code < 500 and exc.status_code not in (404, 405):
            await audit_refusal(audit, request, exc.status_code, str(exc.detail))
        return problem(exc.status_code, "HTTP error", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(str(e.get("msg")) for e in exc.errors()[:5])
        if audit is not None:
            await audit_refusal(audit, request, 422, f"invalid request: {detail}")
        return problem(422, "Invalid request", detail)

    @app.exception_handler(C360Error)
    async def _domain(request: Request, exc: C360Error) -> JSONResponse:
        answer = answer_of(exc)
        status = answer.status
        if audit is not None and 400 <= status < 500 and not is_audited(exc):
            await audit_refusal(audit, request, status, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, RateLimited):
            return problem(429, "Too many requests", str(exc), headers={"Retry-After": retry_after(exc.wait)})
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
