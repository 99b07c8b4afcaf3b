"""Group-by aggregations and time windows (tumbling, sliding), evaluated by DuckDB over the whole load.

Tumbling windows are `time_bucket(size, column)`; a sliding window of `size` starting every
`every` holds each row in size/every windows, so each row is expanded once per window it falls in
before grouping. `having` filters groups after aggregation, in SQL generated from its checked
expression over the output columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from etl_platform.errors import TransformError
from etl_platform.spec.expressions import parse_expression
from etl_platform.spec.ml import AggregateSpec
from etl_platform.tables import ident, sandboxed_duckdb, spilling_duckdb

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
        """The grouping, without `having`: quoted identifiers and fixed templates only, so it may run
        in the spilling DuckDB (etl_platform.tables.spilling_duckdb)."""
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
        return sql + (f" ORDER BY {', '.join(keys)}" if keys else "")

    def batches(self, data: pa.Table | pa.RecordBatchReader, spill_folder: Path | None = None) -> Iterator[pa.RecordBatch]:
        """The groups, batch by batch (at least one, empty when there are none).

        Given a spill folder, the grouping keeps to a bounded memory and spills there; `data` may
        be a stream, read once. `having` filters each batch of groups in the sandboxed DuckDB.
        """
        connection = spilling_duckdb(spill_folder) if spill_folder is not None else sandboxed_duckdb()
        having = sandboxed_duckdb()
        try:
            connection.register("data", data)
            result = connection.sql(self.sql()).to_arrow_reader()
            # DuckDB sums integers into 128-bit integers: publish them as 64-bit, like the input
            schema = pa.schema([_narrowed(field) for field in result.schema])
            yield from self._having(having, (batch.cast(schema) for batch in result), schema)
        except duckdb.Error as exc:
            hint = "`having` uses the output column names" if self.spec.having else "check the column names and types"
            if self.spec.window is not None and "time_bucket" in str(exc):
                hint = f"cast `{self.spec.window.column}` to timestamp before aggregate"
            raise TransformError(f"{self.where}: {str(exc).splitlines()[0]}; {hint}; columns: {data.schema.names}") from None
        finally:
            connection.close()
            having.close()

    def _having(
        self, connection: duckdb.DuckDBPyConnection, batches: Iterator[pa.RecordBatch], schema: pa.Schema
    ) -> Iterator[pa.RecordBatch]:
        condition = parse_expression(self.spec.having).sql if self.spec.having else None
        empty = True
        for batch in batches:
            if condition is not None:
                connection.register("groups", batch)
                batch = connection.sql(f"SELECT * FROM groups WHERE ({condition})").to_arrow_table().combine_chunks()
                batch = batch.to_batches()[0] if batch.num_rows else None
            if batch is not None and batch.num_rows:
                empty = False
                yield batch
        if empty:  # no groups: the destination still gets the columns
            yield pa.RecordBatch.from_pylist([], schema=schema)


def _narrowed(field: pa.Field) -> pa.Field:
    if pa.types.is_decimal(field.type) and field.type.scale == 0 and field.type.precision == 38:
        return field.with_type(pa.int64())
    return field
