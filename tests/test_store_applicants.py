"""The applicants port's contract (unique login ids, atomic failure counts and code attempts, sessions):
every backend passes every test here."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from c360.graph.applicants import (
    Applicant,
    ApplicantSession,
    LockoutPolicy,
    OtpChallenge,
    code_hash,
    normalise_email,
    normalise_mobile,
)
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.store import GraphStore
from store_contract import T, seed

HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
SALT = "s" * 22
POLICY = LockoutPolicy(max_failures=5, lock_for=timedelta(minutes=15))


def applicant(n: int, email: str | None = None, mobile: str | None = None) -> Applicant:
    return Applicant(f"ap_applicant{n:04d}", T, HASH, email=email, mobile=mobile)


def challenge(cid: str, owner: str, code: str = "123456", max_attempts: int = 5) -> OtpChallenge:
    expires = T + timedelta(minutes=5)
    return OtpChallenge(cid, owner, code_hash(SALT, code), SALT, "email", T, expires, max_attempts=max_attempts)


def digest(ch: str) -> str:
    return ch * 64


def test_an_applicant_is_created_read_and_found_by_either_login_id(store: GraphStore) -> None:
    a = applicant(1, "ann@example.com", "+919812345678")
    store.create_applicant(a)
    assert store.get_applicant(a.id) == a
    assert store.find_applicant("ann@example.com") == a
    assert store.find_applicant("+919812345678") == a
    assert store.find_applicant("bob@example.com") is None
    assert store.find_applicant("+919812345679") is None
    only_mobile = applicant(2, mobile="+14155550100")
    store.create_applicant(only_mobile)
    assert store.get_applicant(only_mobile.id) == only_mobile
    with pytest.raises(NotFoundError):
        store.get_applicant("ap_nobody0000")


def test_login_ids_are_unique_and_the_error_says_only_already_registered(store: GraphStore) -> None:
    store.create_applicant(applicant(1, "ann@example.com", "+919812345678"))
    store.create_applicant(applicant(2, "bob@example.com"))  # several applicants without a mobile
    store.create_applicant(applicant(3, "cat@example.com"))
    for clash in (applicant(4, "ann@example.com"), applicant(5, mobile="+919812345678"), applicant(1, "new@x.com")):
        with pytest.raises(ConflictError) as err:
            store.create_applicant(clash)
        assert str(err.value) == "already registered"
    assert store.find_applicant("ann@example.com") == applicant(1, "ann@example.com", "+919812345678")
    with pytest.raises(NotFoundError):
        store.get_applicant("ap_applicant0004")


def test_concurrent_registrations_of_one_email_leave_one_account(store: GraphStore) -> None:
    wins: list[str] = []
    errors: list[BaseException] = []

    def register(n: int) -> None:
        try:
            store.create_applicant(applicant(n, "race@example.com"))
            wins.append(f"ap_applicant{n:04d}")
        except ConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(errors) == 7
    found = store.find_applicant("race@example.com")
    assert found is not None and found.id == wins[0]


def test_failures_lock_after_the_limit_and_a_success_resets(store: GraphStore) -> None:
    a = applicant(1, "ann@example.com")
    store.create_applicant(a)
    for n in range(1, 5):
        after = store.record_login_failure(a.id, T + timedelta(seconds=n), POLICY)
        assert after.failed_logins == n and after.status == "active" and after.locked_until is None
    locked = store.record_login_failure(a.id, T + timedelta(seconds=5), POLICY)
    assert locked.status == "locked" and locked.locked_until == T + timedelta(seconds=5, minutes=15)
    assert store.get_applicant(a.id) == locked
    assert locked.locked_at(T + timedelta(minutes=15)) and not locked.locked_at(T + timedelta(minutes=16))
    # a failure during the lock changes nothing; after it the count starts again
    assert store.record_login_failure(a.id, T + timedelta(minutes=1), POLICY) == locked
    again = store.record_login_failure(a.id, T + timedelta(minutes=20), POLICY)
    assert again.failed_logins == 1 and again.status == "active" and again.locked_until is None
    ok = store.record_login_success(a.id, T + timedelta(minutes=21))
    assert ok.failed_logins == 0 and ok.last_login_at == T + timedelta(minutes=21)
    assert store.get_applicant(a.id) == ok
    with pytest.raises(NotFoundError):
        store.record_login_failure("ap_nobody0000", T, POLICY)


def test_concurrent_failures_all_count(store: GraphStore) -> None:
    a = applicant(1, "ann@example.com")
    store.create_applicant(a)
    policy = LockoutPolicy(max_failures=100)
    barrier = threading.Barrier(6)

    def fail() -> None:
        barrier.wait()
        for _ in range(5):
            store.record_login_failure(a.id, T, policy)

    threads = [threading.Thread(target=fail) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_applicant(a.id).failed_logins == 30


def test_customer_link_and_password_hash_updates(store: GraphStore) -> None:
    seed(store)
    a = applicant(1, "ann@example.com")
    store.create_applicant(a)
    assert store.set_applicant_customer(a.id, "C1").customer_id == "C1"
    assert store.get_applicant(a.id).customer_id == "C1"
    with pytest.raises(NotFoundError):
        store.set_applicant_customer(a.id, "C-missing")
    assert store.set_applicant_customer(a.id, None).customer_id is None
    new_hash = "$argon2id$v=19$m=16,t=2,p=1$bmV3c2FsdHM$bmV3aGFzaG5ld2hhc2g"
    assert store.update_password_hash(a.id, new_hash) == replace(a, password_hash=new_hash)
    assert store.get_applicant(a.id).password_hash == new_hash
    with pytest.raises(NotFoundError):
        store.update_password_hash("ap_nobody0000", new_hash)


def test_a_code_is_single_use(store: GraphStore) -> None:
    a = applicant(1, "ann@example.com")
    store.create_applicant(a)
    c = challenge("otp_challenge01", a.id)
    store.create_otp(c)
    assert store.get_otp(c.id) == c
    first = store.consume_otp(c.id, code_hash(SALT, "123456"), T + timedelta(minutes=1))
    assert first.outcome == "ok"
    assert store.consume_otp(c.id, code_hash(SALT, "123456"), T + timedelta(minutes=1)).outcome == "used"
    stored = store.get_otp(c.id)
    assert stored is not None and stored.used and stored.attempts == 1
    with pytest.raises(ConflictError):
        store.create_otp(c)
    with pytest.raises(NotFoundError):
        store.create_otp(challenge("otp_challenge02", "ap_nobody0000"))
    with pytest.raises(NotFoundError):
        store.consume_otp("otp_unknown000", digest("a"), T)
    assert store.get_otp("otp_unknown000") is None


def test_code_attempts_are_limited_and_expire(store: GraphStore) -> None:
    a = applicant(1, "ann@example.com")
    store.create_applicant(a)
    store.create_otp(challenge("otp_challenge01", a.id, max_attempts=3))
    at = T + timedelta(minutes=1)
    outcomes = [store.consume_otp("otp_challenge01", code_hash(SALT, "000000"), at) for _ in range(3)]
    assert [(r.outcome, r.attempts_left) for r in outcomes] == [("wrong", 2), ("wrong", 1), ("wrong", 0)]
    assert store.consume_otp("otp_challenge01", code_hash(SALT, "123456"), at).outcome == "exhausted"
    store.create_otp(challenge("otp_challenge02", a.id))
    late = store.consume_otp("otp_challenge02", code_hash(SALT, "123456"), T + timedelta(minutes=5))
    assert late.outcome == "expired"
    stored = store.get_otp("otp_challenge02")
    assert stored is not None and stored.attempts == 0 and not stored.used


def test_concurrent_code_attempts_all_count_and_one_right_code_wins_once(store: GraphStore) -> None:
    a = applicant(1, "ann@example.com")
    store.create_applicant(a)
    store.create_otp(challenge("otp_challenge01", a.id, max_attempts=40))
    barrier = threading.Barrier(4)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(code: str) -> None:
        barrier.wait()
        for _ in range(5):
            r = store.consume_otp("otp_challenge01", code_hash(SALT, code), T)
            with lock:
                outcomes.append(r.outcome)

    threads = [threading.Thread(target=attempt, args=(code,)) for code in ("000000", "111111", "123456", "123456")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    stored = store.get_otp("otp_challenge01")
    assert stored is not None and stored.used
    assert stored.attempts == outcomes.count("ok") + outcomes.count("wrong")


def test_sessions_are_kept_by_token_hash_and_revoked(store: GraphStore) -> None:
    a = applicant(1, "ann@example.com")
    b = applicant(2, "bob@example.com")
    store.create_applicant(a)
    store.create_applicant(b)
    sa = ApplicantSession(digest("a"), a.id, T, T + timedelta(hours=8))
    sb = ApplicantSession(digest("b"), b.id, T, T + timedelta(hours=8))
    store.create_session(sa)
    store.create_session(sb)
    assert store.get_session(digest("a")) == sa
    assert store.get_session(digest("b")) == sb
    assert store.get_session(digest("c")) is None
    assert store.revoke_session(digest("a")) is True
    assert store.revoke_session(digest("a")) is False
    assert store.revoke_session(digest("c")) is False
    revoked = store.get_session(digest("a"))
    assert revoked == replace(sa, revoked=True) and not revoked.valid_at(T)
    assert store.get_session(digest("b")) == sb
    with pytest.raises(NotFoundError):
        store.create_session(ApplicantSession(digest("d"), "ap_nobody0000", T, T + timedelta(hours=1)))


def test_reset_empties_the_domain(store: GraphStore) -> None:
    a = applicant(1, "ann@example.com")
    store.create_applicant(a)
    store.create_otp(challenge("otp_challenge01", a.id))
    store.create_session(ApplicantSession(digest("a"), a.id, T, T + timedelta(hours=8)))
    store.reset(confirm=True)
    assert store.find_applicant("ann@example.com") is None
    assert store.get_otp("otp_challenge01") is None
    assert store.get_session(digest("a")) is None
    store.create_applicant(a)  # the login id is free again


def test_arguments_are_checked(store: GraphStore) -> None:
    for bad in ("Ann@Example.com", "9812345678", "", "not an id"):
        with pytest.raises(InvalidInputError):
            store.find_applicant(bad)
    with pytest.raises(InvalidInputError):
        store.get_applicant("C1")
    with pytest.raises(InvalidInputError):
        store.get_session("short")
    with pytest.raises(InvalidInputError):
        store.record_login_failure("ap_applicant0001", T.replace(tzinfo=None), POLICY)
    with pytest.raises(InvalidInputError):
        store.create_applicant("ann@example.com")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.update_password_hash("ap_applicant0001", "plain text")


def test_the_model_checks_and_normalises() -> None:
    assert normalise_email("  Ann@Example.COM ") == "ann@example.com"
    assert normalise_mobile("098123 45678") == "+919812345678"
    assert normalise_mobile("98123-45678", "IN") == "+919812345678"
    assert normalise_mobile("+1 415 555 0100", "IN") == "+14155550100"
    for bad in ("12", "+91 12345", "phone"):
        with pytest.raises(InvalidInputError):
            normalise_mobile(bad)
    with pytest.raises(InvalidInputError):
        normalise_email("ann@")
    with pytest.raises(InvalidInputError):
        Applicant("ap_applicant0001", T, HASH)  # neither login id
    with pytest.raises(InvalidInputError):
        Applicant("ap_applicant0001", T, HASH, email="Ann@example.com")
    with pytest.raises(InvalidInputError):
        Applicant("ap_applicant0001", T, "plain", email="ann@example.com")
