"""Producing events to Kafka: what ``POST /v1/events`` does when Kafka is configured.

Events are validated first (invalid ones go to the dead-letter store and, with their reason, to the
dead-letter topic, and are answered as rejected), then produced to their type's topic keyed by identity;
the answer is sent once the broker acknowledged every one (``acks=all``). The Faust workers apply them.

Every wait on the brokers is bounded by ``streams.produce_timeout``: when they do not answer in time the
caller gets :class:`BrokerUnavailableError` (HTTP 503 with ``Retry-After``), and :meth:`KafkaSink.problem`
says why for the readiness probe. A producer that could not connect at start keeps trying in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from c360.graph.models import DeadLetter

from .config import BrokerUnavailableError, StreamsConfig
from .pipeline import Pipeline, Rejection, event_uid, topic_value

log = logging.getLogger(__name__)


def bootstrap_servers(brokers: str) -> list[str]:
    """``kafka://h1:9092;h2:9092`` (Faust's form) as aiokafka's list of ``host:port``."""
    out = []
    for part in brokers.replace(";", ",").split(","):
        part = part.strip().removeprefix("kafka://")
        if part:
            out.append(part)
    if not out:
        raise ValueError(f"no broker in {brokers!r}")
    return out


class KafkaSink:
    """Validates a batch, keeps the rejects, produces the rest and waits (bounded) for the broker's acks."""

    def __init__(self, config: StreamsConfig, pipeline: Pipeline) -> None:
        if not config.brokers:
            raise ValueError("streams.brokers is not set")
        self.config = config
        self.pipeline = pipeline
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._last_error: str | None = "the Kafka producer is not started"
        self._failed_at = 0.0

    @property
    def _timeout(self) -> float:
        return self.config.produce_timeout

    async def start(self) -> None:
        """Connect the producer; if the brokers do not answer now, keep trying in the background."""
        if not await self._connect():
            self._connecting = asyncio.create_task(self._reconnect())

    async def _connect(self) -> bool:
        assert self.config.brokers is not None
        ms = int(self._timeout * 1000)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers(self.config.brokers),
            acks="all",
            linger_ms=5,
            request_timeout_ms=ms,
            connections_max_idle_ms=max(ms * 2, 60_000),
        )
        try:
            async with asyncio.timeout(self._timeout):
                await producer.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            self._fail(f"cannot connect to Kafka at {self.config.brokers}: {exc!r}")
            return False
        self._producer = producer
        self._last_error = None
        return True

    async def _reconnect(self) -> None:
        pause = 1.0
        while self._producer is None:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)
            if await self._connect():
                log.warning("connected to Kafka at %s", self.config.brokers)

    def _fail(self, reason: str) -> None:
        if self._last_error != reason:
            log.warning("%s", reason)
        self._last_error = reason
        self._failed_at = time.monotonic()

    async def stop(self) -> None:
        """Stop trying to connect; flush and close the producer."""
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connecting
            self._connecting = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await self._producer.stop()
            self._producer = None

    async def problem(self) -> str | None:
        """Why the sink cannot queue events now (for ``/readyz``), or ``None`` when it can.

        Asks the brokers for their metadata, bounded by the produce timeout.
        """
        if self._producer is None:
            return self._last_error or "the Kafka producer is not started"
        try:
            async with asyncio.timeout(self._timeout):
                ok = await self._producer.client.fetch_all_metadata()
        except Exception as exc:
            ok = None
            self._fail(f"Kafka at {self.config.brokers} does not answer: {exc!r}")
        if not ok or not ok.brokers():
            self._fail(f"Kafka at {self.config.brokers} does not answer within {self._timeout:g} s")
            return self._last_error
        self._last_error = None
        return None

    def _unavailable(self, why: str) -> BrokerUnavailableError:
        self._fail(why)
        return BrokerUnavailableError(f"{why}; nothing was queued, send the batch again later", self._timeout)

    async def _send_all(self, messages: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Produce ``(topic, key, value)`` messages; returns once the brokers acknowledged every one."""
        if self._producer is None:
            raise self._unavailable(self._last_error or "the Kafka producer is not connected")
        producer = self._producer
        try:
            async with asyncio.timeout(self._timeout):
                sent = [await producer.send(topic, value, key=key) for topic, key, value in messages]
                await asyncio.gather(*sent)
        except TimeoutError:
            raise self._unavailable(f"Kafka did not acknowledge within {self._timeout:g} s") from None
        except Exception as exc:  # aiokafka's KafkaError and connection errors
            raise self._unavailable(f"Kafka refused the events: {exc!r}") from exc

    def _dead_letter_messages(
        self, payloads: Sequence[Any], rejected: Sequence[Rejection]
    ) -> list[tuple[str, bytes, bytes]]:
        out = []
        for r in rejected:
            key = (r.event_id or r.dead_letter).encode()
            out.append((self.config.dead_letter_topic, key, orjson.dumps(topic_value(r, payloads[r.index]))))
        return out

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep letters that are not even events (a body that is not JSON): the store, then the topic."""
        await asyncio.to_thread(self.pipeline.store.add_dead_letters, list(letters))
        rejections = [Rejection(i, None, d.reason, d.id) for i, d in enumerate(letters)]
        with contextlib.suppress(BrokerUnavailableError):  # kept in the store; the topic is a copy
            await self._send_all(self._dead_letter_messages([d.payload for d in letters], rejections))

    async def submit(self, payloads: Sequence[Any], sources: Sequence[str], *, sender: str) -> dict[str, Any]:
        """Produce the valid events of a batch; answers once the broker acknowledged them.

        Raises :class:`BrokerUnavailableError` when the brokers do not acknowledge within the produce
        timeout (the partner sends the batch again; a repeat changes nothing, events are idempotent).
        The dead letters of rejected events name ``sender``.
        """
        events, rejected, letters = await asyncio.to_thread(
            self.pipeline.validate, payloads, sources=sources, sender=sender
        )
        await asyncio.to_thread(self.pipeline.store.add_dead_letters, letters)
        messages = [
            (self.config.topic(event.type), event.identity.encode(), event.model_dump_json().encode())
            for _, event in events
        ]
        await self._send_all(messages + self._dead_letter_messages(payloads, rejected))
        return {
            "accepted": len(events),
            "duplicates": 0,  # known only when a worker applies them; a duplicate changes nothing there
            "rejected": [r.to_json() for r in rejected],
            "event_ids": [event_uid(e) for _, e in events],
            "queued": True,
        }
