"""A frame a Python function returned (pandas, polars or Arrow), as a pipeline source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from etl_platform.fingerprint import ContentHash
from etl_platform.sources.base import SourceChunk, WithoutCheckpoint, with_provenance
from etl_platform.spec.python import FramePipeline


def to_arrow(frame: Any) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    if hasattr(frame, "to_arrow"):  # polars
        return frame.to_arrow()
    return pa.Table.from_pandas(frame, preserve_index=False)


class FrameSource(WithoutCheckpoint):
    """The whole frame in one chunk: it is in memory already, and checks see all its rows at once."""

    def __init__(self, frame: Any, label: str):
        self.table = to_arrow(frame)
        self.label = label

    def describe(self) -> list[str]:
        return [self.label]

    def total_bytes(self) -> int:
        return self.table.nbytes

    def fingerprint(self) -> str:
        digest = ContentHash()
        for batch in self.table.to_batches():
            digest.update(batch.serialize())
        return digest.hexdigest()

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        lines = pa.array(range(1, len(self.table) + 1), pa.int64())
        yield SourceChunk(with_provenance(self.table, self.label, lines), self.table.nbytes)


def frame_source(python: FramePipeline, warehouse_url: str) -> FrameSource:
    """Run a frame pipeline's function with a warehouse connection to read its inputs from."""
    from etl_platform.warehouse import open_warehouse

    reader = open_warehouse(warehouse_url)
    try:
        return FrameSource(python.compute(reader), f"python:{python.spec.id}")
    finally:
        reader.close()
