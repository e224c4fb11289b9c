"""SMS through a provider's HTTP API (the standard library's :mod:`urllib`).

Each message is one JSON POST ``{"to", "from", "body", "id"}`` to the configured URL with the bearer
token and the outbox id as the ``Idempotency-Key`` header, so that a provider that honours the header
sends a re-sent message (after a crash between its answer and the outbox's mark) once. The provider's
id is the ``id`` of a JSON answer, else the outbox id.

Answers: 2xx sent; 5xx, 408, 429, a refused connection and a timeout transient; any other 4xx
permanent (the provider refuses this request and would refuse it again).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from c360.graph.errors import ConfigError
from c360.graph.outbox import OutboxMessage

from ..http_json import OPENER, json_post
from . import PermanentSendError, TransientSendError
from .config import SmsConfig
from .smtp import read_secret

_RETRYABLE_4XX = frozenset({408, 425, 429})
_MAX_ANSWER = 64 * 1024


def _reason(status: int, body: bytes) -> str:
    text = body[:300].decode("utf-8", "replace").strip()
    return f"SMS provider answered {status}" + (f": {text}" if text else "")


class HttpSmsTransport:
    """Sends ``sms`` outbox messages through the provider's JSON API."""

    def __init__(self, config: SmsConfig) -> None:
        if config.type != "http" or config.url is None or config.token_file is None or config.sender is None:
            raise ConfigError("HttpSmsTransport needs an sms config of type http")
        self.config = config
        self._url = config.url
        self._sender = config.sender
        self._token = read_secret(config.token_file, "SMS token")

    def request(self, message: OutboxMessage) -> urllib.request.Request:
        """The HTTP request that sends ``message``."""
        body = {"to": message.to, "from": self._sender, "body": message.body, "id": message.id}
        return json_post(
            self._url, body, token=self._token, agent="c360-outbox", headers={"Idempotency-Key": message.id}
        )

    def send(self, message: OutboxMessage) -> str:
        """Send ``message``; return the provider's message id."""
        try:
            with OPENER.open(self.request(message), timeout=self.config.timeout) as answer:
                raw = answer.read(_MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            body = exc.read(_MAX_ANSWER) if exc.fp is not None else b""
            exc.close()
            reason = _reason(exc.code, body)
            if exc.code >= 500 or exc.code in _RETRYABLE_4XX:
                raise TransientSendError(reason) from None
            raise PermanentSendError(reason) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # refused, timed out, TLS
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise TransientSendError(f"SMS provider unreachable: {type(cause).__name__}: {cause}") from None
        return _provider_id(raw) or message.id


def _provider_id(raw: bytes) -> str | None:
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return str(value)[:200] if isinstance(value, str | int) and str(value) else None
