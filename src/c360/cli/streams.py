"""``c360 streams`` and ``c360 worker``: the Kafka topics, and the Faust worker that consumes them."""

from __future__ import annotations

import asyncio
import sys
from contextlib import redirect_stdout
from typing import Annotated

import typer

from c360.graph.errors import InvalidInputError, StoreUnavailableError
from c360.graph.store import GraphStore
from c360.streams.config import BrokerUnavailableError, StreamsConfig
from c360.streams.pipeline import Pipeline

from ..deps import build_pipeline, build_store
from ..settings import Settings
from .common import err, out

streams_app = typer.Typer(help="Kafka: the topics of the event types and the dead letters.", no_args_is_help=True)
topics_app = typer.Typer(help="The topics on Kafka.", no_args_is_help=True)
streams_app.add_typer(topics_app, name="topics")


def _kafka_settings(settings: Settings) -> StreamsConfig:
    if not settings.streams.brokers:
        raise InvalidInputError("no Kafka configured: set C360_STREAMS__BROKERS (e.g. kafka://127.0.0.1:9092)")
    return settings.streams


def _ensure_topics(config: StreamsConfig) -> None:
    from c360.streams.topics import ensure_topics

    try:
        states = asyncio.run(ensure_topics(config))
    except BrokerUnavailableError as exc:
        raise StoreUnavailableError(str(exc)) from exc
    for state in states:
        (err if state.differs else out).print(state.describe(), style="yellow" if state.differs else None)


@topics_app.command("create")
def topics_create(ctx: typer.Context) -> None:
    """Create the event topics and the dead-letter topic with streams.partitions partitions.

    Idempotent: existing topics are left as they are (a different partition count is reported).
    """
    _ensure_topics(_kafka_settings(ctx.obj.settings))


def run_worker(settings: Settings, *, loglevel: str) -> None:
    """``c360 worker``: create the missing topics, then consume them into the graph until stopped."""
    from c360.streams.app import build_app as build_faust_app
    from c360.streams.app import run_worker as run_faust_worker

    config = _kafka_settings(settings)
    with redirect_stdout(sys.stderr):
        _ensure_topics(config)
    # The store opens with the first batch, inside the worker's retry rule: a store that is locked or
    # down at start delays the work, it does not stop the worker.
    stores: list[GraphStore] = []

    def pipeline() -> Pipeline:
        if not stores:
            stores.append(build_store(settings))
        return build_pipeline(settings, stores[0])

    err.print(f"c360 worker: {config.brokers}, group {config.app_id}, store {settings.graph.backend}")
    try:
        run_faust_worker(build_faust_app(config, pipeline), loglevel=loglevel)
    finally:
        for store in stores:
            store.close()


def worker(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option(help="Faust log level (warning, info, debug).")] = "warning",
) -> None:
    """Run a Faust worker: create the missing topics, consume them from Kafka (streams.brokers) into the graph."""
    run_worker(ctx.obj.settings, loglevel=loglevel)
