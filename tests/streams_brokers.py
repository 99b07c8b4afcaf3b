"""The test brokers: a uniquely named stream, queue or topic on the machine's NATS, Redis and RabbitMQ, or on
librdkafka's mock cluster, that a test produces messages to and that is deleted after it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import nats
import pika
import redis
from confluent_kafka import Producer

from etl_platform.settings import Secrets
from etl_platform.sources.streams import stream_backlog
from etl_platform.spec import PipelineSpec
from etl_platform.state import saved_position
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.metadata import ensure_metadata

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"
RABBIT_URL = "amqp://guest:${RABBIT_PASSWORD}@127.0.0.1:5672/%2F"
SECRETS = {"RABBIT_PASSWORD": "guest"}
PUBLISH_BATCH = 10_000  # RabbitMQ and NATS: messages published between two waits for the broker


@dataclass
class BrokerStream:
    broker: str
    source: dict[str, Any]
    produce: Any  # list[bytes] -> None
    dead_letters: Any = field(default=None)  # () -> list[(body, headers)], RabbitMQ's dead-letter queue


def _nats(name: str) -> Iterator[BrokerStream]:
    loop = asyncio.new_event_loop()
    connection = loop.run_until_complete(nats.connect(NATS_URL))
    js = connection.jetstream()
    loop.run_until_complete(js.add_stream(name=name, subjects=[f"{name}.>"]))

    def produce(bodies: list[bytes]) -> None:
        async def send() -> None:  # acknowledgements awaited per batch, not one publish at a time
            for start in range(0, len(bodies), PUBLISH_BATCH):
                acks = [await js.publish_async(f"{name}.orders", body) for body in bodies[start : start + PUBLISH_BATCH]]
                await asyncio.gather(*acks)

        loop.run_until_complete(send())

    try:
        yield BrokerStream("nats", {"stream": name, "durable": f"{name}_etl"}, produce)
    finally:
        loop.run_until_complete(js.delete_stream(name))
        loop.run_until_complete(connection.close())
        loop.close()


def _redis(name: str) -> Iterator[BrokerStream]:
    client = redis.Redis.from_url(REDIS_URL)

    def produce(bodies: list[bytes]) -> None:
        pipe = client.pipeline()
        for body in bodies:
            pipe.xadd(name, {"data": body})
        pipe.execute()

    try:
        yield BrokerStream("redis", {"stream": name, "group": f"{name}_etl"}, produce)
    finally:
        client.delete(name)
        client.close()


def _rabbitmq(name: str) -> Iterator[BrokerStream]:
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT_URL.replace("${RABBIT_PASSWORD}", "guest")))
    channel = connection.channel()
    dead = f"{name}.dead_letter"
    channel.exchange_declare(dead, "fanout", durable=True)
    channel.queue_declare(dead, durable=True)
    channel.queue_bind(dead, dead)
    arguments = {"x-queue-type": "quorum", "x-dead-letter-exchange": dead, "x-delivery-limit": 3}
    channel.queue_declare(name, durable=True, arguments=arguments)
    # A transaction per batch: one wait for the broker per PUBLISH_BATCH messages, where pika's blocking
    # publisher confirms wait once per message (1,000,000 took over 25 minutes). tx.commit-ok says the
    # broker has taken every message of the batch, as a confirm of each would.
    publisher = connection.channel()
    publisher.tx_select()
    counter = iter(range(10**9))

    def produce(bodies: list[bytes]) -> None:
        for start in range(0, len(bodies), PUBLISH_BATCH):
            for body in bodies[start : start + PUBLISH_BATCH]:
                properties = pika.BasicProperties(message_id=f"m{next(counter)}", delivery_mode=2)
                publisher.basic_publish("", name, body, properties)
            publisher.tx_commit()

    def dead_letters() -> list[tuple[bytes, dict]]:
        found = []
        while (got := channel.basic_get(dead, auto_ack=True))[0] is not None:
            found.append((got[2], got[1].headers or {}))
        return found

    try:
        yield BrokerStream("rabbitmq", {"queue": name}, produce, dead_letters)
    finally:
        channel.queue_delete(name)
        channel.queue_delete(dead)
        channel.exchange_delete(dead)
        connection.close()


def _kafka(name: str, rtt_ms: int = 0) -> Iterator[BrokerStream]:
    """`rtt_ms`: the mock brokers answer every request that much later (a slow or distant cluster)."""
    # The mock cluster lives as long as this client. It deletes a partition's oldest message sets beyond a few
    # MB: of 1,000,000 uncompressed benchmark messages its 4 partitions kept the last ~290,000. zstd keeps them all.
    producer = Producer({"test.mock.num.brokers": 1, "test.mock.broker.rtt": rtt_ms, "compression.type": "zstd"})
    servers = ",".join(f"{b.host}:{b.port}" for b in producer.list_topics(timeout=10).brokers.values())

    def produce(bodies: list[bytes]) -> None:
        for body in bodies:
            try:
                producer.produce(name, body)
            except BufferError:  # librdkafka's local queue (100,000 messages) is full: deliver it, then go on
                producer.flush(60)
                producer.produce(name, body)
        producer.flush(60)

    yield BrokerStream("kafka", {"url": f"kafka://{servers}", "topic": name, "group": f"{name}_etl"}, produce)


BROKERS = {"nats": _nats, "redis": _redis, "rabbitmq": _rabbitmq, "kafka": _kafka}
URLS = {"nats": NATS_URL, "redis": REDIS_URL, "rabbitmq": RABBIT_URL}


@contextlib.contextmanager
def broker_stream(broker: str, **options: Any) -> Iterator[BrokerStream]:
    """`options` go to the broker's own function (Kafka: `rtt_ms`)."""
    name = f"etl_test_{uuid.uuid4().hex[:10]}"
    with contextlib.contextmanager(BROKERS[broker])(name, **options) as stream:
        stream.source = {"type": "stream", "broker": broker, "url": URLS.get(broker), **stream.source}
        yield stream


def waiting(spec: PipelineSpec, url: str) -> int:
    """Messages after the saved position, as the stream sensor counts them (a Kafka topic: its high
    watermarks less the saved offsets): a stream is drained when none wait, not when a run reads nothing."""
    warehouse = open_warehouse(url)
    try:
        ensure_metadata(warehouse)
        saved = saved_position(warehouse, spec.id)
    finally:
        warehouse.close()
    return stream_backlog(spec.source, Secrets(SECRETS), saved)[1]
