"""Field-level encryption of identifiers (issue 16, KYC): a vault of AES-256-GCM keys with key ids.

PAN, Aadhaar, passport and national id numbers are stored only sealed (:meth:`VaultKeys.seal`):

* **normalised first** (:func:`normalise`): Aadhaar digits only (12, Verhoeff check digit), PAN upper
  case (``AAAAA9999A`` with a valid holder type), passport and national ids upper-case letters and digits
  without spaces or dashes; malformed input is an :class:`InvalidInputError` that never quotes the value;
* **sealed text** ``v1.<kind>.<key id>.<nonce>.<ciphertext>`` (base64url, no padding): AES-256-GCM with a
  fresh 96-bit nonce; the associated data binds the version, kind, key id and the *context* (the owner:
  a record uid or application id), so a sealed value moved to another record or field does not open;
* **a blind index** (:meth:`VaultKeys.lookup_token`): HMAC-SHA256 of the kind and the normalised value
  under the ring's ``index`` key, 64 hex digits, so that equal identifiers are found and linked without
  decrypting. The index key never rotates (a rotation changes no token);
* **masked forms** (:func:`mask`): Aadhaar ``XXXX XXXX 1234`` (last four digits), PAN ``XXXXXX234F`` (last
  four characters), passport ``XXXXX567`` (last three), national id last four; the length is kept.

**Keys** (:class:`VaultKeys`) are a :class:`~c360.graph.key_ring.KeyRing` of kind ``vault``: the key file
(by default ``vault-keys.json`` in the data directory, mode 0600, made on first use) holds the AES keys
``k1``, ``k2``, ... (32 bytes each, the current one seals) and the ``index`` key (32 bytes, the blind
index's). The environment variable :data:`ENV_VAR` may hold the same JSON text instead of a file
(:func:`open_vault_keys`); its keys are rotated by editing it.

**Rotation without downtime**: :func:`rotate_vault_keys` adds a new current key (the old ones stay, so
everything sealed before still opens); :func:`rotate_vault` then re-encrypts, page by page, every secret
sealed under an older key with a compare-and-swap, so a writer changing a value meanwhile is never
overwritten. A key may be removed from the file by hand once the store's ``secret_key_counts()`` shows
nothing under it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from stdnum import exceptions as stdnum_errors
from stdnum.in_ import aadhaar, pan

from .errors import ConfigError, InvalidInputError
from .key_ring import KeyRing, create_ring, read_ring, rotate_ring

if TYPE_CHECKING:
    from .ports.vault import VaultPort

#: The kinds of identifier the vault keeps.
KINDS: tuple[str, ...] = ("aadhaar", "pan", "passport", "national_id")
#: The key id of the blind index's key in the ring (never current, never rotated).
INDEX_KEY = "index"
#: The environment variable that may hold the key ring's JSON text instead of the key file.
ENV_VAR = "C360_VAULT_KEYS"
#: The file name of the vault's key ring in the data directory.
DEFAULT_FILE = "vault-keys.json"
VERSION = "v1"

_KEY_BYTES = 32
_NONCE_BYTES = 12
_MAX_OWNER = 200
_MAX_VALUE = 64
_B64 = r"[A-Za-z0-9_-]+"
_SEALED = re.compile(rf"^v1\.([a-z_]{{1,32}})\.([a-z0-9_-]{{1,32}})\.({_B64})\.({_B64})$")
_TOKEN = re.compile(r"^[0-9a-f]{64}$")
_SEPARATORS = re.compile(r"[\s\-./]")
_PASSPORT = re.compile(r"^[A-Z0-9]{6,20}$")
_NATIONAL_ID = re.compile(r"^[A-Z0-9]{4,32}$")

Problem = Literal["malformed", "unknown_key", "wrong_kind", "not_authentic"]


class VaultError(InvalidInputError):
    """A sealed value does not open; ``problem`` says why (it never holds the value)."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem: Problem = problem


# -- normal and masked forms -----------------------------------------------------------------------


def check_kind(kind: object) -> str:
    """Return ``kind`` if it is one of :data:`KINDS`; InvalidInputError otherwise."""
    if kind not in KINDS:
        raise InvalidInputError(f"unknown vault kind {kind!r}: expected one of {', '.join(KINDS)}")
    return str(kind)


def normalise(kind: str, value: str) -> str:
    """The normal form of an identifier of ``kind``; InvalidInputError (without the value) if malformed."""
    check_kind(kind)
    if not isinstance(value, str) or len(value) > _MAX_VALUE:
        raise InvalidInputError(f"a {kind} must be a string of at most {_MAX_VALUE} characters")
    text = _SEPARATORS.sub("", value).upper()
    try:
        if kind == "aadhaar":
            return str(aadhaar.validate(text))
        if kind == "pan":
            return str(pan.validate(text))
    except stdnum_errors.ValidationError:
        shape = "12 digits with a valid check digit" if kind == "aadhaar" else "AAAAA9999A with a valid holder type"
        raise InvalidInputError(f"malformed {kind}: expected {shape}") from None
    pattern = _PASSPORT if kind == "passport" else _NATIONAL_ID
    if not pattern.fullmatch(text):
        size = "6 to 20" if kind == "passport" else "4 to 32"
        raise InvalidInputError(f"malformed {kind}: expected {size} letters and digits")
    return text


#: how many trailing characters each kind's mask shows
_SHOWN = {"aadhaar": 4, "pan": 4, "passport": 3, "national_id": 4}


def mask(kind: str, value: str) -> str:
    """The masked form of ``value`` (normalised first): Aadhaar ``XXXX XXXX 1234``, PAN ``XXXXXX234F``, ..."""
    text = normalise(kind, value)
    shown = _SHOWN[kind]
    masked = "X" * (len(text) - shown) + text[-shown:]
    if kind == "aadhaar":
        return f"{masked[:4]} {masked[4:8]} {masked[8:]}"
    return masked


# -- sealed text -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sealed:
    """The parts of a sealed text: kind, key id, nonce and ciphertext (with its tag)."""

    kind: str
    key_id: str
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)

    @classmethod
    def parse(cls, sealed: object) -> Sealed:
        """The parts of ``sealed``; :class:`VaultError` (``malformed``) if it is not a sealed text."""
        match = _SEALED.fullmatch(sealed) if isinstance(sealed, str) else None
        if match is None or match[1] not in KINDS:
            raise VaultError("malformed", f"not a sealed {VERSION} vault value")
        try:
            nonce, body = (base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in (match[3], match[4]))
        except (ValueError, binascii.Error):
            raise VaultError("malformed", "a sealed vault value's nonce or ciphertext is not base64url") from None
        if len(nonce) != _NONCE_BYTES or len(body) < 16:
            raise VaultError("malformed", "a sealed vault value has a bad nonce or a truncated ciphertext")
        return cls(match[1], match[2], nonce, body)

    def text(self) -> str:
        """The compact text form."""
        parts = (base64.urlsafe_b64encode(b).rstrip(b"=").decode() for b in (self.nonce, self.ciphertext))
        return ".".join((VERSION, self.kind, self.key_id, *parts))


def sealed_key_id(sealed: str) -> str:
    """The id of the key ``sealed`` was sealed under (VaultError if it is not a sealed text)."""
    return Sealed.parse(sealed).key_id


def _aad(kind: str, kid: str, context: str) -> bytes:
    # kind and key id cannot hold "/", so the context, last, cannot shift the fields before it.
    return f"c360-vault/{VERSION}/{kind}/{kid}/{context}".encode("utf-8", "surrogatepass")


def _context(context: object) -> str:
    if not isinstance(context, str) or not context.strip() or len(context) > _MAX_OWNER:
        raise InvalidInputError(f"a vault context (the owner) is a non-empty string of at most {_MAX_OWNER}")
    return context


@lru_cache(maxsize=64)
def _aead(secret: bytes) -> AESGCM:
    return AESGCM(secret)


# -- the store's items -----------------------------------------------------------------------------


def _owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner.strip() or len(owner) > _MAX_OWNER:
        raise InvalidInputError(f"a secret's owner is a non-empty string of at most {_MAX_OWNER} characters")
    return owner


@dataclass(frozen=True, slots=True)
class SecretItem:
    """One stored secret: its owner (record uid or application id), kind, sealed text and lookup token.

    The sealed text's kind must be ``kind``; ``key_id`` is read from it. No plain value is held.
    """

    owner: str
    kind: str
    sealed: str
    token: str

    def __post_init__(self) -> None:
        _owner(self.owner)
        check_kind(self.kind)
        if Sealed.parse(self.sealed).kind != self.kind:
            raise InvalidInputError(f"secret {self.owner}/{self.kind}: its sealed text is of another kind")
        if not isinstance(self.token, str) or not _TOKEN.fullmatch(self.token):
            raise InvalidInputError(f"secret {self.owner}/{self.kind}: a lookup token is 64 lower-case hex digits")

    @property
    def key_id(self) -> str:
        """The id of the key the value is sealed under."""
        return sealed_key_id(self.sealed)


@dataclass(frozen=True, slots=True)
class SealedUpdate:
    """A compare-and-swap of one secret's sealed text: ``old`` becomes ``new`` (the same value re-sealed)."""

    owner: str
    kind: str
    old: str
    new: str

    def __post_init__(self) -> None:
        _owner(self.owner)
        check_kind(self.kind)
        if Sealed.parse(self.old).kind != self.kind or Sealed.parse(self.new).kind != self.kind:
            raise InvalidInputError(f"update of {self.owner}/{self.kind}: a sealed text is of another kind")

    @property
    def key_id(self) -> str:
        """The id of the key ``new`` is sealed under."""
        return sealed_key_id(self.new)


# -- keys ------------------------------------------------------------------------------------------


class VaultKeys(KeyRing):
    """The vault's keys (a key ring of ``kind`` ``vault``): AES-256 keys by id and the blind index's key.

    The current key seals; every AES key in the ring opens what was sealed under it. ``index``
    (:data:`INDEX_KEY`) is the HMAC key of :meth:`lookup_token`; it is never current and never rotates.
    """

    __slots__ = ()
    kind: ClassVar[str] = "vault"

    def __post_init__(self) -> None:
        for kid, secret in self.secrets.items():
            if not isinstance(secret, bytes) or len(secret) != _KEY_BYTES:
                raise ConfigError(f"vault key {kid}: a vault key is {_KEY_BYTES} bytes")
        if INDEX_KEY not in self.secrets:
            raise ConfigError(f"a vault key ring needs its {INDEX_KEY!r} key (the blind index's)")
        if self.current == INDEX_KEY:
            raise ConfigError(f"the vault's {INDEX_KEY!r} key cannot be the current (sealing) key")
        KeyRing.__post_init__(self)

    @classmethod
    def generate(cls) -> Self:
        """A ring of one fresh AES key ``k1`` and a fresh index key."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(
            "k1",
            {kid: secrets.token_bytes(_KEY_BYTES) for kid in ("k1", INDEX_KEY)},
            dict.fromkeys(("k1", INDEX_KEY), now),
        )

    @classmethod
    def from_text(cls, text: str, *, source: str = f"${ENV_VAR}") -> Self:
        """The ring in ``text``, the key file's JSON (ConfigError naming ``source`` if it is not one)."""
        return cls.decode(Path(source), text)

    @property
    def sealing_ids(self) -> tuple[str, ...]:
        """The AES key ids, oldest first (the index key left out)."""
        return tuple(k for k in self.secrets if k != INDEX_KEY)

    def _secret(self, kid: str) -> bytes:
        secret = self.secrets.get(kid) if kid != INDEX_KEY else None
        if secret is None:
            raise VaultError("unknown_key", f"no vault key {kid!r} in the ring (it has: {', '.join(self.sealing_ids)})")
        return secret

    def seal(self, kind: str, value: str, *, context: str) -> str:
        """``value`` (normalised) sealed under the current key, bound to ``kind`` and ``context``."""
        plain = normalise(kind, value)
        ctx = _context(context)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        body = _aead(self._secret(self.current)).encrypt(nonce, plain.encode(), _aad(kind, self.current, ctx))
        return Sealed(kind, self.current, nonce, body).text()

    def open_(self, sealed: str, *, context: str, kind: str | None = None) -> str:
        """The normalised value in ``sealed``; :class:`VaultError` unless it opens under ``context``.

        With ``kind``, a value sealed as another kind is refused too (``wrong_kind``).
        """
        parts = Sealed.parse(sealed)
        ctx = _context(context)
        if kind is not None and check_kind(kind) != parts.kind:
            raise VaultError("wrong_kind", f"the sealed value is a {parts.kind}, not a {kind}")
        try:
            plain = _aead(self._secret(parts.key_id)).decrypt(
                parts.nonce, parts.ciphertext, _aad(parts.kind, parts.key_id, ctx)
            )
        except InvalidTag:
            raise VaultError(
                "not_authentic", f"a sealed {parts.kind} does not open: altered, or sealed for another owner"
            ) from None
        return plain.decode()

    def rewrap(self, sealed: str, context: str) -> str:
        """``sealed`` under the current key (opened with its own key id); itself if already current."""
        parts = Sealed.parse(sealed)
        if parts.key_id == self.current:
            return sealed
        return self.seal(parts.kind, self.open_(sealed, context=context), context=context)

    def lookup_token(self, kind: str, value: str) -> str:
        """The blind index of ``value`` (normalised): equal identifiers of one kind have equal tokens."""
        plain = normalise(kind, value)
        return hmac.new(self.secrets[INDEX_KEY], f"{kind}\x00{plain}".encode(), hashlib.sha256).hexdigest()

    def item(self, owner: str, kind: str, value: str) -> SecretItem:
        """What the store keeps of ``value``: sealed for ``owner`` (the context) with its lookup token."""
        return SecretItem(_owner(owner), kind, self.seal(kind, value, context=owner), self.lookup_token(kind, value))

    def open_item(self, item: SecretItem) -> str:
        """The normalised value of a stored secret (its owner is the context)."""
        return self.open_(item.sealed, context=item.owner, kind=item.kind)


def open_vault_keys(path: Path, *, create: bool = True, environ: Mapping[str, str] | None = None) -> VaultKeys:
    """The vault's keys: from ``environ[ENV_VAR]`` when set there, else the key file ``path`` (mode 0600).

    With ``create``, a missing file is made with a new ring (one AES key and the index key).
    """
    text = (environ or {}).get(ENV_VAR)
    if text is not None and text.strip():
        return VaultKeys.from_text(text)
    if create and not path.exists():
        create_ring(VaultKeys, path)
    return read_ring(VaultKeys, path)


def rotate_vault_keys(path: Path) -> VaultKeys:
    """Add a new current AES key to the ring in ``path`` (created when missing); the old keys stay."""
    return rotate_ring(VaultKeys, path)


# -- rotation --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RotationCounts:
    """What :func:`rotate_vault` did: re-sealed, changed meanwhile (skipped), unopenable, and whether done.

    ``failed`` counts secrets that do not open (altered, or under a key id not in the ring); ``complete``
    is True when no secret under an older key was left that could be re-sealed.
    """

    rewrapped: int = 0
    skipped: int = 0
    failed: int = 0
    complete: bool = False


def rotate_vault(
    store: VaultPort,
    keys: VaultKeys,
    *,
    batch: int = 500,
    progress: Callable[[RotationCounts], None] | None = None,
    budget_seconds: float | None = None,
) -> RotationCounts:
    """Re-seal every secret sealed under a key other than the current one, ``batch`` at a time.

    Each page is written with :meth:`~c360.graph.ports.vault.VaultPort.replace_sealed` (compare-and-swap
    by the old sealed text), so a value a writer changed meanwhile is skipped, not overwritten. Passes
    repeat until one finds nothing left to re-seal (a writer still on the old ring adds work). Readers keep
    working: the old keys stay in the ring. ``progress`` gets the counts after each page; past
    ``budget_seconds`` it stops with ``complete=False`` (a second run goes on where it stopped).
    """
    if not isinstance(batch, int) or not 1 <= batch <= 1000:
        raise InvalidInputError(f"batch is a number of secrets from 1 to 1000, not {batch!r}")
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    done = RotationCounts()
    failed: set[tuple[str, str, str]] = set()  # (owner, kind, sealed) that did not open: not retried
    while True:
        work = 0
        for kid in sorted(k for k in store.secret_key_counts() if k != keys.current):
            after: tuple[str, str] | None = None
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    return done
                page = store.secrets_with_key(kid, after=after, limit=batch)
                if not page:
                    break
                after = (page[-1].owner, page[-1].kind)
                updates: list[SealedUpdate] = []
                for item in page:
                    if (item.owner, item.kind, item.sealed) in failed:
                        continue
                    try:
                        updates.append(
                            SealedUpdate(item.owner, item.kind, item.sealed, keys.rewrap(item.sealed, item.owner))
                        )
                    except VaultError:
                        failed.add((item.owner, item.kind, item.sealed))
                        done = RotationCounts(done.rewrapped, done.skipped, done.failed + 1)
                swapped = len(store.replace_sealed(updates)) if updates else 0
                work += len(updates)
                done = RotationCounts(done.rewrapped + swapped, done.skipped + len(updates) - swapped, done.failed)
                if progress is not None:
                    progress(done)
        if work == 0:
            return RotationCounts(done.rewrapped, done.skipped, done.failed, complete=True)
