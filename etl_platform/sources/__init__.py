"""Sources: open a pipeline's declared input as a stream of chunks."""

from __future__ import annotations

from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE, BadLine, Checkpoint, Source, SourceChunk
from etl_platform.sources.csv import CsvFileSource
from etl_platform.sources.fileset import FileSetSource
from etl_platform.sources.json import JsonArrayFileSource, JsonLinesFileSource
from etl_platform.sources.parquet import ParquetFileSource
from etl_platform.sources.sql import SqlQuerySource
from etl_platform.spec.sources import CsvSource, JsonLinesSource, JsonSource, ParquetSource
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
]


def open_file_source(
    spec: CsvSource | JsonSource | JsonLinesSource | ParquetSource,
    files: list[StoredFile],
    store: FileStore,
    processed: ProcessedFiles | None = None,
) -> FileSetSource:
    """The reader for a file source spec over the files chosen for this load; `processed` is its checkpoint."""
    if isinstance(spec, CsvSource):
        return CsvFileSource(spec, files, store, processed)
    if isinstance(spec, JsonLinesSource):
        return JsonLinesFileSource(spec, files, store, processed)
    if isinstance(spec, JsonSource):
        return JsonArrayFileSource(spec, files, store, processed)
    return ParquetFileSource(files, store, processed)
