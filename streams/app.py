"""The Faust app: one Kafka topic per event type, agents that run the same pipeline as the in-process path.

Topics are keyed by the event's identity (``source|customer_key``), so the events of one person stay in
one partition, in order. An agent takes a batch of up to ``batch_size`` messages (or what arrived within
``batch_within`` seconds), applies it through :class:`~c360.streams.pipeline.Pipeline` in one
transaction and only then acknowledges it (manual acks: faust's ``take()`` would acknowledge a batch
even when applying it failed): a worker killed mid-batch gets the batch again, and the pipeline's
idempotency by event id makes the redelivery change nothing. A store failure is retried with backoff
until it passes (:mod:`c360.streams.applier`), never acknowledged before. Invalid events go to the
dead-letter store and, with their reason, to the dead-letter topic, before the batch is acknowledged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, cast

import faust

from .applier import BatchApplier, RetryPolicy
from .config import EVENT_TYPES, StreamsConfig
from .pipeline import Pipeline, topic_value

log = logging.getLogger(__name__)


def decode(value: bytes | str | None) -> Any:
    """A message value as the pipeline takes it: parsed JSON, or the raw text when it is not JSON."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_app(config: StreamsConfig, pipeline: Callable[[], Pipeline]) -> faust.App:
    """The Faust app with one agent per event type; ``pipeline`` builds the pipeline once, in the worker."""
    if not config.brokers:
        raise ValueError("streams.brokers is not set: configure Kafka to run a worker")
    app = faust.App(
        config.app_id,
        broker=config.brokers,
        store="memory://",
        web_enabled=False,  # no web server: several workers share a machine
        topic_partitions=config.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=config.session_timeout,
        broker_max_poll_interval=config.max_poll_interval,
        consumer_group_instance_id=config.instance_id,
        broker_heartbeat_interval=min(3.0, config.session_timeout / 3),
    )
    dead = app.topic(config.dead_letter_topic, key_type=str, value_serializer="json")
    built: list[Pipeline] = []

    def the_pipeline() -> Pipeline:
        if not built:
            built.append(pipeline())
        return built[0]

    retry = RetryPolicy(config.retry_first, config.retry_max)

    def consumer(event_type: str) -> Callable[[faust.StreamT[bytes]], Any]:
        applier = BatchApplier(the_pipeline, retry, name=f"{event_type} batch")

        async def consume(stream: faust.StreamT[bytes]) -> None:
            # noack_take yields the events and acknowledges none: they are acked below, once applied.
            events = cast("faust.Stream[bytes]", stream).noack_take(config.batch_size, within=config.batch_within)
            async for taken in events:
                batch = cast("list[faust.EventT[bytes]]", taken)  # noack_take yields events, typed as values
                payloads = [decode(e.value) for e in batch]
                applied = await applier.apply(payloads)
                for r in applied.outcome.rejected:
                    sent = await dead.send(
                        key=r.event_id or r.dead_letter,
                        value=topic_value(r, payloads[r.index]),
                    )
                    await sent  # on the dead-letter topic before the batch is acknowledged
                for e in batch:
                    await stream.ack(e)

        return consume

    for event_type in EVENT_TYPES:
        topic = app.topic(config.topic(event_type), key_type=str, value_type=bytes, value_serializer="raw")
        app.agent(topic, name=f"c360.agent.{event_type}")(consumer(event_type))
    return app


def run_worker(app: faust.App, *, loglevel: str = "warning") -> None:
    """Run a Faust worker for ``app`` until it is stopped (SIGTERM / Ctrl-C)."""
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
