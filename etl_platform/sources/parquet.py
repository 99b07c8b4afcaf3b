"""Parquet files, streamed in row batches with their own types."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from etl_platform.errors import SourceError
from etl_platform.sources.base import SourceChunk, with_provenance
from etl_platform.sources.fileset import FileSetSource


class ParquetFileSource(FileSetSource):
    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        for file in self.files:
            with self.store.local_copy(file) as path:
                try:
                    parquet = pq.ParquetFile(path)
                except (pa.ArrowInvalid, OSError) as exc:
                    raise SourceError(f"{file.name}: not a readable Parquet file: {exc}") from None
                row = 1
                for batch in parquet.iter_batches(batch_size=chunk_rows):
                    lines = pa.array(range(row, row + len(batch)), pa.int64())
                    row += len(batch)
                    yield SourceChunk(with_provenance(pa.Table.from_batches([batch]), file.name, lines))
                empty = parquet.schema_arrow.empty_table()
                yield SourceChunk(with_provenance(empty, file.name, pa.array([], pa.int64())), file.size)
