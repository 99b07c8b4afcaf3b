"""Sources: open a pipeline's declared input as a stream of chunks."""

from __future__ import annotations

from pathlib import Path

from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE, BadLine, Checkpoint, Source, SourceChunk
from etl_platform.sources.compression import detect
from etl_platform.sources.csv import CsvFileSource
from etl_platform.sources.fileset import FileSetSource
from etl_platform.sources.json import JsonArrayFileSource, JsonLinesFileSource
from etl_platform.sources.parquet import ParquetFileSource
from etl_platform.sources.sql import SqlQuerySource
from etl_platform.spec.sources import CsvSource, JsonLinesSource, JsonSource, ParquetSource
from etl_platform.state.appends import AppendPlan
from etl_platform.state.files import ProcessedFiles
from etl_platform.stores import FileStore, StoredFile

__all__ = [
    "PROVENANCE",
    "SOURCE_FILE",
    "SOURCE_LINE",
    "BadLine",
    "Checkpoint",
    "FileSetSource",
    "Source",
    "SourceChunk",
    "SqlQuerySource",
    "open_file_source",
    "reads_tail",
]


def open_file_source(
    spec: CsvSource | JsonSource | JsonLinesSource | ParquetSource,
    files: list[StoredFile],
    store: FileStore,
    processed: ProcessedFiles | None = None,
    plan: AppendPlan | None = None,
) -> FileSetSource:
    """The reader for a file source spec over the files chosen for this load; `processed` is its checkpoint,
    `plan` an append's fingerprints and the grown files' tails (state.appends)."""
    if isinstance(spec, CsvSource):
        return CsvFileSource(spec, files, store, processed, plan)
    if isinstance(spec, JsonLinesSource):
        return JsonLinesFileSource(spec, files, store, processed, plan)
    if isinstance(spec, JsonSource):
        return JsonArrayFileSource(spec, files, store, processed, plan)
    return ParquetFileSource(files, store, processed, plan)


def reads_tail(spec: CsvSource | JsonSource | JsonLinesSource | ParquetSource, file: StoredFile) -> bool:
    """Whether a grown file of this source can be read from where its new lines start: uncompressed
    CSV and JSON Lines (a JSON array's or Parquet file's end is not where new records begin)."""
    return isinstance(spec, CsvSource | JsonLinesSource) and detect(Path(file.key), spec.compression) == "none"
