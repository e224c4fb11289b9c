"""The notification transports: the SMS HTTP adapter against a fake provider on loopback (a real SMS gateway
lives outside this machine), the e-mail the SMTP adapter builds, and the transports' settings."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from c360.connectors.notify import (
    NotifyConfig,
    OutboxConfig,
    PermanentSendError,
    SmsConfig,
    SmtpConfig,
    TransientSendError,
    build_transports,
)
from c360.connectors.notify.sms import HttpSmsTransport
from c360.connectors.notify.smtp import SmtpTransport, message_id
from c360.graph.errors import ConfigError
from c360.graph.outbox import OutboxMessage
from pydantic import ValidationError

T = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SMS = OutboxMessage("case-assigned|K7|agent-3", "sms", "+447700900123", "Case K7 is yours", "case_assigned", T)


@dataclass
class Provider:
    """What the fake provider answers next and what it received."""

    status: int = 200
    answer: bytes = b'{"id": "SM-1"}'
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)


@pytest.fixture
def provider() -> Iterator[tuple[Provider, str]]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((self.path, dict(self.headers.items()), json.loads(body)))
            time.sleep(state.delay)
            self.send_response(state.status)
            for k, v in state.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that timed out and left: nothing to report

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1/messages"
    finally:
        server.shutdown()
        server.server_close()


def sms_config(tmp_path: Path, url: str, **kw: Any) -> SmsConfig:
    token = tmp_path / "sms-token"
    token.write_text("tok-123\n")
    return SmsConfig(type="http", url=url, token_file=token, sender="+447700900000", **kw)


def test_an_sms_is_posted_as_json_with_the_token_and_the_outbox_id_as_idempotency_key(
    provider: tuple[Provider, str], tmp_path: Path
) -> None:
    state, url = provider
    transport = HttpSmsTransport(sms_config(tmp_path, url))
    assert transport.send(SMS) == "SM-1"
    [(path, headers, body)] = state.received
    assert path == "/v1/messages"
    assert body == {"to": "+447700900123", "from": "+447700900000", "body": "Case K7 is yours", "id": SMS.id}
    assert headers["Authorization"] == "Bearer tok-123"
    assert headers["Idempotency-Key"] == SMS.id
    assert headers["Content-Type"].startswith("application/json")
    state.answer = b"accepted"  # no JSON id: the outbox id stands for it
    assert transport.send(SMS) == SMS.id


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, PermanentSendError),
        (422, PermanentSendError),
        (429, TransientSendError),
        (500, TransientSendError),
        (503, TransientSendError),
    ],
)
def test_provider_answers_are_permanent_or_transient(
    provider: tuple[Provider, str], tmp_path: Path, status: int, error: type[Exception]
) -> None:
    state, url = provider
    state.status, state.answer = status, b'{"error": "invalid number"}'
    with pytest.raises(error, match=str(status)) as caught:
        HttpSmsTransport(sms_config(tmp_path, url)).send(SMS)
    assert "invalid number" in str(caught.value)


def test_a_redirect_is_not_followed_and_refused(provider: tuple[Provider, str], tmp_path: Path) -> None:
    state, url = provider
    state.status, state.headers = 307, {"Location": "http://127.0.0.1:9/steal"}
    with pytest.raises(PermanentSendError, match="307"):
        HttpSmsTransport(sms_config(tmp_path, url)).send(SMS)
    assert len(state.received) == 1


def test_a_slow_provider_times_out_as_a_transient_failure(provider: tuple[Provider, str], tmp_path: Path) -> None:
    state, url = provider
    state.delay = 1.0
    with pytest.raises(TransientSendError, match="unreachable"):
        HttpSmsTransport(sms_config(tmp_path, url, timeout=0.2)).send(SMS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_provider_listening_is_a_transient_failure(tmp_path: Path) -> None:
    with pytest.raises(TransientSendError, match=r"(?i)refused"):
        HttpSmsTransport(sms_config(tmp_path, f"http://127.0.0.1:{free_port()}/")).send(SMS)


def test_no_smtp_server_listening_is_a_transient_failure() -> None:
    config = SmtpConfig(host="127.0.0.1", port=free_port(), from_address="c360@example.com", timeout=2)
    mail = OutboxMessage("m1", "email", "ann@example.com", "Hi", "case_assigned", T, subject="Hi")
    with pytest.raises(TransientSendError, match=r"127\.0\.0\.1"):
        SmtpTransport(config).send(mail)


def test_the_email_has_a_stable_message_id_its_date_and_utf8_text() -> None:
    transport = SmtpTransport(SmtpConfig(from_address="notifications@example.com"))
    created = datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    message = OutboxMessage(
        "consent-receipt|ev-1",
        "email",
        "zoe@example.com",
        "Grüße, Zoë",
        "consent_receipt",
        created,
        subject="Quittung ✓",
    )
    mail = transport.build(message)
    assert mail["Message-ID"] == transport.build(message)["Message-ID"] == message_id(message.id, "example.com")
    assert mail["Message-ID"] != message_id("consent-receipt|ev-2", "example.com")
    assert mail["Message-ID"].endswith("@example.com>")
    assert (mail["From"], mail["To"], mail["Subject"]) == ("notifications@example.com", "zoe@example.com", "Quittung ✓")
    assert parsedate_to_datetime(mail["Date"]) == created
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert mail.get_content().rstrip("\n") == "Grüße, Zoë"
    mail.as_bytes().decode("ascii")  # 7-bit on the wire: any SMTP server takes it


def test_transports_are_built_only_where_configured(tmp_path: Path) -> None:
    assert build_transports(NotifyConfig()) == {}  # the default sends nothing: messages stay queued
    config = NotifyConfig(
        email=SmtpConfig(from_address="c360@example.com"), sms=sms_config(tmp_path, "https://sms.example.com/v1")
    )
    assert sorted(build_transports(config)) == ["email", "sms"]
    with pytest.raises(ConfigError, match="token"):
        HttpSmsTransport(
            SmsConfig(type="http", url="https://sms.example.com", token_file=tmp_path / "none", sender="c360")
        )
    password = tmp_path / "pw"
    password.write_text("secret\n")
    smtp = SmtpConfig(
        host="smtp.example.com",
        port=587,
        starttls=True,
        username="c360",
        password_file=password,
        from_address="c360@example.com",
    )
    assert SmtpTransport(smtp)._password == "secret"


@pytest.mark.parametrize(
    ("cls", "fields", "problem"),
    [
        (SmtpConfig, {"from_address": "c360@example.com", "password": "x"}, "Extra inputs"),
        (SmtpConfig, {"from_address": "not an address"}, "not an address"),
        (SmtpConfig, {"from_address": "c@example.com", "starttls": True, "ssl": True}, "not both"),
        (SmtpConfig, {"from_address": "c@example.com", "username": "c360"}, "go together"),
        (
            SmtpConfig,
            {"from_address": "c@example.com", "host": "smtp.example.com", "username": "c", "password_file": "/run/pw"},
            "in clear",
        ),
        (SmtpConfig, {"from_address": "c@example.com", "port": 0}, "greater than"),
        (SmsConfig, {"type": "http"}, "needs url"),
        (SmsConfig, {"type": "http", "url": "http://sms.example.com", "token_file": "/t", "sender": "c360"}, "https"),
        (
            SmsConfig,
            {"type": "http", "url": "https://sms.example.com", "token_file": "/t", "sender": "too long sender"},
            "sender",
        ),
        (SmsConfig, {"type": "carrier-pigeon"}, "none"),
        (OutboxConfig, {"backoff_base": 60, "backoff_cap": 30}, "at least backoff_base"),
        (OutboxConfig, {"max_attempts": 0}, "greater than"),
        (
            NotifyConfig,
            {"email": {"from_address": "c@example.com", "timeout": 30}, "outbox": {"lease_seconds": 60}},
            "four transport timeouts",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_reason(cls: type[Any], fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        cls.model_validate(fields)


def test_the_retry_policy_of_the_settings() -> None:
    policy = OutboxConfig(max_attempts=5, backoff_base=30, backoff_cap=100).retry_policy()
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 100, 100]
    assert policy.retry_at(4, T) == T + timedelta(seconds=100)
    assert policy.retry_at(5, T) is None
