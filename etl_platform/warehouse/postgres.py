"""PostgreSQL warehouse: binary COPY into UNLOGGED staging tables, publish in one transaction.

Chunks travel as PostgreSQL's binary COPY format, encoded from Arrow by pgpq: the server skips
parsing text into numbers and timestamps, which is most of a typed COPY's cost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from sqlalchemy.engine import make_url

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import DestinationError, WarehouseUnavailable, one_line
from etl_platform.retry import with_backoff
from etl_platform.warehouse.base import USER_SQL_TIMEOUT_SECONDS, ReadOnlyReader, Warehouse
from etl_platform.warehouse.dbapi import cursor_batches
from etl_platform.warehouse.locks import WAITING, lock_key

log = logging.getLogger(__name__)

# Connection failures that pass by themselves; a refused connection (nothing listens at the port)
# is not one of them: a wrong port looks exactly like a stopped server (see WarehouseUnavailable).
_TRANSIENT = (
    "timeout",
    "timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "too many clients",
    "temporary failure in name resolution",
    "server closed the connection",
    "no route to host",
    "network is unreachable",
)
_NOTHING_ANSWERED = "connection refused"


def _microseconds(data: pa.Table) -> pa.Table:
    """PostgreSQL keeps microseconds; nanosecond timestamps (from Parquet) are truncated to them."""
    fields = [
        pa.field(f.name, pa.timestamp("us", f.type.tz)) if pa.types.is_timestamp(f.type) and f.type.unit == "ns" else f
        for f in data.schema
    ]
    return data.cast(pa.schema(fields), safe=False) if fields != list(data.schema) else data


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.OperationalError) and any(t in str(exc).lower() for t in _TRANSIENT)


class AdvisoryLocks:
    """Dataset locks and staging claims as PostgreSQL advisory locks (warehouse.locks).

    The dataset lock is a transaction lock, released by COMMIT or ROLLBACK; a claim is a session
    lock of the run's connection, released by `release` or when the connection ends, however the
    run ended. A session holds its own advisory locks again without waiting, so `claimed` also
    remembers this connection's claims.
    """

    def __init__(self, connection: psycopg.Connection):
        self.connection = connection
        self._claims: set[str] = set()

    def _ask(self, function: str, kind: str, name: str) -> object:
        return self.connection.execute(f"SELECT {function}(%s)", (lock_key(kind, name),)).fetchone()[0]

    def lock_dataset(self, dataset: str) -> None:
        if not self._ask("pg_try_advisory_xact_lock", "dataset", dataset):
            log.info(WAITING, dataset)
            self._ask("pg_advisory_xact_lock", "dataset", dataset)

    def transaction_ended(self) -> None:
        """PostgreSQL releases transaction locks itself."""

    def claim(self, staging: str) -> None:
        self._ask("pg_advisory_lock", "staging", staging)
        self._claims.add(staging)

    def release(self, staging: str) -> None:
        if staging in self._claims:
            self._claims.discard(staging)
            self._ask("pg_advisory_unlock", "staging", staging)

    def claimed(self, staging: str) -> bool:
        if staging in self._claims:
            return True
        if not self._ask("pg_try_advisory_lock", "staging", staging):
            return True
        self._ask("pg_advisory_unlock", "staging", staging)
        return False

    def close(self) -> None:
        """Closing the connection releases its session locks."""


def _is_down(exc: BaseException) -> bool:
    """What the server's breaker counts: transient failures, and nothing answering at all."""
    return _is_transient(exc) or (isinstance(exc, psycopg.OperationalError) and _NOTHING_ANSWERED in str(exc).lower())


def _hint(reason: str) -> str:
    """What to fix, from the driver's reason."""
    lowered = reason.lower()
    if "password" in lowered or "authentication" in lowered or "role" in lowered:
        return "check the user and password in ETL_WAREHOUSE_URL"
    if "database" in lowered and "does not exist" in lowered:
        return "create the database, or fix its name in ETL_WAREHOUSE_URL"
    if _NOTHING_ANSWERED in lowered:
        return "nothing listens there: is the server running, and are the host and port in ETL_WAREHOUSE_URL right?"
    if "resolve host" in lowered and "temporary" not in lowered:
        return "the host name is unknown: check the host in ETL_WAREHOUSE_URL"
    return "is the server running and reachable? check ETL_WAREHOUSE_URL"


class PostgresWarehouse(Warehouse):
    dialect = "postgresql"
    staging_options = "UNLOGGED"

    def __init__(self, url: str, breakers: BreakerBoard, connect_attempts: int = 4):
        super().__init__(url)
        parsed = make_url(url)
        self._params = {
            "host": parsed.host or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": parsed.username,
            "password": parsed.password,
            "dbname": parsed.database,
            "connect_timeout": 10,
            "application_name": "etl_platform",
        }
        self._params = {k: v for k, v in self._params.items() if v is not None}
        system = f"PostgreSQL at {self._params['host']}:{self._params['port']}"
        try:
            # Transient failures retried with backoff, behind the server's circuit breaker: a down
            # server fails fast after a few runs. A refusal is not retried here (see _TRANSIENT).
            self.connection = breakers.guarded(
                system,
                lambda: with_backoff(
                    lambda: psycopg.connect(**self._params, autocommit=True), _is_transient, attempts=connect_attempts
                ),
                _is_down,
            )
        except psycopg.OperationalError as exc:
            reason = one_line(exc)
            raise WarehouseUnavailable(
                f"cannot connect to the PostgreSQL warehouse {self.safe_url}: {reason}; {_hint(reason)}",
                transient=_is_transient(exc),
            ) from None
        self.locks = AdvisoryLocks(self.connection)

    def close(self) -> None:
        self.connection.close()

    def database_user(self) -> str | None:
        """`current_user` as the server says (a `SET ROLE` shows), not the URL's."""
        return self.query("SELECT current_user")[0][0]

    @staticmethod
    def _placeholders(sql: str, params: tuple) -> str:
        """The platform's own parameterized SQL uses `?`; SQL without parameters (users') is left alone."""
        return sql.replace("?", "%s") if params else sql

    def execute(self, sql: str, params: tuple = ()) -> None:
        with self.traced("statement", sql):
            self.connection.execute(self._placeholders(sql, params), params or None)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.traced("statement", sql):
            return self.connection.execute(self._placeholders(sql, params), params or None).fetchall()

    def begin(self) -> None:
        self.execute("BEGIN")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    @contextmanager
    def read_only(self, timeout_seconds: float = USER_SQL_TIMEOUT_SECONDS) -> Iterator[ReadOnlyReader]:
        """A savepoint (or, outside a transaction, a transaction of its own) made read-only with a
        statement timeout, rolled back afterwards; statements go through the extended protocol,
        which runs exactly one, so `SELECT 1; COMMIT` is an error rather than a commit."""
        nested = self.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        self.execute("SAVEPOINT etl_read_only" if nested else "BEGIN")
        try:
            self.execute("SET LOCAL transaction_read_only = on")
            self.execute(f"SET LOCAL statement_timeout = {round(timeout_seconds * 1000)}")
            yield self._read_one_statement
        finally:
            self.execute("ROLLBACK TO SAVEPOINT etl_read_only" if nested else "ROLLBACK")
            if nested:
                self.execute("RELEASE SAVEPOINT etl_read_only")

    def _read_one_statement(self, sql: str) -> pa.Table:
        cursor = self.connection.cursor(binary=True)
        cursor.execute(sql, binary=True)
        return pa.concat_tables(cursor_batches(cursor, 100_000))

    def bulk_insert(self, table_name: str, data: pa.Table) -> None:
        if not len(data):
            return
        data = _microseconds(data)
        encoder = ArrowToPostgresBinaryEncoder(data.schema)
        columns = ", ".join(map(self.quote, data.column_names))
        sql = f"COPY {table_name} ({columns}) FROM STDIN (FORMAT binary)"
        try:
            with self.traced("copy", sql, rows=len(data), bytes=data.nbytes), self.connection.cursor().copy(sql) as copy:
                copy.write(encoder.write_header())
                for batch in data.to_batches():
                    copy.write(encoder.write_batch(batch))
                copy.write(encoder.finish())
        except psycopg.errors.DataError as exc:
            # A value PostgreSQL cannot store: a data error, the same on every try, so never retried.
            raise DestinationError(
                f"PostgreSQL refused a value for {table_name}: {one_line(exc)}; "
                f"add a `cast` or a quality rule that quarantines such values"
            ) from None

    def read_arrow(self, sql: str) -> pa.Table:
        return pa.concat_tables(cursor_batches(self.connection.execute(sql), 100_000))

    def read_batches(self, sql: str, batch_rows: int) -> Iterator[pa.Table]:
        """A server-side cursor on a second connection, so staging writes can go on meanwhile.

        The connection only reads (a SQL source's query is user-written) and each statement stops
        after the user-SQL timeout.
        """
        options = f"-c default_transaction_read_only=on -c statement_timeout={round(USER_SQL_TIMEOUT_SECONDS * 1000)}"
        with psycopg.connect(**self._params, options=options) as reader, reader.cursor(name="etl_read") as cursor:
            cursor.execute(sql)
            yield from cursor_batches(cursor, batch_rows)

    def columns(self, schema: str, table: str) -> dict[str, str] | None:
        rows = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (schema, table),
        )
        return dict(rows) or None

    def relation(self, schema: str, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}"

    def create_schema(self, schema: str) -> None:
        """Outside a transaction. IF NOT EXISTS still fails when another session creates the schema at
        the same moment (a unique violation in the catalog): then it exists, which is all we want."""
        if self.query("SELECT 1 FROM pg_namespace WHERE nspname = ?", (schema,)):
            return
        try:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")
        except psycopg.errors.UniqueViolation:
            if not self.query("SELECT 1 FROM pg_namespace WHERE nspname = ?", (schema,)):
                raise

    def list_tables(self, schema: str, prefix: str) -> list[str]:
        rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = ? AND starts_with(tablename, ?)", (schema, prefix))
        return [r[0] for r in rows]

    def prepare_for_sort(self) -> None:
        """Sort a load's keys in memory rather than spill to disk (the default work_mem is 4 MB)."""
        self.execute("SET LOCAL work_mem = '256MB'")

    def ensure_unique_key(self, target: str, primary_key: list[str]) -> None:
        keys = ", ".join(map(self.quote, primary_key))
        has_key = self.query(
            "SELECT 1 FROM pg_index i WHERE i.indrelid = ?::regclass AND i.indisunique AND "
            "(SELECT array_agg(attname::text ORDER BY attname) FROM pg_attribute "
            "WHERE attrelid = i.indrelid AND attnum = ANY(i.indkey)) = ?",
            (target, sorted(primary_key)),
        )
        if not has_key:
            self.execute(f"CREATE UNIQUE INDEX ON {target} ({keys})")
