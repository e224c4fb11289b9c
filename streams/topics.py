"""The topics of c360 on Kafka: one per event type and the dead-letter topic, with ``streams.partitions``.

``c360 worker`` creates them when it starts and ``c360 streams topics create`` does the same on its own;
both are idempotent: a topic that exists is left as it is, and one whose partition count differs from
``streams.partitions`` is reported (Kafka cannot lower a topic's partitions, and raising them moves keys
to other partitions, which breaks the per-person order; that stays an operator's decision).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .config import EVENT_TYPES, BrokerUnavailableError, StreamsConfig
from .producer import bootstrap_servers

#: Kafka's error code for a topic that already exists (a concurrent worker created it first).
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicState:
    """One topic after :func:`ensure_topics`: ``created`` now or ``existing``, with its partitions."""

    name: str
    status: str
    partitions: int
    wanted: int

    @property
    def differs(self) -> bool:
        """The topic has another partition count than configured."""
        return self.partitions != self.wanted

    def describe(self) -> str:
        """One line for a person."""
        line = f"{self.name}: {self.status}, {self.partitions} partition{'s' if self.partitions != 1 else ''}"
        if self.differs:
            line += f" (streams.partitions is {self.wanted}; left as it is)"
        return line


def topic_names(config: StreamsConfig) -> list[str]:
    """Every topic c360 reads or writes: the event types' and the dead-letter topic."""
    return [config.topic(t) for t in EVENT_TYPES] + [config.dead_letter_topic]


async def ensure_topics(config: StreamsConfig, *, timeout: float = 30) -> list[TopicState]:
    """Create the missing topics with ``config.partitions`` partitions (replication 1 per broker count).

    Raises :class:`BrokerUnavailableError` when the brokers do not answer within ``timeout`` seconds.
    """
    if not config.brokers:
        raise ValueError("streams.brokers is not set")
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(config.brokers), request_timeout_ms=int(timeout * 1000)
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            names = topic_names(config)
            brokers = len((await admin.describe_cluster()).get("brokers", [])) or 1
            existing = set(await admin.list_topics())
            missing = [n for n in names if n not in existing]
            created: set[str] = set()
            if missing:
                replicas = min(config.replication_factor, brokers)
                answer = await admin.create_topics(
                    [NewTopic(n, num_partitions=config.partitions, replication_factor=replicas) for n in missing]
                )
                for name, code, message in answer.topic_errors:
                    if code == 0:
                        created.add(name)
                    elif code != _TOPIC_ALREADY_EXISTS:
                        raise BrokerUnavailableError(f"Kafka refused to create topic {name}: {message} ({code})")
            described = await admin.describe_topics(names)
            # A topic just created may be described before its partitions are known: ask again until they
            # are (within the timeout), rather than report it with none.
            while any(d["topic"] in created and not d.get("partitions") for d in described):
                await asyncio.sleep(0.1)
                described = await admin.describe_topics(names)
    except TimeoutError as exc:
        raise BrokerUnavailableError(f"Kafka at {config.brokers} did not answer within {timeout:g} s") from exc
    except BrokerUnavailableError:
        raise
    except Exception as exc:  # aiokafka's connection errors have no common base worth naming
        raise BrokerUnavailableError(f"Kafka at {config.brokers}: {exc!r}") from exc
    finally:
        await admin.close()
    counts = {d["topic"]: len(d.get("partitions") or ()) for d in described}
    return [
        TopicState(n, "created" if n in created else "existing", counts.get(n, 0), config.partitions) for n in names
    ]
