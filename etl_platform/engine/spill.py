"""A load's rows on disk, for the whole-load steps: Arrow IPC files in a temporary folder, written and read chunk by chunk.

The whole-load steps need every row of a load, not every row in memory (docs/architecture.md,
Contracts 1): the rows that reach them are spilled here as they stream in, and a step reads them
back one record batch at a time. Chunks whose schemas differ (a column all null in one chunk, a
column only some files have) go to separate files; reading conforms every batch to the schemas'
permissive union, as concatenating the chunks would.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa


class Spill:
    def __init__(self, chunk_rows: int):
        self.chunk_rows = chunk_rows
        self._folder = tempfile.TemporaryDirectory(prefix="etl-whole-load-")
        self.folder = Path(self._folder.name)  # also DuckDB's temp_directory for the aggregate
        self._files: list[Path] = []
        self._schemas: list[pa.Schema] = []
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self.num_rows = 0

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        """Append rows, in batches of at most `chunk_rows`; a table without columns adds nothing."""
        if not table.num_columns:
            return
        table = table.replace_schema_metadata(None)
        if self._writer is None or not table.schema.equals(self._schemas[-1]):
            self._close_writer()
            path = self.folder / f"part-{len(self._files):05d}.arrow"
            self._files.append(path)
            self._schemas.append(table.schema)
            self._writer = pa.ipc.new_file(path, table.schema)
        batches = table.to_batches(max_chunksize=self.chunk_rows) if isinstance(table, pa.Table) else [table]
        for batch in batches:
            self._writer.write_batch(batch)
        self.num_rows += len(table)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def schema(self) -> pa.Schema | None:
        """The union of the written schemas; None when nothing was written."""
        if not self._schemas:
            return None
        return pa.unify_schemas(self._schemas, promote_options="permissive")

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every row written, one record batch at a time, in the order written."""
        self._close_writer()
        schema = self.schema
        for path in self._files:
            with pa.OSFile(str(path)) as source:  # read, not mapped: a batch's memory is freed after it
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    yield _conform(reader.get_batch(i), schema)

    def reader(self) -> pa.RecordBatchReader:
        """The rows as a stream DuckDB (or any Arrow consumer) reads batch by batch, once."""
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())

    def read_columns(self, columns: list[str]) -> pa.Table:
        """These columns of every row in memory (deduplicate's compared columns); the rest stays on disk.

        Each column is copied out of its batch: a batch read from the file holds all its columns in
        one buffer, so a selected column alone would keep every column of every batch in memory.
        """
        schema = pa.schema([self.schema.field(c) for c in columns])
        batches = [
            pa.RecordBatch.from_arrays([pa.concat_arrays([batch[c]]) for c in columns], schema=schema) for batch in self.batches()
        ]
        return pa.Table.from_batches(batches, schema)

    def close(self) -> None:
        self._close_writer()
        self._folder.cleanup()


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with the union's columns, in its order and types; a column it lacks is null."""
    if batch.schema.equals(schema):
        return batch
    names = batch.schema.names
    columns = [
        batch.column(field.name).cast(field.type) if field.name in names else pa.nulls(len(batch), field.type) for field in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
