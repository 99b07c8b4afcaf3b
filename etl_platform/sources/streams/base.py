"""One stream source for every broker: a micro-batch of messages, decoded into Arrow chunks, on the
checkpoint protocol (docs/architecture.md, "Source checkpoints").

A broker adapter (nats, redis, rabbitmq, kafka) only fetches messages, says where the batch leaves
the stream, and acknowledges; this module does the rest the same way for all of them. Each row
carries its stream position as provenance (`<broker>:<name>#<position>`), so a quarantined row says
which message it was. A message that does not decode, or that the broker delivered
`dead_letter.after_failures` times without its batch being published, is poison: it is recorded
with its position and error in the dead-letter store (the adapter's own, or `_etl.stream_dead_letters`
in the publish transaction) and the rest of the batch goes on.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import pyarrow as pa

from etl_platform.errors import SourceError
from etl_platform.sources.base import SOURCE_FILE, SourceChunk
from etl_platform.sources.json import records_to_table
from etl_platform.spec.streams import StreamSource as StreamSpec
from etl_platform.state.files import AlreadyProcessed
from etl_platform.state.positions import Position, saved_position
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import META_SCHEMA, STREAM_DEAD_LETTER_SCHEMA


@dataclass
class Message:
    """One delivered message: where it is in its stream, its bytes, and how often it was delivered."""

    position: str  # a NATS sequence, a Redis entry id, a Kafka partition:offset, a RabbitMQ message id
    line: int | None  # the position as a number where it is one (sequence, offset), for the provenance line
    body: bytes
    deliveries: int = 1
    handle: Any = None  # the broker's own message, for acknowledging


@dataclass(frozen=True)
class Poison:
    message: Message
    error: str


class BrokerClient(Protocol):
    """What a broker adapter does; opened from the saved position (None: the stream's beginning)."""

    label: str  # `<broker>:<name>`, the provenance of every row

    def fetch(self, max_messages: int, max_wait_seconds: float) -> list[Message]:
        """Up to `max_messages` messages after the saved position, waiting at most `max_wait_seconds`."""

    def position(self, messages: list[Message]) -> Any:
        """The checkpoint value once `messages` are published: where the next run starts."""

    def acknowledge(self, messages: list[Message], poison: list[Poison]) -> None:
        """After the commit: tell the broker these messages are done (poison to its dead-letter store if it has one)."""

    def keeps_dead_letters(self) -> bool:
        """Whether poison messages go to the broker's own dead-letter store (else `_etl.stream_dead_letters`)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class StreamCheckpoint:
    """The position after the batch and its poison messages, saved in the publish transaction.

    `started` is the position this run read from: if another run of the pipeline published meanwhile
    the saved one differs, and this publish is skipped (rolled back) rather than moving the position back.
    """

    pipeline_label: str
    started: Any
    value: Any
    poison: tuple[Poison, ...] = ()
    record_poison: bool = True

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None:
        if saved_position(target, pipeline) != self.started:
            # As for change data capture: the run that published first wins, this one publishes nothing and
            # acknowledges nothing (its messages are delivered again, and the position absorbs them).
            raise AlreadyProcessed(f"another run published from {self.pipeline_label} first")
        Position(self.value).save(target, pipeline, run_id)
        if self.record_poison and self.poison:
            now = datetime.datetime.now(datetime.UTC)
            rows = [
                {
                    "pipeline": pipeline,
                    "stream": self.pipeline_label,
                    "position": p.message.position,
                    "deliveries": p.message.deliveries,
                    "error": p.error,
                    "message": p.message.body.decode("utf-8", "replace"),
                    "run_id": run_id,
                    "dead_lettered_at": now,
                }
                for p in self.poison
            ]
            table = target.relation(META_SCHEMA, "stream_dead_letters")
            target.bulk_insert(table, pa.Table.from_pylist(rows, STREAM_DEAD_LETTER_SCHEMA))


def decode(spec: StreamSpec, body: bytes) -> dict[str, Any]:
    """One message as a record; ValueError says why it is poison."""
    if spec.format == "json":
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, found {type(record).__name__}")
        return record
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None
    fields = next(csv.reader([text.rstrip("\r\n")], delimiter=spec.delimiter), [])
    if len(fields) != len(spec.columns):
        raise ValueError(f"expected {len(spec.columns)} fields ({', '.join(spec.columns)}), found {len(fields)}")
    return dict(zip(spec.columns, fields, strict=True))


@dataclass
class StreamSource:
    """A micro-batch of one stream: `max_messages` messages or what arrived within `max_wait_seconds`."""

    spec: StreamSpec
    client: BrokerClient
    saved: Any
    messages: list[Message] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)

    def describe(self) -> list[str]:
        return [f"{self.client.label} (up to {self.spec.max_messages:,} messages)"]

    def total_bytes(self) -> None:
        return None

    def fingerprint(self) -> str:
        """The positions read: an exact re-delivery of a published batch is recognised by the append ledger."""
        digest = hashlib.sha256(self.client.label.encode())
        for message in self.messages:
            digest.update(b"\0" + message.position.encode())
        return f"stream:{digest.hexdigest()}"

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        try:
            self.messages = self.client.fetch(self.spec.max_messages, self.spec.max_wait_seconds)
        except SourceError:
            raise
        except Exception as exc:  # any client's error: the broker is down, or the url or name is wrong
            raise SourceError(
                f"{self.client.label}: cannot read: {exc}; check the url, the name and that the broker is up"
            ) from exc
        limit = self.spec.dead_letter.after_failures
        records: list[dict[str, Any]] = []
        taken: list[Message] = []
        for message in self.messages:
            if message.deliveries > limit:
                self.poison.append(Poison(message, f"delivered {message.deliveries} times without its batch being published"))
                continue
            try:
                records.append(decode(self.spec, message.body))
            except ValueError as exc:
                self.poison.append(Poison(message, str(exc)))
                continue
            taken.append(message)
            if len(records) >= chunk_rows:
                yield self._chunk(records, taken)
                records, taken = [], []
        if records:
            yield self._chunk(records, taken)

    def _chunk(self, records: list[dict[str, Any]], messages: list[Message]) -> SourceChunk:
        table = records_to_table(records, self.client.label, [m.line for m in messages])
        where = pa.array([f"{self.client.label}#{m.position}" for m in messages], pa.string()).dictionary_encode()
        table = table.set_column(table.column_names.index(SOURCE_FILE), SOURCE_FILE, where)
        return SourceChunk(table, sum(len(m.body) for m in messages))

    def checkpoint(self) -> StreamCheckpoint:
        value = self.client.position(self.messages) if self.messages else self.saved
        record = not self.client.keeps_dead_letters()
        return StreamCheckpoint(self.client.label, self.saved, value, tuple(self.poison), record)

    def acknowledge(self, checkpoint: StreamCheckpoint) -> None:
        self.client.acknowledge(self.messages, list(checkpoint.poison))

    def close(self) -> None:
        self.client.close()
