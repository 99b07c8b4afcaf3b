"""Where a pipeline's rows come from: files (CSV, JSON, JSON lines, Parquet), SQL tables or queries, or a Python function.

`type` tells the sources apart; SOURCE_TYPES maps it to its model for the loader's error messages.
"""

from __future__ import annotations

import codecs
import datetime
import re
from typing import Annotated, Literal

import sqlglot
import sqlglot.errors
from pydantic import Field, model_validator

from etl_platform.spec.base import ColumnName, Strict, parse_duration


class FileSourceBase(Strict):
    path: str | None = Field(
        None,
        description="File path or glob, relative to the landing zone, or s3://bucket/key...; "
        "omitted when a file_arrival trigger names where files arrive",
    )
    compression: Literal["auto", "none", "gzip", "bz2", "zip"] = "auto"


class CsvSource(FileSourceBase):
    type: Literal["csv"]
    delimiter: str = Field(",", min_length=1, max_length=1)
    quote_char: str | None = Field('"', min_length=1, max_length=1)
    encoding: str = "utf-8"
    header: bool = True
    columns: list[ColumnName] | None = Field(None, description="Column names for files without a header row")
    null_values: list[str] = Field(default_factory=lambda: [""])
    on_bad_line: Literal["quarantine", "fail"] = "quarantine"
    max_record_lines: int = Field(
        100,
        ge=1,
        description="a record whose quoted value spans more lines is taken for an unbalanced quote: its first line "
        "is quarantined and reading resumes on the next line",
    )
    max_record_mb: int = Field(
        256, ge=1, description="the largest record the reader accepts; its block grows up to this size for long values"
    )

    @model_validator(mode="after")
    def _check(self) -> CsvSource:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}; use a Python codec name such as utf-8 or latin-1") from None
        if not self.header and not self.columns:
            raise ValueError("a CSV without a header row needs `columns: [...]` naming its columns")
        return self


class JsonSource(FileSourceBase):
    """A file holding one JSON array of objects."""

    type: Literal["json"]


class JsonLinesSource(FileSourceBase):
    type: Literal["jsonl"]
    on_bad_line: Literal["quarantine", "fail"] = "quarantine"


class ParquetSource(Strict):
    type: Literal["parquet"]
    path: str | None = Field(None, description="File path or glob, relative to the landing zone, or s3://bucket/key...")


class Incremental(Strict):
    """Read only rows whose cursor column is past the last load's high-water mark.

    Rows that commit late with a cursor value just below the mark are caught by reading again
    `lookback` below it; a merge on the primary key removes the overlap.
    """

    cursor: ColumnName = Field(description="a column that grows with every change: updated_at, an id")
    lookback: int | str = Field(
        0, description="re-read this far below the mark: '15m', '2h', '1d', or a number for numeric cursors"
    )

    @model_validator(mode="after")
    def _check(self) -> Incremental:
        if isinstance(self.lookback, str):
            try:
                parse_duration(self.lookback)
            except ValueError as exc:
                raise ValueError(f"lookback {exc}") from None
        if isinstance(self.lookback, int) and self.lookback < 0:
            raise ValueError("lookback must not be negative")
        return self

    @property
    def lookback_value(self) -> int | datetime.timedelta:
        """A timedelta for durations, a plain number for numeric cursors."""
        return parse_duration(self.lookback) if isinstance(self.lookback, str) else self.lookback


class SqlSource(Strict):
    type: Literal["sql"]
    url: str | None = Field(None, description="SQLAlchemy URL; `${VAR}` reads an environment variable; omitted = the warehouse")
    table: str | None = None
    query: str | None = None
    incremental: Incremental | None = None

    @model_validator(mode="after")
    def _check(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("a sql source needs exactly one of `table` or `query`")
        if self.query is not None:
            try:
                sqlglot.parse_one(self.query, read="duckdb")
            except sqlglot.errors.ParseError as exc:
                raise ValueError(f"query does not parse: {exc.errors[0]['description']}") from None
        if self.url and re.search(r"://[^/@]*:[^/@${}]+@", self.url):
            raise ValueError("put the password in an environment variable and write the url as `${MY_DB_URL}`")
        return self


class FrameSourceSpec(Strict):
    """Rows returned by the pipeline's Python function (declared with `etl_platform.spec.frame_pipeline`)."""

    type: Literal["frame"]


SOURCE_TYPES: dict[str, type[Strict]] = {
    "csv": CsvSource,
    "json": JsonSource,
    "jsonl": JsonLinesSource,
    "parquet": ParquetSource,
    "sql": SqlSource,
    "frame": FrameSourceSpec,
}

Source = Annotated[
    CsvSource | JsonSource | JsonLinesSource | ParquetSource | SqlSource | FrameSourceSpec, Field(discriminator="type")
]
