"""An external PAN verification service (issue 16) behind :class:`PanVerifier`, and its manual fallback.

:class:`HttpPanVerifier` sends one JSON POST ``{"pan", "name", "dob"}`` to the configured URL with a
bearer token (read from a file) and an ``X-Request-Id`` that stays the same over the retries of one
verification. The provider answers ``{"status": "valid" | "invalid" | "not_found", "name": ...,
"reference": ...}`` (``name``, the name on record, and ``reference`` optional).

* A timeout, a refused connection or a 5xx is retried with exponential backoff (``backoff_base`` doubling
  up to ``backoff_cap``), ``retries`` times; a 4xx is not (the request would be refused again).
* A :class:`CircuitBreaker` counts those failed attempts: after ``failure_threshold`` in a row it opens
  and every call is answered at once with :class:`PanServiceUnavailableError`, without a request, for
  ``cooldown`` seconds; then one trial request goes through (half-open): a success closes it, a failure
  opens it again.

:func:`verify_pan` turns the answer into a ``pan_service``
:class:`~c360.graph.verification.Verification`: ``pass`` for a valid PAN, ``fail`` for an invalid or
unknown one, and ``manual_review`` with the reason when the service cannot answer (down, open circuit,
refused, unreadable): the officer verifies the PAN by hand.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol, Self

from c360.graph.errors import C360Error, InvalidInputError
from c360.graph.verification import Result, Verification, new_verification_id
from pydantic import BaseModel, ConfigDict, Field, model_validator
from stdnum.in_ import pan as stdnum_pan

from .http_json import OPENER, check_bearer_url, json_post
from .notify.smtp import read_secret

__all__ = [
    "BY",
    "CircuitBreaker",
    "HttpPanVerifier",
    "PanAnswer",
    "PanServiceConfig",
    "PanServiceError",
    "PanServiceRefusedError",
    "PanServiceUnavailableError",
    "PanStatus",
    "PanVerifier",
    "verify_pan",
]

PanStatus = Literal["valid", "invalid", "not_found"]
STATUSES: tuple[str, ...] = ("valid", "invalid", "not_found")
#: The component named in ``by`` when the caller gives none.
BY: Final = "c360.pan_service"

_MAX_ANSWER = 64 * 1024
_MAX_NAME = 200


class PanServiceError(C360Error):
    """The PAN service gave no usable answer; the reason is the message text."""


class PanServiceUnavailableError(PanServiceError):
    """The service is down or slow (timeouts, refused connections, 5xx after the retries), or the circuit is open."""


class PanServiceRefusedError(PanServiceError):
    """The service refused the request (a 4xx) or answered something unreadable; retrying would not help."""


@dataclass(frozen=True, slots=True)
class PanAnswer:
    """The provider's answer: the status, the name on record and its reference for the lookup, if given."""

    status: PanStatus
    name_on_record: str | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InvalidInputError(f"unknown PAN status {self.status!r}: expected one of {', '.join(STATUSES)}")
        for what, value in (("name_on_record", self.name_on_record), ("reference", self.reference)):
            if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > _MAX_NAME):
                raise InvalidInputError(f"{what} must be a non-empty string of at most {_MAX_NAME} characters")


class PanVerifier(Protocol):
    """Something that asks an authority whether a PAN exists and is the named person's."""

    def verify(self, pan: str, name: str, dob: date) -> PanAnswer:
        """The authority's answer for ``pan`` held by ``name`` born on ``dob``.

        Raises :class:`PanServiceUnavailableError` when it cannot be asked, :class:`PanServiceRefusedError`
        when it refuses the question.
        """
        ...


class PanServiceConfig(BaseModel):
    """The PAN verification provider's HTTP API (unknown keys are errors; the token only from a file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="The provider's verification endpoint (https; http only on loopback).")
    token_file: Path = Field(description="File whose content (trailing newline stripped) is the bearer token.")
    timeout: float = Field(default=5, gt=0, le=120, description="Seconds one request may take.")
    retries: int = Field(default=2, ge=0, le=10, description="Retries after a failed attempt (5xx, timeout, refused).")
    backoff_base: float = Field(default=0.5, ge=0, le=60, description="Seconds before the first retry; doubles.")
    backoff_cap: float = Field(default=8, ge=0, le=600, description="Longest wait between two attempts, seconds.")
    failure_threshold: int = Field(
        default=5, ge=1, le=1000, description="Failed attempts in a row after which the circuit opens."
    )
    cooldown: float = Field(
        default=30, gt=0, le=3600, description="Seconds the open circuit answers without calling, before a trial."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        check_bearer_url("PAN service", self.url)
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        return self

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...): base doubling, at most the cap."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** (retry - 1)))


BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after ``threshold`` failures in a row; after ``cooldown`` seconds lets one trial call through.

    ``clock`` gives monotonic seconds (inject one in tests). Thread-safe: while half-open, only one caller
    at a time gets the trial; the others are refused as if it were open.
    """

    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1 or cooldown <= 0:
            raise InvalidInputError("a circuit breaker needs threshold >= 1 and cooldown > 0")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> BreakerState:
        """``closed`` (calls go through), ``open`` (refused) or ``half_open`` (a trial is due or under way)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._trial or self._clock() - self._opened_at >= self.cooldown:
                return "half_open"
            return "open"

    @property
    def retry_at(self) -> float | None:
        """The clock time from which a trial call may go through, or None when closed."""
        with self._lock:
            return None if self._opened_at is None else self._opened_at + self.cooldown

    def allow(self) -> bool:
        """Whether a call may be made now (in half-open, True for the one trial caller)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._trial or self._clock() - self._opened_at < self.cooldown:
                return False
            self._trial = True
            return True

    def success(self) -> None:
        """A call succeeded: the circuit closes."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial = False

    def failure(self) -> None:
        """A call failed: one more in a row; at the threshold, or on a failed trial, the circuit (re)opens."""
        with self._lock:
            self._failures += 1
            if self._trial or self._failures >= self.threshold:
                self._opened_at = self._clock()
                self._trial = False

    def release(self) -> None:
        """A call ended without saying whether the service works (a 4xx): a trial may be made again."""
        with self._lock:
            self._trial = False


class _AttemptFailed(PanServiceUnavailableError):
    """One attempt failed in a way worth retrying (internal: the caller sees the last one's reason)."""


class HttpPanVerifier:
    """:class:`PanVerifier` over the provider's JSON API, with retries and a circuit breaker.

    ``clock`` and ``sleep`` are injectable so that tests neither wait for backoffs nor cool-downs.
    """

    def __init__(
        self,
        config: PanServiceConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.config = config
        self._token = read_secret(config.token_file, "PAN service token")
        self._sleep = sleep
        self.breaker = breaker or CircuitBreaker(config.failure_threshold, config.cooldown, clock)

    def request(self, pan: str, name: str, dob: date, request_id: str) -> urllib.request.Request:
        """The HTTP request that asks about ``pan``."""
        body = {"pan": pan, "name": name, "dob": dob.isoformat()}
        return json_post(
            self.config.url, body, token=self._token, agent="c360-kyc", headers={"X-Request-Id": request_id}
        )

    def verify(self, pan: str, name: str, dob: date) -> PanAnswer:
        """Ask the provider about ``pan``; see :class:`PanVerifier`."""
        if not isinstance(pan, str) or not stdnum_pan.is_valid(pan):
            raise InvalidInputError("the PAN service is asked about valid PANs only")
        if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
            raise InvalidInputError(f"name must be a non-empty string of at most {_MAX_NAME} characters")
        if not isinstance(dob, date) or isinstance(dob, datetime):
            raise InvalidInputError(f"dob must be a date, not {type(dob).__name__}")
        request_id = uuid.uuid4().hex
        problem = ""
        for attempt in range(self.config.retries + 1):
            if not self.breaker.allow():  # asked first: an open circuit answers at once, without a backoff
                raise PanServiceUnavailableError(
                    "the PAN service's circuit is open after repeated failures"
                    + (f" (last: {problem})" if problem else "")
                )
            try:
                if attempt:
                    self._sleep(self.config.backoff(attempt))
                answer = self._attempt(stdnum_pan.compact(pan), name, dob, request_id)
            except _AttemptFailed as exc:
                self.breaker.failure()
                problem = str(exc)
                continue
            except BaseException:  # refused (4xx, unreadable), or anything unforeseen: no verdict on the service
                self.breaker.release()
                raise
            self.breaker.success()
            return answer
        raise PanServiceUnavailableError(f"the PAN service failed {self.config.retries + 1} attempt(s): {problem}")

    def _attempt(self, pan: str, name: str, dob: date, request_id: str) -> PanAnswer:
        try:
            with OPENER.open(self.request(pan, name, dob, request_id), timeout=self.config.timeout) as answer:
                raw = answer.read(_MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            body = exc.read(_MAX_ANSWER) if exc.fp is not None else b""
            exc.close()
            text = body[:300].decode("utf-8", "replace").strip()
            reason = f"PAN service answered {exc.code}" + (f": {text}" if text else "")
            if exc.code >= 500:
                raise _AttemptFailed(reason) from None
            raise PanServiceRefusedError(reason) from None
        except TimeoutError:
            raise _AttemptFailed(f"no answer within {self.config.timeout:g} s") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # refused, reset, TLS
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(cause, TimeoutError):
                raise _AttemptFailed(f"no answer within {self.config.timeout:g} s") from None
            raise _AttemptFailed(f"unreachable: {type(cause).__name__}: {cause}") from None
        return _answer(raw)


def _answer(raw: bytes) -> PanAnswer:
    try:
        data: Any = json.loads(raw)
    except ValueError:
        raise PanServiceRefusedError("the PAN service's answer is not JSON") from None
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise PanServiceRefusedError(f"the PAN service's answer has no status of {', '.join(STATUSES)}")
    name, reference = data.get("name"), data.get("reference")
    try:
        return PanAnswer(
            data["status"],
            name if isinstance(name, str) and name.strip() else None,
            str(reference) if isinstance(reference, str | int) and str(reference) else None,
        )
    except InvalidInputError as exc:
        raise PanServiceRefusedError(f"the PAN service's answer is unreadable: {exc}") from None


_OUTCOME: dict[str, tuple[Literal["pass", "fail"], str]] = {
    "valid": ("pass", "the PAN service confirms the PAN"),
    "invalid": ("fail", "the PAN service says the PAN is invalid"),
    "not_found": ("fail", "the PAN service has no such PAN"),
}


def verify_pan(
    verifier: PanVerifier,
    pan: str,
    name: str,
    dob: date,
    *,
    subject: str,
    at: datetime,
    by: str = BY,
    id: str | None = None,
) -> Verification:
    """``pan_service``: ask ``verifier`` about ``pan`` and record the answer.

    ``pass`` for a valid PAN (confidence 1; the name on record, if the provider gave one, is in the
    evidence as ``name_on_record`` for the workflow to compare with :func:`c360.resolution.identity_checks.check_name`),
    ``fail`` for invalid or not found, ``inconclusive`` for a PAN that is not even well-formed (not sent),
    and ``manual_review`` with the reason when the service gives no answer: an officer verifies by hand.
    """

    def record(result: Result, confidence: float, reason: str, evidence: dict[str, Any]) -> Verification:
        return Verification(
            id=id or new_verification_id(),
            subject=subject,
            check="pan_service",
            result=result,
            confidence=confidence,
            reason=reason,
            evidence=evidence,
            by=by,
            at=at,
        )

    if not isinstance(pan, str) or not stdnum_pan.is_valid(pan):
        return record("inconclusive", 0.0, "not sent to the PAN service: not a valid PAN", {"sent": False})
    masked = stdnum_pan.mask(pan)
    try:
        answer = verifier.verify(stdnum_pan.compact(pan), name, dob)
    except PanServiceError as exc:
        fallback = "unavailable" if isinstance(exc, PanServiceUnavailableError) else "refused"
        evidence = {"pan": masked, "sent": True, "service": fallback, "fallback": "manual"}
        return record("manual_review", 0.0, f"verify the PAN by hand: {exc}", evidence)
    result, reason = _OUTCOME[answer.status]
    evidence = {"pan": masked, "sent": True, "status": answer.status}
    if answer.name_on_record is not None:
        evidence["name_on_record"] = answer.name_on_record
    if answer.reference is not None:
        evidence["reference"] = answer.reference
    return record(result, 1.0, reason, evidence)
