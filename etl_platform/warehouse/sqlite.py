"""SQLite warehouse: each schema is an attached database file beside the main one.

`analytics.orders` lives in `<warehouse>.analytics.sqlite`, attached as `analytics`, so SQL
written for the other warehouses (`SELECT ... FROM analytics.orders`) runs unchanged. SQLite's
default rollback journal commits a transaction across attached files atomically. SQLite has no
bulk-load protocol; batched executemany inside one transaction is its bulk path.
"""

from __future__ import annotations

import datetime
import decimal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pyarrow as pa
from sqlalchemy.engine import make_url

from etl_platform.errors import WarehouseUnavailable
from etl_platform.warehouse.base import USER_SQL_TIMEOUT_SECONDS, ReadOnlyReader, Warehouse
from etl_platform.warehouse.dbapi import cursor_batches
from etl_platform.warehouse.locks import FileLocks, embedded_locks

# What a SQL source's query may do, as SQLite's authorizer names the actions of a compiled statement.
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}

sqlite3.register_adapter(datetime.datetime, lambda v: v.isoformat(sep=" "))
sqlite3.register_adapter(datetime.date, lambda v: v.isoformat())
sqlite3.register_adapter(decimal.Decimal, str)


class WriteLocked(FileLocks):
    """Staging claims as files; the dataset lock is SQLite's own write lock.

    `begin` runs BEGIN IMMEDIATE, which takes the write lock of the main database file that every
    connection to the warehouse shares: write transactions of the whole warehouse already run one at
    a time, across threads and processes, so a dataset needs no lock of its own.
    """

    def lock_dataset(self, dataset: str) -> None:
        """Held already: the transaction began with BEGIN IMMEDIATE."""


class SQLiteWarehouse(Warehouse):
    dialect = "sqlite"

    def __init__(self, url: str):
        super().__init__(url)
        self.database = make_url(url).database or ":memory:"
        self.locks = embedded_locks(self.database, WriteLocked)
        try:
            if self.database != ":memory:":
                Path(self.database).parent.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(self.database, isolation_level=None, timeout=30, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise WarehouseUnavailable(f"cannot open the SQLite warehouse {self.database}: {exc}") from None
        if self.database != ":memory:":
            main = Path(self.database)
            for attached in sorted(main.parent.glob(f"{main.stem}.*.sqlite")):
                self.create_schema(attached.name[len(main.stem) + 1 : -len(".sqlite")])

    def _schema_file(self, schema: str) -> str:
        if self.database == ":memory:":
            return ":memory:"
        main = Path(self.database)
        return str(main.parent / f"{main.stem}.{schema}.sqlite")

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
        self.connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        self.connection.execute("ROLLBACK")

    @contextmanager
    def read_only(self, timeout_seconds: float = USER_SQL_TIMEOUT_SECONDS) -> Iterator[ReadOnlyReader]:
        """A savepoint with `PRAGMA query_only` on, rolled back afterwards; a progress handler stops a
        statement after the timeout. Python's sqlite3 runs one statement per call."""
        deadline = time.monotonic() + timeout_seconds
        self.execute("SAVEPOINT etl_read_only")
        self.execute("PRAGMA query_only = ON")
        self.connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            yield self.read_arrow
        finally:
            self.connection.set_progress_handler(None, 0)
            self.execute("PRAGMA query_only = OFF")
            self.execute("ROLLBACK TO SAVEPOINT etl_read_only")
            self.execute("RELEASE SAVEPOINT etl_read_only")

    def bulk_insert(self, table_name: str, data: pa.Table) -> None:
        if not len(data):
            return
        columns = ", ".join(map(self.quote, data.column_names))
        marks = ", ".join("?" * data.num_columns)
        rows = zip(*(c.to_pylist() for c in data.columns), strict=True)
        # Outside a transaction (staging) each row would commit, and sync the file, on its own.
        sql = f"INSERT INTO {table_name} ({columns}) VALUES ({marks})"
        with (
            nullcontext() if self.connection.in_transaction else self.transaction(),
            self.traced("copy", sql, rows=len(data), bytes=data.nbytes),
        ):
            self.connection.executemany(sql, rows)

    def read_batches(self, sql: str, batch_rows: int) -> Iterator[pa.Table]:
        """On this connection (a second one would contend for the file locks the load's writer takes),
        once SQLite's own compiler has said the statement only reads (`_reads_only`)."""
        self._reads_only(sql)
        cursor = self.connection.cursor()
        cursor.execute(sql)
        yield from cursor_batches(cursor, batch_rows)

    def read_arrow(self, sql: str) -> pa.Table:
        """The platform's own reads, inside its transactions: no check needed."""
        return pa.concat_tables(cursor_batches(self.connection.execute(sql), 100_000))

    def _reads_only(self, sql: str) -> None:
        """Compile `sql` (EXPLAIN runs nothing) on a connection of its own whose authorizer allows reading only.

        The authorizer judges a statement when it is compiled, so a connection of its own keeps it
        off the load's writes; a statement that would write, attach or change a setting is refused.
        """
        checker = sqlite3.connect(self.database, check_same_thread=False)
        try:
            for schema in sorted(self._attached() - {"main", "temp"}):
                checker.execute("ATTACH DATABASE ? AS " + self.quote(schema), (self._schema_file(schema),))
            checker.set_authorizer(lambda action, *_: sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY)
            checker.execute(f"EXPLAIN {sql}")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"only one SELECT may run here ({exc})") from None
        finally:
            checker.close()

    def columns(self, schema: str, table: str) -> dict[str, str] | None:
        if schema not in self._attached():
            return None
        rows = self.connection.execute(f"PRAGMA {self.quote(schema)}.table_info({self.quote(table)})").fetchall()
        return {r[1]: r[2] for r in rows} or None

    def relation(self, schema: str, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}"

    def _attached(self) -> set[str]:
        return {row[1] for row in self.connection.execute("PRAGMA database_list").fetchall()}

    def create_schema(self, schema: str) -> None:
        if schema not in self._attached():
            self.connection.execute("ATTACH DATABASE ? AS " + self.quote(schema), (self._schema_file(schema),))

    def list_tables(self, schema: str, prefix: str) -> list[str]:
        if schema not in self._attached():
            return []
        rows = self.query(
            f"SELECT name FROM {self.quote(schema)}.sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",
            (len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def create_index(self, schema: str, table: str, name: str, columns: list[str]) -> None:
        names = ", ".join(map(self.quote, columns))
        self.execute(f"CREATE INDEX IF NOT EXISTS {self.quote(schema)}.{self.quote(name)} ON {self.quote(table)} ({names})")

    def ensure_unique_key(self, target: str, primary_key: list[str]) -> None:
        schema, table = (part.strip('"') for part in target.split(".", 1))
        keys = ", ".join(map(self.quote, primary_key))
        index = self.quote(f"uq_{table}_{'_'.join(primary_key)}")
        self.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {self.quote(schema)}.{index} ON {self.quote(table)} ({keys})")
