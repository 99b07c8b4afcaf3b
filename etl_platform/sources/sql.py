"""A table or query, streamed in partitions.

With a `url`, the database is read through SQLAlchemy (PostgreSQL, MariaDB/MySQL through PyMySQL,
SQLite, DuckDB, or any dialect installed). Without one, the source reads the warehouse itself, through the run's own
warehouse connection: that is how a pipeline builds on datasets other pipelines publish, and it
respects DuckDB's rule that one process opens a database file with one configuration.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_platform.errors import SourceError, masked_url, one_line, register_secret
from etl_platform.fingerprint import ContentHash
from etl_platform.secrets import expand_references
from etl_platform.sources.base import SourceChunk, with_provenance
from etl_platform.spec.partitions import PartitionSlice
from etl_platform.spec.sources import SqlSource
from etl_platform.state.cursor import CursorCheckpoint, Mark
from etl_platform.warehouse.base import USER_SQL_TIMEOUT_SECONDS, Warehouse
from etl_platform.warehouse.dbapi import described_batches, described_type, mysql_described_type

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TIMEOUT_MS = round(USER_SQL_TIMEOUT_SECONDS * 1000)
# How each dialect opens a connection that cannot write, with a statement timeout where it has one;
# a dialect not listed relies on the query having been validated as one SELECT (docs/security.md).
_READ_ONLY_CONNECT: dict[str, dict] = {
    "postgresql": {"options": f"-c default_transaction_read_only=on -c statement_timeout={_TIMEOUT_MS}"},
    "duckdb": {"read_only": True},
}
_READ_ONLY_SESSION: dict[str, list[str]] = {
    "sqlite": ["PRAGMA query_only = ON"],
}
# MySQL and MariaDB name their statement timeouts differently; a mysql:// URL may reach either server.
_MYSQL_TIMEOUT = {True: f"max_statement_time = {_TIMEOUT_MS / 1000}", False: f"max_execution_time = {_TIMEOUT_MS}"}


def driver_url(url: str) -> str:
    """`mysql://` and `mariadb://` through PyMySQL, the MySQL-family driver the platform installs
    (SQLAlchemy's default, mysqlclient, needs C headers to build); other URLs unchanged."""
    parsed = make_url(url)
    if parsed.drivername in ("mysql", "mariadb"):
        return parsed.set(drivername=f"{parsed.drivername}+pymysql").render_as_string(hide_password=False)
    return url


def _read_only_session(connection: sa.Connection) -> list[str]:
    """The statements that make this session read-only with a statement timeout (docs/security.md)."""
    dialect = connection.dialect
    if dialect.name in ("mysql", "mariadb"):
        return ["SET SESSION TRANSACTION READ ONLY", f"SET SESSION {_MYSQL_TIMEOUT[bool(dialect.is_mariadb)]}"]
    return _READ_ONLY_SESSION.get(dialect.name, [])


def expand_env(text: str, secrets: Mapping[str, str]) -> str:
    """Replace `${VAR}` with the secret (environment variable) of that name, and `${env:...}`,
    `${file:...}`, `${vault:...}` with the value they reference (etl_platform.secrets); a missing
    one is an error. Each value is registered for redaction."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name not in secrets:
            raise SourceError(f"environment variable {name} is not set; it is used in {masked_url(text)!r}")
        register_secret(secrets[name])
        return secrets[name]

    return _ENV.sub(value, expand_references(text, secrets))


def sql_literal(value: Mark) -> str:
    """A cursor mark as SQL text; the database casts a quoted literal to the column's type."""
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        text = value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else str(value)
        return "'" + text.replace("'", "''") + "'"
    return str(value)


def slice_predicate(column: str, piece: PartitionSlice) -> str:
    """The rows of one partition: `column` (quoted) in the window [start, end), or equal to the key.
    Built from the slice's values as literals, never from text a user wrote."""
    if piece.start is None or piece.end is None:
        return f"{column} = {sql_literal(piece.key)}"
    start, end = (sql_literal(t.astimezone(datetime.UTC).replace(tzinfo=None)) for t in (piece.start, piece.end))
    return f"{column} >= {start} AND {column} < {end}"


class SqlQuerySource:
    """Rows of a table or query; incremental, only those past `since` on the cursor column."""

    def __init__(
        self,
        spec: SqlSource,
        warehouse: Warehouse,
        secrets: Mapping[str, str],
        since: Mark | None = None,
        reset: bool = False,
        partition: tuple[str, PartitionSlice] | None = None,
    ):
        """`since` is where this read starts (the saved mark less the look-back); `reset` (a full
        refresh) replaces the saved mark instead of keeping the larger of the two. A `partition`
        (source column, slice) reads only the slice: a window's range on the column, or the key."""
        query = spec.query or f"SELECT * FROM {spec.table}"
        self.cursor = spec.incremental.cursor if spec.incremental else None
        # Quoted in the source's own dialect (MySQL's backticks, everyone else's double quotes).
        quote = (
            warehouse.quote
            if spec.url is None
            else make_url(driver_url(expand_env(spec.url, secrets))).get_dialect()().identifier_preparer.quote
        )
        if partition is not None:
            query = f"SELECT * FROM ({query}) AS _etl_slice WHERE {slice_predicate(quote(partition[0]), partition[1])}"
        if self.cursor and since is not None:
            query = f"SELECT * FROM ({query}) AS _etl_incremental WHERE {quote(self.cursor)} > {sql_literal(since)}"
        self.query = query
        self.since = since
        self.reset = reset
        self.seen_max: Mark | None = None
        self.url = driver_url(expand_env(spec.url, secrets)) if spec.url else None
        self.warehouse = None if spec.url else warehouse
        where = masked_url(self.url) if self.url else f"warehouse {warehouse.safe_url}"
        self.label = f"{where}: {spec.table or 'query'}"
        self._hash = ContentHash()

    def describe(self) -> list[str]:
        return [self.label]

    def total_bytes(self) -> None:
        return None

    def fingerprint(self) -> str:
        """Hash of the rows read; known once `read` is exhausted."""
        return self._hash.hexdigest()

    def checkpoint(self) -> CursorCheckpoint | None:
        """The largest cursor value read, to become the high-water mark when this load publishes."""
        if self.cursor is None or (self.seen_max is None and not self.reset):
            return None
        return CursorCheckpoint(self.cursor, self.seen_max, self.reset)

    def acknowledge(self, checkpoint: CursorCheckpoint) -> None:
        """A query consumes nothing: the database keeps its rows."""

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        tables = self.warehouse.read_batches(self.query, chunk_rows) if self.warehouse else self._read_external(chunk_rows)
        row = 1
        try:
            for table in tables:
                self._observe_cursor(table)
                for batch in table.to_batches():
                    self._hash.update(batch.serialize())
                lines = pa.array(range(row, row + len(table)), pa.int64())
                row += len(table)
                yield SourceChunk(with_provenance(table, self.label, lines))
        except SourceError:
            raise
        except Exception as exc:  # any driver's error: the user's query or table is the likely cause
            raise SourceError(
                f"{self.label}: query failed: {str(exc).strip().splitlines()[0]}; check table and column names"
            ) from None

    def _observe_cursor(self, table: pa.Table) -> None:
        """Track the largest cursor value read: the next high-water mark once this load publishes."""
        if self.cursor is None:
            return
        if self.cursor not in table.column_names:
            raise SourceError(
                f"{self.label}: incremental cursor column {self.cursor!r} is not in the result {table.column_names}"
            )
        largest = pc.max(table[self.cursor]).as_py()
        if largest is not None and (self.seen_max is None or largest > self.seen_max):
            self.seen_max = largest

    def _read_external(self, chunk_rows: int) -> Iterator[pa.Table]:
        backend = make_url(self.url).get_backend_name()
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool, connect_args=_READ_ONLY_CONNECT.get(backend, {}))
        try:
            with engine.connect() as connection:
                for statement in _read_only_session(connection):
                    connection.exec_driver_sql(statement)
                result = connection.execution_options(stream_results=True).execute(sa.text(self.query))
                typer = mysql_described_type if connection.dialect.name in ("mysql", "mariadb") else described_type
                yield from described_batches(result.cursor.description, result.fetchmany, chunk_rows, typer)
        except sa.exc.OperationalError as exc:
            raise SourceError(
                f"{self.label}: cannot read: {one_line(exc.orig)}; check the url and that the database is up"
            ) from None
        finally:
            engine.dispose()
