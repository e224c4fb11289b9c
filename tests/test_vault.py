"""The vault's crypto (graph/vault.py): sealing bound to kind and owner, the blind index, masks, the keys."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from c360.graph.errors import ConfigError, InvalidInputError
from c360.graph.vault import (
    ENV_VAR,
    INDEX_KEY,
    RotationCounts,
    Sealed,
    SealedUpdate,
    SecretItem,
    VaultError,
    VaultKeys,
    mask,
    normalise,
    open_vault_keys,
    rotate_vault_keys,
    sealed_key_id,
)
from stdnum import verhoeff

KEYS = VaultKeys.generate()


def aadhaar(base: str) -> str:
    """A valid Aadhaar number: 11 digits (not starting 0 or 1) and their Verhoeff check digit."""
    return base + verhoeff.calc_check_digit(base)


AADHAAR = aadhaar("23412341234")  # 234123412346
PAN = "ABCPE1234F"
PASSPORT = "K1234567"
NATIONAL_ID = "AB123456C"
PLAIN = {"aadhaar": AADHAAR, "pan": PAN, "passport": PASSPORT, "national_id": NATIONAL_ID}


@pytest.mark.parametrize("kind", sorted(PLAIN))
def test_a_sealed_value_opens_to_its_normal_form_under_its_owner(kind: str) -> None:
    sealed = KEYS.seal(kind, PLAIN[kind].lower(), context="crm|1")
    assert PLAIN[kind] not in sealed and PLAIN[kind].lower() not in sealed
    assert sealed.startswith(f"v1.{kind}.k1.")
    assert KEYS.open_(sealed, context="crm|1") == PLAIN[kind]
    assert KEYS.open_(sealed, context="crm|1", kind=kind) == PLAIN[kind]


def test_the_normal_forms() -> None:
    assert normalise("aadhaar", "2341 2341-2346") == AADHAAR
    assert normalise("pan", " abcpe 1234f ") == PAN
    assert normalise("passport", "k-123 4567") == PASSPORT
    assert normalise("national_id", "ab 12 34 56 c") == NATIONAL_ID


def test_a_value_moved_to_another_owner_does_not_open() -> None:
    sealed = KEYS.seal("aadhaar", AADHAAR, context="crm|1")
    with pytest.raises(VaultError) as err:
        KEYS.open_(sealed, context="crm|2")
    assert err.value.problem == "not_authentic"


def test_a_value_moved_to_another_kind_does_not_open() -> None:
    sealed = KEYS.seal("passport", PASSPORT, context="app-1")
    with pytest.raises(VaultError) as err:  # stored as a national id: the caller's kind is checked
        KEYS.open_(sealed, context="app-1", kind="national_id")
    assert err.value.problem == "wrong_kind"
    relabelled = sealed.replace("v1.passport.", "v1.national_id.", 1)
    with pytest.raises(VaultError) as err:  # the header rewritten: the associated data no longer matches
        KEYS.open_(relabelled, context="app-1")
    assert err.value.problem == "not_authentic"


def test_tampering_is_detected() -> None:
    sealed = KEYS.seal("pan", PAN, context="crm|1")
    parts = Sealed.parse(sealed)
    body = bytearray(parts.ciphertext)
    body[0] ^= 1
    altered = Sealed(parts.kind, parts.key_id, parts.nonce, bytes(body)).text()
    other_nonce = Sealed(parts.kind, parts.key_id, bytes(12), parts.ciphertext).text()
    for bad in (altered, other_nonce):
        with pytest.raises(VaultError) as err:
            KEYS.open_(bad, context="crm|1")
        assert err.value.problem == "not_authentic"
    rotated = KEYS.rotated()  # the header names another key of the ring: it does not open under that key
    with pytest.raises(VaultError) as err:
        rotated.open_(sealed.replace(".k1.", ".k2.", 1), context="crm|1")
    assert err.value.problem == "not_authentic"


def test_unknown_keys_and_malformed_text_are_refused() -> None:
    sealed = KEYS.seal("pan", PAN, context="crm|1")
    with pytest.raises(VaultError) as err:
        VaultKeys.generate().open_(sealed.replace(".k1.", ".k9.", 1), context="crm|1")
    assert err.value.problem == "unknown_key"
    with pytest.raises(VaultError) as err:  # the index key never opens anything
        KEYS.open_(sealed.replace(".k1.", f".{INDEX_KEY}.", 1), context="crm|1")
    assert err.value.problem == "unknown_key"
    for bad in ("", PAN, "v1.pan.k1.abc", "v2" + sealed[2:], "v1.ssn" + sealed[6:], sealed[:-30], sealed + "!"):
        with pytest.raises(VaultError) as err:
            KEYS.open_(bad, context="crm|1")
        assert err.value.problem in ("malformed", "not_authentic")


def test_two_seals_differ_but_their_lookup_tokens_are_equal() -> None:
    one = KEYS.seal("aadhaar", AADHAAR, context="crm|1")
    two = KEYS.seal("aadhaar", AADHAAR, context="crm|1")
    assert one != two and Sealed.parse(one).nonce != Sealed.parse(two).nonce
    token = KEYS.lookup_token("aadhaar", AADHAAR)
    assert token == KEYS.lookup_token("aadhaar", "2341 2341 2346")  # normalised first
    assert len(token) == 64 and AADHAAR not in token
    assert token != KEYS.lookup_token("aadhaar", aadhaar("23412341235"))
    assert VaultKeys.generate().lookup_token("aadhaar", AADHAAR) != token  # keyed: no dictionary without the key
    # The same characters as another kind are another token.
    assert KEYS.lookup_token("passport", "ABC123") != KEYS.lookup_token("national_id", "ABC123")


def test_masks() -> None:
    assert mask("aadhaar", "2341 2341 2346") == "XXXX XXXX 2346"
    assert mask("pan", "abcpe1234f") == "XXXXXX234F"
    assert mask("passport", PASSPORT) == "XXXXX567"
    assert mask("national_id", NATIONAL_ID) == "XXXXX456C"


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("aadhaar", "23412341234"),  # 11 digits
        ("aadhaar", "234123412347"),  # wrong check digit
        ("aadhaar", "134123412346"),  # starts with 1
        ("aadhaar", "2341234123A6"),
        ("pan", "ABCP1234F"),
        ("pan", "ABCQE1234F"),  # Q is no holder type
        ("pan", "1BCPE1234F"),
        ("passport", "K12"),
        ("national_id", "AB#12345"),
        ("national_id", 123456789),
    ],
)
def test_malformed_identifiers_are_refused_without_quoting_them(kind: str, value: object) -> None:
    for call in (normalise, mask, KEYS.lookup_token):
        with pytest.raises(InvalidInputError) as err:
            call(kind, value)  # type: ignore[operator]
        assert str(value) not in str(err.value) and err.value.__cause__ is None
    with pytest.raises(InvalidInputError):
        KEYS.seal(kind, value, context="crm|1")  # type: ignore[arg-type]


def test_unknown_kinds_and_contexts_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        KEYS.seal("ssn", "123456789", context="crm|1")
    with pytest.raises(InvalidInputError):
        KEYS.seal("pan", PAN, context="")
    with pytest.raises(InvalidInputError):
        SecretItem("crm|1", "aadhaar", KEYS.seal("pan", PAN, context="crm|1"), "0" * 64)  # sealed as another kind
    with pytest.raises(InvalidInputError):
        SecretItem("crm|1", "pan", KEYS.seal("pan", PAN, context="crm|1"), "not-a-token")


def test_the_plain_value_is_in_no_repr_str_or_key_file(tmp_path: Path) -> None:
    path = tmp_path / "vault-keys.json"
    keys = open_vault_keys(path)
    item = keys.item("crm|1", "aadhaar", AADHAAR)
    update = SealedUpdate("crm|1", "aadhaar", item.sealed, keys.rotated().rewrap(item.sealed, "crm|1"))
    try:
        keys.open_(item.sealed, context="crm|2")
    except VaultError as exc:
        error = exc
    objects = [keys, item, update, Sealed.parse(item.sealed), error, RotationCounts(1, 0, 0, True)]
    for obj in objects:
        for text in (repr(obj), str(obj)):
            assert AADHAAR not in text and "2346" not in text
    for secret in keys.secrets.values():  # no key material in the ring's repr either
        assert base64.urlsafe_b64encode(secret).decode() not in repr(keys)
    assert AADHAAR not in path.read_text() and AADHAAR not in item.token


def test_the_key_file_is_made_on_first_use_with_mode_0600_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "vault-keys.json"
    keys = open_vault_keys(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["current"] == "k1" and [k["id"] for k in doc["keys"]] == ["k1", INDEX_KEY]
    assert open_vault_keys(path).secrets == keys.secrets  # read again, not made again
    with pytest.raises(ConfigError):
        open_vault_keys(tmp_path / "missing.json", create=False)
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        open_vault_keys(path)


def test_rotation_adds_a_current_key_keeps_the_old_ones_and_the_index(tmp_path: Path) -> None:
    path = tmp_path / "vault-keys.json"
    old = open_vault_keys(path)
    sealed = old.seal("aadhaar", AADHAAR, context="crm|1")
    new = rotate_vault_keys(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert new.current == "k2" and new.sealing_ids == ("k1", "k2") and open_vault_keys(path).current == "k2"
    assert new.secrets[INDEX_KEY] == old.secrets[INDEX_KEY] and new.secrets["k1"] == old.secrets["k1"]
    assert new.open_(sealed, context="crm|1") == AADHAAR  # readers keep working
    assert new.lookup_token("aadhaar", AADHAAR) == old.lookup_token("aadhaar", AADHAAR)
    rewrapped = new.rewrap(sealed, "crm|1")
    assert sealed_key_id(rewrapped) == "k2" and new.open_(rewrapped, context="crm|1") == AADHAAR
    assert new.rewrap(rewrapped, "crm|1") == rewrapped  # already current: itself
    with pytest.raises(VaultError):
        old.open_(rewrapped, context="crm|1")  # a process still on the old ring cannot read the new key's values
    with pytest.raises(VaultError):
        new.rewrap(sealed, "crm|2")  # re-sealing checks the owner too


def test_keys_from_the_environment(tmp_path: Path) -> None:
    ring = VaultKeys.generate().rotated()
    path = tmp_path / "vault-keys.json"
    keys = open_vault_keys(path, environ={ENV_VAR: ring.encode()})
    assert not path.exists()  # the variable wins; no file is made
    assert keys.current == "k2" and keys.secrets == ring.secrets
    assert keys.open_(ring.seal("pan", PAN, context="a"), context="a") == PAN
    assert open_vault_keys(path, environ={ENV_VAR: "  "}).secrets != ring.secrets  # empty: the file
    with pytest.raises(ConfigError, match=ENV_VAR):
        open_vault_keys(path, environ={ENV_VAR: "{not json"})
    no_index = json.loads(ring.encode())
    no_index["keys"] = [k for k in no_index["keys"] if k["id"] != INDEX_KEY]
    with pytest.raises(ConfigError, match="index"):
        open_vault_keys(path, environ={ENV_VAR: json.dumps(no_index)})


def test_a_ring_without_fit_keys_is_refused() -> None:
    key = os.urandom(32)
    with pytest.raises(ConfigError):
        VaultKeys(INDEX_KEY, {"k1": key, INDEX_KEY: key})  # the index key never seals
    with pytest.raises(ConfigError):
        VaultKeys("k1", {"k1": os.urandom(16), INDEX_KEY: key})  # AES-256 only
    with pytest.raises(ConfigError):
        VaultKeys("k1", {"k1": key})
