"""REST applicant accounts for the KYC portal (:class:`~c360.graphql.applicant_auth.ApplicantAuth`).

- ``POST /v1/applicants/register`` ``{email?, mobile?, password}``: 201 ``{applicant_id}``;
- ``POST /v1/applicants/login`` ``{login, password}``: 202 ``{challenge_id, channel, expires_at}`` (code sent);
- ``POST /v1/applicants/login/verify`` ``{challenge_id, code}``: 200 ``{token, expires_at}``;
- ``POST /v1/applicants/logout`` (Bearer session token): 204;
- ``GET /v1/applicants/me`` (Bearer session token): the applicant's own account (never the hash).

Bodies are checked strictly (unknown keys are a 422). Errors answer as problem+json through the app's
error table (:func:`~c360.graphql.http.install_error_handlers`): a broken password rule or a bad login id
400, a taken login id 409, a wrong login or code 401, a locked account 429 with ``Retry-After``. The
handlers are plain functions: FastAPI runs them in its thread pool, so argon2 does not block the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from .applicant_auth import ApplicantAuth
from .audit import AuditLog
from .auth import bearer_token
from .http import JSONBytes, problem_doc
from .principal import AuthError, Principal


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Registration(_Body):
    """A new account: an e-mail address, a mobile number or both, and a password."""

    email: str | None = Field(default=None, max_length=254, description="An e-mail address (a login id).")
    mobile: str | None = Field(
        default=None, max_length=40, description="A mobile number, best with its +country code (a login id)."
    )
    password: str = Field(max_length=1024, description="The password (the policy's rules are checked).")


class Login(_Body):
    """A login id (the e-mail address or the mobile number) and the password."""

    login: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class CodeAnswer(_Body):
    """The challenge's id and the code that was sent."""

    challenge_id: str = Field(max_length=100)
    code: str = Field(max_length=32)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Bad input: a password that breaks the policy (every rule named), a bad e-mail or mobile"),
    401: problem_doc("Wrong login id or password, a wrong or expired code, no or an invalid session"),
    409: problem_doc("The e-mail address or mobile number is already registered"),
    422: problem_doc("A body missing, unknown or out of bounds"),
    429: problem_doc("The account is locked after too many failed logins (until the time given; Retry-After)"),
    503: problem_doc("The store cannot answer now: retry"),
}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def applicant_authenticator(auth: ApplicantAuth) -> Callable[[Request], Principal]:
    """A request's applicant from its ``Authorization: Bearer c360a_...`` header; AuthError (401) otherwise."""

    def authenticate(request: Request) -> Principal:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise AuthError("send the session token: Authorization: Bearer <token>")
        request.state.principal = who = auth.authenticate(token)
        return who

    return authenticate


def applicant_router(auth: ApplicantAuth, audit: AuditLog | None = None) -> APIRouter:
    """The applicant account routes over ``auth``, under ``/v1/applicants``.

    With ``audit``, every registration, sign-in step and sign-out that succeeds is audited (refusals are
    audited by the app's error handlers); entries name the applicant id, never the e-mail or mobile.
    """
    router = APIRouter(prefix="/v1/applicants", tags=["applicants"], responses=_RESPONSES)
    authenticate = applicant_authenticator(auth)

    def note(applicant_id: str, action: str, detail: str | None = None) -> None:
        if audit is not None:
            audit.append(actor=applicant_id, role="applicant", action=action, target=applicant_id, outcome="ok",
                         detail=detail)  # fmt: skip

    @router.post("/register", status_code=201, response_model=None)
    def register(body: Registration) -> JSONBytes:
        """Open an applicant account."""
        applicant = auth.register(email=body.email, mobile=body.mobile, password=body.password)
        note(applicant.id, "applicant_register")
        return JSONBytes({"applicant_id": applicant.id}, status_code=201)

    @router.post("/login", status_code=202, response_model=None)
    def login(body: Login) -> JSONBytes:
        """Check the password and send a one-time code to the login id's e-mail or mobile."""
        sent = auth.login(login=body.login, password=body.password)
        note(sent.applicant_id, "applicant_login", f"code sent by {sent.channel}")
        doc = {"challenge_id": sent.challenge_id, "channel": sent.channel, "expires_at": _iso(sent.expires_at)}
        return JSONBytes(doc, status_code=202)

    @router.post("/login/verify", response_model=None)
    def verify(body: CodeAnswer) -> JSONBytes:
        """Answer the challenge with the code: a session token."""
        grant = auth.verify_otp(challenge_id=body.challenge_id, code=body.code)
        note(grant.applicant_id, "applicant_session")
        return JSONBytes({"token": grant.token, "expires_at": _iso(grant.expires_at)})

    @router.post("/logout", status_code=204, response_model=None)
    def logout(request: Request) -> Response:
        """End the session of the bearer token."""
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise AuthError("send the session token: Authorization: Bearer <token>")
        who = auth.authenticate(token)
        auth.logout(token)
        note(who.subject, "applicant_logout")
        return Response(status_code=204)

    @router.get("/me", response_model=None)
    def me(request: Request) -> JSONBytes:
        """The caller's own account."""
        applicant = auth.account(authenticate(request))
        now = auth.now()
        doc = {
            "applicant_id": applicant.id,
            "email": applicant.email,
            "mobile": applicant.mobile,
            "status": "locked" if applicant.locked_at(now) else "active",
            "created_at": _iso(applicant.created_at),
            "last_login_at": _iso(applicant.last_login_at),
            "customer_id": applicant.customer_id,
        }
        return JSONBytes(doc)

    return router
