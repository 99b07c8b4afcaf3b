"""The platform's own tables in the `_etl` schema: what each records, who writes it, its columns.

Every table is declared once in META_TABLES; `ensure_metadata` creates the missing ones and adds
the columns a newer version of the platform introduced. A new table is one schema and one entry.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

import pyarrow as pa

from etl_platform.types import sql_type
from etl_platform.warehouse.audit import AUDIT_SCHEMA, AUDIT_TABLE
from etl_platform.warehouse.base import META_SCHEMA, STAGING_SCHEMA, Warehouse

# A quarantined row as the engine collects it (engine.quarantine spills these to a file during a run).
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
        ("tenant", pa.string()),  # a fixed `tenant:`'s value (docs/pipeline-spec.md, "Tenants")
    ]
)
# quarantine: rows that failed a rule, with the reason, file and line; written by warehouse.publish
# (replaced per input in the publish transaction, removed by a replay). The input a row came from
# is kept, so a re-run of the same input replaces its rows.
QUARANTINE_TABLE_SCHEMA = QUARANTINE_SCHEMA.append(pa.field("input_fingerprint", pa.string()))

# load_ledger: one row per content appended to a dataset (dataset, fingerprint), so the same content
# is never appended twice: per file for file sources (with the URL its rows came from, which a
# reload forgets), per load for other sources (file_url NULL); written by
# warehouse.publish.record_load, emptied for a dataset by a full refresh (warehouse.ledger).
LEDGER_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("fingerprint", pa.string()),
        ("pipeline", pa.string()),
        ("run_id", pa.string()),
        ("rows", pa.int64()),
        ("loaded_at", pa.timestamp("us", tz="UTC")),
        ("file_url", pa.string()),
    ]
)

# load_history: one row per published load, every write mode (the volume check's history and what
# engine.tuner learns from); written by warehouse.publish.record_load, except for replays.
HISTORY_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("pipeline", pa.string()),
        ("run_id", pa.string()),
        ("rows", pa.int64()),
        ("write", pa.string()),
        ("loaded_at", pa.timestamp("us", tz="UTC")),
        ("rows_read", pa.int64()),
        ("bytes_read", pa.int64()),
        ("chunk_rows", pa.int64()),
        ("duration_seconds", pa.float64()),
        ("tenant", pa.string()),  # a fixed `tenant:`'s value
    ]
)

# schema_versions: every published schema, versioned per dataset (columns as JSON: name -> type);
# written by warehouse.publish.register_schema when a load publishes columns unlike the latest.
SCHEMA_VERSIONS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("version", pa.int64()),
        ("columns", pa.string()),
        ("run_id", pa.string()),
        ("registered_at", pa.timestamp("us", tz="UTC")),
    ]
)

# file_state: one row per file a pipeline has seen, its version saying which content was processed
# (and, for an append, that content's fingerprint: state.appends tells growth from a rewrite by it);
# written by state.files: processed files inside the publish transaction, so "processed" means
# "published" (docs/architecture.md); failures and dead letters when they happen.
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
        ("content", pa.string()),
        ("tenant", pa.string()),  # a fixed `tenant:`'s value, named by the publish (state.tenants)
    ]
)

# source_checkpoint: a source's saved position when its progress is one value (a SQL cursor's
# high-water mark, an offset, an LSN), as JSON; written by state.positions inside the publish
# transaction (docs/architecture.md, "Source checkpoints").
SOURCE_CHECKPOINT_SCHEMA = pa.schema(
    [
        ("pipeline", pa.string()),
        ("position", pa.string()),
        ("run_id", pa.string()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
        ("tenant", pa.string()),  # a fixed `tenant:`'s value, named by the publish (state.tenants)
    ]
)

# dedup_audit: rows a deduplicate step removed, the cluster they joined, their similarity to its
# survivor (the estimated model's match probability) and why; written by engine.whole_load inside the publish transaction.
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
        # why it matched its survivor: the survivor's row, per-field levels, match weight and probability
        ("explanation", pa.string()),
    ]
)

# stream_dead_letters: messages of a stream source that could not be decoded, or were delivered too
# often without being published, with where they were and why; written by sources.streams inside the
# publish transaction (a RabbitMQ queue's poison messages go to its dead-letter exchange instead).
STREAM_DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("pipeline", pa.string()),
        ("stream", pa.string()),
        ("position", pa.string()),
        ("deliveries", pa.int64()),
        ("error", pa.string()),
        ("message", pa.string()),
        ("run_id", pa.string()),
        ("dead_lettered_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class MetaTable:
    """One table in the `_etl` schema, and what `ensure_metadata` creates for it."""

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...] = ()
    # (index name, columns): created with the table
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()


META_TABLES: tuple[MetaTable, ...] = (
    MetaTable("load_ledger", LEDGER_SCHEMA, ("dataset", "fingerprint"), indexes=(("ledger_by_file", ("dataset", "file_url")),)),
    MetaTable("schema_versions", SCHEMA_VERSIONS_SCHEMA),
    MetaTable("load_history", HISTORY_SCHEMA),
    MetaTable("quarantine", QUARANTINE_TABLE_SCHEMA, indexes=(("quarantine_by_input", ("dataset", "input_fingerprint")),)),
    MetaTable("file_state", FILE_STATE_SCHEMA, ("pipeline", "file_url")),
    MetaTable("source_checkpoint", SOURCE_CHECKPOINT_SCHEMA, ("pipeline",)),
    MetaTable("dedup_audit", DEDUP_AUDIT_SCHEMA),
    # audit_log: the hash-chained audit trail (warehouse.audit), one entry per publish, replay, purge and
    # full refresh, written in its transaction; append-only (docs/security.md, "Audit trail").
    MetaTable(AUDIT_TABLE, AUDIT_SCHEMA, ("seq",)),
    MetaTable("stream_dead_letters", STREAM_DEAD_LETTER_SCHEMA),
)


def ensure_metadata(warehouse: Warehouse) -> None:
    """Create the platform's schemas and tables when missing, and add columns a newer version introduced.

    Once everything exists this is catalog reads only: no DDL, so no lock on a busy table. Otherwise
    the changes are made in one transaction holding the lock of the `_etl` schema (warehouse.locks),
    after looking again: two first runs on a new warehouse would otherwise both create a table.
    """
    warehouse.create_schema(META_SCHEMA)
    warehouse.create_schema(STAGING_SCHEMA)
    if _missing_metadata(warehouse):
        with warehouse.publishing(META_SCHEMA):
            for table, existing in _missing_metadata(warehouse):
                _complete_table(warehouse, table, existing)
    upgrade_cursor_state(warehouse)


def _missing_metadata(warehouse: Warehouse) -> list[tuple[MetaTable, dict[str, str] | None]]:
    """The platform's tables that are missing or lack a column, each with its columns (None: missing)."""
    found = [(table, warehouse.columns(META_SCHEMA, table.name)) for table in META_TABLES]
    return [(t, columns) for t, columns in found if columns is None or any(f.name not in columns for f in t.schema)]


def metadata_gaps(warehouse: Warehouse) -> list[str]:
    """What this version of the platform would add to the `_etl` tables (empty: they are current); `etl doctor` shows it."""
    gaps = []
    for table, columns in _missing_metadata(warehouse):
        missing = "missing" if columns is None else "lacks " + ", ".join(f.name for f in table.schema if f.name not in columns)
        gaps.append(f"{META_SCHEMA}.{table.name} {missing}")
    return gaps


def _complete_table(warehouse: Warehouse, table: MetaTable, existing: dict[str, str] | None) -> None:
    relation = warehouse.relation(META_SCHEMA, table.name)
    if existing is None:
        warehouse.create_table(relation, table.schema, primary_key=table.primary_key)
        for index, columns in table.indexes:
            warehouse.create_index(META_SCHEMA, table.name, index, list(columns))
        return
    added = [field for field in table.schema if field.name not in existing]
    for field in added:
        warehouse.add_column(relation, field.name, sql_type(field.type, warehouse.dialect, field.name))
    for index, columns in table.indexes if added else ():  # an index on columns this upgrade added
        warehouse.create_index(META_SCHEMA, table.name, index, list(columns))


def upgrade_cursor_state(warehouse: Warehouse) -> None:
    """Move SQL cursor marks from `_etl.cursor_state` (before the checkpoint protocol) to `source_checkpoint`.

    Each mark becomes the position {"cursor_column": ..., "high_water": ...} that state.cursor reads;
    the old table is dropped in the same transaction, so the upgrade runs once.
    """
    if warehouse.columns(META_SCHEMA, "cursor_state") is None:
        return
    try:
        _move_cursor_marks(warehouse)
    except Exception:
        if warehouse.columns(META_SCHEMA, "cursor_state") is not None:
            raise
        # Another process (a sensor, a parallel run) upgraded the warehouse meanwhile: done.


def _move_cursor_marks(warehouse: Warehouse) -> None:
    old = warehouse.relation(META_SCHEMA, "cursor_state")
    with warehouse.transaction():
        rows = warehouse.query(f"SELECT pipeline, cursor_column, high_water, run_id FROM {old}")
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
            checkpoints = warehouse.relation(META_SCHEMA, "source_checkpoint")
            warehouse.bulk_insert(checkpoints, pa.Table.from_pylist(moved, SOURCE_CHECKPOINT_SCHEMA))
        warehouse.execute(f"DROP TABLE {old}")
