"""The vault port: sealed identifiers (:mod:`c360.graph.vault`) by owner and kind, found by lookup token.

A secret is one (owner, kind): the owner a record uid or an application id, the kind one of
:data:`~c360.graph.vault.KINDS`. The store never sees a plain value or a key: it keeps the sealed text,
the blind-index token and the key id the text names. Writes replace (no history is kept here); a
rotation re-seals through :meth:`VaultPort.replace_sealed`, a compare-and-swap by the old sealed text, so
that it never overwrites a value a writer changed meanwhile.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Collection
from typing import TypeVar, final

from ..errors import ConflictError, InvalidInputError
from ..vault import SealedUpdate, SecretItem, check_kind
from .base import MAX_BATCH, Port

_KEY_ID = re.compile(r"^[a-z0-9_-]{1,32}$")
_TOKEN = re.compile(r"^[0-9a-f]{64}$")

#: A secret's key: (owner, kind).
Key = tuple[str, str]
T = TypeVar("T", SecretItem, SealedUpdate)


def _batch(what: str, items: object, cls: type[T]) -> list[T]:
    if isinstance(items, cls) or not isinstance(items, Collection) or isinstance(items, str):
        raise InvalidInputError(f"{what} takes a collection of {cls.__name__} values")
    out: dict[Key, T] = {}
    for item in items:
        if not isinstance(item, cls):
            raise InvalidInputError(f"{what} takes {cls.__name__} values, not {type(item).__name__}")
        first = out.setdefault((item.owner, item.kind), item)
        if first != item:
            raise ConflictError(f"{what}: {item.owner}/{item.kind} is given twice with different content")
    if len(out) > MAX_BATCH:
        raise InvalidInputError(f"{what} takes at most {MAX_BATCH} values, not {len(out)}")
    return list(out.values())


def _owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise InvalidInputError(f"an owner is a non-empty string, not {owner!r}")
    return owner


class VaultPort(Port):
    """Keep, find, re-seal and purge sealed identifiers."""

    @final
    def put_secrets(self, items: Collection[SecretItem]) -> list[Key]:
        """Store ``items`` in one transaction, each replacing its (owner, kind); return the keys that changed.

        An item equal to the stored one changes nothing (a replay) and is not in the result.
        """
        batch = _batch("put_secrets", items, SecretItem)
        if not batch:
            return []
        return self._call("put_secrets", lambda: self._put_secrets(batch))

    @final
    def get_secret(self, owner: str, kind: str) -> SecretItem | None:
        """The stored secret of ``owner`` of ``kind``, or ``None``."""
        _owner(owner)
        check_kind(kind)
        return self._call("get_secret", lambda: self._get_secret(owner, kind))

    @final
    def find_by_token(self, kind: str, token: str) -> list[str]:
        """The owners whose secret of ``kind`` has lookup token ``token``, in order."""
        check_kind(kind)
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise InvalidInputError("a lookup token is 64 lower-case hex digits")
        return self._call("find_by_token", lambda: self._find_by_token(kind, token))

    @final
    def secrets_with_key(self, key_id: str, *, after: Key | None = None, limit: int = 500) -> list[SecretItem]:
        """A page of the secrets sealed under ``key_id``, in (owner, kind) order, after the key ``after``."""
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise InvalidInputError(f"invalid key id {key_id!r}")
        if after is not None and not (
            isinstance(after, tuple) and len(after) == 2 and all(isinstance(a, str) for a in after)
        ):
            raise InvalidInputError(f"after is an (owner, kind) pair, not {after!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_BATCH:
            raise InvalidInputError(f"limit is from 1 to {MAX_BATCH}, not {limit!r}")
        return self._call("secrets_with_key", lambda: self._secrets_with_key(key_id, after, limit))

    @final
    def secret_key_counts(self) -> dict[str, int]:
        """How many secrets are sealed under each key id (a key may be retired when it has none)."""
        return self._call("secret_key_counts", lambda: self._secret_key_counts())

    @final
    def replace_sealed(self, updates: Collection[SealedUpdate]) -> list[Key]:
        """Swap each secret's sealed text ``old`` for ``new`` where it still is ``old``; return the keys swapped.

        One transaction; a secret whose sealed text is no longer ``old`` (changed or deleted meanwhile)
        is left as it is and missing from the result. The token stays: ``new`` must seal the same value.
        """
        batch = _batch("replace_sealed", updates, SealedUpdate)
        if not batch:
            return []
        return self._call("replace_sealed", lambda: self._replace_sealed(batch))

    @final
    def delete_secrets(self, owner: str, kinds: Collection[str] | None = None) -> int:
        """Delete ``owner``'s secrets of ``kinds`` (all of them if ``None``); return how many there were."""
        _owner(owner)
        if kinds is not None:
            if isinstance(kinds, str) or not isinstance(kinds, Collection):
                raise InvalidInputError("kinds is a collection of vault kinds")
            kinds = sorted({check_kind(k) for k in kinds})
            if not kinds:
                return 0
        chosen = None if kinds is None else list(kinds)
        return self._call("delete_secrets", lambda: self._delete_secrets(owner, chosen))

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _put_secrets(self, items: list[SecretItem]) -> list[Key]:
        """Upsert ``items`` by (owner, kind) in one write transaction; the keys whose row is new or changed."""

    @abstractmethod
    def _get_secret(self, owner: str, kind: str) -> SecretItem | None: ...

    @abstractmethod
    def _find_by_token(self, kind: str, token: str) -> list[str]:
        """The owners, sorted."""

    @abstractmethod
    def _secrets_with_key(self, key_id: str, after: Key | None, limit: int) -> list[SecretItem]:
        """At most ``limit`` secrets under ``key_id`` with (owner, kind) greater than ``after``, in that order."""

    @abstractmethod
    def _secret_key_counts(self) -> dict[str, int]: ...

    @abstractmethod
    def _replace_sealed(self, updates: list[SealedUpdate]) -> list[Key]:
        """In one write transaction that locks each row before comparing, swap where sealed == old."""

    @abstractmethod
    def _delete_secrets(self, owner: str, kinds: list[str] | None) -> int: ...
