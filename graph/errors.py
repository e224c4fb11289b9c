"""Domain errors of c360. They depend on nothing outside the standard library."""

from __future__ import annotations


class C360Error(Exception):
    """Base of every error c360 raises on purpose."""


class ConfigError(C360Error):
    """The configuration is invalid or incomplete."""


class NotFoundError(C360Error):
    """A customer, record or identifier does not exist."""


class StoreError(C360Error):
    """The graph store failed; the backend's own error is the ``__cause__``."""


class StoreUnavailableError(StoreError):
    """The graph store cannot be reached (server down, file locked, bad credentials)."""


class InvalidInputError(C360Error):
    """Input data cannot be used (unreadable file, bad mapping, bad argument)."""


class ConflictError(C360Error):
    """The change conflicts with the current state (e.g. deciding a review item twice)."""


class QueryTimeout(C360Error):
    """A query ran over its time budget and was stopped (the API: HTTP 503 with Retry-After, ``TIMEOUT``)."""

    #: seconds a client is told to wait before trying again
    retry_after: float = 5.0
