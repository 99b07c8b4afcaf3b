"""A source's saved position: one JSON value per pipeline, written only in the publish transaction.

This is the storage half of the source checkpoint protocol (docs/architecture.md, "Source
checkpoints") for every source whose progress is one value: a SQL cursor's high-water mark today,
and a replication LSN, a stream sequence or an offset for the connectors to come. File sources
keep a row per file instead (state.files), because the file-arrival sensor counts failures and
dead-letters per file.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import META_SCHEMA, SOURCE_CHECKPOINT_SCHEMA


def saved_position(warehouse: Warehouse, pipeline: str) -> Any | None:
    """The position the pipeline's last publish saved, or None."""
    table = warehouse.relation(META_SCHEMA, "source_checkpoint")
    rows = warehouse.query(f"SELECT position FROM {table} WHERE pipeline = ?", (pipeline,))
    return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None


@dataclass(frozen=True)
class Position:
    """A checkpoint holding one JSON value; `None` forgets the saved one (a full refresh that read nothing)."""

    value: Any

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None:
        table = target.relation(META_SCHEMA, "source_checkpoint")
        target.execute(f"DELETE FROM {table} WHERE pipeline = ?", (pipeline,))
        if self.value is None:
            return
        row = {
            "pipeline": pipeline,
            "position": json.dumps(self.value, sort_keys=True),
            "run_id": run_id,
            "updated_at": datetime.datetime.now(datetime.UTC),
        }
        target.bulk_insert(table, pa.Table.from_pylist([row], SOURCE_CHECKPOINT_SCHEMA))
