"""A limit on the size of ``/graphql`` request bodies, enforced before the app reads them.

A body whose ``Content-Length`` says it is over the limit is refused unread; one without (chunked)
is counted as it comes and refused once it passes the limit. Either way the answer is a 413 with a
GraphQL error, code ``PAYLOAD_TOO_LARGE`` (from the error table), and nothing of the body is echoed or
parsed. The refusal is audited (before authentication: the caller is anonymous, the credential's kind
is noted, never the credential).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .audit import AuditLog
from .errors import ERRORS, PayloadTooLarge

#: default largest /graphql request body, in bytes (a front-end's documents and variables are a few KiB)
MAX_GRAPHQL_BODY = 64 * 1024

_ANSWER = next(answer for cls, answer in ERRORS if cls is PayloadTooLarge)


class GraphQLBodyLimit:
    """ASGI middleware: bodies of requests to ``path`` hold at most ``max_bytes`` bytes."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int = MAX_GRAPHQL_BODY, path: str = "/graphql", audit: AuditLog | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path = path
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests on, with the body of a request to ``path`` read and counted first."""
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is over {self.max_bytes} bytes"
        if self.audit is not None:
            from .http import audit_refusal  # http imports the app's error table; loaded when first needed

            await audit_refusal(self.audit, Request(scope), _ANSWER.status, message)
        body: dict[str, Any] = {"data": None, "errors": [{"message": message, "extensions": {"code": _ANSWER.code}}]}
        await JSONResponse(body, status_code=_ANSWER.status, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
