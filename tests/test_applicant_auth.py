"""Applicant sign-in: password policy, argon2id hashing and rehash, lockout, one-time codes through the
outbox, sessions; and the REST routes end to end (register -> login -> code -> session -> /me -> logout)
on the embedded store, with a fixed clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.errors import ConflictError, InvalidInputError
from c360.graph.outbox import OutboxMessage
from c360.graphql.applicant_auth import (
    AccountLocked,
    ApplicantAuth,
    ApplicantAuthConfig,
    CodeRejected,
    LoginFailed,
    OtpSent,
    token_hash,
)
from c360.graphql.applicant_passwords import COMMON_PASSWORDS, PasswordPolicy, Passwords, password_problems
from c360.graphql.http import install_error_handlers
from c360.graphql.principal import AuthError
from c360.graphql.routes_applicants import applicant_router
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GOOD = "Correct-Horse-42"
# Cheap hashing: the tests check behaviour, not cost.
CHEAP = {"argon2_time_cost": 1, "argon2_memory_kib": 64, "argon2_parallelism": 1}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    s = EmbeddedStore(EmbeddedConfig(path=tmp_path / "graph.db"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def service(store: EmbeddedStore, clock: Clock, **config: object) -> ApplicantAuth:
    return ApplicantAuth(store, ApplicantAuthConfig.model_validate({**CHEAP, **config}), clock=clock)


@pytest.fixture
def auth(store: EmbeddedStore, clock: Clock) -> ApplicantAuth:
    return service(store, clock)


def sent_message(store: EmbeddedStore, sent: OtpSent) -> OutboxMessage:
    item = store.outbox_message(f"applicant-otp|{sent.challenge_id}")
    assert item is not None
    return item.message


def code_of(store: EmbeddedStore, sent: OtpSent) -> str:
    found = re.search(r"\b(\d{6})\b", sent_message(store, sent).body)
    assert found is not None
    return found.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def sign_in(auth: ApplicantAuth, store: EmbeddedStore, login: str, password: str = GOOD) -> str:
    sent = auth.login(login=login, password=password)
    return auth.verify_otp(challenge_id=sent.challenge_id, code=code_of(store, sent)).token


# -- password policy -----------------------------------------------------------------------------------


POLICY = PasswordPolicy()


@pytest.mark.parametrize(
    ("password", "broken"),
    [
        (GOOD, []),
        ("correct horse battery", []),  # a passphrase of 16+ needs no mix of classes
        ("Sh0rt!pass", ["at least 12 characters"]),
        ("alllowercaseabc", ["at least 3 of"]),
        ("ALLUPPER123456", ["at least 3 of"]),
        ("x" * 129, ["at most 128 characters"]),
        ("password", ["at least 12 characters", "at least 3 of", "most common"]),
        ("Password@1234", ["most common"]),
        ("Ann.Lee-2026!", ["e-mail address's name"]),
        ("My#Phone9812345678", ["mobile number"]),
        ("My#Phone+91-98123-45678", ["mobile number"]),
    ],
)
def test_password_policy_names_every_broken_rule(password: str, broken: list[str]) -> None:
    problems = password_problems(password, POLICY, email="ann.lee@example.com", mobile="+919812345678")
    assert len(problems) == len(broken)
    for problem, expected in zip(problems, broken, strict=True):
        assert expected in problem


def test_the_policy_is_configurable_and_the_common_list_is_bundled() -> None:
    assert len(COMMON_PASSWORDS) >= 100
    short = PasswordPolicy(min_length=8, min_classes=2, passphrase_length=20)
    assert password_problems("abcdefg1", short) == []
    assert password_problems("abcdefgh", short) != []
    with pytest.raises(ValidationError):
        ApplicantAuthConfig(password_min_length=20, password_max_length=16)
    with pytest.raises(ValidationError):
        ApplicantAuthConfig(unknown=1)  # type: ignore[call-arg]


def test_register_refuses_a_weak_password_listing_every_rule_and_stores_nothing(
    auth: ApplicantAuth, store: EmbeddedStore
) -> None:
    with pytest.raises(InvalidInputError) as err:
        auth.register(email="ann.lee@example.com", password="ann.lee")
    message = str(err.value)
    assert "at least 12 characters" in message and "at least 3 of" in message and "name" in message
    assert "ann.lee" not in message  # the rules, never the password
    assert store.find_applicant("ann.lee@example.com") is None


# -- registration ----------------------------------------------------------------------------------


def test_register_normalises_login_ids_and_refuses_a_second_registration(
    auth: ApplicantAuth, store: EmbeddedStore
) -> None:
    a = auth.register(email=" Ann@Example.COM", mobile="098123 45678", password=GOOD)
    assert a.id.startswith("ap_") and a.created_at == T0
    assert (a.email, a.mobile, a.status, a.failed_logins, a.customer_id) == (
        "ann@example.com",
        "+919812345678",
        "active",
        0,
        None,
    )
    assert a.password_hash.startswith("$argon2id$") and GOOD not in a.password_hash
    assert store.find_applicant("+919812345678") == a
    for email, mobile in (("ANN@example.com", None), (None, "+91 98123-45678")):
        with pytest.raises(ConflictError) as err:
            auth.register(password="Another-Pass-77", email=email, mobile=mobile)
        assert str(err.value) == "already registered"
    b = auth.register(mobile="+1 212 555 0123", password=GOOD)
    assert b.mobile == "+12125550123" and b.email is None
    with pytest.raises(InvalidInputError):
        auth.register(password=GOOD)
    with pytest.raises(InvalidInputError):
        auth.register(email="not-an-address", password=GOOD)


def test_the_default_region_is_configurable(store: EmbeddedStore, clock: Clock) -> None:
    uk = service(store, clock, default_region="GB")
    assert uk.register(mobile="07911 123456", password=GOOD).mobile == "+447911123456"


# -- login and one-time codes ----------------------------------------------------------------------


def test_login_sends_a_code_by_the_login_ids_channel_and_keeps_only_its_hash(
    auth: ApplicantAuth, store: EmbeddedStore
) -> None:
    a = auth.register(email="ann@example.com", mobile="+919812345678", password=GOOD)
    by_mail = auth.login(login="ANN@example.com", password=GOOD)
    assert by_mail.channel == "email" and by_mail.expires_at == T0 + timedelta(minutes=5)
    mail = sent_message(store, by_mail)
    assert (mail.channel, mail.to, mail.kind, mail.created_at) == ("email", "ann@example.com", "applicant_otp", T0)
    assert mail.subject
    code = code_of(store, by_mail)
    challenge = store.get_otp(by_mail.challenge_id)
    assert challenge is not None and challenge.applicant_id == a.id
    assert code not in (challenge.code_hash, challenge.salt)
    by_sms = auth.login(login="98123 45678", password=GOOD)
    sms = sent_message(store, by_sms)
    assert (by_sms.channel, sms.channel, sms.to, sms.subject) == ("sms", "sms", "+919812345678", None)
    grant = auth.verify_otp(challenge_id=by_sms.challenge_id, code=code_of(store, by_sms))
    assert grant.applicant_id == a.id and grant.token.startswith("c360a_")
    assert grant.token not in repr(grant)
    assert store.get_session(token_hash(grant.token)) is not None
    signed_in = store.get_applicant(a.id)
    assert signed_in.last_login_at == T0


def test_an_unknown_login_id_and_a_wrong_password_fail_the_same_way(auth: ApplicantAuth, store: EmbeddedStore) -> None:
    auth.register(email="ann@example.com", password=GOOD)
    errors = []
    for login, password in (
        ("ann@example.com", "Wrong-Password-1"),
        ("bob@example.com", GOOD),
        ("+919812345678", GOOD),
        ("not a login id", GOOD),
    ):
        with pytest.raises(LoginFailed) as err:
            auth.login(login=login, password=password)
        errors.append((type(err.value), str(err.value)))
    assert len(set(errors)) == 1
    assert store.outbox_counts()["pending"] == 0


def test_an_unknown_login_id_costs_one_hash_verification_like_a_wrong_password(
    auth: ApplicantAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.register(email="ann@example.com", password=GOOD)
    calls: list[str] = []
    real = Passwords.verify

    def counting(self: Passwords, password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return real(self, password_hash, password)

    monkeypatch.setattr(Passwords, "verify", counting)
    for login in ("bob@example.com", "ann@example.com", "not a login id"):
        with pytest.raises(LoginFailed):
            auth.login(login=login, password="Wrong-Password-1")
    assert len(calls) == 3 and all(h.startswith("$argon2id$") for h in calls)
    assert calls[0] == calls[2] != calls[1]  # the dummy hash for both unknown ids, the account's for ann


def test_five_wrong_passwords_lock_the_account_until_the_lock_runs_out(
    auth: ApplicantAuth, store: EmbeddedStore, clock: Clock
) -> None:
    a = auth.register(email="ann@example.com", password=GOOD)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            auth.login(login="ann@example.com", password="Wrong-Password-1")
    with pytest.raises(AccountLocked) as fifth:
        auth.login(login="ann@example.com", password="Wrong-Password-1")
    assert fifth.value.locked_until == T0 + timedelta(minutes=15)
    assert "locked until 2026-03-02T09:15:00+00:00" in str(fifth.value)
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(AccountLocked) as during:  # even the right password
        auth.login(login="ann@example.com", password=GOOD)
    assert during.value.wait == pytest.approx(1.0)
    assert store.outbox_counts()["pending"] == 0
    clock.advance(seconds=1)
    sent = auth.login(login="ann@example.com", password=GOOD)
    assert auth.verify_otp(challenge_id=sent.challenge_id, code=code_of(store, sent)).applicant_id == a.id


def test_a_completed_sign_in_resets_the_count(auth: ApplicantAuth, store: EmbeddedStore) -> None:
    auth.register(email="ann@example.com", password=GOOD)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            auth.login(login="ann@example.com", password="Wrong-Password-1")
    sign_in(auth, store, "ann@example.com")
    for _ in range(4):
        with pytest.raises(LoginFailed):
            auth.login(login="ann@example.com", password="Wrong-Password-1")
    assert auth.login(login="ann@example.com", password=GOOD).channel == "email"


def test_wrong_codes_count_towards_the_lockout(auth: ApplicantAuth, store: EmbeddedStore) -> None:
    auth.register(email="ann@example.com", password=GOOD)
    with pytest.raises(LoginFailed):
        auth.login(login="ann@example.com", password="Wrong-Password-1")
    sent = auth.login(login="ann@example.com", password=GOOD)
    code = code_of(store, sent)
    for _ in range(3):
        with pytest.raises(CodeRejected, match="wrong code"):
            auth.verify_otp(challenge_id=sent.challenge_id, code=wrong(code))
    with pytest.raises(AccountLocked):  # the fifth failure: 1 password + 4 codes
        auth.verify_otp(challenge_id=sent.challenge_id, code=wrong(code))
    with pytest.raises(AccountLocked):  # the right code does not help while locked
        auth.verify_otp(challenge_id=sent.challenge_id, code=code)


def test_codes_expire_are_limited_in_attempts_and_single_use(store: EmbeddedStore, clock: Clock) -> None:
    auth = service(store, clock, max_failed_logins=50)
    auth.register(email="ann@example.com", password=GOOD)
    late = auth.login(login="ann@example.com", password=GOOD)
    clock.advance(minutes=5)
    with pytest.raises(CodeRejected, match="expired"):
        auth.verify_otp(challenge_id=late.challenge_id, code=code_of(store, late))
    tried = auth.login(login="ann@example.com", password=GOOD)
    code = code_of(store, tried)
    for left in (4, 3, 2, 1, 0):
        with pytest.raises(CodeRejected, match=f"{left} attempt"):
            auth.verify_otp(challenge_id=tried.challenge_id, code=wrong(code))
    with pytest.raises(CodeRejected, match="too many attempts"):
        auth.verify_otp(challenge_id=tried.challenge_id, code=code)
    once = auth.login(login="ann@example.com", password=GOOD)
    auth.verify_otp(challenge_id=once.challenge_id, code=code_of(store, once))
    with pytest.raises(CodeRejected, match="used"):
        auth.verify_otp(challenge_id=once.challenge_id, code=code_of(store, once))
    with pytest.raises(CodeRejected, match="unknown challenge"):
        auth.verify_otp(challenge_id="otp_doesnotexist", code=code)
    with pytest.raises(CodeRejected, match="unknown challenge"):
        auth.verify_otp(challenge_id="../../etc", code=code)


# -- sessions --------------------------------------------------------------------------------------


def test_a_session_authenticates_its_own_applicant_only_until_logout_or_expiry(
    auth: ApplicantAuth, store: EmbeddedStore, clock: Clock
) -> None:
    ann = auth.register(email="ann@example.com", password=GOOD)
    bob = auth.register(email="bob@example.com", password=GOOD)
    ann_token = sign_in(auth, store, "ann@example.com")
    bob_token = sign_in(auth, store, "bob@example.com")
    who = auth.authenticate(ann_token)
    assert (who.subject, who.role, who.kind) == (ann.id, "applicant", "user")
    assert auth.authenticate(bob_token).subject == bob.id
    assert auth.account(who) == store.get_applicant(ann.id)
    for forged in (ann_token[:-1] + ("A" if ann_token[-1] != "A" else "B"), "c360a_" + "x" * 43, "not-a-token"):
        with pytest.raises(AuthError) as err:
            auth.authenticate(forged)
        assert forged not in str(err.value)
    auth.logout(ann_token)
    with pytest.raises(AuthError):
        auth.authenticate(ann_token)
    with pytest.raises(AuthError):
        auth.logout(ann_token)
    assert auth.authenticate(bob_token).subject == bob.id
    clock.advance(hours=8)
    with pytest.raises(AuthError, match="expired"):
        auth.authenticate(bob_token)


def test_a_password_hashed_under_old_parameters_is_rehashed_at_login(store: EmbeddedStore, clock: Clock) -> None:
    old = service(store, clock)
    a = old.register(email="ann@example.com", password=GOOD)
    assert "t=1" in a.password_hash
    new = service(store, clock, argon2_time_cost=2)
    new.login(login="ann@example.com", password=GOOD)
    rehashed = store.get_applicant(a.id).password_hash
    assert rehashed != a.password_hash and "t=2" in rehashed
    sent = new.login(login="ann@example.com", password=GOOD)  # the new hash verifies, and stays
    assert store.get_applicant(a.id).password_hash == rehashed
    assert sent.channel == "email"
    with pytest.raises(LoginFailed):  # a wrong password does not rehash
        old.login(login="ann@example.com", password="Wrong-Password-1")
    assert store.get_applicant(a.id).password_hash == rehashed


# -- REST ------------------------------------------------------------------------------------------


@pytest.fixture
def client(auth: ApplicantAuth) -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(applicant_router(auth))
    with TestClient(app) as c:
        yield c


def test_rest_register_login_code_session_me_logout(client: TestClient, store: EmbeddedStore) -> None:
    r = client.post("/v1/applicants/register", json={"email": "Ann@Example.com", "password": GOOD})
    assert r.status_code == 201
    applicant_id = r.json()["applicant_id"]
    r = client.post("/v1/applicants/login", json={"login": "ann@example.com", "password": GOOD})
    assert r.status_code == 202
    body = r.json()
    assert body["channel"] == "email" and body["expires_at"] == (T0 + timedelta(minutes=5)).isoformat()
    code = code_of(store, OtpSent(body["challenge_id"], "email", T0))
    r = client.post("/v1/applicants/login/verify", json={"challenge_id": body["challenge_id"], "code": code})
    assert r.status_code == 200
    token = r.json()["token"]
    assert r.json()["expires_at"] == (T0 + timedelta(hours=8)).isoformat()
    r = client.get("/v1/applicants/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    me = r.json()
    assert me == {
        "applicant_id": applicant_id,
        "email": "ann@example.com",
        "mobile": None,
        "status": "active",
        "created_at": T0.isoformat(),
        "last_login_at": T0.isoformat(),
        "customer_id": None,
    }
    assert "argon2" not in r.text
    assert client.post("/v1/applicants/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    r = client.get("/v1/applicants/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/applicants/me").status_code == 401


def test_rest_errors_are_problems(client: TestClient) -> None:
    ok = {"email": "ann@example.com", "password": GOOD}
    assert client.post("/v1/applicants/register", json=ok).status_code == 201
    r = client.post("/v1/applicants/register", json=ok)
    assert r.status_code == 409 and r.json()["detail"] == "already registered"
    assert r.headers["content-type"] == "application/problem+json"
    r = client.post("/v1/applicants/register", json={"mobile": "+919812345678", "password": "short"})
    assert r.status_code == 400 and "at least 12 characters" in r.json()["detail"]
    assert "at least 3 of" in r.json()["detail"]
    r = client.post("/v1/applicants/register", json={**ok, "role": "admin"})
    assert r.status_code == 422
    bad = {"login": "ann@example.com", "password": "Wrong-Password-1"}
    unknown = client.post("/v1/applicants/login", json={"login": "bob@example.com", "password": GOOD})
    first = client.post("/v1/applicants/login", json=bad)
    assert unknown.status_code == first.status_code == 401
    assert unknown.json() == first.json()
    for _ in range(4):
        r = client.post("/v1/applicants/login", json=bad)
    assert r.status_code == 429 and "locked until" in r.json()["detail"]
    assert int(r.headers["retry-after"]) >= 899
    r = client.post("/v1/applicants/login/verify", json={"challenge_id": "otp_nosuchchallenge", "code": "123456"})
    assert r.status_code == 401
    r = client.post("/v1/applicants/logout", headers={"Authorization": "Bearer c360a_forged"})
    assert r.status_code == 401 and "c360a_forged" not in r.text
