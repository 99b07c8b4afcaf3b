"""The warehouse interface a dialect implements: connection, SQL, transactions, names and DDL.

Dialect modules (duckdb, postgres, sqlite) supply connection, bulk loading, transactions and
introspection. What the platform does with them lives beside this module: its own tables in
`metadata`, write-audit-publish (staging to target, the load ledger) in `publish`
(docs/architecture.md).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import pyarrow as pa
from sqlalchemy.engine import make_url

from etl_platform.errors import masked_url
from etl_platform.tracing import NO_TRACER, Context, Span, Tracer, statement_span
from etl_platform.types import sql_type
from etl_platform.warehouse.locks import AUDIT_CHAIN_LOCK, RunLocks

# The platform's own tables (warehouse.metadata).
META_SCHEMA = "_etl"
# Where loads are staged before publish; a killed run's leftovers are dropped by `drop_abandoned_staging`.
STAGING_SCHEMA = "_etl_staging"
# A staging table's row-order column: a merge keeps the last row of each key.
SEQ = "_etl_seq"
# Columns of change data (sources.postgres_cdc): a merge applies rows in LSN order, deleting those marked deleted;
# they are not columns of the target. A soft delete sets DELETED_AT instead (docs/architecture.md, "Source checkpoints").
CHANGE_LSN = "_etl_lsn"
CHANGE_DELETED = "_etl_deleted"
CHANGE_COLUMNS = (CHANGE_LSN, CHANGE_DELETED)
DELETED_AT = "_deleted_at"
# User-written SQL (a CustomQuery check, a SQL source's query) runs at most this long per statement.
USER_SQL_TIMEOUT_SECONDS = 600.0

ReadOnlyReader = Callable[[str], pa.Table]


class Warehouse(ABC):
    """One connection to the warehouse, and the SQL operations the platform builds on."""

    dialect: str
    # The dataset locks and staging claims of concurrent runs (warehouse.locks), set by the dialect.
    locks: RunLocks

    def __init__(self, url: str):
        self.url = url
        self.safe_url = masked_url(url)  # how messages show it
        # The load's tracer and span (run_pipeline sets them): each statement and COPY is a span under
        # the phase that runs it, or under the load when a writer thread runs it.
        self.tracer: Tracer = NO_TRACER
        self.trace_parent: Context | None = None

    def traced(self, name: str, sql: str, **attributes: int | str) -> AbstractContextManager[Span]:
        """A span for one statement or COPY on this connection (attributes: rows, bytes)."""
        return statement_span(self.tracer, self.trace_parent, name, self.dialect, sql, attributes)

    # --- dialect hooks -----------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None: ...

    def database_user(self) -> str | None:
        """The user the database knows this connection as (the audit trail's "who"): the URL's, if any."""
        return make_url(self.url).username

    @abstractmethod
    def execute(self, sql: str, params: tuple = ()) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: tuple = ()) -> list[tuple]: ...

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    @contextmanager
    def publishing(self, *datasets: str) -> Iterator[None]:
        """A transaction that first takes the lock of each dataset it writes (warehouse.locks).

        Every publish to a dataset runs in one, so publishes of a dataset never interleave. Several
        datasets (a purge) are locked in sorted order, so two such transactions cannot deadlock.
        """
        with self.transaction():
            self.lock_for_publish(*datasets)
            yield

    # DuckDB's transaction reads a snapshot taken at its first statement: one that appends to the audit
    # chain must hold the chain's lock before that statement, or it would not see the chain's latest entry.
    chain_locked_from_start = False

    def lock_for_publish(self, *datasets: str) -> None:
        """At the start of a publish transaction: the datasets' locks in sorted order (then the audit
        chain's, where the dialect needs it from the start; warehouse.audit takes it last otherwise)."""
        for dataset in sorted(set(datasets)):
            self.locks.lock_dataset(dataset)
        if self.chain_locked_from_start:
            self.locks.lock_dataset(AUDIT_CHAIN_LOCK)

    @abstractmethod
    def read_only(self, timeout_seconds: float = USER_SQL_TIMEOUT_SECONDS) -> AbstractContextManager[ReadOnlyReader]:
        """A reader of one SELECT's result for user-written SQL (a custom check), on this connection.

        It sees the open transaction's uncommitted rows, as a check inside the publish transaction
        must, but can neither write nor end that transaction, and each statement stops after
        `timeout_seconds`: the validated spec says the SQL is one SELECT, and this is the defence
        in depth should a parser gap let more through (docs/security.md).
        """

    @abstractmethod
    def bulk_insert(self, table_name: str, data: pa.Table) -> None:
        """Load an Arrow table into an existing table by the dialect's bulk path."""

    @abstractmethod
    def read_batches(self, sql: str, batch_rows: int) -> Iterator[pa.Table]:
        """Stream a query's result in tables of at most `batch_rows` rows (at least one, maybe empty)."""

    def read_arrow(self, sql: str) -> pa.Table:
        """A (small) result read on this connection, so it sees the open transaction's own writes."""
        return pa.concat_tables(self.read_batches(sql, 100_000))

    @abstractmethod
    def columns(self, schema: str, table: str) -> dict[str, str] | None:
        """Column name -> declared type of a table, or None if it does not exist."""

    @abstractmethod
    def relation(self, schema: str, table: str) -> str:
        """The quoted name of `schema.table` in this dialect."""

    @abstractmethod
    def create_schema(self, schema: str) -> None: ...

    @abstractmethod
    def list_tables(self, schema: str, prefix: str) -> list[str]: ...

    # Table options of staging tables (PostgreSQL: UNLOGGED, as a failed load is dropped anyway).
    staging_options = ""

    # --- hooks of the merge (warehouse.publish) ----------------------------------------------

    @abstractmethod
    def ensure_unique_key(self, target: str, primary_key: list[str]) -> None:
        """Make sure the target has a unique constraint on the key, which ON CONFLICT needs."""

    def key_clause(self, primary_key: Sequence[str]) -> str:
        """The table constraint that makes `primary_key` unique (a CREATE TABLE's last element)."""
        return f"PRIMARY KEY ({', '.join(map(self.quote, primary_key))})"

    def upsert_clause(self, primary_key: list[str], updates: list[str]) -> str:
        """What follows `INSERT ... SELECT` in a merge so a key's new row updates its old one."""
        quote = self.quote
        if not updates:
            return f"ON CONFLICT ({', '.join(map(quote, primary_key))}) DO NOTHING"
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updates)
        return f"ON CONFLICT ({', '.join(map(quote, primary_key))}) DO UPDATE SET {sets}"

    def prepare_for_sort(self) -> None:  # noqa: B027 - optional hook; most dialects need nothing
        """Inside the publish transaction, before the merge's dedup sort; a dialect may raise memory limits."""

    # --- names -------------------------------------------------------------------------------

    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    @staticmethod
    def split(dataset: str) -> tuple[str, str]:
        schema, _, table = dataset.rpartition(".")
        return schema or "main", table

    def target(self, dataset: str) -> str:
        return self.relation(*self.split(dataset))

    @staticmethod
    def staging_prefix(dataset: str) -> str:
        return re.sub(r"[^a-z0-9_]", "_", dataset.replace(".", "__")) + "__"

    # --- tables ------------------------------------------------------------------------------

    def create_table(self, relation: str, schema: pa.Schema, options: str = "", primary_key: Sequence[str] = ()) -> None:
        """Create a table for an Arrow schema, unless it exists."""
        columns = [f"{self.quote(f.name)} {sql_type(f.type, self.dialect, f.name)}" for f in schema]
        if primary_key:
            columns.append(self.key_clause(primary_key))
        self.execute(f"CREATE {options} TABLE IF NOT EXISTS {relation} ({', '.join(columns)})".replace("  ", " "))

    def add_column(self, relation: str, column: str, kind: str) -> None:
        """Add a nullable column (a staging table's new column, an evolving target's, a metadata table's)."""
        self.execute(f"ALTER TABLE {relation} ADD COLUMN {self.quote(column)} {kind}")

    def create_index(self, schema: str, table: str, name: str, columns: list[str]) -> None:
        """Create a plain index if missing (SQLite names the index, not the table, with the schema)."""
        names = ", ".join(map(self.quote, columns))
        self.execute(f"CREATE INDEX IF NOT EXISTS {self.quote(name)} ON {self.relation(schema, table)} ({names})")

    def row_count(self, dataset: str) -> int:
        return self.query(f"SELECT count(*) FROM {self.target(dataset)}")[0][0]

    # --- staging -----------------------------------------------------------------------------

    def create_staging(self, name: str, schema: pa.Schema) -> None:
        self.create_table(self.relation(STAGING_SCHEMA, name), schema, self.staging_options)

    def drop_abandoned_staging(self, dataset: str) -> None:
        """Drop the staging tables of `dataset` whose run is gone (killed); live runs' claims keep theirs."""
        for name in self.list_tables(STAGING_SCHEMA, self.staging_prefix(dataset)):
            if not self.locks.claimed(name):
                self.execute(f"DROP TABLE IF EXISTS {self.relation(STAGING_SCHEMA, name)}")
