"""Producing events to Kafka: what ``POST /v1/events`` does when Kafka is configured.

Events are validated first (invalid ones go to the dead-letter store and are answered as rejected), then
produced to their type's topic keyed by identity; the answer is sent once the broker acknowledged every
one (``acks=all``). The Faust workers apply them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from .app import StreamsConfig
from .pipeline import Pipeline, event_uid


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
    """Validates a batch, keeps the rejects, produces the rest and waits for the broker's acks."""

    def __init__(self, config: StreamsConfig, pipeline: Pipeline) -> None:
        if not config.brokers:
            raise ValueError("streams.brokers is not set")
        self.config = config
        self.pipeline = pipeline
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect the producer."""
        assert self.config.brokers is not None
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers(self.config.brokers), acks="all", linger_ms=5
        )
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and close the producer."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def submit(self, payloads: Sequence[Any], sources: Sequence[str]) -> dict[str, Any]:
        """Produce the valid events of a batch; answers once the broker acknowledged them."""
        if self._producer is None:
            raise RuntimeError("the Kafka producer is not started")
        events, rejected, letters = await asyncio.to_thread(self.pipeline.validate, payloads, sources=sources)
        await asyncio.to_thread(self.pipeline.store.add_dead_letters, letters)
        sent = [
            await self._producer.send(
                self.config.topic(event.type),
                event.model_dump_json().encode(),
                key=event.identity.encode(),
            )
            for _, event in events
        ]
        await asyncio.gather(*sent)  # every one acknowledged by the broker
        return {
            "accepted": len(events),
            "duplicates": 0,  # known only when a worker applies them; a duplicate changes nothing there
            "rejected": [r.to_json() for r in rejected],
            "event_ids": [event_uid(e) for _, e in events],
            "queued": True,
        }
