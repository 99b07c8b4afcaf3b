"""Filter rows and derive columns with SQL expressions (DuckDB dialect), validated at load time."""

from __future__ import annotations

import pyarrow as pa

from etl_platform.spec.steps import DeriveStep, FilterStep
from etl_platform.tables import ident
from etl_platform.transforms.base import StepOutput, TransformContext, run_sql


class Filter:
    """Keep the rows where the expression is true; the others are counted as filtered."""

    def __init__(self, step: FilterStep, where: str, context: TransformContext):
        self.expression = step.filter
        self.where = where
        self.context = context

    def apply(self, table: pa.Table) -> StepOutput:
        kept = run_sql(self.context, table, f"SELECT * FROM chunk WHERE ({self.expression})", self.where)
        return StepOutput(kept, filtered=len(table) - len(kept))


class Derive:
    """Add (or replace) columns computed from the chunk's columns."""

    def __init__(self, step: DeriveStep, where: str, context: TransformContext):
        self.columns = step.derive
        self.where = where
        self.context = context

    def apply(self, table: pa.Table) -> StepOutput:
        existing = {n: f"({e}) AS {ident(n)}" for n, e in self.columns.items() if n in table.column_names}
        added = [f"({e}) AS {ident(n)}" for n, e in self.columns.items() if n not in table.column_names]
        star = f"* REPLACE ({', '.join(existing.values())})" if existing else "*"
        sql = f"SELECT {', '.join([star, *added])} FROM chunk"
        return StepOutput(run_sql(self.context, table, sql, self.where))
