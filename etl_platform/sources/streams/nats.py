"""NATS JetStream through a durable pull consumer (nats-py), acknowledged (AckAll) after the commit.

The saved position is the last stream sequence published. A consumer that stands elsewhere (a run
died before its ack, or before its publish, so messages are pending redelivery out of order) is put
back at the saved sequence: deleted and created again from `sequence + 1`. So JetStream is read
like a log from the checkpoint, and nothing is delivered twice or skipped. Poison messages go to
`_etl.stream_dead_letters`; the AckAll of the batch's last message settles them with the rest.
nats-py is asynchronous: the client runs its own event loop, inside the step process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from etl_platform.sources.streams.base import Message, Poison
from etl_platform.spec.streams import StreamSource

ACK_WAIT_SECONDS = 300.0


class NatsStreamClient:
    def __init__(self, spec: StreamSource, url: str, saved: dict | None):
        self.spec = spec
        self.label = f"nats:{spec.stream}"
        self.sequence = saved["sequence"] if saved else 0
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(nats.connect(url, connect_timeout=5, max_reconnect_attempts=1))
        self.js = self.connection.jetstream()
        self.subscription = self.loop.run_until_complete(self._consumer())

    async def _consumer(self) -> Any:
        spec = self.spec
        try:
            info = await self.js.consumer_info(spec.stream, spec.durable)
            where = (info.delivered.stream_seq, info.ack_floor.stream_seq, info.num_ack_pending)
            if where != (self.sequence, self.sequence, 0) and not (self.sequence == 0 and where == (0, 0, 0)):
                await self.js.delete_consumer(spec.stream, spec.durable)
                raise NotFoundError
        except NotFoundError:
            start = {"deliver_policy": DeliverPolicy.ALL}
            if self.sequence:
                start = {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": self.sequence + 1}
            config = ConsumerConfig(
                durable_name=spec.durable,
                ack_policy=AckPolicy.ALL,
                ack_wait=ACK_WAIT_SECONDS,
                filter_subject=spec.subject,
                max_ack_pending=-1,
                **start,
            )
            await self.js.add_consumer(spec.stream, config)
        return await self.js.pull_subscribe_bind(spec.durable, spec.stream)

    def keeps_dead_letters(self) -> bool:
        return False

    def fetch(self, max_messages: int, max_wait_seconds: float) -> list[Message]:
        return self.loop.run_until_complete(self._fetch(max_messages, max_wait_seconds))

    async def _fetch(self, max_messages: int, max_wait_seconds: float) -> list[Message]:
        messages: list[Message] = []
        deadline = time.monotonic() + max_wait_seconds
        while len(messages) < max_messages and (left := deadline - time.monotonic()) > 0:
            try:
                batch = await self.subscription.fetch(min(max_messages - len(messages), 10_000), timeout=max(left, 0.05))
            except TimeoutError:
                break
            for msg in batch:
                sequence = msg.metadata.sequence.stream
                messages.append(Message(str(sequence), sequence, msg.data, msg.metadata.num_delivered, msg))
        return messages

    def position(self, messages: list[Message]) -> dict[str, int]:
        return {"sequence": max(self.sequence, *(m.line for m in messages))}

    def acknowledge(self, messages: list[Message], poison: list[Poison]) -> None:
        if messages:
            last = max(messages, key=lambda m: m.line)
            self.loop.run_until_complete(last.handle.ack_sync(timeout=10))

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.connection.close())
            self.loop.close()


def nats_backlog(spec: StreamSource, url: str, saved: dict | None) -> tuple[str, int]:
    """The stream's last sequence, and how many sequences after the saved one (other subjects included)."""

    async def look() -> tuple[str, int]:
        connection = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            last = (await connection.jetstream().stream_info(spec.stream)).state.last_seq
        finally:
            await connection.close()
        return str(last), max(last - (saved["sequence"] if saved else 0), 0)

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(look())
    finally:
        loop.close()
