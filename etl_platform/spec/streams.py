"""A stream source: messages of NATS JetStream, Redis Streams, RabbitMQ or Kafka, read in bounded micro-batches.

One model for every broker, so a pipeline moves between brokers by changing `broker` and the name of
what it reads; the validator says which name each broker needs. The URL may carry credentials only
through `${VAR}` (a secret), like a sql source's (docs/security.md).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from etl_platform.spec.base import ColumnName, Strict

# What each broker reads, and the consumer state it keeps between runs.
BROKER_NAMES: dict[str, tuple[str, str]] = {
    "nats": ("stream", "durable"),
    "redis": ("stream", "group"),
    "rabbitmq": ("queue", "queue"),
    "kafka": ("topic", "group"),
}


class DeadLetter(Strict):
    after_failures: int = Field(
        3,
        ge=1,
        le=100,
        description="a message delivered this many times without its batch being published is dead-lettered "
        "(where the broker counts deliveries: Redis, RabbitMQ); one that cannot be decoded is dead-lettered at once",
    )


class StreamSource(Strict):
    type: Literal["stream"]
    broker: Literal["nats", "redis", "rabbitmq", "kafka"]
    url: str = Field(
        description="nats://host:4222, redis://host:6379/0, amqp://user:${PASS}@host:5672/vhost, or kafka://host:9092,..."
    )
    stream: str | None = Field(None, description="NATS JetStream stream, or Redis stream key")
    subject: str | None = Field(None, description="NATS: only messages of this subject (default: the whole stream)")
    queue: str | None = Field(None, description="RabbitMQ queue (declared durable with its dead-letter exchange)")
    topic: str | None = Field(None, description="Kafka topic")
    group: str | None = Field(None, description="Redis consumer group, Kafka group.id")
    durable: str | None = Field(None, description="NATS durable pull consumer name")
    format: Literal["json", "csv"] = Field("json", description="json: one object per message; csv: one line per message")
    columns: list[ColumnName] | None = Field(None, description="csv: the names of the line's fields")
    delimiter: str = Field(",", min_length=1, max_length=1)
    max_messages: int = Field(10_000, ge=1, le=5_000_000, description="messages per run (the micro-batch)")
    max_wait_seconds: float = Field(
        5.0, gt=0, le=600, description="how long a run waits for messages before it publishes what it has"
    )
    dead_letter: DeadLetter = Field(default_factory=DeadLetter)

    @model_validator(mode="after")
    def _check(self) -> StreamSource:
        read, state = BROKER_NAMES[self.broker]
        missing = [name for name in (read, state) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.broker} stream source needs {' and '.join(f'`{n}`' for n in dict.fromkeys(missing))}")
        unused = [n for n in ("stream", "subject", "queue", "topic", "group", "durable") if getattr(self, n) is not None]
        allowed = {read, state} | ({"subject"} if self.broker == "nats" else set())
        if set(unused) - allowed:
            raise ValueError(f"`{'`, `'.join(sorted(set(unused) - allowed))}` is not used by a {self.broker} source")
        if self.format == "csv" and not self.columns:
            raise ValueError("a csv stream source needs `columns: [...]`: a message is one line, without a header")
        if re.search(r"://[^/@]*:[^/@${}]+@", self.url):
            raise ValueError("put the password in an environment variable and write the url as `amqp://user:${MY_PASSWORD}@...`")
        return self

    @property
    def name(self) -> str:
        """What the pipeline reads: the stream, queue or topic."""
        return getattr(self, BROKER_NAMES[self.broker][0])
