"""MariaDB/MySQL warehouse: LOAD DATA LOCAL INFILE bulk path, publish in one InnoDB transaction.

MariaDB has no schemas: a schema is a database. `analytics.orders` is table `orders` of database
`analytics` (`_etl`, `_etl_staging` likewise), or of `<prefix>analytics` when the URL asks for a
`schema_prefix`, so several warehouses (or tests) share one server. User-written SQL (checks, SQL
sources reading the warehouse) names the schemas; their tables are mapped to the prefixed databases
by parsing the SQL (sqlglot), never by editing its text.

DDL commits implicitly in MariaDB, so a publish transaction must not run DDL after it has written:
`execute` refuses that (it would publish half a load), and after DDL that comes first (creating the
target) it opens the transaction again. Every write of a publish (rows, ledger, checkpoint, history,
quarantine) is DML inside one InnoDB transaction (docs/architecture.md, "Source checkpoints").
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pyarrow as pa
import pymysql
import pymysql.cursors
import sqlglot
from sqlalchemy.engine import make_url

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import DestinationError, WarehouseUnavailable, one_line
from etl_platform.retry import with_backoff
from etl_platform.warehouse.base import USER_SQL_TIMEOUT_SECONDS, ReadOnlyReader, Warehouse
from etl_platform.warehouse.dbapi import described_batches, mysql_described_type
from etl_platform.warehouse.mariadb_load import tsv_bytes
from etl_platform.warehouse.mariadb_locks import NamedLocks

log = logging.getLogger(__name__)

# The server's own databases, which user SQL names as they are (never under the schema prefix).
_SYSTEM_DATABASES = {"information_schema", "mysql", "performance_schema", "sys"}
_DDL = {"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE"}
_WRITES = {"INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD"}
# Server error codes that pass by themselves: too many connections, lost or gone connection,
# lock wait timeout, deadlock. 2003 (cannot connect) only when it timed out: refused is configuration.
_TRANSIENT_CODES = {1040, 2006, 2013, 1205, 1213}
_HINTS = {
    1045: "check the user and password in ETL_WAREHOUSE_URL",
    1044: "grant the user access to the database, or fix the user in ETL_WAREHOUSE_URL",
    1049: "create the database, or fix its name in ETL_WAREHOUSE_URL",
    2003: "nothing answers there: is the server running, and are the host and port in ETL_WAREHOUSE_URL right?",
    2005: "the host name is unknown: check the host in ETL_WAREHOUSE_URL",
}


def _code(exc: BaseException) -> int | None:
    return exc.args[0] if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int) else None


def _is_transient(exc: BaseException) -> bool:
    code = _code(exc)
    return code in _TRANSIENT_CODES or (code == 2003 and "timed out" in str(exc).lower())


def _is_down(exc: BaseException) -> bool:
    """What the server's breaker counts: transient failures, and nothing answering at all."""
    return _is_transient(exc) or _code(exc) == 2003


def _first_word(sql: str) -> str:
    return sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""


def one_select(sql: str) -> sqlglot.exp.Expression:
    """`sql` parsed (MySQL dialect) if it is exactly one query, which cannot write; else an error."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="mysql") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise ValueError(f"only one SELECT may run here ({one_line(exc)})") from None
    if len(statements) != 1 or not isinstance(statements[0], sqlglot.exp.Query):
        raise ValueError("only one SELECT may run here")
    return statements[0]


class MariaDBWarehouse(Warehouse):
    dialect = "mariadb"
    chain_locked_from_start = True  # InnoDB's repeatable-read snapshot is taken at the first read, as DuckDB's is

    def __init__(self, url: str, breakers: BreakerBoard, connect_attempts: int = 4):
        super().__init__(url)
        parsed = make_url(url)
        self.prefix = str(parsed.query.get("schema_prefix", ""))
        params = {
            "host": parsed.host or "127.0.0.1",
            "port": parsed.port or 3306,
            "user": parsed.username or "root",
            "password": parsed.password or "",
            "database": parsed.database or None,
            "connect_timeout": 10,
            "charset": "utf8mb4",
            "local_infile": True,
            "autocommit": True,
            "init_command": "SET time_zone = '+00:00'",
        }
        self._params = params
        system = f"MariaDB at {params['host']}:{params['port']}"
        try:
            self.connection = breakers.guarded(
                system,
                lambda: with_backoff(lambda: pymysql.connect(**params), _is_transient, attempts=connect_attempts),
                _is_down,
            )
        except pymysql.err.MySQLError as exc:
            hint = _HINTS.get(_code(exc), "is the server running and reachable? check ETL_WAREHOUSE_URL")
            raise WarehouseUnavailable(
                f"cannot connect to the MariaDB warehouse {self.safe_url}: {one_line(exc)}; {hint}",
                transient=_is_transient(exc),
            ) from None
        self.locks = NamedLocks(self.connection, self.prefix)
        self._in_transaction = False
        self._wrote = False

    def close(self) -> None:
        self.connection.close()

    # --- statements and transactions -----------------------------------------------------------

    @staticmethod
    def quote(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def _run(self, sql: str, params: tuple) -> pymysql.cursors.Cursor:
        """The platform's parameterized SQL uses `?`; SQL without parameters (users') is left alone."""
        word = _first_word(sql)
        temporary = " TEMPORARY " in f" {sql[:40].upper()} "
        if self._in_transaction and word in _DDL and not temporary and self._wrote:
            raise DestinationError(
                f"internal error: DDL inside a MariaDB publish after its writes would commit half of it: {sql[:80]}"
            )
        cursor = self.connection.cursor()
        cursor.execute(sql.replace("%", "%%").replace("?", "%s") if params else sql, params or None)
        if self._in_transaction and word in _DDL and not temporary:
            cursor.execute("START TRANSACTION")  # the DDL committed the (empty) transaction: open it again
        self._wrote = self._wrote or (self._in_transaction and word in _WRITES)
        return cursor

    def execute(self, sql: str, params: tuple = ()) -> None:
        with self.traced("statement", sql):
            self._run(sql, params).close()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.traced("statement", sql), self._run(sql, params) as cursor:
            return list(cursor.fetchall())

    def begin(self) -> None:
        self.execute("START TRANSACTION")
        self._in_transaction, self._wrote = True, False

    def _end(self, statement: str) -> None:
        self._in_transaction = self._wrote = False
        try:
            self.execute(statement)
        finally:
            self.locks.transaction_ended()

    def commit(self) -> None:
        self._end("COMMIT")

    def rollback(self) -> None:
        self._end("ROLLBACK")

    # --- reading -----------------------------------------------------------------------------

    def physical(self, sql: str) -> str:
        """User SQL with each schema-qualified table moved to its prefixed database (none: unchanged)."""
        tree = one_select(sql)
        if not self.prefix:
            return sql
        for table in tree.find_all(sqlglot.exp.Table):
            database = table.args.get("db")
            if (
                database is not None
                and not database.name.startswith(self.prefix)
                and database.name.lower() not in _SYSTEM_DATABASES
            ):
                table.set("db", sqlglot.exp.to_identifier(self.prefix + database.name, quoted=True))
        return tree.sql(dialect="mysql")

    @contextmanager
    def read_only(self, timeout_seconds: float = USER_SQL_TIMEOUT_SECONDS) -> Iterator[ReadOnlyReader]:
        """On this connection (inside the publish transaction, to see its rows): each statement must be
        one query by sqlglot's MySQL parser, runs under `max_statement_time`, and a savepoint rolled
        back afterwards undoes anything it did; the driver runs one statement per call."""
        nested = self._in_transaction
        self.execute("SAVEPOINT etl_read_only" if nested else "START TRANSACTION READ ONLY")

        def read(sql: str) -> pa.Table:
            return self.read_arrow(f"SET STATEMENT max_statement_time = {timeout_seconds:.3f} FOR {self.physical(sql)}")

        try:
            yield read
        finally:
            self.execute("ROLLBACK TO SAVEPOINT etl_read_only" if nested else "ROLLBACK")

    def read_arrow(self, sql: str) -> pa.Table:
        """A small result on this connection (it sees the open transaction's own writes)."""
        if not sql.lstrip().upper().startswith("SET STATEMENT") and self.prefix and _first_word(sql) in {"SELECT", "WITH"}:
            sql = self.physical(sql)
        with self.connection.cursor() as cursor:
            cursor.execute(sql)
            return pa.concat_tables(described_batches(cursor.description, cursor.fetchmany, 100_000, mysql_described_type))

    def read_batches(self, sql: str, batch_rows: int) -> Iterator[pa.Table]:
        """Streamed on a second, read-only session (a SQL source's query is user-written), so staging
        writes go on meanwhile; each statement stops after the user-SQL timeout."""
        reader = pymysql.connect(**{**self._params, "local_infile": False}, cursorclass=pymysql.cursors.SSCursor)
        try:
            with reader.cursor() as cursor:
                cursor.execute(f"SET SESSION max_statement_time = {USER_SQL_TIMEOUT_SECONDS}")
                cursor.execute("START TRANSACTION READ ONLY")
                cursor.execute(self.physical(sql))
                yield from described_batches(cursor.description, cursor.fetchmany, batch_rows, mysql_described_type)
        finally:
            reader.close()

    # --- writing -----------------------------------------------------------------------------

    def bulk_insert(self, table_name: str, data: pa.Table) -> None:
        """LOAD DATA LOCAL INFILE from a temporary file; with LOCAL the server turns bad values into
        warnings rather than errors, so any warning fails the load with the server's first one."""
        if not len(data):
            return
        columns = ", ".join(map(self.quote, data.column_names))
        handle, path = tempfile.mkstemp(prefix="etl_load_", suffix=".tsv", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(tsv_bytes(data))
            escaped = path.replace("\\", "\\\\").replace("'", "\\'")
            sql = f"LOAD DATA LOCAL INFILE '{escaped}' INTO TABLE {table_name} CHARACTER SET utf8mb4 ({columns})"
            with self.traced("copy", sql, rows=len(data), bytes=data.nbytes):
                self._run(sql, ()).close()
            warnings = self.query("SHOW WARNINGS LIMIT 1")
        finally:
            os.unlink(path)
        if warnings:
            raise DestinationError(
                f"MariaDB refused a value for {table_name}: {warnings[0][2]}; "
                f"add a `cast` or a quality rule that quarantines such values"
            )

    # --- names and catalog ---------------------------------------------------------------------

    def database(self, schema: str) -> str:
        return self.prefix + schema

    def relation(self, schema: str, table: str) -> str:
        return f"{self.quote(self.database(schema))}.{self.quote(table)}"

    def columns(self, schema: str, table: str) -> dict[str, str] | None:
        rows = self.query(
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (self.database(schema), table),
        )
        return dict(rows) or None

    def create_schema(self, schema: str) -> None:
        if not self.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = ?", (self.database(schema),)):
            self.execute(f"CREATE DATABASE IF NOT EXISTS {self.quote(self.database(schema))} CHARACTER SET utf8mb4")

    def list_tables(self, schema: str, prefix: str) -> list[str]:
        rows = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND LEFT(table_name, ?) = ?",
            (self.database(schema), len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def create_index(self, schema: str, table: str, name: str, columns: list[str]) -> None:
        """Text columns are indexed by their first 255 characters (MariaDB indexes no whole TEXT)."""
        kinds = self.columns(schema, table) or {}
        names = ", ".join(self.quote(c) + ("(255)" if "text" in kinds.get(c, "") else "") for c in columns)
        self.execute(f"CREATE INDEX IF NOT EXISTS {self.quote(name)} ON {self.relation(schema, table)} ({names})")

    def key_clause(self, primary_key: Sequence[str]) -> str:
        """A UNIQUE key, which MariaDB keeps as a hash over TEXT columns; a PRIMARY KEY cannot hold TEXT.
        Null keys never reach it: the merge quarantines them (primary_key_not_null)."""
        return f"UNIQUE KEY `_etl_key` ({', '.join(map(self.quote, primary_key))})"

    def upsert_clause(self, primary_key: list[str], updates: list[str]) -> str:
        sets = [f"{self.quote(c)} = VALUES({self.quote(c)})" for c in updates or primary_key[:1]]
        return "ON DUPLICATE KEY UPDATE " + ", ".join(sets)

    def ensure_unique_key(self, target: str, primary_key: list[str]) -> None:
        database, table = (part.strip("`") for part in target.split("`.`"))
        keyed = self.query(
            "SELECT index_name FROM information_schema.statistics WHERE table_schema = ? AND table_name = ? "
            "AND non_unique = 0 GROUP BY index_name HAVING GROUP_CONCAT(column_name ORDER BY column_name) = ?",
            (database, table, ",".join(sorted(primary_key))),
        )
        if not keyed:
            self.execute(f"ALTER TABLE {target} ADD {self.key_clause(primary_key)}")
