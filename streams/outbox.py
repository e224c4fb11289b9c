"""The outbox worker: claims due notifications, sends each through its channel's transport, marks it.

Delivery is at least once, with duplicates kept to one narrow window:

* a message marked sent is never claimed again, so never sent again;
* a worker that crashes after claiming and before sending leaves its messages ``sending`` under a lease;
  once the lease ends another worker (or the same one restarted) claims and sends them;
* two workers never hold one message (claims are atomic in the store), and a worker whose lease ran
  out is refused when it marks (``ConflictError``): it does not count the message as its own;
* a worker does not start a send when less than half its lease remains, so that a send ends before
  another worker may take the message over (the settings require a lease of at least four transport
  timeouts);
* the window left: the server accepted the message and the worker died (or could not reach the store)
  before ``mark_sent``. ``mark_sent`` is tried three times at once; if it still fails, the message is sent
  again after its lease, with the same ``Message-ID`` (e-mail) or ``Idempotency-Key`` (SMS), so that the
  receiving side can recognise the duplicate.

A transient failure is retried on the :class:`~c360.graph.outbox.RetryPolicy` schedule (exponential
backoff, then dead); a permanent one is dead at once, with the reason. Unexpected errors of a transport
count as transient. A message claimed more than ``max_attempts`` times whose attempts never finished (a
message that kills the workers sending it) is dead without another send. A channel without a transport
is not claimed: its messages stay queued.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from c360.connectors.notify import OutboxConfig, PermanentSendError, TransientSendError, Transport
from c360.graph.errors import ConflictError, InvalidInputError, StoreError
from c360.graph.outbox import CHANNELS, OutboxItem
from c360.graph.ports.outbox import OutboxPort

log = logging.getLogger(__name__)

#: The keys of the counts the worker returns.
COUNTS = ("claimed", "sent", "retried", "dead", "lost", "unmarked", "skipped")
_MARK_TRIES = 3


def default_owner() -> str:
    """A worker id unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxWorker:
    """Sends the outbox's due messages through ``transports`` (by channel) as ``owner``.

    ``clock`` gives the current time (aware); tests pass a fixed one.
    """

    def __init__(
        self,
        store: OutboxPort,
        transports: Mapping[str, Transport],
        config: OutboxConfig,
        owner: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        unknown = sorted(set(transports) - set(CHANNELS))
        if unknown:
            raise InvalidInputError(f"no channel {', '.join(unknown)}: transports are keyed by email or sms")
        self.store = store
        self.transports = dict(transports)
        self.config = config
        self.owner = owner or default_owner()
        self.clock = clock
        self.policy = config.retry_policy()

    @property
    def channels(self) -> list[str]:
        """The channels this worker sends."""
        return [c for c in CHANNELS if c in self.transports]

    @property
    def unsendable(self) -> list[str]:
        """The channels without a transport: their messages stay queued."""
        return [c for c in CHANNELS if c not in self.transports]

    def run_once(self, now: datetime | None = None) -> dict[str, int]:
        """Claim one batch due at ``now`` (default: the clock), send each message, mark it; the counts.

        ``claimed``; ``sent``; ``retried`` (transient failure, pending again later); ``dead`` (permanent
        failure or out of attempts); ``lost`` (another worker took it over: not marked by this one);
        ``unmarked`` (sent, but the store refused the mark: it is sent again after the lease);
        ``skipped`` (too little lease left to start the send: another claim sends it).
        """
        counts = dict.fromkeys(COUNTS, 0)
        if not self.transports:
            return counts
        at = now or self.clock()
        items = self.store.claim(self.owner, at, self.config.lease, self.config.batch_size, channels=self.channels)
        counts["claimed"] = len(items)
        for item in items:
            counts[self._deliver(item)] += 1
        return counts

    def run(self, budget_seconds: float, stop_event: threading.Event | None = None) -> dict[str, int]:
        """Poll until ``budget_seconds`` have passed or ``stop_event`` is set; the counts of every round.

        A round that finds nothing due waits ``poll_interval`` (or until stopped); a store that fails is
        logged and tried again after the interval.
        """
        stop = stop_event or threading.Event()
        total: Counter[str] = Counter(dict.fromkeys(COUNTS, 0))
        for channel in self.unsendable:
            log.warning("outbox worker %s: no %s transport, those messages stay queued", self.owner, channel)
        if not self.transports:
            log.warning("outbox worker %s: no transport configured, nothing to send", self.owner)
            return dict(total)
        log.info("outbox worker %s: sending %s", self.owner, ", ".join(self.channels))
        deadline = time.monotonic() + budget_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                counts = self.run_once()
            except StoreError as exc:
                log.error("outbox worker %s: %s", self.owner, exc)
                counts = dict.fromkeys(COUNTS, 0)
            total.update(counts)
            if counts["claimed"]:
                log.info("outbox worker %s: %s", self.owner, ", ".join(f"{k} {v}" for k, v in counts.items() if v))
            else:
                stop.wait(min(self.config.poll_interval, max(0.0, deadline - time.monotonic())))
        log.info("outbox worker %s stops: %s", self.owner, ", ".join(f"{k} {v}" for k, v in total.items()))
        return dict(total)

    # -- one message -----------------------------------------------------------------------------------

    def _deliver(self, item: OutboxItem) -> str:
        lease_until = item.lease_until
        if lease_until is None or self.clock() >= lease_until - self.config.lease / 2:
            return "skipped"
        message = item.message
        if item.attempts > self.policy.max_attempts:  # earlier attempts never finished: workers died sending it
            reason = f"gave up: {item.attempts - 1} attempts did not finish (the workers sending it stopped)"
            return self._fail(item, reason, permanent=True)
        try:
            provider_id = self.transports[message.channel].send(message)
        except PermanentSendError as exc:
            return self._fail(item, str(exc), permanent=True)
        except TransientSendError as exc:
            return self._fail(item, str(exc), permanent=False)
        except Exception as exc:  # a transport's bug must not stop the worker: retried like a transient error
            log.exception("outbox %s: the %s transport failed unexpectedly", message.id, message.channel)
            return self._fail(item, f"{type(exc).__name__}: {exc}", permanent=False)
        return self._sent(item, provider_id)

    def _sent(self, item: OutboxItem, provider_id: str) -> str:
        for attempt in range(1, _MARK_TRIES + 1):
            try:
                self.store.mark_sent(item.id, self.owner, self.clock(), provider_id)
                return "sent"
            except ConflictError as exc:
                log.warning("outbox %s: sent, but %s", item.id, exc)
                return "lost"
            except StoreError as exc:
                log.error("outbox %s: sent, mark %d of %d failed: %s", item.id, attempt, _MARK_TRIES, exc)
        log.error("outbox %s: sent but not marked; it is sent again (same Message-ID) after its lease", item.id)
        return "unmarked"

    def _fail(self, item: OutboxItem, reason: str, *, permanent: bool) -> str:
        at = self.clock()
        retry_at = None if permanent else self.policy.retry_at(item.attempts, at)
        try:
            self.store.mark_failed(item.id, self.owner, at, reason, retry_at)
        except ConflictError as exc:
            log.warning("outbox %s: failed (%s), but %s", item.id, reason, exc)
            return "lost"
        except StoreError as exc:  # left sending: claimed again after the lease
            log.error("outbox %s: failed (%s) and not marked: %s", item.id, reason, exc)
            return "unmarked"
        if retry_at is None:
            log.warning("outbox %s: dead after %d attempts: %s", item.id, item.attempts, reason)
            return "dead"
        log.info("outbox %s: attempt %d failed (%s); next at %s", item.id, item.attempts, reason, retry_at.isoformat())
        return "retried"
