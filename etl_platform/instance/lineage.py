"""The platform's column lineage graph, read back from the latest materializations in the instance.

Every pipeline materialization records `etl/column_sources` (each published column's sources as
`{dataset, column}`, dataset null for its own input files) and `etl/column_steps` (the renames,
casts and derives that made it); dbt models record `dagster/column_lineage` (dagster-dbt traces
their SQL with sqlglot). Each asset's latest materialization is one layer of the graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagster import AssetKey, DagsterInstance, TableColumnLineage

from etl_platform.instance.metadata import plain_values
from etl_platform.lineage.graph import INPUT_SUFFIX, ColumnRef, LineageGraph


def read_lineage_graph(instance: DagsterInstance, keys: Iterable[AssetKey]) -> LineageGraph:
    """The graph of the latest materializations of `keys` (the assets that exist now: an instance
    remembers the materializations of assets since removed from the code)."""
    graph = LineageGraph()
    for key, entry in sorted(instance.get_latest_materialization_events(list(keys)).items(), key=lambda item: str(item[0])):
        if entry is not None and entry.asset_materialization is not None:
            add_asset_lineage(graph, key, plain_values(entry.asset_materialization.metadata))
    return graph


def add_asset_lineage(graph: LineageGraph, key: AssetKey, metadata: Mapping[str, Any]) -> None:
    """Add the columns and edges one materialization's (plain) metadata records for the asset `key`."""
    dataset = ".".join(key.path)
    schema = metadata.get("dagster/column_schema")
    sources: dict[str, list[dict]] | None = metadata.get("etl/column_sources")
    lineage: TableColumnLineage | None = metadata.get("dagster/column_lineage")
    if schema is not None:
        graph.columns[dataset] = [column.name for column in schema.columns]
    elif sources or lineage:
        graph.columns[dataset] = sorted(sources or lineage.deps_by_column)
    if sources is not None:
        # A pipeline: its own sources and steps, its input files included.
        steps = metadata.get("etl/column_steps") or {}
        for column, column_sources in sources.items():
            for source in column_sources:
                origin = source["dataset"] or f"{dataset}{INPUT_SUFFIX}"
                graph.add_edge(ColumnRef(origin, source["column"]), ColumnRef(dataset, column), tuple(steps.get(column, ())))
    elif lineage is not None:
        # A dbt model: dagster-dbt's lineage through its SQL.
        for column, deps in lineage.deps_by_column.items():
            for dep in deps:
                renamed = f": {dep.column_name} -> {column}" if dep.column_name != column else ""
                via = (f"dbt model {dataset}{renamed}",)
                graph.add_edge(ColumnRef(".".join(dep.asset_key.path), dep.column_name), ColumnRef(dataset, column), via)
