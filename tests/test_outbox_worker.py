"""The outbox worker against a real SMTP server on loopback (aiosmtpd): what arrives, retries with backoff,
dead messages, crashes before and after the send, two workers. Times come from injected clocks."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult
from c360.connectors.notify import OutboxConfig, TransientSendError
from c360.connectors.notify.smtp import SmtpTransport, message_id
from c360.graph.errors import ConflictError, StoreError
from c360.graph.outbox import OutboxMessage
from c360.graph.store import GraphStore
from c360.streams.outbox import OutboxWorker
from smtp_server import SmtpServer

T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CONFIG = OutboxConfig(max_attempts=3, backoff_base=30, backoff_cap=45, lease_seconds=60, batch_size=10)
LEASE = timedelta(seconds=60)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def mail(mid: str, to: str = "ann@example.com", **kw: Any) -> OutboxMessage:
    fields: dict[str, Any] = {"subject": f"Case {mid} was assigned to you", "kind": "case_assigned", **kw}
    return OutboxMessage(mid, "email", to, f"Case {mid} is yours.\nOpen it in the desk.", created_at=T, **fields)


def worker(store: GraphStore, server: SmtpServer, owner: str, clock: Clock, **kw: Any) -> OutboxWorker:
    return OutboxWorker(store, {"email": server.transport()}, CONFIG, owner, clock, **kw)


def test_the_worker_sends_each_message_once_and_the_server_receives_it(store: GraphStore, smtp: SmtpServer) -> None:
    messages = [
        mail("K1"),
        mail("K2", "bob@example.com", case_id="K2", customer_id="C9"),
        mail("receipt|ev-1", "zoe@example.com", subject="Ihre Einwilligung ✓", kind="consent_receipt"),
        # a body over the 1,000 octets of one SMTP line, with a line as long as a receipt's JWS and a lone dot
        OutboxMessage(
            "long", "email", "al@example.com", "Dear Al,\n" + "eyJ" * 700 + "\n.\nBye", "consent_receipt", T, "Receipt"
        ),
    ]
    store.enqueue(messages)
    clock = Clock(T)
    counts = worker(store, smtp, "w1", clock).run_once()
    assert (counts["claimed"], counts["sent"]) == (4, 4)
    by_id = {m["Message-ID"]: m for m in smtp.inbox.mails}
    assert len(by_id) == 4
    for m in messages:
        got = by_id[message_id(m.id, "c360.example")]
        assert (got["From"], got["To"], got["Subject"]) == ("notifications@c360.example", m.to, m.subject)
        body = got.get_body()
        assert body is not None and body.get_content().replace("\r\n", "\n").rstrip("\n") == m.body  # CRLF on the wire
        item = store.outbox_message(m.id)
        assert item is not None and item.status == "sent" and item.sent_at == T
        assert item.provider_id is not None and item.provider_id.startswith("250 2.0.0 Ok: queued as Q")
    clock.now = T + timedelta(days=1)
    assert worker(store, smtp, "w2", clock).run_once()["claimed"] == 0  # sent is never sent again
    assert len(smtp.inbox.mails) == 4


def test_a_server_that_is_down_is_retried_with_backoff_and_sent_once_it_is_back(store: GraphStore) -> None:
    server = SmtpServer()  # not started yet: connection refused
    store.enqueue([mail("K1")])
    clock = Clock(T)
    w = worker(store, server, "w1", clock)
    try:
        assert w.run_once()["retried"] == 1
        item = store.outbox_message("K1")
        assert item is not None
        assert (item.status, item.attempts, item.next_attempt_at) == ("pending", 1, T + timedelta(seconds=30))
        assert item.last_error is not None and str(server.port) in item.last_error
        clock.now = T + timedelta(seconds=29)
        assert w.run_once()["claimed"] == 0  # not before its time
        server.start()
        clock.now = T + timedelta(seconds=30)
        assert w.run_once()["sent"] == 1
    finally:
        server.stop()
    assert [m["Message-ID"] for m in server.inbox.mails] == [message_id("K1", "c360.example")]
    item = store.outbox_message("K1")
    assert item is not None and (item.status, item.attempts) == ("sent", 2)


def test_a_server_down_for_good_makes_the_message_dead_after_its_attempts(store: GraphStore) -> None:
    server = SmtpServer()
    store.enqueue([mail("K1")])
    clock = Clock(T)
    w = worker(store, server, "w1", clock)
    outcomes = []
    for wait in (0, 30, 60):  # base 30 s, then 60 s capped at 45 s
        clock.now += timedelta(seconds=wait)
        outcomes.append({k: v for k, v in w.run_once().items() if v})
    assert outcomes == [{"claimed": 1, "retried": 1}, {"claimed": 1, "retried": 1}, {"claimed": 1, "dead": 1}]
    item = store.outbox_message("K1")
    assert item is not None and (item.status, item.attempts) == ("dead", 3)
    assert item.last_error is not None and "Connection" in item.last_error
    assert store.requeue(["K1"], clock.now) == ["K1"]  # an operator's second chance, once the server is back
    server.start()
    try:
        assert w.run_once()["sent"] == 1
    finally:
        server.stop()


def test_a_550_reply_makes_the_message_dead_with_the_reason_and_a_451_retries(
    store: GraphStore, smtp: SmtpServer
) -> None:
    store.enqueue([mail("K1", "nobody@example.com")])
    smtp.inbox.rcpt_reply = "550 5.1.1 <nobody@example.com>: Recipient address rejected"
    w = worker(store, smtp, "w1", Clock(T))
    assert w.run_once()["dead"] == 1
    item = store.outbox_message("K1")
    assert item is not None and item.status == "dead" and item.attempts == 1
    assert item.last_error == "SMTP RCPT TO: 550 5.1.1 <nobody@example.com>: Recipient address rejected"
    store.enqueue([mail("K2")])
    smtp.inbox.rcpt_reply = "451 4.3.0 Try again later"
    assert w.run_once()["retried"] == 1
    again = store.outbox_message("K2")
    assert (
        again is not None
        and again.status == "pending"
        and again.last_error == "SMTP RCPT TO: 451 4.3.0 Try again later"
    )
    assert smtp.inbox.mails == []


def test_a_worker_that_dies_after_claiming_leaves_the_message_to_another_after_the_lease(
    store: GraphStore, smtp: SmtpServer
) -> None:
    store.enqueue([mail("K1")])
    assert [i.id for i in store.claim("worker-a", T, LEASE, 10)] == ["K1"]  # worker A claims, then dies
    clock = Clock(T + timedelta(seconds=30))
    b = worker(store, smtp, "worker-b", clock)
    assert b.run_once()["claimed"] == 0  # A's lease still runs
    clock.now = T + LEASE
    assert b.run_once()["sent"] == 1
    assert len(smtp.inbox.mails) == 1
    with pytest.raises(ConflictError):  # A, restarted, cannot count it as its own
        store.mark_sent("K1", "worker-a", clock.now, "250 ok")
    clock.now += timedelta(hours=1)
    assert b.run_once()["claimed"] == 0
    assert len(smtp.inbox.mails) == 1


class FlakyMarks:
    """The store, whose ``mark_sent`` fails the first ``failures`` times (the store unreachable right then)."""

    def __init__(self, store: GraphStore, failures: int) -> None:
        self._store = store
        self.failures = failures

    def mark_sent(self, *args: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("embedded store: mark_sent failed: database is locked")
        self._store.mark_sent(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_mark_that_fails_once_is_tried_again_at_once_and_nothing_is_sent_twice(
    store: GraphStore, smtp: SmtpServer
) -> None:
    store.enqueue([mail("K1")])
    flaky = FlakyMarks(store, failures=1)
    w = OutboxWorker(flaky, {"email": smtp.transport()}, CONFIG, "w1", Clock(T))  # type: ignore[arg-type]
    assert w.run_once()["sent"] == 1
    item = store.outbox_message("K1")
    assert item is not None and item.status == "sent"
    assert len(smtp.inbox.mails) == 1


def test_a_crash_between_the_send_and_the_mark_resends_after_the_lease_with_the_same_message_id(
    store: GraphStore, smtp: SmtpServer
) -> None:
    # The documented window: the server accepted the mail, the worker could not record it. The message
    # stays leased; after the lease it is sent again, the same message (same Message-ID), then marked.
    store.enqueue([mail("K1")])
    clock = Clock(T)
    down = FlakyMarks(store, failures=3)
    a = OutboxWorker(down, {"email": smtp.transport()}, CONFIG, "worker-a", clock)  # type: ignore[arg-type]
    assert a.run_once()["unmarked"] == 1
    item = store.outbox_message("K1")
    assert item is not None and (item.status, item.lease_owner) == ("sending", "worker-a")
    clock.now = T + LEASE - timedelta(seconds=1)
    b = worker(store, smtp, "worker-b", clock)
    assert b.run_once()["claimed"] == 0
    clock.now = T + LEASE
    assert b.run_once()["sent"] == 1
    ids = [m["Message-ID"] for m in smtp.inbox.mails]
    assert ids == [message_id("K1", "c360.example")] * 2
    assert smtp.inbox.mails[0].as_bytes() == smtp.inbox.mails[1].as_bytes()  # byte for byte the same mail
    item = store.outbox_message("K1")
    assert item is not None and (item.status, item.attempts, item.lease_owner) == ("sent", 2, "worker-b")


def test_two_workers_on_one_store_never_send_one_message_twice(store: GraphStore, smtp: SmtpServer) -> None:
    ids = [f"K{i:02}" for i in range(24)]
    store.enqueue([mail(i) for i in ids])
    other = type(store)(store.config)  # type: ignore[attr-defined]
    start = threading.Barrier(2)
    totals: dict[str, int] = {}

    def work(name: str, s: GraphStore) -> None:
        w = OutboxWorker(s, {"email": smtp.transport()}, CONFIG.model_copy(update={"batch_size": 3}), name, Clock(T))
        start.wait()
        sent = 0
        while (counts := w.run_once())["claimed"]:
            sent += counts["sent"]
        totals[name] = sent

    try:
        threads = [threading.Thread(target=work, args=("a", store)), threading.Thread(target=work, args=("b", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        other.close()
    received = sorted(m["Message-ID"] for m in smtp.inbox.mails)
    assert received == sorted(message_id(i, "c360.example") for i in ids)  # each once
    assert totals["a"] + totals["b"] == 24
    assert store.outbox_counts()["sent"] == 24


def test_a_send_is_not_started_when_too_little_of_the_lease_is_left(store: GraphStore, smtp: SmtpServer) -> None:
    store.enqueue([mail("K1")])
    clock = Clock(T + timedelta(seconds=31))  # the batch was claimed at T; more than half the lease is gone
    assert worker(store, smtp, "w1", clock).run_once(T)["skipped"] == 1
    assert smtp.inbox.mails == []
    clock.now = T + LEASE  # the lease ended: it is claimed again and sent
    assert worker(store, smtp, "w2", clock).run_once()["sent"] == 1


def test_a_message_whose_attempts_never_finish_is_dead_without_another_send(
    store: GraphStore, smtp: SmtpServer
) -> None:
    store.enqueue([mail("K1")])
    for n in range(CONFIG.max_attempts):  # each claimer died while sending it
        assert [i.attempts for i in store.claim(f"crashed-{n}", T + n * LEASE, LEASE, 10)] == [n + 1]
    clock = Clock(T + CONFIG.max_attempts * LEASE)
    assert worker(store, smtp, "w1", clock).run_once()["dead"] == 1
    item = store.outbox_message("K1")
    assert item is not None and item.status == "dead" and item.last_error is not None
    assert item.last_error.startswith("gave up: 3 attempts did not finish")
    assert smtp.inbox.mails == []


def test_the_worker_logs_in_and_a_refused_login_is_retried_not_dead(store: GraphStore, tmp_path: Path) -> None:
    logins: list[tuple[bytes, bool]] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (data.login, data.password) == (b"c360", b"s3cret")
        logins.append((data.login, ok))
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself

    server = SmtpServer(authenticator=authenticate, auth_require_tls=False, auth_exclude_mechanism=["LOGIN"])
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("s3cret\n")
    bad.write_text("wrong\n")
    store.enqueue([mail("K1")])
    server.start()
    clock = Clock(T)
    try:
        transport = server.transport(username="c360", password_file=bad)
        assert OutboxWorker(store, {"email": transport}, CONFIG, "w1", clock).run_once()["retried"] == 1
        item = store.outbox_message("K1")
        assert item is not None and item.last_error is not None and "login as c360 refused" in item.last_error
        clock.now = T + timedelta(seconds=30)
        transport = server.transport(username="c360", password_file=good)
        assert OutboxWorker(store, {"email": transport}, CONFIG, "w1", clock).run_once()["sent"] == 1
    finally:
        server.stop()
    assert logins == [(b"c360", False), (b"c360", True)]
    assert len(server.inbox.mails) == 1


class Broken:
    def send(self, message: OutboxMessage) -> str:
        raise KeyError("bug")


class Refusing:
    def send(self, message: OutboxMessage) -> str:
        raise TransientSendError("gateway busy")


def test_a_transport_that_fails_unexpectedly_is_retried_like_a_transient_failure(store: GraphStore) -> None:
    store.enqueue([mail("K1")])
    assert OutboxWorker(store, {"email": Broken()}, CONFIG, "w1", Clock(T)).run_once()["retried"] == 1
    item = store.outbox_message("K1")
    assert item is not None and item.last_error == "KeyError: 'bug'"


def test_a_channel_without_a_transport_stays_queued_and_the_worker_says_so(
    store: GraphStore, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    sms = OutboxMessage("sla|K1", "sms", "+447700900123", "Case K1 breaches its SLA at 14:00", "sla_at_risk", T)
    store.enqueue([mail("K1"), sms])
    stop = threading.Event()

    class StopAfterSend:
        def __init__(self, inner: SmtpTransport) -> None:
            self.inner = inner

        def send(self, message: OutboxMessage) -> str:
            answer = self.inner.send(message)
            stop.set()
            return answer

    w = OutboxWorker(store, {"email": StopAfterSend(smtp.transport())}, CONFIG, "w1", Clock(T))
    assert w.unsendable == ["sms"]
    with caplog.at_level(logging.INFO, logger="c360.streams.outbox"):
        totals = w.run(budget_seconds=60, stop_event=stop)
    assert (totals["claimed"], totals["sent"]) == (1, 1)
    assert "no sms transport" in caplog.text
    item = store.outbox_message("sla|K1")
    assert item is not None and (item.status, item.attempts) == ("pending", 0)
    assert OutboxWorker(store, {}, CONFIG, "w2", Clock(T)).run(budget_seconds=60)["claimed"] == 0  # returns at once


def test_run_stops_at_its_budget(store: GraphStore) -> None:
    store.enqueue([mail("K1")])
    fast = CONFIG.model_copy(update={"poll_interval": 0.01})
    totals = OutboxWorker(store, {"email": Refusing()}, fast, "w1", Clock(T)).run(budget_seconds=0.2)
    assert (totals["claimed"], totals["retried"]) == (1, 1)  # then nothing is due before T + 30 s: it polls, then stops
