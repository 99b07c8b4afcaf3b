"""Group-by aggregations and time windows (tumbling, sliding), evaluated by DuckDB over the whole load.

Tumbling windows are `time_bucket(size, column)`; a sliding window of `size` starting every
`every` holds each row in size/every windows, so each row is expanded once per window it falls in
before grouping. `having` filters groups after aggregation, in SQL generated from its checked
expression over the output columns.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from etl_platform.errors import TransformError
from etl_platform.spec.expressions import parse_expression
from etl_platform.spec.ml import AggregateSpec
from etl_platform.tables import ident, sandboxed_duckdb

_FUNCTIONS = {"sum": "sum({})", "mean": "avg({})", "min": "min({})", "max": "max({})", "count_distinct": "count(DISTINCT {})"}
WINDOW_START, WINDOW_END = "window_start", "window_end"


def measure_sql(function: str, column: str) -> str:
    if function == "count":
        return "count(*)" if column == "*" else f"count({ident(column)})"
    return _FUNCTIONS[function].format(ident(column))


class Aggregator:
    def __init__(self, spec: AggregateSpec, where: str):
        self.spec = spec
        self.where = where

    def sql(self) -> str:
        spec = self.spec
        keys = [ident(c) for c in spec.group_by]
        measures = [f"{measure_sql(*next(iter(m.items())))} AS {ident(name)}" for name, m in spec.measures.items()]
        source = "data"
        if spec.window is not None:
            window = spec.window
            size, every = f"INTERVAL {window.size_seconds} SECOND", f"INTERVAL {window.every_seconds} SECOND"
            column = ident(window.column)
            steps = window.size_seconds // window.every_seconds
            # A row at t lies in the windows starting at bucket(t) - k * every for k < size / every.
            source = (
                f"(SELECT *, time_bucket({every}, {column}) - k * {every} AS {WINDOW_START} "
                f"FROM data, range({steps}) AS r(k)) AS windows"
            )
            keys = [WINDOW_START, *keys]
            measures.insert(0, f"{WINDOW_START} + {size} AS {WINDOW_END}")
        select = ", ".join([*keys, *measures])
        sql = f"SELECT {select} FROM {source}"
        if keys:
            sql += f" GROUP BY {', '.join(keys)}"
        if spec.having:
            sql = f"SELECT * FROM ({sql}) AS groups WHERE ({parse_expression(spec.having).sql})"
        return sql + (f" ORDER BY {', '.join(keys)}" if keys else "")

    def apply(self, table: pa.Table) -> pa.Table:
        connection = sandboxed_duckdb()
        try:
            connection.register("data", table)
            result = connection.sql(self.sql()).to_arrow_table()
        except duckdb.Error as exc:
            hint = "`having` uses the output column names" if self.spec.having else "check the column names and types"
            if self.spec.window is not None and "time_bucket" in str(exc):
                hint = f"cast `{self.spec.window.column}` to timestamp before aggregate"
            raise TransformError(f"{self.where}: {str(exc).splitlines()[0]}; {hint}; columns: {table.column_names}") from None
        finally:
            connection.close()
        # DuckDB sums integers into 128-bit integers: publish them as 64-bit, like the input
        for i, field in enumerate(result.schema):
            if pa.types.is_decimal(field.type) and field.type.scale == 0 and field.type.precision == 38:
                result = result.set_column(i, field.name, result[field.name].cast(pa.int64()))
        return result
