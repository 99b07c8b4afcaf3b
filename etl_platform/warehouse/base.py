"""The warehouse: staging tables, atomic publish, the load ledger and the quarantine table.

Dialect modules supply connection, bulk loading, transactions and introspection; everything
that makes write-audit-publish safe (what is staged where, what one publish transaction holds)
is written once here.
"""

from __future__ import annotations

import datetime
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import pyarrow as pa

from etl_platform.errors import DestinationError
from etl_platform.types import sql_type

META_SCHEMA = "_etl"
STAGING_SCHEMA = "_etl_staging"
SEQ = "_etl_seq"

QUARANTINE_SCHEMA = pa.schema(
    [
        ("quarantine_id", pa.string()),
        ("pipeline", pa.string()),
        ("dataset", pa.string()),
        ("run_id", pa.string()),
        ("stage", pa.string()),
        ("rule", pa.string()),
        ("column_name", pa.string()),
        ("value", pa.string()),
        ("reason", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("record", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)
# The input a quarantined row came from: a re-run of the same input replaces its rows.
QUARANTINE_TABLE_SCHEMA = QUARANTINE_SCHEMA.append(pa.field("input_fingerprint", pa.string()))

LEDGER_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("fingerprint", pa.string()),
        ("pipeline", pa.string()),
        ("run_id", pa.string()),
        ("rows", pa.int64()),
        ("loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)


# PostgreSQL type OIDs (as DB-API descriptions report them) -> Arrow types, so a query's result has
# its declared types even when a batch is empty or a column all null.
_PG_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    **dict.fromkeys((19, 25, 114, 1042, 1043, 2950, 3802), pa.string()),
}


def described_type(column: object) -> pa.DataType | None:
    """The Arrow type of a DB-API description entry, where the driver reports PostgreSQL's types."""
    code = getattr(column, "type_code", None)
    if code == 1700:  # numeric: its declared precision, or room for any value of a plain numeric
        precision, scale = getattr(column, "precision", None), getattr(column, "scale", None)
        return pa.decimal128(precision, scale) if precision and scale is not None else pa.decimal128(38, 18)
    return _PG_TYPES.get(code) if isinstance(code, int) else None


def _as_text(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode() if isinstance(value, dict | list) else str(value)


def rows_to_arrow(names: list[str], rows: list[tuple], types: list[pa.DataType | None] | None = None) -> pa.Table:
    """Arrow table from DB-API rows, in `types` where known; unknown all-null columns become text."""
    columns = {}
    for i, name in enumerate(names):
        kind = types[i] if types else None
        values = [r[i] for r in rows]
        if kind is not None and pa.types.is_string(kind):
            values = [_as_text(v) for v in values]
        column = pa.array(values, type=kind)
        columns[name] = column.cast(pa.string()) if pa.types.is_null(column.type) else column
    return pa.table(columns)


def cursor_batches(cursor, batch_rows: int) -> Iterator[pa.Table]:
    """Stream an executed DB-API cursor's rows as Arrow tables (at least one, maybe empty)."""
    return described_batches(cursor.description, cursor.fetchmany, batch_rows)


def described_batches(description: Sequence, fetchmany: Callable[[int], Sequence], batch_rows: int) -> Iterator[pa.Table]:
    """Rows from `fetchmany` as Arrow tables, typed by the DB-API `description`.

    Types come from the description where the driver reports them (PostgreSQL); otherwise from the
    first batch that has rows, and later batches are cast to them, so batches agree.
    """
    names = [d[0] for d in description]
    types: list[pa.DataType | None] = [described_type(d) for d in description]
    empty = True
    while rows := fetchmany(batch_rows):
        empty = False
        table = rows_to_arrow(names, rows, types)
        if any(t is None for t in types):
            types = [t or table.schema.field(i).type for i, t in enumerate(types)]
        yield table.cast(pa.schema([(n, t) for n, t in zip(names, types, strict=True)]))
    if empty:
        yield rows_to_arrow(names, [], types)


# Called inside the publish transaction once the rows are in the target; raises to roll back.
Audit = Callable[["Warehouse"], None]


# One row per published load, every write mode: the volume check's history, kept with the data.
HISTORY_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("pipeline", pa.string()),
        ("run_id", pa.string()),
        ("rows", pa.int64()),
        ("write", pa.string()),
        ("loaded_at", pa.timestamp("us", tz="UTC")),
        # what the auto-tuner learns from (engine.tuner)
        ("rows_read", pa.int64()),
        ("bytes_read", pa.int64()),
        ("chunk_rows", pa.int64()),
        ("duration_seconds", pa.float64()),
    ]
)


# Every published schema, versioned per dataset (columns as JSON: name -> Arrow type).
SCHEMA_VERSIONS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("version", pa.int64()),
        ("columns", pa.string()),
        ("run_id", pa.string()),
        ("registered_at", pa.timestamp("us", tz="UTC")),
    ]
)


# Incremental state, advanced inside the publish transaction (docs/architecture.md, "Source checkpoints").
# Files: one row per file a pipeline has seen; its version says which content was processed.
FILE_STATE_SCHEMA = pa.schema(
    [
        ("pipeline", pa.string()),
        ("file_url", pa.string()),
        ("version", pa.string()),
        ("size", pa.int64()),
        ("status", pa.string()),
        ("failures", pa.int64()),
        ("last_error", pa.string()),
        ("run_id", pa.string()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)
# Sources whose progress is one value (a SQL cursor's high-water mark, an offset): that value, as JSON.
SOURCE_CHECKPOINT_SCHEMA = pa.schema(
    [
        ("pipeline", pa.string()),
        ("position", pa.string()),
        ("run_id", pa.string()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)


# Rows a deduplicate step removed, with the cluster they joined and their similarity to its survivor.
DEDUP_AUDIT_SCHEMA = pa.schema(
    [
        ("pipeline", pa.string()),
        ("dataset", pa.string()),
        ("run_id", pa.string()),
        ("cluster", pa.int64()),
        ("similarity", pa.float64()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("record", pa.string()),
        ("deduplicated_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class PublishResult:
    rows_published: int
    target_rows: int | None
    skipped_reason: str | None = None
    schema_version: int | None = None


class Warehouse(ABC):
    """One connection to the warehouse, and the platform's operations on it."""

    dialect: str

    def __init__(self, url: str):
        self.url = url

    # --- dialect hooks -----------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None: ...

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

    staging_options = ""

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

    # --- metadata tables ---------------------------------------------------------------------

    def _create_table(self, name: str, schema: pa.Schema, options: str = "", primary_key: list[str] = ()) -> None:
        columns = [f"{self.quote(f.name)} {sql_type(f.type, self.dialect, f.name)}" for f in schema]
        if primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(map(self.quote, primary_key))})")
        self.execute(f"CREATE {options} TABLE IF NOT EXISTS {name} ({', '.join(columns)})".replace("  ", " "))

    def ensure_metadata(self) -> None:
        """Create the platform's tables when missing, and add columns a newer version introduced.

        Once everything exists this is catalog reads only: no DDL, so no lock on a busy table.
        """
        self.create_schema(META_SCHEMA)
        self.create_schema(STAGING_SCHEMA)
        tables = {
            "load_ledger": (LEDGER_SCHEMA, ["dataset", "fingerprint"]),
            "schema_versions": (SCHEMA_VERSIONS_SCHEMA, []),
            "load_history": (HISTORY_SCHEMA, []),
            "quarantine": (QUARANTINE_TABLE_SCHEMA, []),
            "file_state": (FILE_STATE_SCHEMA, ["pipeline", "file_url"]),
            "source_checkpoint": (SOURCE_CHECKPOINT_SCHEMA, ["pipeline"]),
            "dedup_audit": (DEDUP_AUDIT_SCHEMA, []),
        }
        for name, (schema, primary_key) in tables.items():
            existing = self.columns(META_SCHEMA, name)
            relation = self.relation(META_SCHEMA, name)
            if existing is None:
                self._create_table(relation, schema, primary_key=primary_key)
                if name == "quarantine":
                    self.create_index(META_SCHEMA, name, "quarantine_by_input", ["dataset", "input_fingerprint"])
                continue
            for field in schema:
                if field.name not in existing:
                    self.add_column(relation, field.name, sql_type(field.type, self.dialect, field.name))
        self._upgrade_cursor_state()

    def _upgrade_cursor_state(self) -> None:
        """Move SQL cursor marks from `_etl.cursor_state` (before the checkpoint protocol) to `source_checkpoint`.

        Each mark becomes the position {"cursor_column": ..., "high_water": ...} that state.cursor reads;
        the old table is dropped in the same transaction, so the upgrade runs once.
        """
        if self.columns(META_SCHEMA, "cursor_state") is None:
            return
        old = self.relation(META_SCHEMA, "cursor_state")
        with self.transaction():
            rows = self.query(f"SELECT pipeline, cursor_column, high_water, run_id FROM {old}")
            now = datetime.datetime.now(datetime.UTC)
            moved = [
                {
                    "pipeline": pipeline,
                    "position": json.dumps({"cursor_column": column, "high_water": json.loads(mark)}, sort_keys=True),
                    "run_id": run_id,
                    "updated_at": now,
                }
                for pipeline, column, mark, run_id in rows
                if mark
            ]
            if moved:
                self.bulk_insert(
                    self.relation(META_SCHEMA, "source_checkpoint"), pa.Table.from_pylist(moved, SOURCE_CHECKPOINT_SCHEMA)
                )
            self.execute(f"DROP TABLE {old}")

    def already_loaded(self, dataset: str, fingerprint: str) -> bool:
        ledger = self.relation(META_SCHEMA, "load_ledger")
        return bool(self.query(f"SELECT 1 FROM {ledger} WHERE dataset = ? AND fingerprint = ?", (dataset, fingerprint)))

    def latest_schema(self, dataset: str) -> tuple[int, dict[str, str]] | None:
        """The dataset's newest registered schema version and its columns, if any."""
        versions = self.relation(META_SCHEMA, "schema_versions")
        rows = self.query(f"SELECT version, columns FROM {versions} WHERE dataset = ? ORDER BY version DESC LIMIT 1", (dataset,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def register_schema(self, dataset: str, columns: dict[str, str], run_id: str) -> int:
        """Within the publish transaction: record `columns` as a new version unless it is the latest."""
        latest = self.latest_schema(dataset)
        if latest and latest[1] == columns:
            return latest[0]
        version = (latest[0] if latest else 0) + 1
        row = {
            "dataset": dataset,
            "version": version,
            "columns": json.dumps(columns),
            "run_id": run_id,
            "registered_at": datetime.datetime.now(datetime.UTC),
        }
        self.bulk_insert(self.relation(META_SCHEMA, "schema_versions"), pa.Table.from_pylist([row], SCHEMA_VERSIONS_SCHEMA))
        return version

    def recent_load_sizes(self, dataset: str, loads: int) -> list[int]:
        """Rows published by the last `loads` loads of `dataset`, newest first."""
        history = self.relation(META_SCHEMA, "load_history")
        sql = f"SELECT rows FROM {history} WHERE dataset = ? ORDER BY loaded_at DESC LIMIT {int(loads)}"
        return [r[0] for r in self.query(sql, (dataset,))]

    def row_count(self, dataset: str) -> int:
        return self.query(f"SELECT count(*) FROM {self.target(dataset)}")[0][0]

    # --- staging -----------------------------------------------------------------------------

    def drop_staging(self, dataset: str) -> None:
        """Drop staging tables a killed run of `dataset` left behind."""
        for name in self.list_tables(STAGING_SCHEMA, self.staging_prefix(dataset)):
            self.execute(f"DROP TABLE IF EXISTS {self.relation(STAGING_SCHEMA, name)}")

    def create_staging(self, name: str, schema: pa.Schema) -> None:
        self._create_table(self.relation(STAGING_SCHEMA, name), schema, self.staging_options)

    def add_column(self, relation: str, column: str, kind: str) -> None:
        """Add a nullable column (a staging table's new column, or an evolving target's)."""
        self.execute(f"ALTER TABLE {relation} ADD COLUMN {self.quote(column)} {kind}")

    # --- publish -----------------------------------------------------------------------------

    def _check_compatible(self, dataset: str, existing: dict[str, str], incoming: dict[str, str]) -> None:
        problems = []
        for column, kind in incoming.items():
            if column not in existing:
                problems.append(f"new column '{column}' ({kind}) is not in {dataset}")
            elif existing[column].lower() != kind.lower():
                problems.append(f"column '{column}' is {existing[column]} in {dataset} but the pipeline now produces {kind}")
        problems += [f"column '{c}' of {dataset} is no longer produced" for c in existing if c not in incoming]
        if problems:
            raise DestinationError(
                f"the staged data does not fit {dataset}: {'; '.join(problems)}. Nothing was published. "
                f"Fix: add a `cast` (or `select`/`rename`) so the columns match, or publish once with `write: replace`"
            )

    def _ensure_target(
        self, dataset: str, incoming: dict[str, str], primary_key: list[str], replace: bool, evolve: bool = False
    ) -> None:
        """Inside a transaction: create the target, or check that `incoming` columns fit it.

        With `evolve`, new columns are added to the target (nullable) and columns the load lacks
        stay in it, filled with NULL; a type change never fits.
        """
        schema, table = self.split(dataset)
        target = self.relation(schema, table)
        existing = self.columns(schema, table)
        if replace and existing is not None and existing != incoming and not evolve:
            self.execute(f"DROP TABLE {target}")
            existing = None
        if existing is None:
            definition = ", ".join(f"{self.quote(c)} {t}" for c, t in incoming.items())
            key = f", PRIMARY KEY ({', '.join(map(self.quote, primary_key))})" if primary_key else ""
            self.execute(f"CREATE TABLE {target} ({definition}{key})")
            return
        if evolve:
            existing = self._add_new_columns(dataset, incoming)
            incoming = {**{c: t for c, t in existing.items() if c not in incoming}, **incoming}
        self._check_compatible(dataset, existing, incoming)

    def _add_new_columns(self, dataset: str, incoming: dict[str, str]) -> dict[str, str] | None:
        """Add (nullable) the `incoming` columns the target lacks; returns the target's columns."""
        schema, table = self.split(dataset)
        existing = self.columns(schema, table)
        if existing is None:
            return None
        for column, kind in incoming.items():
            if column not in existing:
                self.add_column(self.relation(schema, table), column, kind)
                existing[column] = kind
        return existing

    def publish(
        self,
        dataset: str,
        staging: str,
        write: str,
        primary_key: list[str],
        ledger_row: dict,
        quarantined: Iterable[pa.Table],
        audit: Audit,
        evolve: bool = False,
        truncate: bool = False,
    ) -> PublishResult:
        """Replace or merge: move staged rows into the target, audit, and quarantine rows in, atomically.

        With `truncate` (a full refresh), a merge starts from an empty target.
        """
        target = self.target(dataset)
        staged = self.relation(STAGING_SCHEMA, staging)
        incoming = {c: t for c, t in self.columns(STAGING_SCHEMA, staging).items() if c != SEQ}
        self.create_schema(self.split(dataset)[0])
        with self.transaction():
            self._ensure_target(dataset, incoming, primary_key, replace=write == "replace", evolve=evolve)
            if truncate:
                self.forget_loads(dataset)
            if write == "merge":
                self._merge(target, staged, list(incoming), primary_key)
            else:
                columns = ", ".join(map(self.quote, incoming))
                self.execute(f"DELETE FROM {target}")
                self.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staged}")
            audit(self)
            version = self.record_load(dataset, ledger_row, quarantined)
            return PublishResult(ledger_row["rows"], self.row_count(dataset), schema_version=version)

    def forget_loads(self, dataset: str) -> None:
        """Inside a full refresh's publish transaction: empty the target and its load ledger."""
        self.execute(f"DELETE FROM {self.target(dataset)}")
        self.execute(f"DELETE FROM {self.relation(META_SCHEMA, 'load_ledger')} WHERE dataset = ?", (dataset,))

    def begin_append(self, dataset: str, schema: pa.Schema, evolve: bool = False, truncate: bool = False) -> None:
        """Open the load transaction of an append and make sure the target takes `schema`.

        An append streams its chunks straight into the target inside this transaction: readers
        see nothing until finish_append commits, and a failure or a kill rolls it all back. Only
        append can skip the staging table, because its publish adds rows and changes none.
        """
        self.create_schema(self.split(dataset)[0])
        incoming = {f.name: sql_type(f.type, self.dialect, f.name) for f in schema}
        if evolve:
            # Added columns commit at once: ALTER TABLE would otherwise lock readers out for the whole load.
            self._add_new_columns(dataset, incoming)
        self.begin()
        try:
            self._ensure_target(dataset, incoming, [], replace=False, evolve=evolve)
            if truncate:
                self.forget_loads(dataset)
        except BaseException:
            self.rollback()
            raise

    def finish_append(self, dataset: str, ledger_row: dict, quarantined: Iterable[pa.Table], audit: Audit) -> PublishResult:
        """Audit and commit the append, unless the ledger shows this input was appended already (then roll back)."""
        try:
            if self.already_loaded(dataset, ledger_row["fingerprint"]):
                self.rollback()
                return PublishResult(0, self.row_count(dataset), "this input was already appended (load ledger)")
            audit(self)
            version = self.record_load(dataset, ledger_row, quarantined)
            result = PublishResult(ledger_row["rows"], self.row_count(dataset), schema_version=version)
        except BaseException:
            self.rollback()
            raise
        self.commit()
        return result

    def record_load(self, dataset: str, ledger_row: dict, quarantined: Iterable[pa.Table]) -> int | None:
        """Within the publish transaction: ledger entry (append only), schema version, history, this
        input's quarantine rows. Returns the schema version the load published."""
        if ledger_row["write"] == "append":
            entry = {k: ledger_row[k] for k in LEDGER_SCHEMA.names}
            self.bulk_insert(self.relation(META_SCHEMA, "load_ledger"), pa.Table.from_pylist([entry], LEDGER_SCHEMA))
        version = self.register_schema(dataset, ledger_row["schema"], ledger_row["run_id"]) if ledger_row.get("schema") else None
        if not ledger_row.get("replay"):  # a replay's size says nothing about the dataset's usual volume
            history = {k: ledger_row[k] for k in HISTORY_SCHEMA.names}
            self.bulk_insert(self.relation(META_SCHEMA, "load_history"), pa.Table.from_pylist([history], HISTORY_SCHEMA))
        self.replace_quarantine(dataset, ledger_row["fingerprint"], quarantined)
        return version

    def remove_from_quarantine(self, quarantine_ids: list[str]) -> None:
        """Delete quarantine records by id (a replay's, inside its publish transaction)."""
        quarantine = self.relation(META_SCHEMA, "quarantine")
        for start in range(0, len(quarantine_ids), 500):
            ids = quarantine_ids[start : start + 500]
            self.execute(f"DELETE FROM {quarantine} WHERE quarantine_id IN ({', '.join('?' * len(ids))})", tuple(ids))

    def replace_quarantine(self, dataset: str, fingerprint: str, quarantined: Iterable[pa.Table]) -> None:
        """Put an input's quarantine rows in place of any earlier ones for the same input."""
        quarantine = self.relation(META_SCHEMA, "quarantine")
        self.execute(f"DELETE FROM {quarantine} WHERE dataset = ? AND input_fingerprint = ?", (dataset, fingerprint))
        for batch in quarantined:
            self.bulk_insert(quarantine, batch.append_column("input_fingerprint", pa.array([fingerprint] * len(batch))))

    def _merge(self, target: str, staged: str, columns: list[str], primary_key: list[str]) -> None:
        """Upsert on the primary key; within one load the last row of a key wins."""
        names = ", ".join(map(self.quote, columns))
        keys = ", ".join(map(self.quote, primary_key))
        updates = [c for c in columns if c not in primary_key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{self.quote(c)} = excluded.{self.quote(c)}" for c in updates)
            if updates
            else "DO NOTHING"
        )
        self.ensure_unique_key(target, primary_key)
        self.prepare_for_sort()
        self.execute(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM "
            f"(SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {SEQ} DESC) AS _etl_rank FROM {staged}) latest "
            f"WHERE _etl_rank = 1 ON CONFLICT ({keys}) {action}"
        )

    def create_index(self, schema: str, table: str, name: str, columns: list[str]) -> None:
        """Create a plain index if missing (SQLite names the index, not the table, with the schema)."""
        names = ", ".join(map(self.quote, columns))
        self.execute(f"CREATE INDEX IF NOT EXISTS {self.quote(name)} ON {self.relation(schema, table)} ({names})")

    def prepare_for_sort(self) -> None:  # noqa: B027 - optional hook; most dialects need nothing
        """Inside the publish transaction, before the merge's dedup sort; a dialect may raise memory limits."""

    @abstractmethod
    def ensure_unique_key(self, target: str, primary_key: list[str]) -> None:
        """Make sure the target has a unique constraint on the key, which ON CONFLICT needs."""
