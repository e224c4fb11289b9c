"""One table from errors to answers: the HTTP status (REST, problem+json) and the GraphQL code.

The REST exception handler and the GraphQL error extension both read :data:`ERRORS`, so an error
answers the same way through either door. The first row whose class matches wins; anything else is
a 500 / ``INTERNAL_SERVER_ERROR`` whose message is hidden (and logged).

A GraphQL error is answered by :func:`graphql_answer`: a document that does not parse or validate
(or exceeds the query limits), and a variable that does not coerce to its type, are the client's
``BAD_USER_INPUT``; what a resolver raised goes through the table. :func:`graphql_message` hides the
message of every ``INTERNAL_SERVER_ERROR`` and, outside dev mode, drops "did you mean" suggestions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from c360.graph.errors import (
    C360Error,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    QueryTimeout,  # a query's time budget (HTTP 503, Retry-After)
    StoreUnavailableError,
)
from c360.streams.config import BrokerUnavailableError
from graphql.error import GraphQLError

from .principal import AuthError, ForbiddenError
from .ratelimit import retry_after


class RateLimited(C360Error):
    """A partner key sent more than its rate (HTTP 429 with Retry-After)."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after(wait)} s")
        self.wait = wait


class PayloadTooLarge(C360Error):
    """A request body over the limit (HTTP 413); it is refused before it is read through."""


class IntrospectionDisabled(InvalidInputError):
    """An introspection query (``__schema``, ``__type``) outside dev mode."""


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
    (IntrospectionDisabled, ErrorAnswer(400, "INTROSPECTION_DISABLED")),
    (InvalidInputError, ErrorAnswer(400, "BAD_USER_INPUT")),
    (RateLimited, ErrorAnswer(429, "TOO_MANY_REQUESTS")),
    (PayloadTooLarge, ErrorAnswer(413, "PAYLOAD_TOO_LARGE")),
    (QueryTimeout, ErrorAnswer(503, "TIMEOUT")),
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


#: the answer to a GraphQL document or variables that do not validate (graphql-core's own errors)
INVALID_QUERY = ErrorAnswer(400, "BAD_USER_INPUT")
#: what replaces the message of an error whose answer is not public
HIDDEN_MESSAGE = "internal error; it is logged"
#: longest message a GraphQL error carries (a message may quote the input)
MAX_MESSAGE = 500
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def graphql_answer(error: GraphQLError) -> ErrorAnswer:
    """The answer to one GraphQL error, by where it comes from.

    - no original error: graphql-core refused the document (syntax, validation): BAD_USER_INPUT;
    - a graphql-core error outside any field (no ``path``): a variable that does not coerce to its
      type, before anything runs: BAD_USER_INPUT;
    - anything else was raised while resolving (a graphql-core error there is a value that did not
      serialise, our bug): the error table's answer for it.
    """
    original = error.original_error
    if original is None or (isinstance(original, GraphQLError) and not error.path):
        return INVALID_QUERY
    return answer_of(original)


def graphql_message(error: GraphQLError, answer: ErrorAnswer, *, suggestions: bool) -> str:
    """The message a client sees, without "Did you mean" unless ``suggestions``.

    Hidden when the answer is not public or is an INTERNAL_SERVER_ERROR (a store outage's message may
    name hosts and drivers).
    """
    if not answer.public or answer.code == UNEXPECTED.code:
        return HIDDEN_MESSAGE
    message = error.message if suggestions else _SUGGESTION.sub("", error.message)
    if message.startswith("Syntax Error: "):  # graphql-core's; said the way our messages are
        message = "syntax error: " + message.removeprefix("Syntax Error: ")
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
