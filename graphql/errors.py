"""One table from errors to answers: the HTTP status (REST, problem+json) and the GraphQL code.

The REST exception handler and the GraphQL error extension both read :data:`ERRORS`, so an error
answers the same way through either door. The first row whose class matches wins; anything else is
a 500 / ``INTERNAL_SERVER_ERROR`` whose message is hidden (and logged).
"""

from __future__ import annotations

from dataclasses import dataclass

from c360.graph.errors import C360Error, ConflictError, InvalidInputError, NotFoundError, StoreUnavailableError
from c360.streams.config import BrokerUnavailableError

from .principal import AuthError, ForbiddenError
from .ratelimit import retry_after


class RateLimited(C360Error):
    """A partner key sent more than its rate (HTTP 429 with Retry-After)."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after(wait)} s")
        self.wait = wait


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """How one kind of error answers: HTTP status, GraphQL code, and whether its message is shown."""

    status: int
    code: str
    public: bool = True


#: the error table: (error class, its answer); the first matching row wins
ERRORS: tuple[tuple[type[BaseException], ErrorAnswer], ...] = (
    (AuthError, ErrorAnswer(401, "UNAUTHENTICATED")),
    (ForbiddenError, ErrorAnswer(403, "FORBIDDEN")),
    (NotFoundError, ErrorAnswer(404, "NOT_FOUND")),
    (ConflictError, ErrorAnswer(409, "CONFLICT")),
    (InvalidInputError, ErrorAnswer(400, "BAD_USER_INPUT")),
    (RateLimited, ErrorAnswer(429, "TOO_MANY_REQUESTS")),
    (StoreUnavailableError, ErrorAnswer(503, "INTERNAL_SERVER_ERROR")),
    (BrokerUnavailableError, ErrorAnswer(503, "INTERNAL_SERVER_ERROR")),
)
#: the answer to anything the table does not name
UNEXPECTED = ErrorAnswer(500, "INTERNAL_SERVER_ERROR", public=False)


def answer_of(exc: BaseException | None) -> ErrorAnswer:
    """The table's answer for ``exc`` (None: a GraphQL query that did not validate, BAD_USER_INPUT)."""
    if exc is None:
        return ErrorAnswer(400, "BAD_USER_INPUT")
    return next((answer for cls, answer in ERRORS if isinstance(exc, cls)), UNEXPECTED)


def http_status(exc: BaseException) -> int:
    """The HTTP status of an error."""
    return answer_of(exc).status


def error_code(exc: BaseException | None) -> str:
    """The GraphQL error code of an exception (None: the query itself was invalid)."""
    return answer_of(exc).code
