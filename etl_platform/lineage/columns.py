"""Column lineage of a pipeline: which source or upstream-dataset columns feed each published column.

Worked out from the spec, step by step, starting from the columns the source delivered: renames
and casts carry a column's sources along, `derive` unions the sources of the columns its SQL
names, a lookup's added columns come from the lookup dataset, aggregates from their measures'
inputs. A warehouse SQL source's columns are traced through its query with sqlglot. Each column
also keeps the steps that made it, so `etl lineage` can say how, not only from where.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot.errors
from sqlglot import exp
from sqlglot.lineage import lineage as trace

from etl_platform.spec.expressions import parse_expression
from etl_platform.spec.ml import AggregateStep, CanonicalizeStep, DetectAnomaliesStep
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import SqlSource
from etl_platform.spec.steps import (
    CastStep,
    DeriveStep,
    FillNullsStep,
    LookupStep,
    MaskStep,
    NormalizeStep,
    RenameStep,
    SelectStep,
)


@dataclass(frozen=True, order=True)
class ColumnSource:
    """A column feeding a published one: of an upstream dataset, or (dataset None) of the pipeline's own input."""

    dataset: str | None
    column: str


@dataclass(frozen=True)
class ColumnTrace:
    """Where a published column comes from, and the steps that made it (`rename created_at -> ordered_at`, ...)."""

    sources: frozenset[ColumnSource] = frozenset()
    steps: tuple[str, ...] = ()

    def then(self, step: str) -> ColumnTrace:
        return ColumnTrace(self.sources, (*self.steps, step))


Lineage = dict[str, ColumnTrace]


def _combined(traces: list[ColumnTrace], step: str) -> ColumnTrace:
    """A column computed from several: every source, every step that led to any of them, then `step`."""
    steps = dict.fromkeys(s for trace in traces for s in trace.steps)
    return ColumnTrace(frozenset().union(*(t.sources for t in traces)), (*steps, step))


def _query_lineage(query: str, columns: list[str]) -> Lineage:
    """Each output column of a warehouse query, traced to the dataset columns it reads."""
    result: Lineage = {}
    for column in columns:
        try:
            node = trace(column, query, None, dialect="duckdb")
        except (sqlglot.errors.SqlglotError, ValueError):
            result[column] = ColumnTrace()
            continue
        sources = set()
        for leaf in node.walk():
            if leaf.downstream or not isinstance(leaf.source, exp.Table):
                continue
            table = leaf.source
            dataset = f"{table.db}.{table.name}" if table.db else table.name
            sources.add(ColumnSource(dataset, leaf.name.rpartition(".")[2]))
        result[column] = ColumnTrace(frozenset(sources), ("query",))
    return result


def _column_steps(step, current: Lineage) -> Lineage:
    """Steps that change columns one by one, in place: each column's trace gains the step."""
    if isinstance(step, CastStep):
        labels = {c: f"cast {t.type}" for c, t in step.targets().items()}
    elif isinstance(step, NormalizeStep):
        labels = {c: f"normalize {', '.join(ops)}" for c, ops in step.normalize.items()}
    elif isinstance(step, MaskStep):
        labels = {c: f"mask {spec.method}" for c, spec in step.specs().items()}
    elif isinstance(step, FillNullsStep):
        labels = {c: f"fill nulls with {value!r}" for c, value in step.fill_nulls.items()}
    elif isinstance(step, CanonicalizeStep):
        labels = {c: "canonicalize" for c in step.canonicalize}
    else:
        return current
    return {c: trace.then(labels[c]) if c in labels else trace for c, trace in current.items()}


def column_lineage(spec: PipelineSpec, source_columns: list[str]) -> Lineage:
    """Published column -> the columns it is computed from, and the steps on the way."""
    if isinstance(spec.source, SqlSource) and spec.source.url is None and spec.source.query:
        current = _query_lineage(spec.source.query, source_columns)
    else:
        origin = spec.source.table if isinstance(spec.source, SqlSource) and spec.source.url is None else None
        current = {c: ColumnTrace(frozenset({ColumnSource(origin, c)})) for c in source_columns}
    for step in spec.transforms:
        if isinstance(step, SelectStep):
            current = {c: current.get(c, ColumnTrace()) for c in step.select}
        elif isinstance(step, RenameStep):
            current = {
                step.rename.get(c, c): trace.then(f"rename {c} -> {step.rename[c]}") if c in step.rename else trace
                for c, trace in current.items()
            }
        elif isinstance(step, DeriveStep):
            for column, expression in step.derive.items():
                inputs = [current[c] for c in sorted(parse_expression(expression).columns) if c in current]
                current[column] = _combined(inputs, f"derive {expression}")
        elif isinstance(step, LookupStep):
            for dataset_column, new_name in step.lookup.added_columns().items():
                source = ColumnSource(step.lookup.dataset, dataset_column)
                current[new_name] = ColumnTrace(frozenset({source}), (f"lookup {step.lookup.dataset}.{dataset_column}",))
        elif isinstance(step, CanonicalizeStep):
            current = _column_steps(step, current)
            for column in step.canonicalize:
                current[f"{column}_similarity"] = current.get(column, ColumnTrace()).then("similarity to the reference list")
        elif isinstance(step, DetectAnomaliesStep):
            tagged = _combined([current.get(c, ColumnTrace()) for c in step.detect_anomalies.columns], "detect_anomalies")
            current.update(dict.fromkeys(("anomaly", "anomaly_score", "anomaly_reason"), tagged))
        elif isinstance(step, AggregateStep):
            aggregate = step.aggregate
            grouped = {c: current.get(c, ColumnTrace()).then("group by") for c in aggregate.group_by}
            for name, measure in aggregate.measures.items():
                ((function, column),) = measure.items()
                traced = current.get(column, ColumnTrace()) if column != "*" else ColumnTrace()
                grouped[name] = traced.then(f"{function}({column})")
            if aggregate.window is not None:
                window = current.get(aggregate.window.column, ColumnTrace()).then(f"window {aggregate.window.size}")
                grouped = {"window_start": window, "window_end": window, **grouped}
            current = grouped
        else:
            current = _column_steps(step, current)
    return current
