"""Dagster metadata for a pipeline's materialization, built from the engine's LoadReport."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from dagster import AssetKey, MetadataValue, TableColumn, TableColumnDep, TableColumnLineage, TableSchema

from etl_platform.engine.report import LoadReport
from etl_platform.lineage.columns import ColumnTrace, Lineage
from etl_platform.types import sql_type


def table_schema(schema: pa.Schema, dialect: str) -> TableSchema:
    """Columns with the SQL type they have in the warehouse (or the Arrow type for files)."""
    return TableSchema(
        columns=[TableColumn(f.name, sql_type(f.type, dialect, f.name) if dialect != "files" else str(f.type)) for f in schema]
    )


def lineage_metadata(lineage: Lineage, published: list[str]) -> dict[str, Any]:
    """`dagster/column_lineage` (dependencies on upstream datasets' columns); every column's sources
    including the pipeline's own input (`etl/column_sources`, which `dagster/column_lineage` cannot
    express: a file is not an asset); and the steps that made each column (`etl/column_steps`)."""
    traces = {column: lineage.get(column, ColumnTrace()) for column in published}
    deps = {
        column: [TableColumnDep(asset_key=AssetKey(s.dataset.split(".")), column_name=s.column) for s in upstream]
        for column, trace in traces.items()
        if (upstream := [s for s in sorted(trace.sources) if s.dataset])
    }
    # Objects, not "dataset.column" strings: column names may hold dots. dataset None is the pipeline's input.
    sources = {
        column: [{"dataset": s.dataset, "column": s.column} for s in sorted(trace.sources, key=str)]
        for column, trace in traces.items()
    }
    return {
        "dagster/column_lineage": TableColumnLineage(deps),
        "etl/column_sources": MetadataValue.json(sources),
        "etl/column_steps": MetadataValue.json({column: list(trace.steps) for column, trace in traces.items()}),
    }


# What describes the dataset rather than one load of it: an unchanged run's materialization repeats these.
DATASET_METADATA = (
    "dagster/row_count",
    "dagster/column_schema",
    "dagster/column_lineage",
    "dagster/table_name",
    "etl/column_sources",
    "etl/column_steps",
    "schema_version",
    "write_mode",
)


def materialization_metadata(report: LoadReport, dialect: str, table_name: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "rows_read": MetadataValue.int(report.rows_read),
        "rows_published": MetadataValue.int(report.rows_published),
        "rows_quarantined": MetadataValue.int(report.rows_quarantined),
        "rows_filtered": MetadataValue.int(report.rows_filtered),
        "rows_deduplicated": MetadataValue.int(report.rows_deduplicated),
        "chunk_rows": MetadataValue.int(report.chunk_rows),
        "bytes_read": MetadataValue.int(report.bytes_read),
        "duration_seconds": MetadataValue.float(round(report.duration_seconds, 3)),
        "write_mode": report.write_mode,
        "source_files": MetadataValue.json(report.source_files),
        "input_fingerprint": report.fingerprint or "",
        "dagster/table_name": table_name,
    }
    if report.quarantined_by_rule:
        metadata["quarantined_by_rule"] = MetadataValue.json(report.quarantined_by_rule)
        metadata["quarantine_query"] = MetadataValue.md(
            f"```sql\nSELECT * FROM _etl.quarantine WHERE run_id = '{report.run_id}'\n```"
        )
    if report.target_rows is not None:
        metadata["dagster/row_count"] = MetadataValue.int(report.target_rows)
    if report.schema is not None and dialect:
        metadata["dagster/column_schema"] = table_schema(report.schema, dialect)
    if report.dedup_models:
        metadata["dedup_model"] = MetadataValue.json(report.dedup_models)
    if report.tuning:
        metadata["auto_tuner"] = report.tuning
    if report.truncation:
        metadata["source_truncated"] = report.truncation
    if report.schema_version is not None:
        metadata["schema_version"] = MetadataValue.int(report.schema_version)
    return metadata
