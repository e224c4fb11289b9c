"""Authentication: bearer JWTs verified against configured public keys, and local dev tokens.

Production tokens are signed with an asymmetric key (RS256 or ES256 by default) that the verifier
finds in a JWKS endpoint (fetched and cached by ``jwt.PyJWKClient``; tokens must name their key with
``kid``), or in a local file (a PEM public key or a JWKS document). Every token must carry ``exp``,
``iss``, ``aud``, ``sub`` and exactly one known role (a list of several, or with an unknown one, is
refused). Unsigned (``alg: none``) and HMAC tokens are refused, except that in dev mode HS256 tokens
signed with the local dev secret are accepted as well; the secret is 32 random bytes in a file of
mode 0600, made on first use. Error messages never echo the token.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from c360.graph.errors import ConfigError, InvalidInputError
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509 import load_pem_x509_certificate

from .policy import load_policy
from .principal import AuthError, ForbiddenError, Principal

__all__ = [
    "DEV_SECRET_BYTES",
    "MAX_TOKEN_LENGTH",
    "PARTNER_ROLE",
    "AuthConfig",
    "AuthError",
    "ForbiddenError",
    "Principal",
    "TokenVerifier",
    "bearer_token",
    "dev_secret",
    "issue_dev_token",
]

#: The role a partner's token carries; its principal is of kind "partner".
PARTNER_ROLE = "partner"
#: Longest token accepted (bytes); a real one is well under 4 KiB.
MAX_TOKEN_LENGTH = 16 * 1024
#: Length of the dev secret, in bytes.
DEV_SECRET_BYTES = 32

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512", "secp256k1": "ES256K"}


#: how long, at most, a verified token is taken as verified again without checking its signature
VERIFIED_CACHE_SECONDS = 60.0
#: how many verified tokens are remembered
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Where the verification keys are and what a valid token must say.

    ``key_file`` holds a PEM public key (or certificate) or a JWKS JSON document. ``role_claim`` names
    the claim with the role: a string, or a list naming exactly one role (repeats allowed). A list
    with several roles, or with an entry that is not a known role, is refused (401): which role
    counted would otherwise depend on the order, or on what an unknown role meant. An identity
    provider that lists other applications' roles in ``roles`` should map c360's into a claim of
    its own (``role_claim: c360_role``).
    """

    issuer: str = "c360-dev"
    audience: str = "c360"
    jwks_url: str | None = None
    key_file: Path | None = None
    dev_mode: bool = False
    dev_key_file: Path | None = None
    role_claim: str = "role"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_seconds: int = 30
    token_ttl_seconds: int = 3600
    jwks_cache_seconds: float = 300.0
    jwks_timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class _Key:
    """A local verification key: its ``kid`` (None matches any) and the algorithms it may verify."""

    kid: str | None
    key: Any  # a PyJWK (bound to its algorithm) or a cryptography public key
    algorithms: frozenset[str]


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if there is none."""
    if not authorization_header:
        return None
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token.split(maxsplit=1)) != 1:
        return None
    return token


def dev_secret(path: Path) -> bytes:
    """The dev HS256 secret in ``path``; made (32 random bytes, mode 0600, atomically) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dev-secret-")  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(DEV_SECRET_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # fails if another process made it first: theirs wins
            except FileExistsError:
                pass
            except OSError:  # no hard links on this file system: a rename is atomic too
                if not path.exists():
                    os.replace(tmp, path)
                    tmp = ""
        finally:
            if tmp:
                os.unlink(tmp)
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the dev secret {path}: {exc.strerror}") from exc
    if len(secret) < DEV_SECRET_BYTES:
        raise ConfigError(f"the dev secret {path} is shorter than {DEV_SECRET_BYTES} bytes; delete it to renew")
    return secret


def issue_dev_token(
    config: AuthConfig,
    role: str,
    subject: str = "dev",
    ttl: int | None = None,
    *,
    roles: Collection[str] | None = None,
    partner: str | None = None,
    sources: Sequence[str] = (),
) -> str:
    """An HS256 token signed with the dev secret, valid for ``ttl`` seconds (default: the config's).

    ``roles`` are the known roles (default: those of the bundled policy). Only in dev mode.
    """
    if not config.dev_mode or config.dev_key_file is None:
        raise InvalidInputError("dev tokens can be issued in dev mode only (with a dev key file)")
    if roles is None:
        roles = load_policy().roles
    if role not in roles:
        raise InvalidInputError(f"unknown role {role!r}; known roles: {', '.join(sorted(roles))}")
    if not subject:
        raise InvalidInputError("the subject of a token cannot be empty")
    lifetime = config.token_ttl_seconds if ttl is None else ttl
    if lifetime <= 0:
        raise InvalidInputError("a token's lifetime must be positive")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": config.issuer,
        "aud": config.audience,
        "sub": subject,
        "iat": now,
        "exp": now + lifetime,
        config.role_claim: role,
    }
    if partner is not None:
        claims["partner"] = partner
    if sources:
        claims["sources"] = list(sources)
    return jwt.encode(claims, dev_secret(config.dev_key_file), algorithm="HS256")


def _algorithms_of(key: Any) -> frozenset[str]:
    """The JWS algorithms a public key can verify."""
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        return frozenset({alg}) if alg else frozenset()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


def _load_key_file(path: Path) -> list[_Key]:
    """The keys of a PEM public key or certificate, or of a JWKS (or single JWK) JSON file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from exc
    if data.lstrip().startswith(b"{"):
        try:
            document = json.loads(data)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            raw = document.get("keys") if "keys" in document else [document]
            if isinstance(raw, list) and any(isinstance(k, dict) and "d" in k for k in raw):
                raise ConfigError(f"the key file {path} holds a private key; give public keys only")
            keys = list(jwt.PyJWKSet.from_dict(document).keys) if "keys" in document else [jwt.PyJWK(document)]
        except (ValueError, jwt.PyJWTError) as exc:
            raise ConfigError(f"the key file {path} is not a usable JWKS or JWK: {exc}") from exc
        loaded = [_Key(k.key_id, k, frozenset({k.algorithm_name})) for k in keys if k.public_key_use in ("sig", None)]
        if any(k.algorithm_name.startswith("HS") for k in keys):
            raise ConfigError(f"the key file {path} holds a symmetric (oct) key; use public keys only")
    else:
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                public: Any = load_pem_x509_certificate(data).public_key()
            else:
                public = load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(f"the key file {path} is not a PEM public key or certificate") from exc
        loaded = [_Key(None, public, _algorithms_of(public))] if _algorithms_of(public) else []
    if not loaded:
        raise ConfigError(f"the key file {path} holds no signing key")
    return loaded


class TokenVerifier:
    """Verifies bearer JWTs and turns them into a :class:`Principal`."""

    def __init__(self, config: AuthConfig, roles: Collection[str]) -> None:
        self.config = config
        self.roles = frozenset(roles)
        if not self.roles:
            raise ConfigError("the verifier needs the known roles")
        if any(a.startswith("HS") or a.lower() == "none" for a in config.algorithms):
            raise ConfigError("algorithms: only asymmetric ones (RS*, PS*, ES*, EdDSA); dev mode adds HS256")
        self._keys = _load_key_file(config.key_file) if config.key_file else []
        self._jwks: jwt.PyJWKClient | None = None
        if config.jwks_url:
            try:
                # The key set is cached for jwks_cache_seconds (and refetched, after a cooldown, for an
                # unknown kid). cache_keys stays off: that per-kid cache never expires, so a key removed
                # from the set would stay trusted.
                self._jwks = jwt.PyJWKClient(
                    config.jwks_url,
                    cache_keys=False,
                    lifespan=config.jwks_cache_seconds,
                    timeout=config.jwks_timeout_seconds,
                )
            except jwt.PyJWKClientError as exc:
                raise ConfigError(f"jwks_url: {exc}") from exc
        self._dev_secret: bytes | None = None
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_lock = threading.Lock()
        if config.dev_mode:
            if config.dev_key_file is None:
                raise ConfigError("dev mode needs dev_key_file (where the dev secret is kept)")
            self._dev_secret = dev_secret(config.dev_key_file)
        if not self._keys and self._jwks is None and self._dev_secret is None:
            raise ConfigError("no way to verify tokens: set jwks_url or key_file (or dev mode)")

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`AuthError` (saying why, never the token) otherwise.

        A verified token is remembered until it expires (plus the leeway), for at most
        ``VERIFIED_CACHE_SECONDS`` and the JWKS cache lifetime, so a key withdrawn from the JWKS stops
        working as soon as it would without this cache. Clients send one token many times, and its
        signature check is most of a fast read's cost.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("the bearer token is empty or too long")
        now = time.time()
        with self._cache_lock:
            cached = self._verified.get(token)
            if cached is not None and cached[1] > now:
                return cached[0]
        principal, expires = self._verify(token)
        with self._cache_lock:
            ttl = min(VERIFIED_CACHE_SECONDS, float(self.config.jwks_cache_seconds))
            self._verified[token] = (principal, min(expires + self.config.leeway_seconds, now + ttl))
            while len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("the bearer token is not a well-formed JWT") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg or alg.lower() == "none":
            raise AuthError("unsigned tokens (alg none) are refused")
        if len(alg) > 8:  # real names are short; this keeps the messages below short too
            raise AuthError("the token's algorithm is unknown")
        if alg.upper().startswith("HS"):
            if self._dev_secret is None:
                raise AuthError(f"{alg} (shared-secret) tokens are accepted in dev mode only")
            if alg != "HS256":
                raise AuthError(f"{alg} is refused; dev tokens use HS256")
            claims = self._decode(token, self._dev_secret, alg)
        else:
            if alg not in self.config.algorithms:
                raise AuthError(f"algorithm {alg} is refused; accepted: {', '.join(self.config.algorithms)}")
            claims = self._decode_signed(token, header, alg)
        return self._principal(claims), float(claims["exp"])

    def _decode_signed(self, token: str, header: Mapping[str, Any], alg: str) -> dict[str, Any]:
        kid = header.get("kid")
        shown = repr(kid[:64]) if isinstance(kid, str) else "none"
        candidates: list[Any] = [
            k.key for k in self._keys if alg in k.algorithms and (k.kid is None or kid is None or k.kid == kid)
        ]
        bad_signature = False
        for key in candidates:
            try:
                return self._decode(token, key, alg)
            except _BadSignatureError:
                bad_signature = True
        if self._jwks is not None:
            try:
                jwk = self._jwks.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientConnectionError as exc:
                raise AuthError("the signing keys cannot be fetched from the JWKS endpoint") from exc
            except jwt.PyJWKClientError as exc:
                if not kid:
                    raise AuthError("the token names no key (kid), which the JWKS endpoint needs") from exc
                raise AuthError(f"no signing key in the JWKS endpoint matches the token's kid {shown}") from exc
            except jwt.PyJWTError as exc:
                raise AuthError("the JWKS endpoint answered no usable keys") from exc
            if jwk.algorithm_name != alg:
                raise AuthError(f"key {shown} is for {jwk.algorithm_name}, not {alg}")
            return self._decode(token, jwk, alg)
        if bad_signature:
            raise AuthError("the token's signature does not verify")
        raise AuthError(f"no configured key can verify a {alg} token" + (f" with kid {shown}" if kid else ""))

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        cfg = self.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidSignatureError as exc:
            raise _BadSignatureError("the token's signature does not verify") from exc
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("the token is not valid yet") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(f"the token's issuer is not {cfg.issuer!r}") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"the token is not for audience {cfg.audience!r}") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the token is invalid: {exc}") from exc
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise AuthError(f"the key cannot verify a {alg} token") from exc
        return claims

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise AuthError("the token's subject (sub) is empty")
        role = self._role(claims.get(self.config.role_claim))
        if role != PARTNER_ROLE:
            return Principal(subject, role, "user")
        partner = claims.get("partner", subject)
        sources = claims.get("sources", [partner])
        if not isinstance(partner, str) or not (
            isinstance(sources, list) and sources and all(isinstance(s, str) for s in sources)
        ):
            raise AuthError("a partner token needs 'partner' (a string) and 'sources' (a list of strings)")
        return Principal(subject, role, "partner", partner, tuple(sources))

    def _role(self, raw: Any) -> str:
        """The one role a role claim names: a string, or a list of one role (repeats allowed).

        Every entry must be a known role and they must all be the same: a token naming an unknown
        role or several roles is refused, never read as one of them (which one would depend on
        their order, and an unknown one may be meant to restrict).
        """
        claim = self.config.role_claim
        offered = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else None
        if not offered:
            raise AuthError(f"the token has no {claim!r} claim (a role, or a list of one role)")
        unknown = [r for r in offered if not (isinstance(r, str) and r in self.roles)]
        if unknown:
            shown = ", ".join(repr(str(r)[:40]) for r in unknown[:5])
            raise AuthError(f"the token's role {shown} is not a known role")
        named = sorted(set(offered))
        if len(named) > 1:
            shown = ", ".join(named[:5])
            raise AuthError(f"the token names several roles ({shown}); its {claim!r} claim must name one")
        return str(named[0])


class _BadSignatureError(AuthError):
    """The signature does not verify with this key (another key may still fit)."""
