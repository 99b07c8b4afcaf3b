"""Publishing one partition: its rows are the target's rows whose partition column holds its key.

Inside the publish transaction (warehouse.publish), under the dataset's lock: a replace deletes
the slice and inserts the staged rows; a merge upserts on the primary key plus the partition
column, so a key is merged within its slice and never moves a row of another; a full refresh of
a partition forgets only that slice (its rows, and the ledger entries its state key wrote).
"""

from __future__ import annotations

from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import META_SCHEMA


def delete_slice(warehouse: Warehouse, dataset: str, column: str, key: str) -> None:
    """The partition's rows out of the target, in the caller's transaction."""
    warehouse.execute(f"DELETE FROM {warehouse.target(dataset)} WHERE {warehouse.quote(column)} = ?", (key,))


def forget_slice(warehouse: Warehouse, dataset: str, column: str, key: str, state_key: str) -> None:
    """A partition's full refresh: its rows and the load ledger entries of its state key."""
    delete_slice(warehouse, dataset, column, key)
    ledger = warehouse.relation(META_SCHEMA, "load_ledger")
    warehouse.execute(f"DELETE FROM {ledger} WHERE dataset = ? AND pipeline = ?", (dataset, state_key))


def slice_key(primary_key: list[str], column: str) -> list[str]:
    """A merge's conflict key within a partition: the declared key and the partition column."""
    return [*primary_key, column] if column not in primary_key else primary_key
