"""Consent receipts anyone can verify: Ed25519-signed compact JWS, hash-chained per customer (issue 15).

A receipt's claims follow the Kantara Consent Receipt 1.1 field names (which ISO/IEC TS 27560 builds on)
where they exist, plus the JWT claims ``iss``, ``sub``, ``iat``, ``jti`` and c360's own under ``"c360"``.
A receipt is a compact JWS (RFC 7515) with ``alg`` ``EdDSA`` (RFC 8037): base64url without padding of
canonical JSON (sorted keys, no spaces). The public keys are a JWK Set (:meth:`SigningKeys.jwks`), with
the old keys, so that a receipt verifies by its ``kid`` after rotations. The signing keys are a key ring
(:mod:`~c360.graph.key_ring`) kept in a JSON file of mode 0600, by default ``signing-keys.json`` in the
data directory, made on first use; ``c360 keys rotate --signing`` adds a key, and the API serves the
public keys at ``/.well-known/jwks.json``.

Each customer's receipts form a chain: a receipt after the first carries ``prev``, the SHA-256 (hex) of
the previous receipt's compact JWS, and ``prevSig``, the SHA-256 of that receipt's signature segment
(which tells an altered receipt from a forged one, see :func:`verify_chain`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .consent import ConsentEvent
from .errors import ConfigError, InvalidInputError
from .key_ring import KeyRing, create_ring, read_ring, rotate_ring

#: The Kantara Consent Receipt version the claims follow.
RECEIPT_VERSION = "KI-CR-v1.1.0"
ALG = "EdDSA"
TYP = "JWT"

_SEED_BYTES = 32
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_log = logging.getLogger(__name__)

Problem = Literal["malformed", "unknown_key", "bad_signature"]
ChainReason = Literal["forged", "altered", "removed", "reordered", "malformed"]


class ReceiptError(InvalidInputError):
    """A receipt does not verify; ``problem`` says why (malformed, unknown_key, bad_signature)."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem: Problem = problem


# -- claims ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Controller:
    """The PII controller named in receipts (Kantara ``piiControllers`` entry)."""

    name: str
    contact: str
    email: str
    address: str | None = None
    phone: str | None = None
    url: str | None = None
    on_behalf: bool = False

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("contact", self.contact), ("email", self.email)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError(f"controller {what} must be a non-empty string, not {value!r}")

    def claims(self) -> dict[str, Any]:
        """The Kantara ``piiControllers`` entry (absent fields left out)."""
        entry: dict[str, Any] = {
            "piiController": self.name,
            "onBehalf": self.on_behalf,
            "contact": self.contact,
            "email": self.email,
        }
        for key, value in (("address", self.address), ("phone", self.phone), ("piiControllerUrl", self.url)):
            if value is not None:
                entry[key] = value
        return entry


def receipt_hash(jws: str) -> str:
    """The SHA-256 (hex) of a compact JWS: what the next receipt's ``prev`` holds."""
    return hashlib.sha256(jws.encode("ascii")).hexdigest()


def _signature_hash(jws: str) -> str:
    return hashlib.sha256(jws.rpartition(".")[2].encode("ascii")).hexdigest()


def _utc(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def receipt_claims(
    event: ConsentEvent,
    *,
    controller: Controller,
    principal_id: str,
    policy_url: str,
    pii_categories: Sequence[str],
    receipt_id: str,
    issued_at: datetime,
    previous: str | None,
) -> dict[str, Any]:
    """The claims of the receipt of ``event``; ``previous`` is the compact JWS before it in the chain.

    Kantara CR 1.1 fields: ``consentTimestamp`` and ``iat`` are seconds since the epoch (the exact times
    are under ``c360``); ``services`` holds one service, the channel, with one purpose, the event's;
    ``termination`` is the expiry or ``"until withdrawn"``. ``prev``/``prevSig`` are absent on a chain's
    first receipt.
    """
    if issued_at.tzinfo is None or issued_at.utcoffset() is None:
        raise InvalidInputError(f"issued_at {issued_at.isoformat()} has no time zone: give an aware datetime")
    for what, value in (("principal_id", principal_id), ("policy_url", policy_url), ("receipt_id", receipt_id)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"{what} must be a non-empty string, not {value!r}")
    if isinstance(pii_categories, str) or not all(isinstance(c, str) and c for c in pii_categories):
        raise InvalidInputError(f"pii_categories must be a sequence of non-empty strings, not {pii_categories!r}")
    notice = event.notice
    claims: dict[str, Any] = {
        "version": RECEIPT_VERSION,
        "jurisdiction": event.jurisdiction,
        "consentTimestamp": int(event.captured_at.timestamp()),
        "collectionMethod": event.method,
        "consentReceiptID": receipt_id,
        "language": notice.language,
        "piiPrincipalId": principal_id,
        "piiControllers": [controller.claims()],
        "policyUrl": policy_url,
        "services": [
            {
                "service": event.channel,
                "purposes": [
                    {
                        "purpose": event.purpose,
                        "purposeCategory": [event.purpose],
                        "consentType": "EXPLICIT",
                        "piiCategory": list(pii_categories),
                        "primaryPurpose": False,
                        "termination": _utc(event.expires_at) if event.expires_at is not None else "until withdrawn",
                        "thirdPartyDisclosure": event.purpose == "third_party_sharing",
                    }
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
        "iss": controller.name,
        "sub": principal_id,
        "iat": int(issued_at.timestamp()),
        "jti": receipt_id,
        "c360": {
            "event": event.id,
            "record": event.record_uid,
            "purpose": event.purpose,
            "channel": event.channel,
            "status": event.status,
            "capturedAt": _utc(event.captured_at),
            "expiresAt": _utc(event.expires_at) if event.expires_at is not None else None,
            "source": event.source,
            "method": event.method,
            "notice": {
                "id": notice.id,
                "version": notice.version,
                "language": notice.language,
                "textSha256": notice.text_sha256,
            },
            "actor": {"kind": event.actor_kind, "id": event.actor_id},
            "issuedAt": _utc(issued_at),
        },
    }
    if previous is not None:
        _split(previous)  # a chain link to something that is not a compact JWS is a caller's bug
        claims["prev"] = receipt_hash(previous)
        claims["prevSig"] = _signature_hash(previous)
    return claims


# -- JWS -------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(what: str, text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ReceiptError("malformed", f"malformed receipt: the {what} is not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ReceiptError("malformed", f"malformed receipt: the {what} is not base64url") from None


def _canonical(value: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"receipt claims must be plain JSON: {exc}") from None


def _split(jws: object) -> tuple[str, str, str]:
    if not isinstance(jws, str) or not jws.isascii():
        raise ReceiptError("malformed", "malformed receipt: a compact JWS is an ASCII string")
    parts = jws.split(".")
    if len(parts) != 3:
        raise ReceiptError("malformed", f"malformed receipt: a compact JWS has 3 parts, this one {len(parts)}")
    return parts[0], parts[1], parts[2]


def _json_object(what: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ReceiptError("malformed", f"malformed receipt: the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise ReceiptError("malformed", f"malformed receipt: the {what} is not a JSON object")
    return value


def sign(claims: Mapping[str, Any], key_id: str, private_key: Ed25519PrivateKey) -> str:
    """The compact JWS of ``claims`` signed with ``private_key`` under ``key_id`` (header alg EdDSA, typ JWT)."""
    header = _b64(_canonical({"alg": ALG, "kid": key_id, "typ": TYP}))
    payload = _b64(_canonical(claims))
    signing_input = f"{header}.{payload}".encode("ascii")
    return f"{header}.{payload}.{_b64(private_key.sign(signing_input))}"


def _public_key(jwks: Mapping[str, Any], kid: str) -> Ed25519PublicKey:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise ReceiptError("malformed", 'the JWKS is not a JWK Set ({"keys": [...]})')
    for jwk in keys:
        if isinstance(jwk, Mapping) and jwk.get("kid") == kid:
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
                raise ReceiptError("malformed", f"JWKS key {kid!r} is not an Ed25519 OKP key")
            raw = _unb64(f"JWKS key {kid!r}", jwk["x"])
            if len(raw) != 32:
                raise ReceiptError("malformed", f"JWKS key {kid!r}: x is {len(raw)} bytes, an Ed25519 key 32")
            return Ed25519PublicKey.from_public_bytes(raw)
    raise ReceiptError("unknown_key", f"unknown key {kid!r}: the JWKS has no key of that kid")


def verify(jws: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The claims of ``jws`` once its signature verifies with the JWKS key its ``kid`` names.

    ReceiptError otherwise, whose ``problem`` is ``malformed`` (not a compact EdDSA JWS of a JSON object),
    ``unknown_key`` (no key of that kid) or ``bad_signature`` (the signature does not match).
    """
    header_b64, payload_b64, signature_b64 = _split(jws)
    header = _json_object("header", _unb64("header", header_b64))
    if header.get("alg") != ALG:
        raise ReceiptError("malformed", f"malformed receipt: alg {header.get('alg')!r}, expected {ALG!r}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise ReceiptError("malformed", "malformed receipt: the header names no kid")
    payload = _unb64("payload", payload_b64)
    signature = _unb64("signature", signature_b64)
    key = _public_key(jwks, kid)
    try:
        key.verify(signature, f"{header_b64}.{payload_b64}".encode("ascii"))
    except InvalidSignature:
        raise ReceiptError("bad_signature", f"bad signature: the receipt does not verify with key {kid!r}") from None
    return _json_object("payload", payload)


# -- keys ------------------------------------------------------------------------------------------


class SigningKeys(KeyRing):
    """The service's Ed25519 signing keys (a :class:`~c360.graph.key_ring.KeyRing` of ``kind`` ``signing``).

    Each secret is a key's 32-byte private seed; the current key signs, and every key, old ones included,
    is in the public :meth:`jwks`, so that a receipt verifies by its ``kid`` after rotations. The ring's
    file is the key ring's (:func:`open_signing_keys`, :func:`rotate_signing_keys`).
    """

    __slots__ = ()
    kind: ClassVar[str] = "signing"

    def __post_init__(self) -> None:
        for kid, seed in self.secrets.items():
            if not isinstance(seed, bytes) or len(seed) != _SEED_BYTES:
                raise ConfigError(f"signing key {kid}: an Ed25519 seed is {_SEED_BYTES} bytes")
        KeyRing.__post_init__(self)

    def private_key(self, kid: str | None = None) -> Ed25519PrivateKey:
        """The private key ``kid`` (the current one by default)."""
        kid = self.current if kid is None else kid
        if kid not in self.secrets:
            raise ConfigError(f"no signing key {kid!r} in the ring (it has: {', '.join(self.secrets)})")
        return Ed25519PrivateKey.from_private_bytes(self.secrets[kid])

    def sign(self, claims: Mapping[str, Any]) -> str:
        """``claims`` signed with the current key."""
        return sign(claims, self.current, self.private_key())

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set of every key in the ring, oldest first (RFC 8037 OKP keys; no private part)."""
        keys = []
        for kid in self.secrets:
            raw = self.private_key(kid).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            keys.append({"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": kid, "use": "sig", "alg": ALG})
        return {"keys": keys}


#: the file name of the signing key ring in the data directory, unless ``consent.signing_key_file`` names another
DEFAULT_FILE = "signing-keys.json"


def open_signing_keys(path: Path, *, create: bool = True) -> SigningKeys:
    """The signing key ring in ``path`` (mode 0600); with ``create``, a new ring of one key when there is none."""
    if create and not path.exists():
        create_ring(SigningKeys, path)
    return read_ring(SigningKeys, path)


def rotate_signing_keys(path: Path) -> SigningKeys:
    """Add a new current key to the ring in ``path`` (created when missing) and return the new ring.

    The old keys stay, so receipts signed before verify by their ``kid``; the file is replaced atomically
    with mode 0600.
    """
    return rotate_ring(SigningKeys, path)


class PublishedKeys:
    """The public JWKS of the signing key ring in a file, read again when the file changes.

    What ``/.well-known/jwks.json`` serves: a rotation by another process (``c360 keys rotate --signing``)
    shows without a restart, so receipts that process signs verify at once. A file that cannot be read
    any more (removed, made readable by others) leaves the last JWKS read, with a warning: its keys are
    still the service's.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int, int, int] | None = None
        self._jwks: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any]:
        """The JWK Set (public keys only), oldest key first."""
        try:
            st = self._path.stat()
        except OSError as exc:
            problem = ConfigError(f"cannot read the signing key file {self._path}: {exc.strerror}")
        else:
            seen = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
            if self._jwks is not None and seen == self._seen:
                return self._jwks
            try:
                jwks = open_signing_keys(self._path, create=False).jwks()
            except ConfigError as exc:
                problem = exc
            else:
                self._jwks, self._seen = jwks, seen
                return jwks
        if self._jwks is None:
            raise problem
        _log.warning("serving the signing keys read before: %s", problem)
        return self._jwks


# -- chains ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of :func:`verify_chain`: ``ok``, or the first bad entry's ``index``, ``reason`` and ``detail``."""

    count: int
    index: int | None = None
    reason: ChainReason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether every receipt verified and the chain is whole."""
        return self.reason is None


def verify_chain(receipts: Sequence[str], jwks: Mapping[str, Any], *, head: str | None = None) -> ChainReport:
    """Check one customer's receipts, from the chain's first, in order; name the first bad entry.

    Entries are checked in order; the first failing check names entry ``index`` with a reason:

    * ``malformed``: not a compact EdDSA JWS of a JSON object, or a ``prev`` that is not a string.
    * ``forged``: its key is not in the JWKS, or its signature does not verify and is not the signature
      the service made (the next receipt's ``prevSig``, when that receipt verifies, does not match it;
      with no verifying next receipt a failing signature is reported as forged).
    * ``altered``: its signature does not verify but is the service's own (the next, verifying receipt's
      ``prevSig`` matches it): the header or payload was changed after signing.
    * ``reordered``: its ``prev`` is the hash of a later entry or of an entry before the previous one, or
      it claims to be a chain's first (no ``prev``) but is not at index 0, or it copies an earlier entry.
    * ``removed``: its ``prev`` is the hash of no entry: its predecessor is missing (at index 0: the
      chain's start is).
      With ``head`` (the hash of the last receipt the store issued), a last entry whose hash differs
      names index ``len(receipts)``: receipts at the end were removed. Without it a cut-off tail cannot
      be seen.
    """
    hashes = [receipt_hash(r) if isinstance(r, str) and r.isascii() else "" for r in receipts]
    position = {h: i for i, h in reversed(list(enumerate(hashes)))}  # a hash -> its first index
    verified: dict[int, dict[str, Any] | ReceiptError] = {}

    def check(i: int) -> dict[str, Any] | ReceiptError:
        if i not in verified:
            try:
                verified[i] = verify(receipts[i], jwks)
            except ReceiptError as exc:
                verified[i] = exc
        return verified[i]

    for i in range(len(receipts)):
        result = check(i)
        if isinstance(result, ReceiptError):
            if result.problem == "malformed":
                return ChainReport(len(receipts), i, "malformed", str(result))
            if result.problem == "unknown_key":
                return ChainReport(len(receipts), i, "forged", str(result))
            following = check(i + 1) if i + 1 < len(receipts) else None
            if isinstance(following, dict) and following.get("prevSig") == _signature_hash(receipts[i]):
                detail = "the signature is the service's own (the next receipt vouches for it) but the content changed"
                return ChainReport(len(receipts), i, "altered", detail)
            return ChainReport(len(receipts), i, "forged", f"{result}: not a signature the service made")
        if position[hashes[i]] < i:
            return ChainReport(len(receipts), i, "reordered", f"a copy of entry {position[hashes[i]]}")
        prev = result.get("prev")
        if prev is None:
            if i > 0:
                return ChainReport(len(receipts), i, "reordered", "a chain's first receipt (no prev) after others")
            continue
        if not isinstance(prev, str):
            return ChainReport(len(receipts), i, "malformed", "prev is not a string")
        if i > 0 and prev == hashes[i - 1]:
            continue
        j = position.get(prev)
        if j is None:
            detail = "its prev matches no receipt: the one before it is missing"
            return ChainReport(len(receipts), i, "removed", detail)
        if j >= i:
            return ChainReport(len(receipts), i, "reordered", f"its prev is entry {j}, which comes after it")
        return ChainReport(len(receipts), i, "reordered", f"its prev is entry {j}, not the entry just before it")
    if head is not None and (not hashes or hashes[-1] != head):
        return ChainReport(len(receipts), len(receipts), "removed", "the last receipt is not the head the store issued")
    return ChainReport(len(receipts))
