"""The platform's `_etl` tables: created from their declarations, and upgraded in place."""

from __future__ import annotations

import pyarrow as pa

from etl_platform.types import sql_type
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.metadata import HISTORY_SCHEMA, META_SCHEMA, META_TABLES, ensure_metadata


def test_every_declared_table_is_created_with_its_columns(any_warehouse_url: str) -> None:
    warehouse = open_warehouse(any_warehouse_url)
    try:
        ensure_metadata(warehouse)
        ensure_metadata(warehouse)  # a second call finds everything in place
        for table in META_TABLES:
            assert list(warehouse.columns(META_SCHEMA, table.name) or {}) == table.schema.names, table.name
    finally:
        warehouse.close()


def test_a_table_from_an_older_version_gains_the_new_columns_and_keeps_its_rows(any_warehouse_url: str) -> None:
    old_columns = ["dataset", "pipeline", "run_id", "rows", "write", "loaded_at"]
    warehouse = open_warehouse(any_warehouse_url)
    try:
        warehouse.create_schema(META_SCHEMA)
        history = warehouse.relation(META_SCHEMA, "load_history")
        old_schema = pa.schema([HISTORY_SCHEMA.field(name) for name in old_columns])
        warehouse.create_table(history, old_schema)
        warehouse.execute(f"INSERT INTO {history} (dataset, rows) VALUES ('analytics.orders', 7)")
        ensure_metadata(warehouse)
        columns = warehouse.columns(META_SCHEMA, "load_history")
        assert list(columns) == HISTORY_SCHEMA.names
        added = HISTORY_SCHEMA.field("duration_seconds")
        assert columns["duration_seconds"].lower() == sql_type(added.type, warehouse.dialect, added.name).lower()
        assert warehouse.query(f"SELECT dataset, rows, chunk_rows FROM {history}") == [("analytics.orders", 7, None)]
    finally:
        warehouse.close()
