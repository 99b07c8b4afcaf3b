"""Stage chunks into a warehouse table, aligning each chunk to the staged schema."""

from __future__ import annotations

import pyarrow as pa

from etl_platform.errors import DestinationError
from etl_platform.warehouse.base import SEQ, STAGING_SCHEMA, Warehouse


class StagingTable:
    """A staging table in the warehouse, created from the first chunk's schema.

    Later chunks may bring new columns (added as nullable) or lack some (filled with nulls);
    a column whose type changes between chunks must be cast, and the error says so.
    """

    def __init__(self, warehouse: Warehouse, name: str, with_sequence: bool = True):
        self.warehouse = warehouse
        self.name = name
        self.with_sequence = with_sequence
        self.schema: pa.Schema | None = None
        self._rows = 0

    @property
    def relation(self) -> str:
        return self.warehouse.relation(STAGING_SCHEMA, self.name)

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self.schema = table.schema
            extra = [pa.field(SEQ, pa.int64())] if self.with_sequence else []
            self.warehouse.create_staging(self.name, pa.schema([*table.schema, *extra]))
        table = self._align(table)
        if self.with_sequence:
            table = table.append_column(SEQ, pa.array(range(self._rows, self._rows + len(table)), pa.int64()))
        self.warehouse.bulk_insert(self.relation, table)
        self._rows += len(table)

    def _align(self, table: pa.Table) -> pa.Table:
        for field in table.schema:
            if field.name not in self.schema.names:
                self.warehouse.add_column(self.name, field)
                self.schema = self.schema.append(field)
        columns = []
        for field in self.schema:
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
        return pa.table(columns, schema=self.schema)

    def drop(self) -> None:
        self.warehouse.execute(f"DROP TABLE IF EXISTS {self.relation}")
