"""Who calls, and the two errors about callers: not authenticated (401) and not allowed (403).

Both :mod:`~c360.graphql.auth` (which makes principals from credentials) and
:mod:`~c360.graphql.policy` (which decides what a principal's role may do) import this module, and
neither imports the other at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from c360.graph.errors import C360Error


class AuthError(C360Error):
    """The request is not authenticated: no token, or one that does not verify (HTTP 401)."""

    code: str = "UNAUTHENTICATED"


class ForbiddenError(C360Error):
    """The caller is authenticated but its role may not do this (HTTP 403)."""

    code: str = "FORBIDDEN"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: the token's subject and role; a partner also has its name and allowed sources."""

    subject: str
    role: str
    kind: Literal["user", "partner"]
    partner: str | None = None
    sources: tuple[str, ...] = ()
