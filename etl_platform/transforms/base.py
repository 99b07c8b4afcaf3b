"""The contract every transform keeps, and the DuckDB helper most of them evaluate with.

A transform receives an Arrow chunk (data columns plus provenance columns) and returns the
rows that go on, the rows it rejected (with the column, value and reason) and how many rows it
removed on purpose. No row disappears without being counted in one of the three.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import TransformError, register_secret
from etl_platform.ml.embeddings import Embedder, shared_embedder
from etl_platform.secrets import is_reference, resolve
from etl_platform.tables import data_columns, sandboxed_duckdb


@dataclass(frozen=True)
class Rejected:
    """Rows a step refused, with one column, value and reason per row."""

    rows: pa.Table
    rule: str
    columns: list[str]
    values: list[str | None]
    reasons: list[str]


@dataclass
class StepOutput:
    table: pa.Table
    rejected: list[Rejected] = field(default_factory=list)
    filtered: int = 0


@dataclass
class TransformContext:
    """What steps need from outside the chunk: where errors point, datasets, secrets, breakers.

    Chunks may be transformed on several threads at once; each thread evaluates SQL on its own
    cursor of one in-memory, sandboxed DuckDB database (no files, network or settings), where
    lookup datasets are shared tables.
    """

    origin: str
    read_dataset: Callable[[str, list[str]], pa.Table]
    embedder: Callable[[], Embedder] = shared_embedder  # loaded on first use, once per process
    secrets: Mapping[str, str] = field(default_factory=dict)  # named secrets (Settings.secrets)
    breakers: BreakerBoard = field(default_factory=BreakerBoard)  # the run's, shared with its other calls
    connection: duckdb.DuckDBPyConnection = field(default_factory=sandboxed_duckdb)
    _local: threading.local = field(default_factory=threading.local)
    _cursors: list[duckdb.DuckDBPyConnection] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection to the shared in-memory database."""
        if not hasattr(self._local, "cursor"):
            self._local.cursor = self.connection.cursor()
            with self._lock:
                self._cursors.append(self._local.cursor)
        return self._local.cursor

    def close(self) -> None:
        for cursor in self._cursors:
            cursor.close()
        self.connection.close()

    def secret(self, name: str) -> str:
        """The secret `name` names: an environment variable, or a reference (env:, file:, vault:; etl_platform.secrets)."""
        if is_reference(name):
            return resolve(name, self.secrets).get_secret_value()
        if not self.secrets.get(name):
            raise TransformError(f"{self.origin}: secret {name} is not set; export {name}=<value> before running")
        register_secret(self.secrets[name])
        return self.secrets[name]


def run_sql(context: TransformContext, table: pa.Table, sql: str, where: str) -> pa.Table:
    """Evaluate `sql` over the chunk registered as `chunk`; DuckDB errors become TransformErrors."""
    cursor = context.cursor()
    cursor.register("chunk", table)
    try:
        return cursor.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        raise TransformError(f"{where}: {message}; available columns: {', '.join(data_columns(table))}") from None
    finally:
        cursor.unregister("chunk")
