"""Redis Streams through a consumer group (redis-py): XREADGROUP, pending entries first, XACK after the commit.

The group keeps one consumer per pipeline (`etl`), so after a crash its pending entries list (PEL)
holds exactly what the dead run took: a run reads the PEL (id 0) before new entries (`>`), in id
order. The saved position is the last entry id published: a pending entry at or below it was published
by a run that died before XACK, and is acknowledged without being read again; one above it is read
again. Delivery counts come from XPENDING, for `dead_letter.after_failures`. Poison entries go to
`_etl.stream_dead_letters` and are acknowledged with the batch.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis

from etl_platform.sources.streams.base import Message, Poison
from etl_platform.spec.streams import StreamSource

CONSUMER = "etl"
FIELD = b"data"


def entry_key(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class RedisStreamClient:
    def __init__(self, spec: StreamSource, url: str, saved: dict | None):
        self.key, self.group = spec.stream, spec.group
        self.label = f"redis:{spec.stream}"
        self.after = saved["id"] if saved else None
        self.redis = redis.Redis.from_url(url, socket_timeout=spec.max_wait_seconds + 10)
        self.stale: list[str] = []
        try:
            self.redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def keeps_dead_letters(self) -> bool:
        return False

    def fetch(self, max_messages: int, max_wait_seconds: float) -> list[Message]:
        messages = self._pending(max_messages)
        deadline = time.monotonic() + max_wait_seconds
        while len(messages) < max_messages:
            block = int(max(deadline - time.monotonic(), 0) * 1000)
            read = self.redis.xreadgroup(
                self.group, CONSUMER, {self.key: ">"}, count=max_messages - len(messages), block=block or None
            )
            entries = read[0][1] if read else []
            messages += [self._message(entry_id, fields, 1) for entry_id, fields in entries]
            if not entries or block == 0:
                break
        return messages

    def _pending(self, max_messages: int) -> list[Message]:
        """The entries a dead run took: those it published are acknowledged, the rest delivered again."""
        pending = self.redis.xreadgroup(self.group, CONSUMER, {self.key: "0"}, count=max_messages)
        entries = pending[0][1] if pending else []
        if not entries:
            return []
        counts = {
            p["message_id"].decode(): p["times_delivered"]
            for p in self.redis.xpending_range(self.key, self.group, "-", "+", len(entries), consumername=CONSUMER)
        }
        messages = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if fields is None or (self.after is not None and entry_key(entry_id) <= entry_key(self.after)):
                self.stale.append(entry_id)  # published before the crash, or trimmed from the stream
                continue
            messages.append(self._message(raw_id, fields, counts.get(entry_id, 1)))
        return messages

    def _message(self, raw_id: bytes, fields: dict, deliveries: int) -> Message:
        entry_id = raw_id.decode()
        body = fields.get(FIELD)
        if body is None:  # an entry of several fields, without `data`: the fields are the record
            body = orjson.dumps({k.decode(): v.decode() for k, v in fields.items()})
        return Message(entry_id, None, body, deliveries)

    def position(self, messages: list[Message]) -> dict[str, Any]:
        last = max((m.position for m in messages), key=entry_key)
        if self.after is not None and entry_key(self.after) > entry_key(last):
            last = self.after
        return {"id": last}

    def acknowledge(self, messages: list[Message], poison: list[Poison]) -> None:
        ids = self.stale + [m.position for m in messages]
        for start in range(0, len(ids), 10_000):
            self.redis.xack(self.key, self.group, *ids[start : start + 10_000])
        self.stale = []

    def close(self) -> None:
        self.redis.close()


def redis_backlog(spec: StreamSource, url: str, saved: dict | None) -> tuple[str, int]:
    """The stream's last entry id, and how many entries after the saved one (counted up to a micro-batch)."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        if not client.exists(spec.stream):
            return "", 0
        head = client.xinfo_stream(spec.stream)["last-generated-id"].decode()
        after = f"({saved['id']}" if saved else "-"
        return head, len(client.xrange(spec.stream, after, "+", count=spec.max_messages))
    finally:
        client.close()
