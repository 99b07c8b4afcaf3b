"""What every source yields: bounded Arrow chunks that carry where each row came from.

Two provenance columns travel with the data through every transform so that a row rejected
anywhere can be reported with its source file and line; they are dropped before staging.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from etl_platform.warehouse.base import Warehouse

SOURCE_FILE = "_etl_source_file"
SOURCE_LINE = "_etl_source_line"
# The row's position in its source chunk (added by engine.chunks): finds the original of a rejected row.
SOURCE_ROW = "_etl_source_row"
PROVENANCE = (SOURCE_FILE, SOURCE_LINE, SOURCE_ROW)


@dataclass
class SourceChunk:
    """A bounded piece of input: rows that parsed, and raw lines that did not."""

    table: pa.Table
    bytes_read: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)


@dataclass(frozen=True)
class BadLine:
    """A line of input that could not be parsed into a row."""

    source_file: str
    line: int | None
    text: str
    reason: str


class Checkpoint(Protocol):
    """Where a source stands once a load's rows are published (docs/architecture.md, "Source checkpoints").

    The engine calls `save` inside the publish transaction, so a checkpoint advances exactly when
    the rows it covers become visible, and never when a load fails or is rolled back.
    """

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None: ...


class Source(Protocol):
    """A readable input on the checkpoint protocol.

    A source is opened from its saved checkpoint, yields chunks from `read`, and then says with
    `checkpoint` where it stands (None: nothing to save). After the publish has committed, the
    engine calls `acknowledge` with that checkpoint, once: where a broker or a replication slot is
    told to forget what is now safely published. `fingerprint` identifies the content read, for the
    append ledger, which absorbs a re-delivery that a crash before `acknowledge` causes.
    """

    def describe(self) -> list[str]: ...

    def total_bytes(self) -> int | None: ...

    def fingerprint(self) -> str | None: ...

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]: ...

    def checkpoint(self) -> Checkpoint | None: ...

    def acknowledge(self, checkpoint: Checkpoint) -> None: ...


class WithoutCheckpoint:
    """For sources that keep no position: rows handed over in memory (a Python function's frame)."""

    def checkpoint(self) -> None:
        return None

    def acknowledge(self, checkpoint: Checkpoint) -> None:
        """Nothing upstream to tell."""


def numbered(table: pa.Table) -> pa.Table:
    """The chunk with each row's position in it, so rejected rows can be traced to the source row."""
    return table.append_column(SOURCE_ROW, pa.array(range(len(table)), pa.int64()))


def with_provenance(table: pa.Table, source_file: str, lines: pa.Array) -> pa.Table:
    """Append the provenance columns to a parsed table."""
    files = pa.DictionaryArray.from_arrays(pa.array([0] * len(table), pa.int32()), pa.array([source_file]))
    return table.append_column(SOURCE_FILE, files).append_column(SOURCE_LINE, lines)
