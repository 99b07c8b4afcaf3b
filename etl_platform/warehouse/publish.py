"""Write-audit-publish: staged rows into the target in one transaction, with the load's records.

A replace or merge moves its staging table into the target; an append streams into the target
inside a transaction that `begin_append` opens and `finish_append` commits. Either way the audit
runs, and the load ledger, schema version, load history and this input's quarantine rows are
written, inside the same transaction, so readers see all of a load or none of it
(docs/architecture.md). Every publish transaction first takes the dataset's lock
(`Warehouse.publishing`, warehouse.locks), so concurrent runs of a dataset publish one after the
other. The dialect hooks this uses are `Warehouse.ensure_unique_key` and `Warehouse.prepare_for_sort`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa

from etl_platform.errors import DestinationError
from etl_platform.types import sql_type
from etl_platform.warehouse.audit import AuditEntry, append_audit
from etl_platform.warehouse.base import CHANGE_COLUMNS, CHANGE_DELETED, CHANGE_LSN, DELETED_AT, SEQ, STAGING_SCHEMA, Warehouse
from etl_platform.warehouse.ledger import forget_dataset, held_already, record_appended
from etl_platform.warehouse.metadata import HISTORY_SCHEMA, META_SCHEMA, SCHEMA_VERSIONS_SCHEMA
from etl_platform.warehouse.partitions import delete_slice, forget_slice, slice_key

# One partition's slice of a target: its column, its key, and the state key of its loads (<pipeline>@<key>).
Slice = tuple[str, str, str]

# The column of an append target that names each row's input file, for on_changed_file: reload.
SOURCE_FILE_COLUMN = "_etl_source_file"

# Called inside the publish transaction once the rows are in the target; raises to roll back.
Audit = Callable[[Warehouse], None]


@dataclass(frozen=True)
class PublishResult:
    rows_published: int
    target_rows: int | None
    skipped_reason: str | None = None
    schema_version: int | None = None


# --- replace and merge -----------------------------------------------------------------------


def publish_staged(
    warehouse: Warehouse,
    dataset: str,
    staging: str,
    write: str,
    primary_key: list[str],
    ledger_row: dict,
    quarantined: Iterable[pa.Table],
    audit: Audit,
    evolve: bool = False,
    truncate: bool = False,
    partition: Slice | None = None,
    truncated_at: datetime.datetime | None = None,
) -> PublishResult:
    """Replace or merge: move staged rows into the target, audit, and quarantine rows in, atomically.

    With `truncate` (a full refresh), a merge starts from an empty target. A `partition` replaces or
    merges only its slice (warehouse.partitions): the other partitions' rows stay as they are.
    `truncated_at`: change data that starts with a TRUNCATE of the source table empties the target
    (soft deletes: marks its rows deleted then) before its changes apply.
    """
    target = warehouse.target(dataset)
    staged = warehouse.relation(STAGING_SCHEMA, staging)
    incoming = {c: t for c, t in warehouse.columns(STAGING_SCHEMA, staging).items() if c != SEQ}
    changes = CHANGE_DELETED in incoming  # change data: rows in LSN order, some of them deletes
    incoming = {c: t for c, t in incoming.items() if c not in CHANGE_COLUMNS}
    warehouse.create_schema(warehouse.split(dataset)[0])
    with warehouse.publishing(dataset):
        if partition is not None:
            primary_key = slice_key(primary_key, partition[0]) if write == "merge" else primary_key
        whole = write == "replace" and partition is None
        ensure_target(warehouse, dataset, incoming, primary_key, replace=whole, evolve=evolve)
        if truncate:
            forget_loads(warehouse, dataset, partition)
        if write == "merge" and changes:
            _apply_changes(warehouse, target, staged, list(incoming), primary_key, truncated_at)
        elif write == "merge":
            merge_rows(warehouse, target, staged, list(incoming), primary_key)
        else:
            columns = ", ".join(map(warehouse.quote, incoming))
            if partition is None:
                warehouse.execute(f"DELETE FROM {target}")
            else:
                delete_slice(warehouse, dataset, partition[0], partition[1])
            warehouse.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staged}")
        audit(warehouse)
        version = record_load(warehouse, dataset, ledger_row, quarantined)
        return PublishResult(ledger_row["rows"], warehouse.row_count(dataset), schema_version=version)


def merge_rows(warehouse: Warehouse, target: str, staged: str, columns: list[str], primary_key: list[str]) -> None:
    """Upsert on the primary key; within one load the last row of a key wins."""
    quote = warehouse.quote
    names = ", ".join(map(quote, columns))
    keys = ", ".join(map(quote, primary_key))
    updates = [c for c in columns if c not in primary_key]
    warehouse.ensure_unique_key(target, primary_key)
    warehouse.prepare_for_sort()
    warehouse.execute(
        f"INSERT INTO {target} ({names}) SELECT {names} FROM "
        f"(SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {SEQ} DESC) AS _etl_rank FROM {staged}) latest "
        f"WHERE _etl_rank = 1 {warehouse.upsert_clause(primary_key, updates)}"
    )


def _apply_changes(
    warehouse: Warehouse,
    target: str,
    staged: str,
    columns: list[str],
    primary_key: list[str],
    truncated_at: datetime.datetime | None,
) -> None:
    """Change data: the last change of each key by position wins; a delete deletes the row (or, with a
    `_deleted_at` column, marks it), any other change upserts it. A truncate before them empties the target."""
    quote = warehouse.quote
    if truncated_at is not None and DELETED_AT in columns:
        warehouse.execute(f"UPDATE {target} SET {quote(DELETED_AT)} = ? WHERE {quote(DELETED_AT)} IS NULL", (truncated_at,))
    elif truncated_at is not None:
        warehouse.execute(f"DELETE FROM {target}")
    keys = ", ".join(map(quote, primary_key))
    names = ", ".join(map(quote, columns))
    latest = (
        f"(SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {quote(CHANGE_LSN)} DESC, {SEQ} DESC) AS _etl_rank "
        f"FROM {staged}) latest WHERE _etl_rank = 1"
    )
    deleted = quote(CHANGE_DELETED)
    warehouse.ensure_unique_key(target, primary_key)
    warehouse.prepare_for_sort()
    if DELETED_AT in columns:
        matches = " AND ".join(f"kept.{quote(k)} = gone.{quote(k)}" for k in primary_key)
        warehouse.execute(
            f"UPDATE {target} AS kept SET {quote(DELETED_AT)} = gone.{quote(DELETED_AT)} "
            f"FROM (SELECT * FROM {latest} AND {deleted}) gone WHERE {matches}"
        )
    else:
        wanted = f"({keys})" if len(primary_key) > 1 else keys
        warehouse.execute(f"DELETE FROM {target} WHERE {wanted} IN (SELECT {keys} FROM {latest} AND {deleted})")
    updates = [c for c in columns if c not in primary_key]
    action = "DO UPDATE SET " + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updates) if updates else "DO NOTHING"
    warehouse.execute(
        f"INSERT INTO {target} ({names}) SELECT {names} FROM {latest} AND NOT {deleted} ON CONFLICT ({keys}) {action}"
    )


def forget_loads(warehouse: Warehouse, dataset: str, partition: Slice | None = None) -> None:
    """Inside a full refresh's publish transaction: empty the target (a partition: its slice) and its load ledger."""
    if partition is not None:
        forget_slice(warehouse, dataset, *partition)
        return
    warehouse.execute(f"DELETE FROM {warehouse.target(dataset)}")
    forget_dataset(warehouse, dataset)


def forget_file_rows(warehouse: Warehouse, dataset: str, urls: list[str]) -> None:
    """Inside an append's load transaction: delete the rows that came from files it reloads, and their
    quarantined rows: those belong to the content being replaced, and a replay of them would publish
    rows the file no longer holds (twice, if a copy of that content is read again)."""
    column = warehouse.quote(SOURCE_FILE_COLUMN)
    quarantine = warehouse.relation(META_SCHEMA, "quarantine")
    for start in range(0, len(urls), 500):
        batch = urls[start : start + 500]
        marks = ", ".join("?" * len(batch))
        warehouse.execute(f"DELETE FROM {warehouse.target(dataset)} WHERE {column} IN ({marks})", tuple(batch))
        warehouse.execute(f"DELETE FROM {quarantine} WHERE dataset = ? AND source_file IN ({marks})", (dataset, *batch))


# --- append ----------------------------------------------------------------------------------


def begin_append(
    warehouse: Warehouse,
    dataset: str,
    schema: pa.Schema,
    evolve: bool = False,
    truncate: bool = False,
    reloaded: list[str] | None = None,
    partition: Slice | None = None,
) -> None:
    """Open the load transaction of an append and make sure the target takes `schema`.

    `reloaded` files (on_changed_file: reload) lose their earlier rows in the same transaction.

    An append streams its chunks straight into the target inside this transaction: readers
    see nothing until finish_append commits, and a failure or a kill rolls it all back. Only
    append can skip the staging table, because its publish adds rows and changes none.
    """
    warehouse.create_schema(warehouse.split(dataset)[0])
    incoming = {f.name: sql_type(f.type, warehouse.dialect, f.name) for f in schema}
    if evolve:
        # Added columns commit at once: ALTER TABLE would otherwise lock readers out for the whole load.
        with warehouse.publishing(dataset):
            _add_new_columns(warehouse, dataset, incoming)
    warehouse.begin()
    try:
        warehouse.lock_for_publish(dataset)  # held until finish_append commits: appends stream into the target
        ensure_target(warehouse, dataset, incoming, [], replace=False, evolve=evolve)
        if truncate:
            forget_loads(warehouse, dataset, partition)
        if reloaded:
            forget_file_rows(warehouse, dataset, reloaded)
    except BaseException:
        warehouse.rollback()
        raise


def finish_append(
    warehouse: Warehouse, dataset: str, ledger_row: dict, quarantined: Iterable[pa.Table], audit: Audit
) -> PublishResult:
    """Audit and commit the append, unless the ledger shows this input was appended already (then roll back)."""
    try:
        if held_already(warehouse, ledger_row):
            warehouse.rollback()
            return PublishResult(0, warehouse.row_count(dataset), "this input was already appended (load ledger)")
        audit(warehouse)
        version = record_load(warehouse, dataset, ledger_row, quarantined)
        result = PublishResult(ledger_row["rows"], warehouse.row_count(dataset), schema_version=version)
    except BaseException:
        warehouse.rollback()
        raise
    warehouse.commit()
    return result


# --- the target's columns --------------------------------------------------------------------


def ensure_target(
    warehouse: Warehouse, dataset: str, incoming: dict[str, str], primary_key: list[str], replace: bool, evolve: bool = False
) -> None:
    """Inside a transaction: create the target, or check that `incoming` columns fit it.

    With `evolve`, new columns are added to the target (nullable) and columns the load lacks
    stay in it, filled with NULL; a type change never fits.
    """
    schema, table = warehouse.split(dataset)
    target = warehouse.relation(schema, table)
    existing = warehouse.columns(schema, table)
    if replace and existing is not None and existing != incoming and not evolve:
        warehouse.execute(f"DROP TABLE {target}")
        existing = None
    if existing is None:
        definition = ", ".join(f"{warehouse.quote(c)} {t}" for c, t in incoming.items())
        key = f", {warehouse.key_clause(primary_key)}" if primary_key else ""
        warehouse.execute(f"CREATE TABLE {target} ({definition}{key})")
        return
    if evolve:
        existing = _add_new_columns(warehouse, dataset, incoming)
        incoming = {**{c: t for c, t in existing.items() if c not in incoming}, **incoming}
    _check_compatible(dataset, existing, incoming)


def _add_new_columns(warehouse: Warehouse, dataset: str, incoming: dict[str, str]) -> dict[str, str] | None:
    """Add (nullable) the `incoming` columns the target lacks; returns the target's columns."""
    schema, table = warehouse.split(dataset)
    existing = warehouse.columns(schema, table)
    if existing is None:
        return None
    for column, kind in incoming.items():
        if column not in existing:
            warehouse.add_column(warehouse.relation(schema, table), column, kind)
            existing[column] = kind
    return existing


def _check_compatible(dataset: str, existing: dict[str, str], incoming: dict[str, str]) -> None:
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


# --- the load's records: ledger, schema versions, history, quarantine ------------------------


def record_load(warehouse: Warehouse, dataset: str, ledger_row: dict, quarantined: Iterable[pa.Table]) -> int | None:
    """Within the publish transaction: ledger entry (append only), schema version, history, this
    input's quarantine rows. Returns the schema version the load published."""
    # A replay is published once by its records leaving the quarantine in this transaction
    # (sources.quarantine); a ledger entry would add nothing, and in a file pipeline's ledger an entry
    # naming no file is one from before the per-file ledger, which the next run would "upgrade".
    if ledger_row["write"] == "append" and not ledger_row.get("replay"):
        record_appended(warehouse, ledger_row)
    schema = ledger_row.get("schema")
    version = register_schema(warehouse, dataset, schema, ledger_row["run_id"]) if schema else None
    if not ledger_row.get("replay"):  # a replay's size says nothing about the dataset's usual volume
        history = {k: ledger_row.get(k) for k in HISTORY_SCHEMA.names}
        warehouse.bulk_insert(warehouse.relation(META_SCHEMA, "load_history"), pa.Table.from_pylist([history], HISTORY_SCHEMA))
    # A load that replaces the target's rows supersedes the quarantined rows of the inputs it replaced:
    # replaying those later would bring back rows of a content the target no longer holds.
    superseding = ledger_row["write"] == "replace" or ledger_row.get("full_refresh", False)
    # A partition supersedes only its own quarantined rows: those its state key (the `pipeline`) wrote.
    only = ledger_row["pipeline"] if ledger_row.get("partition") else None
    replace_quarantine(warehouse, dataset, ledger_row["fingerprint"], quarantined, every_input=superseding, pipeline=only)
    append_audit(warehouse, load_audit_entry(dataset, ledger_row, version))
    return version


def load_audit_entry(dataset: str, ledger_row: dict, schema_version: int | None) -> AuditEntry:
    """The audit trail's record of a publish: a load, a replay or a full refresh."""
    action = "replay" if ledger_row.get("replay") else "full_refresh" if ledger_row.get("full_refresh") else "publish"
    return AuditEntry(
        action,
        dataset,
        ledger_row["rows"],
        ledger_row["run_id"],
        ledger_row["pipeline"],
        ledger_row.get("tenant"),
        ledger_row.get("launched_by"),
        {"write": ledger_row["write"], "fingerprint": ledger_row["fingerprint"], "schema_version": schema_version},
    )


def latest_registered_schema(warehouse: Warehouse, dataset: str) -> tuple[int, dict[str, str]] | None:
    """The dataset's newest registered schema version and its columns, if any."""
    versions = warehouse.relation(META_SCHEMA, "schema_versions")
    sql = f"SELECT version, columns FROM {versions} WHERE dataset = ? ORDER BY version DESC LIMIT 1"
    rows = warehouse.query(sql, (dataset,))
    return (rows[0][0], json.loads(rows[0][1])) if rows else None


def register_schema(warehouse: Warehouse, dataset: str, columns: dict[str, str], run_id: str) -> int:
    """Within the publish transaction: record `columns` as a new version unless it is the latest."""
    latest = latest_registered_schema(warehouse, dataset)
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
    versions = warehouse.relation(META_SCHEMA, "schema_versions")
    warehouse.bulk_insert(versions, pa.Table.from_pylist([row], SCHEMA_VERSIONS_SCHEMA))
    return version


def recent_load_sizes(warehouse: Warehouse, dataset: str, loads: int) -> list[int]:
    """Rows published by the last `loads` loads of `dataset`, newest first."""
    history = warehouse.relation(META_SCHEMA, "load_history")
    sql = f"SELECT rows FROM {history} WHERE dataset = ? ORDER BY loaded_at DESC LIMIT {int(loads)}"
    return [r[0] for r in warehouse.query(sql, (dataset,))]


def replace_quarantine(
    warehouse: Warehouse,
    dataset: str,
    fingerprint: str,
    quarantined: Iterable[pa.Table],
    every_input: bool = False,
    pipeline: str | None = None,
) -> None:
    """Put an input's quarantine rows in place of any earlier ones for the same input (`every_input`:
    in place of the dataset's whole quarantine, or of one partition's, `pipeline` its state key)."""
    quarantine = warehouse.relation(META_SCHEMA, "quarantine")
    if every_input and pipeline is not None:
        warehouse.execute(f"DELETE FROM {quarantine} WHERE dataset = ? AND pipeline = ?", (dataset, pipeline))
    elif every_input:
        warehouse.execute(f"DELETE FROM {quarantine} WHERE dataset = ?", (dataset,))
    else:
        warehouse.execute(f"DELETE FROM {quarantine} WHERE dataset = ? AND input_fingerprint = ?", (dataset, fingerprint))
    for batch in quarantined:
        warehouse.bulk_insert(quarantine, batch.append_column("input_fingerprint", pa.array([fingerprint] * len(batch))))


def still_quarantined(warehouse: Warehouse, quarantine_ids: list[str]) -> int:
    """How many of these records the quarantine holds now (a replay's check, under the dataset lock)."""
    quarantine = warehouse.relation(META_SCHEMA, "quarantine")
    held = 0
    for start in range(0, len(quarantine_ids), 500):
        ids = quarantine_ids[start : start + 500]
        held += warehouse.query(
            f"SELECT count(*) FROM {quarantine} WHERE quarantine_id IN ({', '.join('?' * len(ids))})", tuple(ids)
        )[0][0]
    return held


def remove_from_quarantine(warehouse: Warehouse, quarantine_ids: list[str]) -> None:
    """Delete quarantine records by id (a replay's, inside its publish transaction)."""
    quarantine = warehouse.relation(META_SCHEMA, "quarantine")
    for start in range(0, len(quarantine_ids), 500):
        ids = quarantine_ids[start : start + 500]
        warehouse.execute(f"DELETE FROM {quarantine} WHERE quarantine_id IN ({', '.join('?' * len(ids))})", tuple(ids))


def purge_quarantine(warehouse: Warehouse, where: str, params: tuple, launched_by: str | None = None) -> int:
    """Delete the quarantine rows `where` selects, under the lock of each dataset they belong to.

    Under the locks, a replay of those rows that is under way finds them gone when it publishes,
    and publishes nothing (sources.quarantine.ReplayedRecords). Each dataset's purge is an entry
    of the audit trail, in the same transaction. Returns the rows deleted.
    """
    quarantine = warehouse.relation(META_SCHEMA, "quarantine")
    datasets = [r[0] for r in warehouse.query(f"SELECT DISTINCT dataset FROM {quarantine}{where}", params)]
    if not datasets:
        return 0
    locked = f"dataset IN ({', '.join('?' * len(datasets))})"
    where = f"{where} AND {locked}" if where else f" WHERE {locked}"
    with warehouse.publishing(*datasets):
        counts = warehouse.query(
            f"SELECT dataset, count(*) FROM {quarantine}{where} GROUP BY dataset ORDER BY dataset", (*params, *datasets)
        )
        warehouse.execute(f"DELETE FROM {quarantine}{where}", (*params, *datasets))
        for dataset, rows in counts:
            entry = AuditEntry("purge", dataset, rows, launched_by=launched_by, detail={"selection": list(params)})
            append_audit(warehouse, entry)
    return sum(rows for _, rows in counts)
