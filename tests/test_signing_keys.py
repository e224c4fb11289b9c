"""The consent receipts' signing keys: a mode-0600 key file, ``c360 keys rotate --signing``, the served JWKS."""

from __future__ import annotations

import contextlib
import json
import logging
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from c360.graph.consent import ConsentEvent, Notice
from c360.graph.errors import ConfigError
from c360.graph.receipts import Controller, SigningKeys, receipt_claims, verify, verify_chain
from fastapi.testclient import TestClient
from jwcrypto import jwk, jws
from test_cli import c360

from c360.deps import build_app, build_store, signing_jwks, signing_key_file, signing_keys
from c360.settings import ConsentSettings, Settings, load_settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOTICE = Notice.of_text("privacy", "3", "en", "We send you offers by email.")
CONTROLLER = Controller("Example Retail Ltd", "Data Protection Officer", "privacy@example.com")


def receipt(keys: SigningKeys, n: int, previous: str | None = None) -> str:
    event = ConsentEvent(
        id=f"ev{n}",
        record_uid="shop|42",
        purpose="marketing",
        channel="email",
        status="granted",
        captured_at=T0 + timedelta(hours=n),
        actor_kind="customer",
        actor_id="self",
        source="shop",
        method="web_form",
        notice=NOTICE,
        jurisdiction="GB",
    )
    claims = receipt_claims(
        event,
        controller=CONTROLLER,
        principal_id="cust-1",
        policy_url="https://example.com/privacy",
        pii_categories=["contact details"],
        receipt_id=f"rcpt-{n}",
        issued_at=event.captured_at,
        previous=previous,
    )
    return keys.sign(claims)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def served(home: Path) -> Iterator[TestClient]:
    """The app ``c360 serve`` builds in ``home`` (its ``.c360`` data directory), in-process."""
    with contextlib.chdir(home):
        settings = load_settings()
        store = build_store(settings)
        try:
            with TestClient(build_app(settings, store)) as client:
                yield client
        finally:
            store.close()


def test_the_key_file_is_made_with_mode_0600_on_first_use_then_read(tmp_path: Path) -> None:
    one = Settings(data_dir=tmp_path / "one")
    path = tmp_path / "one" / "signing-keys.json"
    assert signing_key_file(one) == path and not path.exists()
    keys = signing_keys(one)
    assert path.is_file() and mode(path) == 0o600
    assert keys.current == "k1" and len(keys.secrets["k1"]) == 32
    assert signing_keys(one) == keys  # made once, then read
    assert signing_keys(Settings(data_dir=tmp_path / "two")).secrets != keys.secrets  # no built-in key
    assert keys.secrets["k1"].hex() not in repr(keys)
    # A file named by consent.signing_key_file must exist: a missing mounted secret is not replaced.
    named = Settings(data_dir=tmp_path / "one", consent=ConsentSettings(signing_key_file=tmp_path / "s" / "k.json"))
    with pytest.raises(ConfigError, match="cannot read the signing key file"):
        signing_keys(named)
    assert not (tmp_path / "s" / "k.json").exists()
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "k.json").write_bytes(path.read_bytes())
    (tmp_path / "s" / "k.json").chmod(0o400)
    assert signing_keys(named) == keys


@pytest.mark.parametrize("unsafe", [0o640, 0o604, 0o644])
def test_a_key_file_group_or_others_may_read_is_refused(tmp_path: Path, unsafe: int) -> None:
    settings = Settings(data_dir=tmp_path)
    keys = signing_keys(settings)
    path = signing_key_file(settings)
    path.chmod(unsafe)
    with pytest.raises(ConfigError, match=f"signing key file .* may be read by others \\(mode {unsafe:04o}\\)"):
        signing_keys(settings)
    with pytest.raises(ConfigError, match="chmod 600"):
        signing_jwks(settings)  # the server does not start on it
    path.chmod(0o600)
    assert signing_keys(settings) == keys


def test_a_receipt_signed_before_a_rotation_verifies_against_the_served_jwks(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / ".c360")
    k1 = signing_keys(settings)
    old = receipt(k1, 0)
    with served(tmp_path) as client:
        first = client.get("/.well-known/jwks.json")
        assert first.status_code == 200 and first.headers["content-type"] == "application/json"
        assert first.headers["cache-control"] == "public, max-age=300"
        assert [k["kid"] for k in first.json()["keys"]] == ["k1"]
        assert client.get("/.well-known/jwks.json", headers={"If-None-Match": first.headers["etag"]}).status_code == 304

        refused = c360("keys", "rotate", cwd=tmp_path, ok=False)
        assert refused.returncode == 1 and "--signing" in refused.stderr
        rotated = c360("keys", "rotate", "--signing", "--by", "ops", cwd=tmp_path)
        assert "signing key k2 is current" in rotated.stdout and "k1, k2" in rotated.stdout
        assert mode(signing_key_file(settings)) == 0o600

        # the running server serves the new key without a restart; the old one stays
        again = client.get("/.well-known/jwks.json", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 200 and again.headers["etag"] != first.headers["etag"]
        published = again.json()
    assert [k["kid"] for k in published["keys"]] == ["k1", "k2"]
    assert published["keys"][0] == first.json()["keys"][0]
    for key in published["keys"]:  # public keys only: never the private part
        assert "d" not in key and set(key) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert "secret" not in json.dumps(published)

    k2 = signing_keys(settings)
    assert (k2.current, k2.secrets["k1"]) == ("k2", k1.secrets["k1"])
    new = receipt(k2, 1, previous=old)
    assert verify(old, published)["jti"] == "rcpt-0"
    assert verify(new, published)["jti"] == "rcpt-1"
    assert verify_chain([old, new], published).ok

    # Another JOSE library, with only the served JWKS: each receipt verifies under the key its kid names.
    keyset = jwk.JWKSet.from_json(json.dumps(published))
    for token, kid, jti in ((old, "k1", "rcpt-0"), (new, "k2", "rcpt-1")):
        parsed = jws.JWS()
        parsed.deserialize(token)
        assert parsed.jose_header["kid"] == kid
        parsed.allowed_algs = ["EdDSA"]
        parsed.verify(keyset.get_key(kid))
        assert json.loads(parsed.payload)["jti"] == jti

    # The rotation is audited, by whom and to which key, and the trail still verifies.
    entries = [json.loads(line) for line in (tmp_path / ".c360" / "audit.log").read_text().splitlines()]
    rotations = [e for e in entries if e.get("action") == "rotate_signing_key"]
    assert [(e["outcome"], e["actor"], e["detail"]) for e in rotations] == [("ok", "ops", "current k2")]
    assert c360("audit", "verify", cwd=tmp_path).returncode == 0


def test_the_served_jwks_outlives_a_key_file_that_becomes_unreadable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    published = signing_jwks(settings)
    before = published()
    signing_key_file(settings).chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="c360.graph.receipts"):
        assert published() == before  # the keys read before are still the service's
    assert "may be read by others" in caplog.text
