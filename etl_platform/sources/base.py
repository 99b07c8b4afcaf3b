"""What every source yields: bounded Arrow chunks that carry where each row came from.

Two provenance columns travel with the data through every transform so that a row rejected
anywhere can be reported with its source file and line; they are dropped before staging.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

SOURCE_FILE = "_etl_source_file"
SOURCE_LINE = "_etl_source_line"
# The row's position in its source chunk (added by the runner): finds the original of a rejected row.
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


class Source(Protocol):
    """A readable input. `fingerprint` identifies its content, for the append ledger."""

    def describe(self) -> list[str]: ...

    def total_bytes(self) -> int | None: ...

    def fingerprint(self) -> str | None: ...

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]: ...


def numbered(table: pa.Table) -> pa.Table:
    """The chunk with each row's position in it, so rejected rows can be traced to the source row."""
    return table.append_column(SOURCE_ROW, pa.array(range(len(table)), pa.int64()))


def with_provenance(table: pa.Table, source_file: str, lines: pa.Array) -> pa.Table:
    """Append the provenance columns to a parsed table."""
    files = pa.DictionaryArray.from_arrays(pa.array([0] * len(table), pa.int32()), pa.array([source_file]))
    return table.append_column(SOURCE_FILE, files).append_column(SOURCE_LINE, lines)
