"""Filter rows and derive columns with SQL expressions (DuckDB dialect).

The spec checked each expression when it loaded (etl_platform.spec.expressions); a step parses
it once more when the run builds it, and every chunk runs the SQL generated from that tree, never
the author's text.
"""

from __future__ import annotations

import pyarrow as pa

from etl_platform.errors import TransformError
from etl_platform.spec.expressions import CheckedExpression, parse_expression
from etl_platform.spec.steps import DeriveStep, FilterStep
from etl_platform.tables import data_columns, ident
from etl_platform.transforms.base import StepOutput, TransformContext, run_sql


def _require_columns(table: pa.Table, expressions: list[CheckedExpression], where: str, derived: list[str]) -> None:
    """An expression reads only the chunk's columns (or, in a derive, the columns it derives)."""
    unknown = dict.fromkeys(c for e in expressions for c in e.unknown_columns([*table.column_names, *derived]))
    if unknown:
        raise TransformError(
            f"{where}: the expression reads {', '.join(map(repr, unknown))}, not a column here; "
            f"available: {', '.join(data_columns(table))}"
        )


class Filter:
    """Keep the rows where the expression is true; the others are counted as filtered."""

    def __init__(self, step: FilterStep, where: str, context: TransformContext):
        self.expression = parse_expression(step.filter)
        self.where = where
        self.context = context

    def apply(self, table: pa.Table) -> StepOutput:
        _require_columns(table, [self.expression], self.where, [])
        kept = run_sql(self.context, table, f"SELECT * FROM chunk WHERE {self.expression.sql}", self.where)
        return StepOutput(kept, filtered=len(table) - len(kept))


class Derive:
    """Add (or replace) columns computed from the chunk's columns."""

    def __init__(self, step: DeriveStep, where: str, context: TransformContext):
        self.columns = {name: parse_expression(text) for name, text in step.derive.items()}
        self.where = where
        self.context = context

    def apply(self, table: pa.Table) -> StepOutput:
        _require_columns(table, list(self.columns.values()), self.where, list(self.columns))
        existing = {n: f"({e.sql}) AS {ident(n)}" for n, e in self.columns.items() if n in table.column_names}
        added = [f"({e.sql}) AS {ident(n)}" for n, e in self.columns.items() if n not in table.column_names]
        star = f"* REPLACE ({', '.join(existing.values())})" if existing else "*"
        sql = f"SELECT {', '.join([star, *added])} FROM chunk"
        return StepOutput(run_sql(self.context, table, sql, self.where))
