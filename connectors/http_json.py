"""What the JSON-over-HTTPS adapters share (the SMS provider, the PAN verification service).

A bearer token goes only to the URL configured: https, or http on loopback; redirects are never
followed; requests are JSON POSTs with the token, the adapter's own headers and its user agent.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

#: hosts where plain http is allowed (the token does not leave the machine)
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def check_bearer_url(what: str, url: str) -> None:
    """ValueError unless ``url`` is https, or http on loopback (for pydantic validators; ``what`` names it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} url {url!r} is not an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ValueError(f"the {what} url must be https (the bearer token would cross in clear)")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed (the bearer token goes to the configured URL only): a 3xx is refused."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


#: opens requests without following redirects
OPENER = urllib.request.build_opener(_NoRedirect())


def json_post(
    url: str, body: Mapping[str, Any], *, token: str, agent: str, headers: Mapping[str, str]
) -> urllib.request.Request:
    """A JSON POST of ``body`` to ``url`` with the bearer ``token``, ``headers`` and the user agent ``agent``."""
    return urllib.request.Request(
        url,
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "Authorization": f"Bearer {token}",
            **headers,
            "User-Agent": agent,
        },
    )
