"""Sources: open a pipeline's declared input as a stream of chunks."""

from __future__ import annotations

from etl_platform.errors import SourceError
from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE, BadLine, Source, SourceChunk
from etl_platform.sources.csv import CsvFileSource
from etl_platform.sources.json import JsonArrayFileSource, JsonLinesFileSource
from etl_platform.sources.landing import LocalLandingZone
from etl_platform.sources.parquet import ParquetFileSource
from etl_platform.sources.sql import SqlQuerySource
from etl_platform.spec.models import CsvSource, FrameSourceSpec, JsonLinesSource, JsonSource, ParquetSource, SqlSource
from etl_platform.warehouse import Warehouse

__all__ = ["PROVENANCE", "SOURCE_FILE", "SOURCE_LINE", "BadLine", "LocalLandingZone", "Source", "SourceChunk", "open_source"]


def open_source(
    spec: CsvSource | JsonSource | JsonLinesSource | ParquetSource | SqlSource | FrameSourceSpec,
    landing: LocalLandingZone,
    warehouse: Warehouse,
) -> Source:
    """The reader for a source spec; file sources resolve their glob now, so missing files fail early."""
    if isinstance(spec, SqlSource):
        return SqlQuerySource(spec, warehouse)
    if isinstance(spec, FrameSourceSpec):
        raise SourceError("a frame pipeline's rows come from its Python function: run it through Dagster (etl run)")
    files = landing.resolve(spec.path)
    if isinstance(spec, CsvSource):
        return CsvFileSource(spec, files)
    if isinstance(spec, JsonLinesSource):
        return JsonLinesFileSource(spec, files)
    if isinstance(spec, JsonSource):
        return JsonArrayFileSource(spec, files)
    return ParquetFileSource(files)
