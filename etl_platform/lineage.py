"""Column lineage of a pipeline: which source or upstream-dataset columns feed each published column.

Worked out from the spec, step by step, starting from the columns the source delivered: renames
and casts carry a column's sources along, `derive` unions the sources of the columns its SQL
names, a lookup's added columns come from the lookup dataset, aggregates from their measures'
inputs. A warehouse SQL source's columns are traced through its query with sqlglot.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
import sqlglot.errors
from sqlglot import exp
from sqlglot.lineage import lineage as trace

from etl_platform.spec.models import (
    AggregateStep,
    CanonicalizeStep,
    DeriveStep,
    DetectAnomaliesStep,
    LookupStep,
    PipelineSpec,
    RenameStep,
    SelectStep,
    SqlSource,
)


@dataclass(frozen=True, order=True)
class ColumnSource:
    """A column feeding a published one: of an upstream dataset, or (dataset None) of the pipeline's own input."""

    dataset: str | None
    column: str


Lineage = dict[str, set[ColumnSource]]


def _query_lineage(query: str, columns: list[str]) -> Lineage:
    """Each output column of a warehouse query, traced to the dataset columns it reads."""
    result: Lineage = {}
    for column in columns:
        try:
            node = trace(column, query, None, dialect="duckdb")
        except (sqlglot.errors.SqlglotError, ValueError):
            result[column] = set()
            continue
        sources = set()
        for leaf in node.walk():
            if leaf.downstream or not isinstance(leaf.source, exp.Table):
                continue
            table = leaf.source
            dataset = f"{table.db}.{table.name}" if table.db else table.name
            sources.add(ColumnSource(dataset, leaf.name.rpartition(".")[2]))
        result[column] = sources
    return result


def _referenced(expression: str) -> set[str]:
    return {c.name for c in sqlglot.parse_one(f"SELECT {expression}", read="duckdb").find_all(exp.Column)}


def column_lineage(spec: PipelineSpec, source_columns: list[str]) -> Lineage:
    """Published column -> the columns it is computed from."""
    if isinstance(spec.source, SqlSource) and spec.source.url is None and spec.source.query:
        current = _query_lineage(spec.source.query, source_columns)
    else:
        origin = spec.source.table if isinstance(spec.source, SqlSource) and spec.source.url is None else None
        current = {c: {ColumnSource(origin, c)} for c in source_columns}
    for step in spec.transforms:
        if isinstance(step, SelectStep):
            current = {c: current.get(c, set()) for c in step.select}
        elif isinstance(step, RenameStep):
            current = {step.rename.get(c, c): sources for c, sources in current.items()}
        elif isinstance(step, DeriveStep):
            for column, expression in step.derive.items():
                current[column] = set().union(*(current.get(c, set()) for c in _referenced(expression)))
        elif isinstance(step, LookupStep):
            for dataset_column, new_name in step.lookup.added_columns().items():
                current[new_name] = {ColumnSource(step.lookup.dataset, dataset_column)}
        elif isinstance(step, CanonicalizeStep):
            for column in step.canonicalize:
                current[f"{column}_similarity"] = set(current.get(column, set()))
        elif isinstance(step, DetectAnomaliesStep):
            inputs = set().union(*(current.get(c, set()) for c in step.detect_anomalies.columns))
            current.update({"anomaly": set(inputs), "anomaly_score": set(inputs), "anomaly_reason": set(inputs)})
        elif isinstance(step, AggregateStep):
            spec_ = step.aggregate
            grouped = {c: current.get(c, set()) for c in spec_.group_by}
            for name, measure in spec_.measures.items():
                (column,) = measure.values()
                grouped[name] = set(current.get(column, set())) if column != "*" else set()
            if spec_.window is not None:
                window = set(current.get(spec_.window.column, set()))
                grouped = {"window_start": window, "window_end": set(window), **grouped}
            current = grouped
    return current
