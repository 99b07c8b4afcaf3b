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
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pyarrow as pa
from sqlalchemy.engine import make_url

from etl_platform.errors import WarehouseUnavailable
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.dbapi import cursor_batches
from etl_platform.warehouse.locks import FileLocks, embedded_locks

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
        self.safe_url = url
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
        self.connection.execute(sql, params)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.connection.execute(sql, params).fetchall()

    def begin(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        self.connection.execute("ROLLBACK")

    def bulk_insert(self, table_name: str, data: pa.Table) -> None:
        if not len(data):
            return
        columns = ", ".join(map(self.quote, data.column_names))
        marks = ", ".join("?" * data.num_columns)
        rows = zip(*(c.to_pylist() for c in data.columns), strict=True)
        # Outside a transaction (staging) each row would commit, and sync the file, on its own.
        with nullcontext() if self.connection.in_transaction else self.transaction():
            self.connection.executemany(f"INSERT INTO {table_name} ({columns}) VALUES ({marks})", rows)

    def read_batches(self, sql: str, batch_rows: int) -> Iterator[pa.Table]:
        cursor = self.connection.cursor()
        cursor.execute(sql)
        yield from cursor_batches(cursor, batch_rows)

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
