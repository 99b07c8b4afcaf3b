"""A RabbitMQ queue (pika): manual ack after the commit, a prefetch window, and the queue's dead-letter exchange.

The platform declares the queue as a durable quorum queue with a dead-letter exchange
`<queue>.dead_letter` (fanout, bound to the queue `<queue>.dead_letter`) and `x-delivery-limit`
= `dead_letter.after_failures`: the broker itself dead-letters a message its consumers took that
many times without acknowledging it. A message that does not decode is published to that exchange
with its error and position in the headers `x-etl-error` and `x-etl-position` (publisher confirms),
then acknowledged.

A queue cannot seek, so the checkpoint holds the ids of the messages of the last published batches
(the `message_id` property, or a hash of the body without one): a message delivered again after a
run died between its commit and its ack is one of them, and is acknowledged without being read.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pika

from etl_platform.sources.streams.base import Message, Poison
from etl_platform.spec.streams import StreamSource

# How many published batches' message ids the checkpoint remembers (a redelivery comes with the next run).
REMEMBERED_BATCHES = 3
MAX_PREFETCH = 65_535  # so a run reads at most this many messages from a queue


class RabbitQueueClient:
    def __init__(self, spec: StreamSource, url: str, saved: dict | None):
        self.queue = spec.queue
        self.label = f"rabbitmq:{spec.queue}"
        self.dead_letter = f"{spec.queue}.dead_letter"
        self.remembered: list[list[str]] = saved["published"] if saved else []
        self.known = {m for batch in self.remembered for m in batch}
        self.stale: list[int] = []
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = self.channel = self.connection.channel()
        channel.exchange_declare(self.dead_letter, "fanout", durable=True)
        channel.queue_declare(self.dead_letter, durable=True)
        channel.queue_bind(self.dead_letter, self.dead_letter)
        arguments = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_letter,
            "x-delivery-limit": spec.dead_letter.after_failures,
        }
        # The messages ready when the run opens the queue: a run takes them whatever max_wait_seconds says.
        self.waiting = channel.queue_declare(self.queue, durable=True, arguments=arguments).method.message_count
        channel.confirm_delivery()
        # The batch stays unacknowledged until its commit, so the window must hold all of it: a window of
        # 1,000 cut every run to 1,000 messages and a wait of a second. AMQP's prefetch count has 16 bits.
        channel.basic_qos(prefetch_count=min(spec.max_messages, MAX_PREFETCH))

    def keeps_dead_letters(self) -> bool:
        return True

    def fetch(self, max_messages: int, max_wait_seconds: float) -> list[Message]:
        messages: list[Message] = []
        due, deadline = min(max_messages, self.waiting), time.monotonic() + max_wait_seconds
        for method, properties, body in self.channel.consume(self.queue, inactivity_timeout=min(max_wait_seconds, 1.0)):
            if method is not None:
                identity = properties.message_id or hashlib.sha256(body).hexdigest()[:32]
                if method.redelivered and identity in self.known:
                    self.stale.append(method.delivery_tag)  # published by a run that died before its ack
                else:
                    deliveries = int((properties.headers or {}).get("x-delivery-count", 0)) + 1
                    messages.append(Message(identity, None, body, deliveries, (method.delivery_tag, properties)))
            # A run ends with a full batch, when no message came for a second, or at max_wait_seconds once the
            # messages ready at its start are taken, never while the broker is still delivering those: cancel()
            # requeues what was delivered and not taken (a nack), each nack counts towards x-delivery-limit,
            # and a backlog read in runs cut at max_wait_seconds dead-lettered messages that never failed.
            # The clock still ends a run that new messages keep arriving for (one every 0.2 s would otherwise
            # hold it open until max_messages); only those can be requeued once, and come first next run.
            late = time.monotonic() >= deadline and len(messages) + len(self.stale) >= due
            if len(messages) >= max_messages or late or (method is None and (messages or time.monotonic() >= deadline)):
                break
        self.channel.cancel()  # unacknowledged messages stay with this channel until the ack or the close
        return messages

    def position(self, messages: list[Message]) -> dict[str, Any]:
        return {"published": [[m.position for m in messages], *self.remembered][:REMEMBERED_BATCHES]}

    def acknowledge(self, messages: list[Message], poison: list[Poison]) -> None:
        for item in poison:
            properties = item.message.handle[1]
            headers = {**(properties.headers or {}), "x-etl-error": item.error, "x-etl-position": item.message.position}
            copy = pika.BasicProperties(
                message_id=properties.message_id, headers=headers, content_type=properties.content_type, delivery_mode=2
            )
            self.channel.basic_publish(self.dead_letter, self.queue, item.message.body, copy, mandatory=True)
        tags = self.stale + [m.handle[0] for m in messages]
        if tags:
            self.channel.basic_ack(max(tags), multiple=True)
        self.stale = []

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


def rabbitmq_backlog(spec: StreamSource, url: str, saved: dict | None) -> tuple[str, int]:
    """The queue's ready messages (a passive declare: nothing is created or consumed)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        count = connection.channel().queue_declare(spec.queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:  # the queue does not exist yet: the first run declares it
        return "", 1
    finally:
        if connection.is_open:
            connection.close()
    return str(count), count
