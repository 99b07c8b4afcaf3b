"""Where a pipeline's rows come from: files (CSV, JSON, JSON lines, Parquet), SQL tables or queries, or a Python function.

`type` tells the sources apart; SOURCE_TYPES maps it to its model for the loader's error messages.
"""

from __future__ import annotations

import codecs
import datetime
import re
import zlib
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from etl_platform.spec.base import ColumnName, Strict, parse_duration
from etl_platform.spec.reach import inside_allowed_roots, single_select
from etl_platform.spec.rest import RestSourceSpec
from etl_platform.spec.streams import StreamSource


class FileSourceBase(Strict):
    path: str | None = Field(
        None,
        description="File path or glob, relative to the landing zone, or s3://bucket/key...; "
        "omitted when a file_arrival trigger names where files arrive",
    )
    compression: Literal["auto", "none", "gzip", "bz2", "zip"] = "auto"

    @field_validator("path")
    @classmethod
    def _inside_roots(cls, path: str | None, info: ValidationInfo) -> str | None:
        return inside_allowed_roots(path, info)


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

    @field_validator("path")
    @classmethod
    def _inside_roots(cls, path: str | None, info: ValidationInfo) -> str | None:
        return inside_allowed_roots(path, info)


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
    # Written into `SELECT * FROM <table>`: plain identifiers only, so a table name cannot carry SQL.
    table: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")] | None = Field(
        None, description="[schema.]table, letters, digits, '_' and '$'"
    )
    query: str | None = Field(None, description="one SELECT; it runs read-only, with a statement timeout")
    incremental: Incremental | None = None

    @model_validator(mode="after")
    def _check(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("a sql source needs exactly one of `table` or `query`")
        if self.query is not None:
            single_select(self.query, "query")
        if self.url and re.search(r"://[^/@]*:[^/@${}]+@", self.url):
            raise ValueError("put the password in an environment variable and write the url as `${MY_DB_URL}`")
        return self


_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
# The change-data-capture source types: snapshot, then changes applied by a merge in source order.
CHANGE_CAPTURE_TYPES = ("postgres_cdc", "mariadb_cdc")


class ChangeCaptureSource(Strict):
    """What every change-data-capture source shares: its snapshot, then its changes in bounded windows.

    The destination must be `write: merge` on the table's primary key; changes apply in source
    order, deletes as deletes or soft deletes, and a TRUNCATE empties the target at its position
    (docs/pipeline-spec.md, "Change data capture").
    """

    url: str = Field(description="URL of the source database; `${VAR}` reads an environment variable")
    table: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")] = Field(
        description="[schema.]table whose changes are captured"
    )
    deletes: Literal["delete", "soft"] = Field("delete", description="`soft` keeps deleted rows with `_deleted_at` set")
    max_changes: int = Field(100_000, ge=1, description="a run applies at most about this many changes (whole transactions)")
    max_wait: str = Field("0s", description="how long a run waits for a window to fill up to max_changes")

    @model_validator(mode="after")
    def _check(self) -> ChangeCaptureSource:
        parse_duration(self.max_wait)
        if re.search(r"://[^/@]*:[^/@${}]+@", self.url):
            raise ValueError("put the password in an environment variable and write the url as `${MY_DB_URL}`")
        return self


class PostgresCdcSource(ChangeCaptureSource):
    """Change data capture from a PostgreSQL table through a pgoutput logical replication slot.

    The platform creates (or adopts) the publication and the slot (docs/pipeline-spec.md).
    """

    type: Literal["postgres_cdc"]
    publication: Annotated[str, StringConstraints(pattern=_IDENTIFIER, max_length=63)] | None = Field(
        None, description="publication to adopt or create; default etl_<schema>_<table>"
    )
    slot: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$", max_length=63)] | None = Field(
        None, description="logical replication slot (lower case); default etl_<schema>_<table>"
    )
    lag_threshold_bytes: int = Field(
        1 << 30, ge=1, description="the slot-lag asset check fails when the slot holds more WAL than this"
    )

    @property
    def schema_and_table(self) -> tuple[str, str]:
        schema, _, table = self.table.rpartition(".")
        return schema or "public", table

    @property
    def slot_name(self) -> str:
        return self.slot or "etl_" + "_".join(self.schema_and_table).lower()

    @property
    def publication_name(self) -> str:
        return self.publication or "etl_" + "_".join(self.schema_and_table)


class MariadbCdcSource(ChangeCaptureSource):
    """Change data capture from a MariaDB table through its row binlog, positioned by GTID.

    The server needs `log_bin`, `binlog_format = ROW`, `binlog_row_image = FULL` and
    `binlog_row_metadata = FULL` (column names in every row event); no slot holds the binlog, so
    its retention (`expire_logs_days`) must outlast the longest pause of the pipeline.
    """

    type: Literal["mariadb_cdc"]
    table: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")] = Field(
        description="database.table whose changes are captured"
    )
    server_id: int | None = Field(
        None,
        ge=1,
        lt=1 << 32,
        description="replica server id the binlog reader uses, unique on the server; default from the table name",
    )
    lag_threshold_transactions: int = Field(
        100_000, ge=1, description="the binlog-lag asset check fails when the pipeline is more GTID transactions behind"
    )

    @property
    def schema_and_table(self) -> tuple[str, str]:
        schema, _, table = self.table.partition(".")
        return schema, table

    @property
    def reader_id(self) -> int:
        """The server id of this pipeline's binlog reader: a stable number from the table's name."""
        return self.server_id or 1_000_000 + zlib.crc32(self.table.encode()) % 1_000_000_000


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
    "rest": RestSourceSpec,
    "postgres_cdc": PostgresCdcSource,
    "mariadb_cdc": MariadbCdcSource,
    "stream": StreamSource,
}

Source = Annotated[
    CsvSource
    | JsonSource
    | JsonLinesSource
    | ParquetSource
    | SqlSource
    | FrameSourceSpec
    | RestSourceSpec
    | PostgresCdcSource
    | MariadbCdcSource
    | StreamSource,
    Field(discriminator="type"),
]
