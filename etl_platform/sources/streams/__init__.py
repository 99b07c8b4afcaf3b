"""Stream sources: NATS JetStream, Redis Streams, RabbitMQ and Kafka behind one `StreamSource`.

docs/how-a-run-works.md, "Exactly once for streams", says what each broker guarantees and where
its position lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from etl_platform.errors import SourceError, masked_url, one_line
from etl_platform.sources.sql import expand_env
from etl_platform.sources.streams.base import BrokerClient, StreamSource
from etl_platform.spec.streams import StreamSource as StreamSpec

__all__ = ["StreamSource", "open_stream_source", "stream_backlog"]


def _client(spec: StreamSpec, url: str, saved: Any) -> BrokerClient:
    """The broker's adapter, imported when used: a pipeline of one broker loads no other client library."""
    if spec.broker == "nats":
        from etl_platform.sources.streams.nats import NatsStreamClient

        return NatsStreamClient(spec, url, saved)
    if spec.broker == "redis":
        from etl_platform.sources.streams.redis import RedisStreamClient

        return RedisStreamClient(spec, url, saved)
    if spec.broker == "rabbitmq":
        from etl_platform.sources.streams.rabbitmq import RabbitQueueClient

        return RabbitQueueClient(spec, url, saved)
    from etl_platform.sources.streams.kafka import KafkaTopicClient

    return KafkaTopicClient(spec, url, saved)


def open_stream_source(spec: StreamSpec, secrets: Mapping[str, str], saved: Any) -> StreamSource:
    """The stream, opened from the saved position (None: from its beginning); the URL's `${VAR}` are secrets."""
    url = expand_env(spec.url, secrets)
    try:
        client = _client(spec, url, saved)
    except Exception as exc:  # any client's error: the message names the broker, never the password
        raise SourceError(
            f"{spec.broker} {masked_url(url)} ({spec.name}): cannot connect: {one_line(exc).replace(url, masked_url(url))}; "
            f"check the url and that the broker is up"
        ) from None
    return StreamSource(spec, client, saved)


def stream_backlog(spec: StreamSpec, secrets: Mapping[str, str], saved: Any) -> tuple[str, int]:
    """Where the stream's head is, and how many messages wait after the saved position: read without
    consuming or changing anything, for a sensor's tick."""
    url = expand_env(spec.url, secrets)
    try:
        if spec.broker == "nats":
            from etl_platform.sources.streams.nats import nats_backlog as backlog
        elif spec.broker == "redis":
            from etl_platform.sources.streams.redis import redis_backlog as backlog
        elif spec.broker == "rabbitmq":
            from etl_platform.sources.streams.rabbitmq import rabbitmq_backlog as backlog
        else:
            from etl_platform.sources.streams.kafka import kafka_backlog as backlog
        return backlog(spec, url, saved)
    except Exception as exc:
        raise SourceError(
            f"{spec.broker} {masked_url(url)} ({spec.name}): cannot read the backlog: "
            f"{one_line(exc).replace(url, masked_url(url))}"
        ) from None
