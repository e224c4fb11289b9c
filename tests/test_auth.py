"""Bearer JWTs: real RSA/EC keys, a real JWKS served over loopback, key files, and dev tokens."""

from __future__ import annotations

import base64
import json
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from c360.graph.errors import ConfigError, InvalidInputError
from c360.graphql.auth import (
    AuthConfig,
    AuthError,
    Principal,
    TokenVerifier,
    bearer_token,
    dev_secret,
    issue_dev_token,
)
from c360.graphql.policy import load_policy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ROLES = load_policy().roles
ISS, AUD = "https://idp.example.test", "c360"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return _rsa()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return _rsa()


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _jwk(public: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    return {**algorithm.to_jwk(public, as_dict=True), "kid": kid, "alg": alg, "use": "sig"}


class JwksServer:
    """A JWKS document served by a real HTTP server on 127.0.0.1, counting its fetches."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def jwks(key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Iterator[JwksServer]:
    document = {"keys": [_jwk(key.public_key(), "k1", "RS256"), _jwk(ec_key.public_key(), "e1", "ES256")]}
    with JwksServer(document) as server:
        yield server


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 600}
    claims["role"] = "data_steward"
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(private: Any, kid: str | None = "k1", alg: str = "RS256", **overrides: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(_claims(**overrides), private, algorithm=alg, headers=headers)


def _verifier(url: str | None = None, **config: Any) -> TokenVerifier:
    return TokenVerifier(AuthConfig(issuer=ISS, audience=AUD, jwks_url=url, **config), ROLES)


def _refused(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(AuthError, match=reason) as caught:
        verifier.verify(token)
    assert token not in str(caught.value)
    assert caught.value.code == "UNAUTHENTICATED"


# -- JWKS over HTTP --------------------------------------------------------------------------------


def test_a_valid_token_gives_its_subject_and_role_and_the_jwks_is_fetched_once(
    jwks: JwksServer, key: rsa.RSAPrivateKey
) -> None:
    verifier = _verifier(jwks.url)
    assert verifier.verify(_sign(key)) == Principal("alice", "data_steward", "user")
    assert verifier.verify(_sign(key, sub="bob", role="marketer")) == Principal("bob", "marketer", "user")
    assert jwks.hits == 1


def test_a_key_dropped_from_the_jwks_is_not_trusted_once_the_cache_expires(
    jwks: JwksServer, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    verifier = _verifier(jwks.url, jwks_cache_seconds=0.2)
    assert verifier.verify(_sign(key)).subject == "alice"
    jwks.document = {"keys": [_jwk(other_key.public_key(), "k2", "RS256")]}  # k1 rotated out
    time.sleep(0.3)
    assert verifier.verify(_sign(other_key, kid="k2")).subject == "alice"
    _refused(verifier, _sign(key), "no signing key .* matches the token's kid 'k1'")
    assert jwks.hits == 2


def test_an_es256_token_verifies_with_its_ec_key(jwks: JwksServer, ec_key: ec.EllipticCurvePrivateKey) -> None:
    assert _verifier(jwks.url).verify(_sign(ec_key, "e1", "ES256")).subject == "alice"


def test_an_expired_token_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    past = int(time.time()) - 3600
    _refused(_verifier(jwks.url), _sign(key, iat=past - 600, exp=past), "expired")


def test_expiry_allows_the_configured_leeway(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    just_expired = int(time.time()) - 5
    assert _verifier(jwks.url).verify(_sign(key, exp=just_expired)).subject == "alice"


def test_a_wrong_issuer_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    _refused(_verifier(jwks.url), _sign(key, iss="https://evil.example"), "issuer")


def test_a_wrong_audience_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    _refused(_verifier(jwks.url), _sign(key, aud="someone-else"), "audience")


def test_a_token_signed_by_another_key_is_refused(jwks: JwksServer, other_key: rsa.RSAPrivateKey) -> None:
    _refused(_verifier(jwks.url), _sign(other_key), "signature does not verify")


def test_a_token_naming_an_unknown_kid_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    _refused(_verifier(jwks.url), _sign(key, kid="nope"), "no signing key .* matches")


def test_a_token_without_kid_is_refused_by_a_jwks(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    _refused(_verifier(jwks.url), _sign(key, kid=None), "names no key")


@pytest.mark.parametrize("claim", ["sub", "exp", "iss", "aud"])
def test_a_token_missing_a_required_claim_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey, claim: str) -> None:
    removed: dict[str, Any] = {claim: None}
    _refused(_verifier(jwks.url), _sign(key, **removed), f"lacks the '{claim}' claim")


def test_an_empty_subject_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    _refused(_verifier(jwks.url), _sign(key, sub="  "), "subject")


def test_an_unknown_or_missing_role_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    verifier = _verifier(jwks.url)
    _refused(verifier, _sign(key, role="superuser"), "not a known role")
    _refused(verifier, _sign(key, role=None), "no 'role' claim")


def test_a_role_list_must_name_exactly_one_known_role(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    verifier = _verifier(jwks.url)
    assert verifier.verify(_sign(key, role=["kyc_officer"])).role == "kyc_officer"
    # Not "the first known role": which one would depend on the order (issue 13).
    _refused(verifier, _sign(key, role=["offline_access", "kyc_officer", "admin"]), "not a known role")
    _refused(verifier, _sign(key, role=["kyc_officer", "admin"]), "several roles")


def test_a_custom_role_claim(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    token = _sign(key, role=None, c360_roles=["marketer"])
    assert _verifier(jwks.url, role_claim="c360_roles").verify(token).role == "marketer"


def test_a_partner_token_gives_a_partner_principal(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    token = _sign(key, sub="svc-acme", role="partner", partner="acme", sources=["acme_web", "acme_pos"])
    assert _verifier(jwks.url).verify(token) == Principal(
        "svc-acme", "partner", "partner", "acme", ("acme_web", "acme_pos")
    )
    bare = _verifier(jwks.url).verify(_sign(key, sub="acme", role="partner"))
    assert (bare.partner, bare.sources) == ("acme", ("acme",))


def test_alg_none_is_refused_in_every_mode(jwks: JwksServer, tmp_path: Path) -> None:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    for alg in ("none", "None", "NONE"):
        token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(_claims())}."
        _refused(_verifier(jwks.url), token, "alg none")
        _refused(_verifier(jwks.url, dev_mode=True, dev_key_file=tmp_path / "dev.key"), token, "alg none")


def test_an_algorithm_outside_the_configured_ones_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    _refused(_verifier(jwks.url), _sign(key, alg="RS512"), "RS512 is refused")
    _refused(_verifier(jwks.url, algorithms=("ES256",)), _sign(key), "RS256 is refused")


def test_a_key_for_another_algorithm_is_refused(jwks: JwksServer, key: rsa.RSAPrivateKey) -> None:
    # kid e1 is the EC key: an RS256 token naming it must not verify against it
    _refused(_verifier(jwks.url), _sign(key, kid="e1"), "is for ES256, not RS256")


def test_garbage_is_refused(jwks: JwksServer) -> None:
    verifier = _verifier(jwks.url)
    for token in ("not-a-jwt", "a.b.c", "x" * 20_000, ""):
        with pytest.raises(AuthError):
            verifier.verify(token)


def test_an_unreachable_jwks_endpoint_is_an_auth_error(key: rsa.RSAPrivateKey) -> None:
    with JwksServer({"keys": []}) as server:
        url = server.url
    _refused(_verifier(url, jwks_timeout_seconds=2), _sign(key), "cannot be fetched")


# -- HS256 and dev mode ----------------------------------------------------------------------------


def test_hs256_is_refused_outside_dev_mode(jwks: JwksServer, tmp_path: Path) -> None:
    secret = dev_secret(tmp_path / "dev.key")
    token = jwt.encode(_claims(), secret, algorithm="HS256")
    _refused(_verifier(jwks.url), token, "dev mode only")


def test_dev_mode_accepts_hs256_with_the_dev_secret_and_still_the_configured_keys(
    jwks: JwksServer, key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    config = AuthConfig(issuer=ISS, audience=AUD, jwks_url=jwks.url, dev_mode=True, dev_key_file=tmp_path / "dev.key")
    verifier = TokenVerifier(config, ROLES)
    token = issue_dev_token(config, "approval_manager", subject="carol")
    assert verifier.verify(token) == Principal("carol", "approval_manager", "user")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert verifier.verify(_sign(key)).role == "data_steward"
    # another secret, or another HMAC size, does not pass
    _refused(verifier, jwt.encode(_claims(), b"x" * 32, algorithm="HS256"), "signature does not verify")
    _refused(
        verifier, jwt.encode(_claims(), dev_secret(tmp_path / "dev.key") * 2, algorithm="HS512"), "HS512 is refused"
    )


def test_dev_tokens_expire(tmp_path: Path) -> None:
    config = AuthConfig(dev_mode=True, dev_key_file=tmp_path / "dev.key", leeway_seconds=0)
    token = issue_dev_token(config, "admin", ttl=1)
    verifier = TokenVerifier(config, ROLES)
    assert verifier.verify(token).role == "admin"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1
    assert (claims["iss"], claims["aud"], claims["sub"]) == ("c360-dev", "c360", "dev")


def test_issue_dev_token_is_refused_outside_dev_mode_and_for_unknown_roles(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="dev mode only"):
        issue_dev_token(AuthConfig(dev_key_file=tmp_path / "dev.key"), "admin")
    config = AuthConfig(dev_mode=True, dev_key_file=tmp_path / "dev.key")
    with pytest.raises(InvalidInputError, match="unknown role 'root'"):
        issue_dev_token(config, "root")
    with pytest.raises(InvalidInputError, match="positive"):
        issue_dev_token(config, "admin", ttl=0)


def test_the_dev_secret_is_32_random_bytes_in_a_0600_file_made_once(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dev.key"
    first = dev_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_secret(path) == first
    assert dev_secret(tmp_path / "other.key") != first
    assert [p.name for p in path.parent.iterdir()] == ["dev.key"]  # no temporary file left


def test_a_truncated_dev_secret_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        dev_secret(path)


def test_concurrent_first_use_agrees_on_one_dev_secret(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    seen: list[bytes] = []
    threads = [threading.Thread(target=lambda: seen.append(dev_secret(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1


# -- key files -------------------------------------------------------------------------------------


def test_a_pem_public_key_file(tmp_path: Path, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(pem)
    verifier = _verifier(key_file=tmp_path / "pub.pem")
    assert verifier.verify(_sign(key, kid=None)).subject == "alice"
    assert verifier.verify(_sign(key, kid="any")).subject == "alice"
    _refused(verifier, _sign(other_key, kid=None), "signature does not verify")
    _refused(verifier, _sign(key, kid=None, exp=int(time.time()) - 3600), "expired")


def test_a_jwks_key_file(tmp_path: Path, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    document = {"keys": [_jwk(other_key.public_key(), "old", "RS256"), _jwk(key.public_key(), "k1", "RS256")]}
    (tmp_path / "jwks.json").write_text(json.dumps(document))
    verifier = _verifier(key_file=tmp_path / "jwks.json")
    assert verifier.verify(_sign(key)).subject == "alice"
    assert verifier.verify(_sign(other_key, kid="old")).subject == "alice"
    assert verifier.verify(_sign(key, kid=None)).subject == "alice"  # no kid: every key is tried
    _refused(verifier, _sign(key, kid="old"), "signature does not verify")
    _refused(verifier, _sign(key, kid="unknown"), "no configured key")


def test_unusable_configurations_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no way to verify"):
        _verifier()
    (tmp_path / "bad.pem").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        _verifier(key_file=tmp_path / "bad.pem")
    (tmp_path / "oct.json").write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0", "kid": "s"}]}))
    with pytest.raises(ConfigError, match="symmetric"):
        _verifier(key_file=tmp_path / "oct.json")
    private = jwt.algorithms.RSAAlgorithm.to_jwk(_rsa(), as_dict=True)
    (tmp_path / "private.json").write_text(json.dumps({"keys": [private]}))
    with pytest.raises(ConfigError, match="private key"):
        _verifier(key_file=tmp_path / "private.json")
    with pytest.raises(ConfigError, match="cannot read the key file"):
        _verifier(key_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="only asymmetric"):
        _verifier("http://127.0.0.1:9/jwks", algorithms=("HS256",))
    with pytest.raises(ConfigError, match="dev_key_file"):
        _verifier(dev_mode=True)


# -- the Authorization header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc.def.ghi  ", "abc.def.ghi"),
        ("BEARER abc", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer a b", None),
        ("abc.def.ghi", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_a_verified_token_is_remembered_until_it_expires(tmp_path: Path) -> None:
    config = AuthConfig(dev_mode=True, dev_key_file=tmp_path / "dev.key", leeway_seconds=0)
    verifier = TokenVerifier(config, ["marketer"])
    token = issue_dev_token(config, "marketer", ttl=1, roles=["marketer"])
    assert verifier.verify(token).role == "marketer"
    assert verifier.verify(token).role == "marketer"  # from the cache
    # Past exp (whole seconds, at most one away): the cache does not keep it alive.
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    while time.time() < expires + 0.05:
        time.sleep(0.05)
    with pytest.raises(AuthError):
        verifier.verify(token)
