"""Write a run's chunks into one warehouse table, aligning every chunk to the first one's schema."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from etl_platform.errors import DestinationError
from etl_platform.types import sql_type
from etl_platform.warehouse.base import SEQ, STAGING_SCHEMA, Warehouse


class ChunkTable:
    """Bulk-loads chunks into a table that `open` prepares from the first chunk's schema.

    Later chunks may lack columns (filled with nulls). A chunk bringing a new column either adds
    it (`add_column`, staging tables) or is refused (the target of an append). A column whose type
    changes between chunks must be cast, and the error says so.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        relation: str,
        open: Callable[[pa.Schema], None],
        add_column: Callable[[pa.Field], None] | None,
        with_sequence: bool,
    ):
        self.warehouse = warehouse
        self.relation = relation
        self._open = open
        self._add_column = add_column
        self.with_sequence = with_sequence
        self.schema: pa.Schema | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self._open(table.schema)
            self.schema = table.schema
        table = self._align(table)
        if self.with_sequence:
            table = table.append_column(SEQ, pa.array(range(self.rows, self.rows + len(table)), pa.int64()))
        self.warehouse.bulk_insert(self.relation, table)
        self.rows += len(table)

    def _align(self, table: pa.Table) -> pa.Table:
        for field in table.schema:
            if field.name not in self.schema.names:
                if self._add_column is None:
                    raise new_column_error(field.name)
                self._add_column(field)
                self.schema = self.schema.append(field)
        return align(table, self.schema)


def new_column_error(column: str) -> DestinationError:
    return DestinationError(
        f"column '{column}' first appears after the load started and is not in the target; "
        f"publish it once with `write: replace` (or `schema: {{on_drift: evolve}}`), or `select` the columns to keep"
    )


def align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`'s column order and types; missing columns are nulls, other columns must not exist."""
    unknown = [name for name in table.column_names if name not in schema.names]
    if unknown:
        raise new_column_error(unknown[0])
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(len(table), field.type))
            continue
        column = table[field.name]
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DestinationError(
                    f"column '{field.name}' changed type within the input ({field.type} then {column.type}); "
                    f"add a `cast: {{{field.name}: <type>}}` transform so every row has one type"
                ) from None
        columns.append(column)
    return pa.table(columns, schema=schema)


def staging_table(warehouse: Warehouse, name: str, with_sequence: bool = True) -> ChunkTable:
    """A staging table in `_etl_staging`, created on the first chunk; new columns are added to it."""

    def create(schema: pa.Schema) -> None:
        extra = [pa.field(SEQ, pa.int64())] if with_sequence else []
        warehouse.create_staging(name, pa.schema([*schema, *extra]))

    return ChunkTable(
        warehouse,
        warehouse.relation(STAGING_SCHEMA, name),
        create,
        lambda field: warehouse.add_column(
            warehouse.relation(STAGING_SCHEMA, name), field.name, sql_type(field.type, warehouse.dialect, field.name)
        ),
        with_sequence,
    )
