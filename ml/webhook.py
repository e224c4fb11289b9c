"""A signed webhook sender for audience exports (the standard library's :mod:`urllib`).

Each batch is one JSON POST. The receiver checks it with the shared secret:

* ``X-C360-Timestamp``: Unix seconds when this attempt was signed (a receiver refuses old ones);
* ``X-C360-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>." + body>`` (:func:`signature`);
* ``Idempotency-Key``: the batch's key, the same on every attempt, so a receiver that got a batch whose
  answer was lost counts it once when it comes again.

Answers: 2xx delivered; 5xx, 429 and connection errors (refused, reset, timed out) are retried with
exponential backoff (a ``Retry-After`` in seconds or as an HTTP date is honoured) until the sender's
total time budget is spent; any other answer (4xx, a redirect, which is never followed) fails the batch
at once. Only ``https`` URLs, or ``http`` on loopback, are taken: a batch carries personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from c360.graph.errors import C360Error, InvalidInputError

#: hosts where plain http is allowed (the data does not leave the machine)
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
#: the shortest secret taken, in bytes
MIN_SECRET = 16
_MAX_ANSWER = 64 * 1024


class DeliveryError(C360Error):
    """A batch could not be delivered: refused by the receiver, or not accepted within the time budget."""


def check_url(url: object) -> str:
    """``url`` if it is https, or http on loopback, with a host; :class:`InvalidInputError` otherwise."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"webhook URL {str(url)[:100]!r} is not an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise InvalidInputError("a webhook URL must be https (http only on loopback): the batches carry personal data")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("a webhook URL carries no user or password: batches are signed with the secret")
    return url  # type: ignore[return-value]  # a str: urlsplit took it


def shown_url(url: str) -> str:
    """``url`` without its query and fragment (which may hold a token), for manifests and messages."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 with ``secret`` of ``timestamp``, a dot and ``body``."""
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is an answer, not a new address: signed personal data goes to the configured URL only."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivered batch: its idempotency key, the receiver's status, and how many attempts it took."""

    key: str
    status: int
    attempts: int


class WebhookSender:
    """POSTs signed JSON batches to one URL within one total time budget shared by all its batches.

    ``base_delay`` doubles per retry of a batch up to ``max_delay``; ``timeout`` bounds one request.
    ``sleep`` and ``clock`` (monotonic seconds) are the standard ones unless a caller gives others.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        budget_seconds: float = 300.0,
        timeout: float = 30.0,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_url(url)
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET:
            raise InvalidInputError(f"the webhook secret must be at least {MIN_SECRET} bytes")
        for what, value in (("budget_seconds", budget_seconds), ("timeout", timeout), ("base_delay", base_delay)):
            if not value > 0:
                raise InvalidInputError(f"{what} must be positive, not {value}")
        self._secret = secret
        self._timeout = timeout
        self._base = base_delay
        self._max_delay = max(max_delay, base_delay)
        self._sleep = sleep
        self._clock = clock
        self._deadline = clock() + budget_seconds
        self._opener = urllib.request.build_opener(_NoRedirect())

    def remaining(self) -> float:
        """Seconds left of the budget."""
        return self._deadline - self._clock()

    def send(self, key: str, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Delivery:
        """POST ``payload`` as batch ``key`` until it is accepted; :class:`DeliveryError` if it is not."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        attempt = 0
        while True:
            attempt += 1
            outcome = self._post(key, body, headers or {})
            if isinstance(outcome, int):
                return Delivery(key, outcome, attempt)
            reason, wait = outcome
            if wait is None:
                raise DeliveryError(f"batch {key}: {reason}")
            wait = max(wait, min(self._max_delay, self._base * 2 ** (attempt - 1)))
            left = self.remaining()
            if wait >= left:
                raise DeliveryError(
                    f"batch {key} not accepted within the time budget after {attempt} attempt(s); last: {reason}"
                )
            self._sleep(wait)

    def _post(self, key: str, body: bytes, extra: Mapping[str, str]) -> int | tuple[str, float | None]:
        """One attempt: the 2xx status, or (why, seconds the receiver asked to wait or 0; None: do not retry)."""
        left = self.remaining()
        if left <= 0:
            return "the time budget is spent", 0.0
        stamp = str(int(time.time()))
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                **extra,
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "c360-export",
                "Idempotency-Key": key,
                "X-C360-Timestamp": stamp,
                "X-C360-Signature": signature(self._secret, stamp, body),
            },
        )
        try:
            with self._opener.open(request, timeout=min(self._timeout, left)) as answer:
                answer.read(_MAX_ANSWER)
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            text = (exc.read(_MAX_ANSWER) if exc.fp is not None else b"")[:200].decode("utf-8", "replace").strip()
            header = exc.headers.get("Retry-After") if exc.headers is not None else None
            exc.close()
            reason = f"the receiver answered {exc.code}" + (f": {text}" if text else "")
            if exc.code >= 500 or exc.code == 429:
                return reason, retry_after(header, datetime.now(UTC)) or 0.0
            return reason, None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # refused, reset, timed out
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return f"the receiver is unreachable: {type(cause).__name__}: {cause}", 0.0
