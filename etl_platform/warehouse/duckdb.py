"""DuckDB warehouse (the embedded default): Arrow ingestion, transactional publish.

DuckDB lets one process write a database file at a time, so opening a file another process
holds is retried with backoff for a while before failing with a clear message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy.engine import make_url

from etl_platform.errors import WarehouseUnavailable
from etl_platform.retry import with_backoff
from etl_platform.warehouse.base import USER_SQL_TIMEOUT_SECONDS, ReadOnlyReader, Warehouse
from etl_platform.warehouse.locks import embedded_locks


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def one_select(sql: str) -> str:
    """`sql` if DuckDB's own parser reads it as exactly one SELECT, which cannot write; else an error."""
    statements = duckdb.extract_statements(sql)
    kinds = [statement.type.name for statement in statements]
    if kinds != ["SELECT"]:
        raise ValueError(f"only one SELECT may run here, not {', '.join(kinds) or 'nothing'}")
    return sql


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"
    chain_locked_from_start = True  # its snapshot is taken at a transaction's first statement

    def __init__(self, url: str):
        super().__init__(url)
        database = make_url(url).database or ":memory:"
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # DuckDB's own file lock keeps other processes out, but connections of one process write
        # concurrently and detect conflicts only at COMMIT: dataset locks are files (warehouse.locks).
        self.locks = embedded_locks(database)
        try:
            self.connection = with_backoff(lambda: duckdb.connect(database), _is_lock_conflict, attempts=8, max_seconds=10)
        except duckdb.Error as exc:
            raise WarehouseUnavailable(
                f"cannot open the DuckDB warehouse {database}: {exc}; another process may hold it "
                f"(DuckDB allows one writing process: stop it, or use PostgreSQL for parallel runs)",
                transient=_is_lock_conflict(exc),  # the other process may finish; a broken file will not mend
            ) from None

    def close(self) -> None:
        self.locks.close()
        self.connection.close()

    def execute(self, sql: str, params: tuple = ()) -> None:
        with self.traced("statement", sql):
            self.connection.execute(sql, params)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.traced("statement", sql):
            return self.connection.execute(sql, params).fetchall()

    def begin(self) -> None:
        self.connection.begin()

    def commit(self) -> None:
        try:
            self.connection.commit()
        finally:
            self.locks.transaction_ended()

    def rollback(self) -> None:
        try:
            self.connection.rollback()
        finally:
            self.locks.transaction_ended()

    @contextmanager
    def read_only(self, timeout_seconds: float = USER_SQL_TIMEOUT_SECONDS) -> Iterator[ReadOnlyReader]:
        """DuckDB cannot make a read-write connection read-only, nor has it savepoints: each statement
        must be one SELECT by DuckDB's own parser (`one_select`), and is interrupted after the timeout."""

        def read(sql: str) -> pa.Table:
            timer = threading.Timer(timeout_seconds, self.connection.interrupt)
            timer.start()
            try:
                return self.connection.sql(one_select(sql)).to_arrow_table()
            finally:
                timer.cancel()

        yield read

    def bulk_insert(self, table_name: str, data: pa.Table) -> None:
        if not len(data):
            return
        columns = ", ".join(map(self.quote, data.column_names))
        self.connection.register("_etl_incoming", data)
        sql = f"INSERT INTO {table_name} ({columns}) SELECT {columns} FROM _etl_incoming"
        try:
            with self.traced("copy", sql, rows=len(data), bytes=data.nbytes):
                self.connection.execute(sql)
        finally:
            self.connection.unregister("_etl_incoming")

    def read_arrow(self, sql: str) -> pa.Table:
        return self.connection.sql(sql).to_arrow_table()

    def read_batches(self, sql: str, batch_rows: int) -> Iterator[pa.Table]:
        """Read on a cursor (its own connection to the same database) so staging writes can interleave."""
        cursor = self.connection.cursor()
        try:
            reader = cursor.sql(one_select(sql)).to_arrow_reader(batch_rows)
            empty = True
            for batch in reader:
                empty = False
                yield pa.Table.from_batches([batch])
            if empty:
                yield reader.schema.empty_table()
        finally:
            cursor.close()

    def columns(self, schema: str, table: str) -> dict[str, str] | None:
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (schema, table),
        )
        return dict(rows) or None

    def relation(self, schema: str, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}"

    def create_schema(self, schema: str) -> None:
        """Outside a transaction, under the schema's file lock: two connections creating the same
        schema at once conflict at commit, and the loser may look before the winner's commit shows."""
        exists = "SELECT 1 FROM information_schema.schemata WHERE schema_name = ?"
        if self.query(exists, (schema,)):
            return
        self.locks.lock_dataset(f"schema {schema}")
        try:
            if not self.query(exists, (schema,)):
                self.execute(f"CREATE SCHEMA {self.quote(schema)}")
        finally:
            self.locks.transaction_ended()

    def list_tables(self, schema: str, prefix: str) -> list[str]:
        rows = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND starts_with(table_name, ?)",
            (schema, prefix),
        )
        return [r[0] for r in rows]

    def ensure_unique_key(self, target: str, primary_key: list[str]) -> None:
        keys = ", ".join(map(self.quote, primary_key))
        index = self.quote(f"uq_{target.split('.')[-1].strip(chr(34))}_{'_'.join(primary_key)}")
        self.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {target} ({keys})")
