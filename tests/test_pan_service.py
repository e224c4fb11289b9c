"""The PAN verification service adapter against a fake provider on 127.0.0.1 (threaded http.server)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from c360.connectors.pan_service import (
    CircuitBreaker,
    HttpPanVerifier,
    PanAnswer,
    PanServiceConfig,
    PanServiceRefusedError,
    PanServiceUnavailableError,
    verify_pan,
)
from c360.graph.errors import ConfigError, InvalidInputError
from fake_pan import HANG, Provider, Reply, serve_provider
from pydantic import ValidationError

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DOB = date(1985, 3, 14)
PAN = "ABCPS1234D"
TOKEN = "s3cret-token"


@pytest.fixture
def provider() -> Iterator[tuple[Provider, str]]:
    with serve_provider() as served:
        yield served


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "pan.token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


def _verifier(
    url: str, token_file: Path, clock: Clock | None = None, **config: Any
) -> tuple[HttpPanVerifier, list[float]]:
    sleeps: list[float] = []
    settings: dict[str, Any] = {"url": url, "token_file": token_file, "timeout": 2, **config}
    verifier = HttpPanVerifier(PanServiceConfig(**settings), clock=clock or Clock(), sleep=sleeps.append)
    return verifier, sleeps


def _state(verifier: HttpPanVerifier) -> str:
    return verifier.breaker.state


def test_a_valid_answer_and_what_is_sent(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    state.default = Reply(200, {"status": "valid", "name": "RAHUL SHARMA", "reference": "ref-1"})
    verifier, sleeps = _verifier(url, token_file)
    answer = verifier.verify("abcps 1234 d", "Rahul Sharma", DOB)
    assert answer == PanAnswer("valid", "RAHUL SHARMA", "ref-1")
    [(path, headers, body)] = state.received
    assert path == "/v1/pan/verify"
    assert body == {"pan": PAN, "name": "Rahul Sharma", "dob": "1985-03-14"}
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Accept"] == "application/json"
    assert len(headers["X-Request-Id"]) == 32
    assert sleeps == []


@pytest.mark.parametrize(("status", "result"), [("valid", "pass"), ("invalid", "fail"), ("not_found", "fail")])
def test_verify_pan_records_the_answer(
    provider: tuple[Provider, str], token_file: Path, status: str, result: str
) -> None:
    state, url = provider
    state.default = Reply(200, {"status": status, "name": "RAHUL SHARMA"})
    verifier, _ = _verifier(url, token_file)
    v = verify_pan(verifier, PAN, "Rahul Sharma", DOB, subject="app-1", at=AT)
    assert (v.check, v.result, v.subject, v.at) == ("pan_service", result, "app-1", AT)
    assert v.evidence["status"] == status and v.evidence["pan"] == "ABCPSXXXXD"
    assert v.evidence["name_on_record"] == "RAHUL SHARMA"


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_a_4xx_is_not_retried(provider: tuple[Provider, str], token_file: Path, code: int) -> None:
    state, url = provider
    state.default = Reply(code, {"error": "bad request"})
    verifier, sleeps = _verifier(url, token_file, retries=3)
    with pytest.raises(PanServiceRefusedError, match=str(code)):
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert len(state.received) == 1 and sleeps == []
    assert _state(verifier) == "closed"


def test_5xx_is_retried_with_backoff_then_succeeds(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    state.script = [Reply(503), Reply(500)]
    verifier, sleeps = _verifier(url, token_file, retries=2, backoff_base=0.5, backoff_cap=8)
    assert verifier.verify(PAN, "Rahul Sharma", DOB).status == "valid"
    assert len(state.received) == 3
    assert sleeps == [0.5, 1.0]
    assert len({headers["X-Request-Id"] for _, headers, _ in state.received}) == 1  # one verification
    assert _state(verifier) == "closed"


def test_backoff_doubles_up_to_the_cap(token_file: Path) -> None:
    config = PanServiceConfig(url="https://pan.example/v1", token_file=token_file, backoff_base=1, backoff_cap=3)
    assert [config.backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]


def test_exhausted_retries_fall_back_to_manual_review(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    state.default = Reply(502, {"error": "upstream"})
    verifier, sleeps = _verifier(url, token_file, retries=2, failure_threshold=10)
    with pytest.raises(PanServiceUnavailableError, match="3 attempt"):
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert len(state.received) == 3 and len(sleeps) == 2
    v = verify_pan(verifier, PAN, "Rahul Sharma", DOB, subject="app-1", at=AT)
    assert (v.result, v.confidence) == ("manual_review", 0.0)
    assert "by hand" in v.reason and "502" in v.reason
    assert v.evidence["fallback"] == "manual" and v.evidence["service"] == "unavailable"


def test_a_timeout_is_retried(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    state.script = [Reply(HANG)]
    verifier, sleeps = _verifier(url, token_file, timeout=0.2, retries=1)
    assert verifier.verify(PAN, "Rahul Sharma", DOB).status == "valid"
    assert len(state.received) == 2 and sleeps == [0.5]


def test_a_timeout_without_retries_is_unavailable(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    state.script = [Reply(HANG)]
    verifier, _ = _verifier(url, token_file, timeout=0.2, retries=0)
    with pytest.raises(PanServiceUnavailableError, match=r"no answer within 0\.2 s"):
        verifier.verify(PAN, "Rahul Sharma", DOB)


def test_a_refused_connection_is_retried_and_unavailable(token_file: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    verifier, sleeps = _verifier(f"http://127.0.0.1:{port}/v1", token_file, retries=2)
    with pytest.raises(PanServiceUnavailableError, match="unreachable"):
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert len(sleeps) == 2


def test_the_breaker_opens_after_n_failures_and_no_request_reaches_the_server(
    provider: tuple[Provider, str], token_file: Path
) -> None:
    state, url = provider
    state.default = Reply(500)
    clock = Clock()
    verifier, _ = _verifier(url, token_file, clock, retries=0, failure_threshold=3, cooldown=30)
    for _ in range(3):
        with pytest.raises(PanServiceUnavailableError, match="1 attempt"):
            verifier.verify(PAN, "Rahul Sharma", DOB)
    assert _state(verifier) == "open" and len(state.received) == 3
    clock.now += 29.9
    for _ in range(5):
        with pytest.raises(PanServiceUnavailableError, match="circuit is open"):
            verifier.verify(PAN, "Rahul Sharma", DOB)
    v = verify_pan(verifier, PAN, "Rahul Sharma", DOB, subject="app-1", at=AT)
    assert v.result == "manual_review" and "circuit is open" in v.reason
    assert len(state.received) == 3


def test_an_open_breaker_stops_the_retries_of_a_call(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    state.default = Reply(503)
    verifier, sleeps = _verifier(url, token_file, retries=5, failure_threshold=2)
    with pytest.raises(PanServiceUnavailableError, match="circuit is open"):
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert len(state.received) == 2
    assert sleeps == [0.5]  # no backoff before the refusal


def test_half_open_trial_recovers_or_reopens(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    state.default = Reply(500)
    clock = Clock()
    verifier, _ = _verifier(url, token_file, clock, retries=0, failure_threshold=2, cooldown=30)
    for _ in range(2):
        with pytest.raises(PanServiceUnavailableError):
            verifier.verify(PAN, "Rahul Sharma", DOB)
    clock.now += 30
    assert _state(verifier) == "half_open"
    with pytest.raises(PanServiceUnavailableError, match="1 attempt"):  # the trial fails: open again
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert len(state.received) == 3 and _state(verifier) == "open"
    with pytest.raises(PanServiceUnavailableError, match="circuit is open"):
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert len(state.received) == 3
    clock.now += 30
    state.default = Reply(200, {"status": "valid"})
    assert verifier.verify(PAN, "Rahul Sharma", DOB).status == "valid"  # the trial succeeds: closed
    assert _state(verifier) == "closed"
    state.default = Reply(500)
    with pytest.raises(PanServiceUnavailableError, match="1 attempt"):  # counting starts again
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert _state(verifier) == "closed" and len(state.received) == 5


def test_half_open_lets_one_trial_through_at_a_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10, clock)
    breaker.failure()
    assert not breaker.allow()
    clock.now += 10
    assert breaker.allow()
    assert not breaker.allow()  # another caller while the trial runs
    breaker.release()  # the trial said nothing about the service (a 4xx)
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


@pytest.mark.parametrize("raw", [b"not json", b'{"status": "perhaps"}', b"[1, 2]"])
def test_an_unreadable_answer_is_refused_and_manual_review(
    provider: tuple[Provider, str], token_file: Path, raw: bytes
) -> None:
    state, url = provider
    state.default = Reply(200, raw)
    verifier, _ = _verifier(url, token_file, retries=2)
    with pytest.raises(PanServiceRefusedError):
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert len(state.received) == 1
    v = verify_pan(verifier, PAN, "Rahul Sharma", DOB, subject="app-1", at=AT)
    assert v.result == "manual_review" and v.evidence["service"] == "refused"


def test_an_invalid_pan_is_not_sent(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    verifier, _ = _verifier(url, token_file)
    v = verify_pan(verifier, "ABCXS1234D", "Rahul Sharma", DOB, subject="app-1", at=AT)
    assert v.result == "inconclusive" and v.evidence == {"sent": False}
    with pytest.raises(InvalidInputError):
        verifier.verify("ABCXS1234D", "Rahul Sharma", DOB)
    with pytest.raises(InvalidInputError):
        verifier.verify(PAN, " ", DOB)
    assert state.received == []


def test_config_validation(token_file: Path) -> None:
    ok = PanServiceConfig(url="https://pan.example/v1/verify", token_file=token_file)
    assert (ok.retries, ok.failure_threshold) == (2, 5)
    assert PanServiceConfig(url="http://localhost:8080/v1", token_file=token_file).url.startswith("http:")
    for bad in (
        {"url": "http://pan.example/v1"},  # the token would cross in clear
        {"url": "ftp://pan.example/v1"},
        {"url": "https://pan.example/v1", "token": "inline"},  # extra=forbid: secrets only from files
        {"url": "https://pan.example/v1", "backoff_base": 5, "backoff_cap": 1},
        {"url": "https://pan.example/v1", "timeout": 0},
        {"url": "https://pan.example/v1", "failure_threshold": 0},
    ):
        with pytest.raises(ValidationError):
            PanServiceConfig(token_file=token_file, **bad)
    with pytest.raises(ConfigError, match="token"):
        HttpPanVerifier(PanServiceConfig(url="https://pan.example/v1", token_file=token_file.parent / "missing"))
    assert all(f.description for f in PanServiceConfig.model_fields.values())


def test_a_redirect_is_not_followed(provider: tuple[Provider, str], token_file: Path) -> None:
    state, url = provider
    state.default = Reply(302, {}, {"Location": "/elsewhere"})
    verifier, sleeps = _verifier(url, token_file, retries=2)
    with pytest.raises(PanServiceRefusedError, match="302"):
        verifier.verify(PAN, "Rahul Sharma", DOB)
    assert len(state.received) == 1 and sleeps == []
