"""Consent receipts: Ed25519 compact JWS, a JWKS any JOSE library reads, rotation, hash chains and tampering."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from c360.graph.consent import ConsentEvent, Notice
from c360.graph.errors import ConfigError, InvalidInputError
from c360.graph.key_ring import KeyRing
from c360.graph.receipts import (
    RECEIPT_VERSION,
    ChainReport,
    Controller,
    ReceiptError,
    SigningKeys,
    receipt_claims,
    receipt_hash,
    sign,
    verify,
    verify_chain,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

T0 = datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
NOTICE = Notice.of_text("privacy", "7", "de", "Wir senden Ihnen Angebote per E-Mail.")
CONTROLLER = Controller("Example Retail GmbH", "Data Protection Officer", "privacy@example.com", url="https://ex.com")


def event(n: int, status: str = "granted", **kw: Any) -> ConsentEvent:
    fields: dict[str, Any] = {
        "record_uid": "shop|42",
        "purpose": "marketing",
        "channel": "email",
        "actor_kind": "customer",
        "actor_id": "self",
        "source": "shop",
        "method": "double_opt_in",
        "notice": NOTICE,
        "jurisdiction": "DE",
    }
    fields.update(kw)
    return ConsentEvent(id=f"ev{n}", status=status, captured_at=T0 + timedelta(hours=n), **fields)


def claims_of(ev: ConsentEvent, previous: str | None, n: int = 0) -> dict[str, Any]:
    return receipt_claims(
        ev,
        controller=CONTROLLER,
        principal_id="cust-1",
        policy_url="https://ex.com/privacy",
        pii_categories=["contact details"],
        receipt_id=f"rcpt-{n}",
        issued_at=ev.captured_at + timedelta(seconds=1),
        previous=previous,
    )


def chain(keys: SigningKeys, n: int) -> list[str]:
    out: list[str] = []
    for i in range(n):
        ev = event(i, ("granted", "withdrawn", "denied")[i % 3])
        out.append(keys.sign(claims_of(ev, out[-1] if out else None, i)))
    return out


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys.generate()


def test_claims_follow_the_kantara_fields() -> None:
    ev = event(0, expires_at=T0 + timedelta(days=365))
    c = claims_of(ev, None)
    assert c["version"] == RECEIPT_VERSION
    assert (c["jurisdiction"], c["collectionMethod"], c["consentReceiptID"]) == ("DE", "double_opt_in", "rcpt-0")
    assert c["consentTimestamp"] == int(T0.timestamp()) and c["iat"] == int(T0.timestamp()) + 1
    assert c["piiPrincipalId"] == c["sub"] == "cust-1" and c["jti"] == "rcpt-0"
    assert c["piiControllers"] == [
        {
            "piiController": "Example Retail GmbH",
            "onBehalf": False,
            "contact": "Data Protection Officer",
            "email": "privacy@example.com",
            "piiControllerUrl": "https://ex.com",
        }
    ]
    assert c["policyUrl"] == "https://ex.com/privacy" and c["language"] == "de"
    (service,) = c["services"]
    (purpose,) = service["purposes"]
    assert service["service"] == "email"
    assert purpose["purpose"] == "marketing" and purpose["piiCategory"] == ["contact details"]
    assert purpose["termination"] == "2027-03-01T12:30:15.250000+00:00"
    assert c["c360"]["event"] == "ev0" and c["c360"]["record"] == "shop|42"
    assert c["c360"]["notice"]["textSha256"] == NOTICE.text_sha256
    assert c["c360"]["actor"] == {"kind": "customer", "id": "self"}
    assert c["c360"]["capturedAt"] == "2026-03-01T12:30:15.250000+00:00"
    assert "prev" not in c and "prevSig" not in c
    assert claims_of(event(1, "withdrawn"), None)["services"][0]["purposes"][0]["termination"] == "until withdrawn"


def test_claims_refuse_bad_inputs() -> None:
    with pytest.raises(InvalidInputError, match=r"issued_at .* has no time zone"):
        receipt_claims(
            event(0),
            controller=CONTROLLER,
            principal_id="c",
            policy_url="u",
            pii_categories=["x"],
            receipt_id="r",
            issued_at=datetime(2026, 1, 1),
            previous=None,
        )
    with pytest.raises(InvalidInputError, match="pii_categories"):
        receipt_claims(
            event(0),
            controller=CONTROLLER,
            principal_id="c",
            policy_url="u",
            pii_categories="email",
            receipt_id="r",
            issued_at=T0,
            previous=None,
        )
    with pytest.raises(ReceiptError, match="3 parts"):
        claims_of(event(1), "not-a-jws")


def test_sign_verify_round_trip_and_the_compact_form(keys: SigningKeys) -> None:
    claims = claims_of(event(0), None)
    jws = keys.sign(claims)
    assert verify(jws, keys.jwks()) == claims
    header, payload, signature = jws.split(".")
    assert "=" not in jws
    assert json.loads(unb64(header)) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}
    assert unb64(payload) == json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(unb64(signature)) == 64
    # the same claims with the same key give the same receipt (Ed25519 is deterministic; canonical JSON)
    assert keys.sign(dict(reversed(list(claims.items())))) == jws


def test_a_receipt_verifies_with_only_the_jwks_and_another_jose_library(keys: SigningKeys) -> None:
    from jwcrypto import jwk, jws  # test-only: c360 itself does not use it
    from jwcrypto.common import JWKeyNotFound

    token = keys.sign(claims_of(event(0), None))
    published = json.loads(json.dumps(keys.jwks()))  # what /.well-known/jwks.json serves
    assert all("d" not in k for k in published["keys"])
    keyset = jwk.JWKSet.from_json(json.dumps(published))
    checked = jws.JWS()
    checked.allowed_algs = ["EdDSA"]
    checked.deserialize(token, key=keyset)  # raises if it does not verify
    assert json.loads(checked.payload)["consentReceiptID"] == "rcpt-0"
    assert checked.jose_header["kid"] == "k1"
    # and jwcrypto refuses it once altered (with a key set it says no key in the set verifies it)
    header, payload, signature = token.split(".")
    altered = json.loads(unb64(payload))
    altered["c360"]["status"] = "denied"
    bad = jws.JWS()
    bad.allowed_algs = ["EdDSA"]
    with pytest.raises((jws.InvalidJWSSignature, JWKeyNotFound)):
        bad.deserialize(f"{header}.{b64(json.dumps(altered).encode())}.{signature}", key=keyset)


def test_rotation_keeps_old_receipts_verifiable_by_kid() -> None:
    k1 = SigningKeys.generate()
    old = k1.sign(claims_of(event(0), None))
    k2 = k1.rotated()
    assert (k2.current, k2.ids) == ("k2", ("k1", "k2"))
    assert k2.secrets["k1"] == k1.secrets["k1"]
    new = k2.sign(claims_of(event(1), old, 1))
    assert json.loads(unb64(new.split(".")[0]))["kid"] == "k2"
    jwks = k2.jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["k1", "k2"]
    assert all((k["kty"], k["crv"], k["use"], k["alg"]) == ("OKP", "Ed25519", "sig", "EdDSA") for k in jwks["keys"])
    assert verify(old, jwks)["jti"] == "rcpt-0"
    assert verify(new, jwks)["jti"] == "rcpt-1"
    assert verify_chain([old, new], jwks).ok
    # the old JWKS does not know the new key
    with pytest.raises(ReceiptError, match="unknown key 'k2'") as info:
        verify(new, k1.jwks())
    assert info.value.problem == "unknown_key"
    assert k2.rotated().current == "k3"


def test_keys_are_a_key_ring_of_ed25519_seeds_and_refuse_bad_rings() -> None:
    ring = SigningKeys.generate().rotated()
    assert isinstance(ring, KeyRing) and ring.kind == "signing"
    assert all(len(seed) == 32 for seed in ring.secrets.values())
    again = SigningKeys.decode(Path("signing-keys.json"), ring.encode())
    assert again == ring and again.jwks() == ring.jwks()
    assert "secret" not in repr(ring) and str(ring.secrets["k1"]) not in repr(ring)
    doc = json.loads(ring.encode())
    assert doc["version"] == 1 and doc["current"] == "k2" and [k["id"] for k in doc["keys"]] == ["k1", "k2"]
    with pytest.raises(ConfigError, match="32 bytes"):
        SigningKeys("k1", {"k1": b"short"})
    with pytest.raises(ConfigError, match="32 bytes"):
        SigningKeys("k1", {"k1": bytes(64)})  # long enough for a KeyRing, not an Ed25519 seed
    with pytest.raises(ConfigError, match="needs its current key"):
        SigningKeys("k9", {"k1": bytes(32)})
    with pytest.raises(ConfigError, match=r"signing key file signing-keys\.json: not JSON"):
        SigningKeys.decode(Path("signing-keys.json"), "{")
    with pytest.raises(ConfigError, match="given twice"):
        SigningKeys.decode(Path("k.json"), json.dumps({"version": 1, "current": "k1", "keys": [doc["keys"][0]] * 2}))
    seed16 = base64.urlsafe_b64encode(bytes(16)).decode()
    short = {"version": 1, "current": "k1", "keys": [{"id": "k1", "secret": seed16}]}
    with pytest.raises(ConfigError, match=r"signing key file k\.json: signing key k1: an Ed25519 seed is 32 bytes"):
        SigningKeys.decode(Path("k.json"), json.dumps(short))
    with pytest.raises(ConfigError, match="no signing key 'k7'"):
        ring.private_key("k7")


def test_verify_names_the_problem(keys: SigningKeys) -> None:
    jwks = keys.jwks()
    token = keys.sign({"a": 1})
    header, payload, signature = token.split(".")
    changed = b64(b'{"a":2}')
    cases = {
        "malformed": ["abc", "a.b", f"{header}.{payload}.{signature}=", f"{b64(b'[1]')}.{payload}.{signature}"],
        "bad_signature": [f"{header}.{changed}.{signature}", f"{header}.{payload}.{b64(bytes(64))}"],
    }
    for problem, tokens in cases.items():
        for bad in tokens:
            with pytest.raises(ReceiptError) as info:
                verify(bad, jwks)
            assert info.value.problem == problem, bad
    other = Ed25519PrivateKey.generate()
    with pytest.raises(ReceiptError, match="bad signature: the receipt does not verify with key 'k1'"):
        verify(sign({"a": 1}, "k1", other), jwks)
    with pytest.raises(ReceiptError, match="unknown key 'zz'"):
        verify(sign({"a": 1}, "zz", other), jwks)
    none_alg = f"{b64(json.dumps({'alg': 'none', 'kid': 'k1'}).encode())}.{payload}."
    with pytest.raises(ReceiptError, match="alg 'none'"):
        verify(none_alg, jwks)
    with pytest.raises(ReceiptError, match="not a JWK Set"):
        verify(token, {"key": []})
    assert isinstance(ReceiptError("malformed", "x"), InvalidInputError)


# -- chains ----------------------------------------------------------------------------------------


def report(receipts: list[str], keys: SigningKeys, **kw: Any) -> tuple[int | None, str | None]:
    r = verify_chain(receipts, keys.jwks(), **kw)
    assert isinstance(r, ChainReport) and r.count == len(receipts) and r.ok == (r.reason is None)
    return r.index, r.reason


def test_a_whole_chain_verifies(keys: SigningKeys) -> None:
    receipts = chain(keys, 6)
    assert report(receipts, keys) == (None, None)
    assert report(receipts, keys, head=receipt_hash(receipts[-1])) == (None, None)
    assert report([], keys) == (None, None)
    claims = [verify(r, keys.jwks()) for r in receipts]
    assert all(c["prev"] == receipt_hash(r) for c, r in zip(claims[1:], receipts, strict=False))


def test_a_forged_signature_is_named(keys: SigningKeys) -> None:
    receipts = chain(keys, 6)
    header, payload, _ = receipts[3].split(".")
    receipts[3] = f"{header}.{payload}.{b64(Ed25519PrivateKey.generate().sign(f'{header}.{payload}'.encode()))}"
    assert report(receipts, keys) == (3, "forged")


def test_a_receipt_made_with_another_key_is_forged(keys: SigningKeys) -> None:
    receipts = chain(keys, 4)
    intruder = SigningKeys.generate()
    receipts[2] = intruder.sign(claims_of(event(2), receipts[1], 2))  # same kid, another key
    assert report(receipts, keys) == (2, "forged")
    receipts = chain(keys, 4)
    receipts[1] = sign(claims_of(event(1), receipts[0], 1), "k7", Ed25519PrivateKey.generate())
    r = verify_chain(receipts, keys.jwks())
    assert (r.index, r.reason) == (1, "forged") and "unknown key 'k7'" in r.detail


def test_an_altered_payload_is_named(keys: SigningKeys) -> None:
    receipts = chain(keys, 6)
    header, payload, signature = receipts[2].split(".")
    claims = json.loads(unb64(payload))
    claims["c360"]["status"] = "granted" if claims["c360"]["status"] != "granted" else "withdrawn"
    receipts[2] = f"{header}.{b64(json.dumps(claims, sort_keys=True, separators=(',', ':')).encode())}.{signature}"
    assert report(receipts, keys) == (2, "altered")
    # the last receipt has no successor to vouch for its signature: a failing one is reported forged
    receipts = chain(keys, 3)
    header, payload, signature = receipts[2].split(".")
    receipts[2] = f"{header}.{b64(unb64(payload).replace(b'rcpt-2', b'rcpt-9'))}.{signature}"
    assert report(receipts, keys) == (2, "forged")


def test_a_removed_entry_is_named(keys: SigningKeys) -> None:
    receipts = chain(keys, 6)
    assert report(receipts[:3] + receipts[4:], keys) == (3, "removed")
    assert report(receipts[1:], keys) == (0, "removed")  # the chain's start is missing
    # a cut-off tail shows only against the head the store keeps
    assert report(receipts[:5], keys) == (None, None)
    assert report(receipts[:5], keys, head=receipt_hash(receipts[5])) == (5, "removed")


def test_reordered_entries_are_named(keys: SigningKeys) -> None:
    r = chain(keys, 6)
    assert report([r[0], r[1], r[3], r[2], r[4], r[5]], keys) == (2, "reordered")
    assert report([r[1], r[0], *r[2:]], keys) == (0, "reordered")
    assert report([r[0], r[1], r[2], r[4], r[5], r[3]], keys) == (3, "reordered")
    assert report([r[0], r[1], r[1], *r[2:]], keys) == (2, "reordered")  # a copy
    assert report([r[1], r[2], r[0], *r[3:]], keys) == (0, "reordered")  # the first moved on
    assert report([*r[:3], r[0]], keys) == (3, "reordered")


def test_only_the_first_bad_entry_is_named(keys: SigningKeys) -> None:
    r = chain(keys, 6)
    bad = r[4].split(".")
    bad[2] = b64(bytes(64))
    tampered = [r[0], r[2], r[1], r[3], ".".join(bad), r[5]]
    assert report(tampered, keys) == (1, "reordered")
    assert report([*r[:2], "garbage", *r[2:]], keys) == (2, "malformed")
