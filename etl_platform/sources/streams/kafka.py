"""A Kafka topic (confluent-kafka): auto-commit off, offsets stored with the publish and sought on assignment.

The checkpoint holds the next offset per partition. The consumer assigns itself every partition of
the topic at its saved offset (the earliest one when nothing is saved; the group's committed offset
is not trusted, and no group rebalance is waited for: one run of a pipeline reads at a time),
so a run that died between its commit and the ack reads on from the saved
offsets: nothing twice, nothing skipped. After the commit the offsets are committed to the group
too, for lag monitoring only. Poison messages go to `_etl.stream_dead_letters`.

`url` is `kafka://host:9092,host2:9092`; librdkafka's own settings (SASL, TLS) are not options yet.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from etl_platform.errors import SourceError
from etl_platform.sources.streams.base import Message, Poison
from etl_platform.spec.streams import StreamSource

# How long the topic's metadata (its partitions and watermarks) and the messages waiting in it may take to arrive.
JOIN_SECONDS = 30.0


def bootstrap_servers(url: str) -> str:
    return url.removeprefix("kafka://").rstrip("/")


def behind(consumer: Consumer, topic: str, partition: int, offsets: dict, timeout: float) -> tuple[int, int]:
    """A partition's high watermark, and how many messages lie between its saved offset (the low
    watermark when none is saved, or when retention deleted past it) and the high watermark."""
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    return high, max(high - max(offsets.get(str(partition), low), low), 0)


class KafkaTopicClient:
    def __init__(self, spec: StreamSource, url: str, saved: dict | None):
        self.topic = spec.topic
        self.label = f"kafka:{spec.topic}"
        self.offsets: dict[str, int] = dict(saved["offsets"]) if saved else {}
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers(url),
                "group.id": spec.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # Out of range mid-run (retention deleted what is next): an error, never a silent jump.
                "auto.offset.reset": "error",
                "session.timeout.ms": 6000,
            }
        )
        self.closed = False
        self.waiting = self._assign_from_saved(spec.topic)

    def _assign_from_saved(self, topic: str) -> int:
        """Every partition of the topic, each at its saved offset (the earliest one when nothing is saved);
        returns how many messages already wait after those offsets (the high watermarks less them)."""
        metadata = self.consumer.list_topics(topic, timeout=JOIN_SECONDS).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise SourceError(f"{self.label}: the topic has no partitions ({metadata.error if metadata else 'not found'})")
        waiting, assignment = 0, []
        for partition in sorted(metadata.partitions):
            low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=JOIN_SECONDS)
            saved = self.offsets.get(str(partition))
            if saved is not None and saved < low:
                raise SourceError(_retention_gap(self.label, partition, saved, low))
            waiting += max(high - (low if saved is None else saved), 0)
            assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING if saved is None else saved))
        self.consumer.assign(assignment)
        return waiting

    def keeps_dead_letters(self) -> bool:
        return False

    def fetch(self, max_messages: int, max_wait_seconds: float) -> list[Message]:
        """The messages that waited when the run opened the topic are waited for up to JOIN_SECONDS:
        `max_wait_seconds` bounds the wait for new ones only. A fresh consumer's first fetch (the
        broker connection, the offsets looked up) can take longer than a short `max_wait_seconds`,
        and a run must not read an empty batch from a topic full of messages."""
        messages: list[Message] = []
        due = min(max_messages, self.waiting)
        started = time.monotonic()
        while len(messages) < max_messages:
            left = started + (JOIN_SECONDS if len(messages) < due else max_wait_seconds) - time.monotonic()
            if left <= 0:
                break
            batch = self.consumer.consume(min(max_messages - len(messages), 10_000), timeout=min(left, 0.5))
            messages += self._messages(batch)
            if not batch and messages and len(messages) >= due:
                break
        if due and not messages:
            raise SourceError(
                f"{self.label}: {self.waiting:,} messages wait after the saved offsets but none arrived within "
                f"{JOIN_SECONDS:.0f} s; check that the brokers are up"
            )
        return messages

    @staticmethod
    def _messages(batch: list) -> list[Message]:
        messages = []
        for record in batch:
            if record.error():
                raise KafkaException(record.error())
            partition, offset = record.partition(), record.offset()
            messages.append(Message(f"{partition}:{offset}", offset, record.value() or b"", 1, partition))
        return messages

    def position(self, messages: list[Message]) -> dict[str, Any]:
        offsets = dict(self.offsets)
        for message in messages:
            key = str(message.handle)
            offsets[key] = max(offsets.get(key, 0), message.line + 1)
        return {"offsets": offsets}

    def acknowledge(self, messages: list[Message], poison: list[Poison]) -> None:
        if messages:
            value = self.position(messages)["offsets"]
            self.consumer.commit(offsets=[TopicPartition(self.topic, int(p), o) for p, o in value.items()], asynchronous=False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.consumer.close()


def _retention_gap(label: str, partition: int, saved: int, low: int) -> str:
    """The run's refusal when the topic's retention deleted messages this pipeline never loaded: the
    consumer would start at the earliest message kept and skip them without a word."""
    return (
        f"{label}: partition {partition}: the messages at offsets {saved:,} to {low - 1:,} ({low - saved:,}) were "
        f"deleted by the topic's retention before this pipeline loaded them; nothing was published. Fix: "
        f"produce them again, or accept the loss by deleting the pipeline's saved offsets "
        f"(its row of _etl.source_checkpoint), so the next run starts at the earliest message kept; keep the "
        f"topic's retention.ms above the longest the pipeline may stop"
    )


def kafka_backlog(spec: StreamSource, url: str, saved: dict | None) -> tuple[str, int]:
    """Each partition's high watermark, and how many messages lie between the saved offsets and them."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers(url), "group.id": spec.group, "enable.auto.commit": False})
    try:
        offsets = saved["offsets"] if saved else {}
        topic = consumer.list_topics(spec.topic, timeout=10).topics.get(spec.topic)
        heads, total = {}, 0
        for partition in sorted(topic.partitions if topic and topic.error is None else []):
            heads[partition], waiting = behind(consumer, spec.topic, partition, offsets, 10)
            total += waiting
        return ",".join(f"{p}:{h}" for p, h in heads.items()), total
    finally:
        consumer.close()
