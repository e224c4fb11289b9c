"""What the streams need before Kafka or Faust is loaded: event types, Kafka settings, the broker's error.

Settings and the command line import this module, so that ``c360 --help`` loads neither Faust nor the
Kafka client.
"""

from __future__ import annotations

from c360.graph.errors import C360Error
from pydantic import BaseModel, ConfigDict, Field

EVENT_TYPES = ("profile_update", "order", "transaction", "web_activity", "product", "brand", "consent_change")


class StreamsConfig(BaseModel):
    """Kafka and the Faust worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    brokers: str | None = Field(
        default=None, description="Kafka bootstrap servers, e.g. kafka://127.0.0.1:9092; unset: embedded mode."
    )
    app_id: str = Field(default="c360", description="Faust app id: the consumer group of the workers.")
    topic_prefix: str = Field(default="c360.events.", description="Topic name = prefix + event type.")
    partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Partitions of the topics the worker (or c360 streams topics create) creates; at most this "
        "many workers of one group share the work.",
    )
    replication_factor: int = Field(
        default=3, ge=1, le=16, description="Replicas of each topic created (at most the number of brokers)."
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Most events an agent applies at once.")
    batch_within: float = Field(default=0.2, gt=0, le=60, description="Seconds an agent waits to fill a batch.")
    max_poll_interval: float = Field(
        default=60,
        ge=5,
        le=3600,
        description="Seconds a worker may take between polls; a rebalance waits this long for a crashed worker.",
    )
    instance_id: str | None = Field(
        default=None,
        description="Stable id of this worker (static group membership): restarted after a crash, it takes its "
        "partitions back at once instead of waiting for the group to drop its old self.",
    )
    session_timeout: float = Field(
        default=30, ge=3, le=300, description="Seconds after which the group drops a silent (crashed) worker."
    )
    produce_timeout: float = Field(
        default=5,
        gt=0,
        le=120,
        description="Seconds POST /v1/events waits for the brokers' acknowledgement before answering 503.",
    )
    retry_first: float = Field(
        default=0.5, gt=0, le=60, description="Seconds before a worker tries again a batch the store refused."
    )
    retry_max: float = Field(
        default=30, gt=0, le=600, description="Most seconds between tries of a batch the store keeps refusing."
    )
    occurred_at_max_future_days: float = Field(
        default=1,
        ge=0,
        le=366,
        description="Days an event's occurred_at may lie ahead of the receiving clock (sources' clocks drift); "
        "a later one is rejected, on every path (HTTP, Kafka, files, events send).",
    )
    occurred_at_min_year: int = Field(
        default=1900, ge=1, le=2100, description="The earliest year an event's occurred_at may lie in."
    )

    def topic(self, event_type: str) -> str:
        """The topic of one event type."""
        return f"{self.topic_prefix}{event_type}"

    @property
    def dead_letter_topic(self) -> str:
        """Where rejected events go, with their reasons."""
        return f"{self.topic_prefix}dead-letter"


class BrokerUnavailableError(C360Error):
    """Kafka did not answer in time: nothing was queued; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
